/**
 * The account key at rest: the user key a wallet registers at the node and signs its calls with is
 * never written in the clear. A wallet without a secure element host key slot keeps it sealed under
 * a passphrase (scrypt + XChaCha20-Poly1305, the node's key file format, keystore.ts); the
 * passphrase comes from a prompt on a terminal, else from TALLY_WALLET_PASSPHRASE.
 *
 * A wallet with a secure element has it sealed by the secure element host instead, in the host's key
 * slot (secure-element/key-slot.ts): the record holds only the box, which opens on that device alone.
 *
 * Either record holds the key id of the public key it opens to, so a swapped file or box is refused
 * even when it opens.
 */
import { equalBytes, fromBase64url, fromHex, toBase64url, toHex } from '../core/bytes.ts';
import { literal, oneOf, taggedUnion, text, type Infer } from '../core/codec.ts';
import { signerFromSecret, suiteFor, SUITE_NAMES, type CryptoProvider, type SignatureSuite, type Signer } from '../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { base64urlText, keyIdHex } from '../core/fields.ts';
import { KEY_FILE_BYTES_MAX, openKey, sealKey, type ScryptParams } from '../issuer/identity/keystore.ts';
import { keyId } from '../pki/key-id.ts';
import { SLOT_BOX_BYTES_MAX } from '../secure-element/key-slot.ts';

/** The environment variable a passphrase is read from when standard input is not a terminal. */
export const WALLET_PASSPHRASE_ENV = 'TALLY_WALLET_PASSPHRASE';
/** Shortest passphrase accepted for a new wallet. */
export const WALLET_PASSPHRASE_CHARS_MIN = 8;

/** The key slot label the account key is sealed under in a secure element host. */
export const ACCOUNT_SLOT_LABEL = 'account';

/** How the account key is kept: sealed by the secure element host, or under a passphrase. */
export const sealedAccountKeyCodec = taggedUnion('kind', {
  se: {
    /** The box the secure element host sealed (base64url). */
    box: base64urlText({ max: Math.ceil((SLOT_BOX_BYTES_MAX * 4) / 3) }),
    /** The suite of the key (the box holds the secret key only). */
    suite: oneOf(SUITE_NAMES),
    keyId: keyIdHex,
    version: literal(1),
  },
  passphrase: {
    /** The key file (keystore.ts), base64url. */
    file: base64urlText({ max: Math.ceil((KEY_FILE_BYTES_MAX * 4) / 3) }),
    /** The key id of the public key the file must open to. */
    keyId: keyIdHex,
    /** The format of this record. */
    version: literal(1),
  },
});
/** How the account key is kept. */
export type SealedAccountKey = Infer<typeof sealedAccountKeyCodec>;
/** An account key sealed under a passphrase. */
export type PassphraseAccountKey = Extract<SealedAccountKey, { kind: 'passphrase' }>;
/** An account key sealed by the secure element host. */
export type HeldAccountKey = Extract<SealedAccountKey, { kind: 'se' }>;

/** Where a passphrase comes from: the environment, and a prompt when there is a terminal. */
export interface PassphraseSource {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly isTTY: boolean;
  /** Asks at a prompt that does not echo. */
  readonly ask?: ((prompt: string) => Promise<string>) | undefined;
}

/**
 * The wallet passphrase: asked on a terminal (twice when `confirm`), else TALLY_WALLET_PASSPHRASE.
 * @throws TallyError PASSWORD_MISSING when neither gives one, or one shorter than 8 characters for a
 *   new wallet; PASSWORD_MISMATCH when the two entries differ
 */
export async function walletPassphrase(source: PassphraseSource, options: { wallet: string; confirm?: boolean | undefined }): Promise<string> {
  let passphrase: string;
  if (!source.isTTY || source.ask === undefined) {
    const fromEnv = source.env[WALLET_PASSPHRASE_ENV];
    if (fromEnv === undefined || fromEnv === '') {
      throw new TallyError('PASSWORD_MISSING', `wallet ${options.wallet}: its account key is sealed under a passphrase; standard input is not a terminal, so set ${WALLET_PASSPHRASE_ENV}`, {});
    }
    passphrase = fromEnv;
  } else {
    passphrase = await source.ask(`Passphrase of wallet ${options.wallet}: `);
    if (options.confirm === true && (await source.ask('Again: ')) !== passphrase) {
      throw new TallyError('PASSWORD_MISMATCH', 'the two passphrases differ; nothing was changed', {});
    }
  }
  if (options.confirm === true && passphrase.length < WALLET_PASSPHRASE_CHARS_MIN) {
    throw new TallyError('PASSWORD_MISSING', `a wallet passphrase needs at least ${WALLET_PASSPHRASE_CHARS_MIN} characters`, {});
  }
  return passphrase;
}

