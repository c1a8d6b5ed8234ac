/**
 * The issuer node's identity: on first start, create the central bank's root, one intermediary,
 * the issuer node's own key, a first revocation list and the operator token, atomically; on later
 * starts, load and verify them. Private keys are sealed with the node's passphrase.
 */
import { currency as checkCurrency, type Currency } from '../../core/amount.ts';
import type { CryptoProvider, Signer, SuiteName } from '../../core/crypto/suite.ts';
import { TallyError } from '../../core/errors.ts';
import type { Certificate } from '../../pki/certificate.ts';
import type { RevocationList } from '../../pki/revocation.ts';
import { createIdentity, removeAbandonedIdentities } from './create-identity.ts';
import { ensurePrivateDir, folderMode, octalMode } from '../../host/files.ts';
import { hasIdentity } from './layout.ts';
import { loadIdentity } from './load-identity.ts';
import type { ResolvedPassphrase } from './passphrase.ts';
import type { NodeRole } from './manifest.ts';

/** A key the node holds, with the certificate that says what it may do. */
export interface CertifiedKey {
  readonly certificate: Certificate;
  /** Signs with the secret key, which stays inside the signer's closure. */
  readonly signer: Signer;
}

/** The central bank's root: its certificate, and its key only where the node is the central bank. */
export interface RootKey {
  readonly certificate: Certificate;
  /** Absent at an intermediary enrolled at a central bank: the root key stays there. */
  readonly signer?: Signer | undefined;
}

/** The node's identity, loaded and verified. */
export interface NodeIdentity {
  /** The central bank: self-signed root certificate, the trust anchor of every chain. */
  readonly root: RootKey;
  /** What the node is in the two tiers. */
  readonly role: NodeRole;
  /** An intermediary's central bank (its base URL). */
  readonly centralBank?: string | undefined;
  /** The intermediary, certified by the root; signs the issuer node's certificate and revocation lists. */
  readonly intermediary: CertifiedKey;
  /** The issuer node, certified by the intermediary; signs the node's answers. */
  readonly issuerNode: CertifiedKey;
  /** The intermediary's latest revocation list as stored (version 1, empty, on creation). */
  readonly revocationList: RevocationList;
  /** The bearer token of operator calls. */
  readonly operatorToken: string;
  /** The 0600 file the operator token is kept in. */
  readonly operatorTokenFile: string;
  readonly currency: Currency;
  /** When the identity was created, Unix milliseconds. */
  readonly createdAt: number;
  /** The identity folder. */
  readonly directory: string;
  /** True on the start that created the identity: the caller prints the operator token, once. */
  readonly created: boolean;
  /** True when the keys are sealed with a generated passphrase kept in the data folder. */
  readonly generatedPassphrase: boolean;
}

/**
 * The root key, at a node that holds it (standalone or central bank).
 * @throws TallyError ROLE_MISMATCH at an intermediary: its central bank keeps the root key
 */
export function rootSigner(identity: Pick<NodeIdentity, 'root' | 'role'>): Signer {
  const signer = identity.root.signer;
  if (signer === undefined) throw new TallyError('ROLE_MISMATCH', `this node is ${identity.role === 'intermediary' ? 'an intermediary' : `a ${identity.role} node`}: the central bank's root key is not here`, { role: identity.role });
  return signer;
}

/** Options of loadOrCreateIdentity. */
export interface LoadOrCreateIdentityOptions {
  /** The node's data folder (created 0700 if missing). */
  dataDir: string;
  /** The passphrase, as resolvePassphrase gives it, or as plain text (then not a generated one). */
  passphrase: ResolvedPassphrase | string;
  provider: CryptoProvider;
  /** The currency this node issues; a data folder keeps the one it was created with. */
  currency: Currency;
  /** The suite of a new identity's keys (Ed25519 by default); a data folder keeps the one it was created with. */
  suite?: SuiteName | undefined;
  /** The role of a new identity (`standalone` by default); a data folder keeps the one it was created with. */
  role?: 'standalone' | 'central-bank' | undefined;
  /** The current time, Unix milliseconds. */
  now: number;
  /** Where warnings go (abandoned temporary folders, a data folder others can read, certificates near their end). */
  log?: ((line: string) => void) | undefined;
}

/**
 * Loads the identity in `dataDir`, creating it first if the folder holds none. A creation that
 * crashed leaves only a temporary folder, removed here before creating again.
 * @throws RangeError for a malformed currency; TallyError CURRENCY_MISMATCH for a data folder of
 *   another currency, AEAD_FAILED for a wrong passphrase (nothing is written), STATE_CORRUPT,
 *   KEY_INVALID, CERT_* or CRL_INVALID for a damaged identity (see loadIdentity)
 */
export async function loadOrCreateIdentity(options: LoadOrCreateIdentityOptions): Promise<NodeIdentity> {
  const issued = checkCurrency(options.currency.code, options.currency.decimals);
  const resolved: ResolvedPassphrase = typeof options.passphrase === 'string' ? { passphrase: options.passphrase, generated: false } : options.passphrase;
  const log = options.log ?? (() => {});
  const { dataDir, provider, now } = options;

  if (!(await ensurePrivateDir(dataDir))) {
    const mode = await folderMode(dataDir);
    if (mode !== null && process.platform !== 'win32' && (mode & 0o077) !== 0) {
      log(`the data folder ${dataDir} has mode ${octalMode(mode)}; \`chmod 700 ${dataDir}\` keeps others from listing it`);
    }
  }

  let created = false;
  if (!(await hasIdentity(dataDir))) {
    for (const name of await removeAbandonedIdentities(dataDir)) log(`removed ${name} in ${dataDir}, left by a first start that did not finish`);
    created = (await createIdentity({ dataDir, passphrase: resolved.passphrase, provider, currency: issued, now, suite: options.suite, role: options.role })) === 'created';
  }
  // Also right after creation: what is returned is exactly what later starts will load.
  const identity = await loadIdentity({ dataDir, passphrase: resolved.passphrase, provider, currency: issued, now, log });
  return { ...identity, created, generatedPassphrase: resolved.generated };
}
