/**
 * The central bank's account on the Ethereum chain: a secp256k1 key sealed under the node's
 * passphrase beside its other keys (`identity/chain.key`), made with the identity. A data folder
 * made before the node had a chain key gets one the first time its node opens a chain. Its address
 * mints the token (as the deployment's governor, or an intermediary the governor allowed).
 */
import { join } from 'node:path';
import { privateKeyToAccount, type PrivateKeyAccount } from 'viem/accounts';
import { equalBytes, fromHex, toHex } from '../../core/bytes.ts';
import { ethereumAddress } from '../../core/crypto/ethereum.ts';
import type { CryptoProvider } from '../../core/crypto/suite.ts';
import { TallyError } from '../../core/errors.ts';
import { readFileBounded } from '../../host/files.ts';
import { KEY_FILE_BYTES_MAX, openSecretKey, writeKeyFile } from '../identity/keystore.ts';
import { identityDir, IDENTITY_FILES } from '../identity/layout.ts';

/** Options of loadBankChainAccount. */
export interface LoadBankChainAccountOptions {
  /** The node's data folder, whose identity exists already. */
  dataDir: string;
  /** The passphrase the node's keys are sealed with. */
  passphrase: string;
  provider: CryptoProvider;
}

/** The bank's chain account, and whether this call made its key. */
export interface BankChainAccount {
  readonly account: PrivateKeyAccount;
  /** The key file. */
  readonly file: string;
  /** True when the data folder had no chain key and one was made now. */
  readonly created: boolean;
}

/** The key file of the bank's chain account in a data folder. */
export function bankChainKeyFile(dataDir: string): string {
  return join(identityDir(dataDir), IDENTITY_FILES.chainKey);
}

/**
 * Loads the central bank's chain account from the data folder, making its key first if the folder
 * has none. Call it with the data folder locked (as openNode holds it).
 * @throws TallyError AEAD_FAILED for a wrong passphrase, STATE_CORRUPT for a damaged file,
 *   KEY_INVALID for a key that is not secp256k1
 */
export async function loadBankChainAccount(options: LoadBankChainAccountOptions): Promise<BankChainAccount> {
  const file = bankChainKeyFile(options.dataDir);
  let created = false;
  let stored = await readFileBounded(file, 'key file', KEY_FILE_BYTES_MAX);
  if (stored === null) {
    const suite = options.provider.suites.secp256k1;
    await writeKeyFile(file, { suite, secretKey: suite.generateSecretKey() }, options.passphrase);
    created = true;
    stored = await readFileBounded(file, 'key file', KEY_FILE_BYTES_MAX);
    if (stored === null) throw new Error(`${file} vanished right after it was written`);
  }
  const opened = await openSecretKey(stored.data, options.passphrase, options.provider, file);
  if (opened.publicKey.suite !== 'secp256k1') {
    throw new TallyError('KEY_INVALID', `${file} holds a ${opened.publicKey.suite} key; the central bank's chain account needs secp256k1: restore the file from a backup`, {
      suite: opened.publicKey.suite,
      reason: 'chain key not secp256k1',
    });
  }
  const account = privateKeyToAccount(`0x${toHex(opened.secretKey)}`);
  opened.secretKey.fill(0);
  // Two derivations of one address (viem's and the project's own) must agree.
  if (!equalBytes(fromHex(account.address.slice(2)), ethereumAddress(opened.publicKey))) throw new Error(`the address of ${file} differs between viem and core/crypto/ethereum`);
  return { account, file, created };
}