/**
 * Seals an account secret key under `passphrase`.
 * @throws RangeError for an empty or overlong passphrase or a secret of the wrong length
 */
export async function sealAccountKey(suite: SignatureSuite, secretKey: Uint8Array, passphrase: string, options?: { kdf?: ScryptParams | undefined }): Promise<PassphraseAccountKey> {
  const file = await sealKey({ suite, secretKey }, passphrase, options);
  return { kind: 'passphrase', file: toBase64url(file), keyId: toHex(keyId({ suite: suite.name, key: suite.publicKey(secretKey) })), version: 1 };
}

/**
 * Opens the account key of wallet `wallet` and returns a signer over it.
 * @throws TallyError PASSWORD_WRONG for a wrong passphrase; STATE_CORRUPT for a damaged or altered
 *   sealed key, or one that opens to another key than the wallet's; DECODE_FAILED for a malformed record
 */
export async function openAccountKey(sealed: unknown, passphrase: string, provider: CryptoProvider, wallet: string): Promise<Signer> {
  const record = sealedAccountKeyCodec.decode(sealed, 'accountKey');
  if (record.kind !== 'passphrase') {
    throw new TallyError('STATE_CORRUPT', `the account key of wallet ${wallet} is sealed by its secure element, not under a passphrase`, { reason: 'account key kind' });
  }
  let opened;
  try {
    opened = await openKey(fromBase64url(record.file), passphrase, provider, `the account key of wallet ${wallet}`);
  } catch (e) {
    if (isTallyError(e, 'AEAD_FAILED')) {
      throw new TallyError('PASSWORD_WRONG', `wrong passphrase for wallet ${wallet}: give the passphrase chosen when the wallet was created (${WALLET_PASSPHRASE_ENV} when standard input is not a terminal)`, {}, { cause: e });
    }
    throw e;
  }
  if (!equalBytes(keyId(opened.publicKey), fromHex(record.keyId))) {
    throw new TallyError('STATE_CORRUPT', `the account key of wallet ${wallet} opens to another key than the wallet's (${record.keyId}); restore the wallet folder from a backup`, { reason: 'account key mismatch' });
  }
  return opened.signer;
}

/**
 * Seals a key kept in the clear by an earlier version (`user.secret`, hex) — the migration step of
 * a wallet.json folder's slot.
 */
export async function sealLegacySecret(suite: SignatureSuite, secretHex: string, passphrase: string, options?: { kdf?: ScryptParams | undefined }): Promise<PassphraseAccountKey> {
  const secret = text({ min: 64, max: 64, pattern: /^[0-9a-f]*$/, describe: 'an account key in hex' }).decode(secretHex, 'user.secret');
  const bytes = fromHex(secret);
  try {
    return await sealAccountKey(suite, bytes, passphrase, options);
  } finally {
    bytes.fill(0);
  }
}

/** A secure element host's key slot (IsolatedHost offers it). */
export interface KeySlot {
  sealSecret(label: string, secret: Uint8Array): Promise<Uint8Array>;
  openSecret(label: string, box: Uint8Array): Promise<Uint8Array>;
}

/** Has the secure element host seal an account secret key in its key slot. */
export async function holdAccountKey(slot: KeySlot, suite: SignatureSuite, secretKey: Uint8Array): Promise<HeldAccountKey> {
  const box = await slot.sealSecret(ACCOUNT_SLOT_LABEL, secretKey);
  return { kind: 'se', box: toBase64url(box), suite: suite.name, keyId: toHex(keyId({ suite: suite.name, key: suite.publicKey(secretKey) })), version: 1 };
}

/**
 * Opens an account key the secure element host sealed, and returns a signer over it (the secret
 * stays in this process's memory only while the wallet is open).
 * @throws TallyError STATE_CORRUPT for a box of another device, altered, or one that opens to another key than the wallet's
 */
export async function openHeldAccountKey(record: HeldAccountKey, slot: KeySlot, provider: CryptoProvider, wallet: string): Promise<{ signer: Signer; secret: Uint8Array }> {
  const secret = await slot.openSecret(ACCOUNT_SLOT_LABEL, fromBase64url(record.box));
  const signer = signerFromSecret(suiteFor(provider, record.suite), secret);
  if (!equalBytes(keyId(signer.publicKey), fromHex(record.keyId))) {
    throw new TallyError('STATE_CORRUPT', `the account key of wallet ${wallet} opens to another key than the wallet's (${record.keyId}); restore the wallet folder from a backup`, { reason: 'account key mismatch' });
  }
  return { signer, secret };
}
