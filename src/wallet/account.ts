/**
 * The wallet's account key (the user key registered at the node, which signs the wallet's calls) at
 * rest and in use. It is never written in the clear: a wallet with a secure element has the SE host
 * seal it in its key slot (secure-element/key-slot.ts); a wallet without one keeps it sealed under
 * the wallet passphrase (account-key.ts). It is opened on first use and kept in memory while the
 * wallet is open. A wallet.json of an earlier version that kept it in the clear has it sealed as it
 * moves into the store (`holdLegacyAccount`).
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fromHex, toHex } from '../core/bytes.ts';
import { signerFromSecret, type Signer } from '../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { askHidden } from '../host/prompt.ts';
import { keyId } from '../pki/key-id.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { IsolatedHost } from '../secure-element/host-isolated.ts';
import type { TrustedApp } from '../secure-element/trusted-app.ts';
import { holdAccountKey, openAccountKey, openHeldAccountKey, sealAccountKey, walletPassphrase, type KeySlot, type HeldAccountKey, type PassphraseSource, type SealedAccountKey } from './account-key.ts';
import type { AccountMigration } from './folder.ts';
import type { WalletPaths } from './home.ts';
import type { WalletAccount } from './wallet-data.ts';

/** An account key in memory: its signer, and its secret to seal it again (under a new secure element). */
export interface OpenAccount {
  readonly signer: Signer;
  /** The secret key, when it must be sealed again (held by an SE); null for a passphrase-sealed key. */
  readonly secret: Uint8Array | null;
}

/** The passphrase source of a process: TALLY_WALLET_PASSPHRASE, or a prompt when standard input is a terminal. */
export function processPassphrase(): PassphraseSource {
  return { env: process.env, isTTY: process.stdin.isTTY === true, ask: askHidden };
}

/** A new account key (Ed25519, as the node registers users). */
export function newAccountKey(secret: Uint8Array): OpenAccount & { secret: Uint8Array } {
  return { signer: signerFromSecret(nodeProvider.suites.ed25519, secret), secret };
}

/**
 * Seals a new account key: in the key slot of `slot` (the wallet's SE), or, for a wallet without
 * one, under a new wallet passphrase (asked twice on a terminal).
 * @throws TallyError PASSWORD_MISSING, PASSWORD_MISMATCH; SE_* from the key slot
 */
export async function holdNewAccount(account: { secret: Uint8Array }, where: { slot: KeySlot } | { passphrase: PassphraseSource; wallet: string }): Promise<SealedAccountKey> {
  const suite = nodeProvider.suites.ed25519;
  if ('slot' in where) return holdAccountKey(where.slot, suite, account.secret);
  const passphrase = await walletPassphrase(where.passphrase, { wallet: where.wallet, confirm: true });
  return sealAccountKey(suite, account.secret, passphrase);
}

/** A process serving only the key slot of the secure element in `se` (its app may refuse to run). */
export async function keySlotAt<S>(app: TrustedApp<S>, se: string, counter: string): Promise<IsolatedHost<S, TrustedApp<S>['commands']> & KeySlot> {
  return IsolatedHost.start({ app, location: { module: 'key-slot-only', export: 'none' }, dir: se, counter: { kind: 'file', path: counter }, keySlotOnly: true });
}

/** The secure element folders of `paths`'s retired SEs (a recovery cut short leaves the box under one of them; each is tried). */
async function retiredSecureElements(paths: WalletPaths): Promise<string[]> {
  const names = await readdir(join(paths.dir, 'retired')).catch(() => [] as string[]);
  return names.sort().map((name) => join(paths.dir, 'retired', name, 'se'));
}

/**
 * Opens the account key of a wallet: `held` by the SE (through `slot`, then, if the box is not the
 * current SE's, the retired SEs' key slots: a recovery cut short between moving the SEs and sealing
 * the key again), or under the wallet passphrase.
 * @throws TallyError STATE_CORRUPT (no sealed key, a box no SE of the wallet opens, another key), PASSWORD_MISSING, PASSWORD_WRONG
 */
export async function openWalletAccount<S>(
  wallet: string,
  user: WalletAccount,
  sources: { slot: () => Promise<KeySlot>; app: TrustedApp<S>; paths: WalletPaths; passphrase: PassphraseSource },
): Promise<OpenAccount> {
  const held = user.held;
  if (held === undefined) throw new TallyError('STATE_CORRUPT', `wallet ${wallet}: the sealed account key is missing`, { reason: 'user' });
  const opened =
    held.kind === 'passphrase'
      ? { signer: await openAccountKey(held, await walletPassphrase(sources.passphrase, { wallet }), nodeProvider, wallet), secret: null }
      : await openFromSlots(wallet, held, sources);
  if (toHex(keyId(opened.signer.publicKey)) !== user.keyId) {
    throw new TallyError('STATE_CORRUPT', `wallet ${wallet}: the sealed account key opens to another key than the account's (${user.keyId})`, { reason: 'account key mismatch' });
  }
  return opened;
}

async function openFromSlots<S>(wallet: string, held: HeldAccountKey, sources: { slot: () => Promise<KeySlot>; app: TrustedApp<S>; paths: WalletPaths }): Promise<OpenAccount> {
  let first: unknown;
  try {
    return await openHeldAccountKey(held, await sources.slot(), nodeProvider, wallet);
  } catch (e) {
    if (!isTallyError(e, 'STATE_CORRUPT')) throw e;
    first = e;
  }
  for (const se of await retiredSecureElements(sources.paths)) {
    const slot = await keySlotAt(sources.app, se, join(se, '..', 'counter'));
    try {
      return await openHeldAccountKey(held, slot, nodeProvider, wallet);
    } catch (e) {
      if (!isTallyError(e, 'STATE_CORRUPT') && !isTallyError(e, 'SE_NOT_PROVISIONED')) throw e;
    } finally {
      await slot.close();
    }
  }
  throw first;
}

/**
 * The migration of a wallet.json of an earlier version that kept the account key in the clear: the
 * key enters the store sealed only, in the key slot of the wallet's SE when it has one (`app` is its
 * trusted app), else under a new wallet passphrase.
 * @throws TallyError PASSWORD_MISSING (no passphrase for a wallet without an SE: nothing is changed), SE_*
 */
export function holdLegacyAccount<S>(app: TrustedApp<S>, passphrase: PassphraseSource = processPassphrase()): AccountMigration {
  return async ({ name, user, paths, device }) => {
    const { secret, ...rest } = user;
    if (secret === undefined) return { user };
    const account = newAccountKey(fromHex(secret));
    if (toHex(keyId(account.signer.publicKey)) !== user.keyId) {
      throw new TallyError('STATE_CORRUPT', `wallet file ${paths.legacy}: the account key does not match the account ${user.keyId}`, { reason: 'account key mismatch' });
    }
    let held: SealedAccountKey;
    if (device === null) {
      held = await holdNewAccount(account, { passphrase, wallet: name });
    } else {
      const slot = await keySlotAt(app, paths.se, paths.counter);
      try {
        held = await holdNewAccount(account, { slot });
      } finally {
        await slot.close();
      }
    }
    return {
      user: { ...rest, held },
      history: [{ at: Date.now(), kind: 'account-sealed', detail: device === null ? 'the account key, kept in the clear by an earlier version, is now sealed under the wallet passphrase' : 'the account key, kept in the clear by an earlier version, is now sealed by the secure element' }],
    };
  };
}
