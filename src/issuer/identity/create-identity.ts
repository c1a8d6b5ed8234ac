/**
 * First start: the central bank's root key and self-signed certificate, one intermediary and one
 * issuer node certified below it (OPS §3.1's two tiers), a first empty revocation list, the
 * operator token and the central bank's chain key (secp256k1, for chain-tee), all built in a temporary folder that is renamed into place only once complete.
 * An intermediary enrolled at a central bank has no root key: its folder holds the central bank's
 * root certificate, its own key and the certificate the root gave it, and the rest as above.
 */
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Currency } from '../../core/amount.ts';
import { toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { signerFromSecret, type CryptoProvider, type SignatureSuite, type Signer, type SuiteName } from '../../core/crypto/suite.ts';
import { encodeCertificate, issueCertificate, TIME_MS_MAX, type Certificate } from '../../pki/certificate.ts';
import { encodeRevocationList, issueRevocationList } from '../../pki/revocation.ts';
import type { Role } from '../../pki/roles.ts';
import { syncDirectory, writeDurably } from '../../secure-element/durable-file.ts';
import { ensurePrivateDir, isFsError, PRIVATE_DIR_MODE } from '../../host/files.ts';
import { writeKeyFile } from './keystore.ts';
import { identityDir, IDENTITY_FILES, IDENTITY_TEMP_PREFIX } from './layout.ts';
import { encodeManifest, newManifest, type NodeRole } from './manifest.ts';

const YEAR_MS = 365.25 * 86_400_000;
/** Validity of the central bank's root certificate. */
export const ROOT_VALIDITY_MS = 10 * YEAR_MS;
/** Validity of the intermediary's certificate. */
export const INTERMEDIARY_VALIDITY_MS = 5 * YEAR_MS;
/** Validity of the issuer node's certificate. */
export const ISSUER_NODE_VALIDITY_MS = 2 * YEAR_MS;
/** How far back certificates start, so that a peer whose clock is a little behind accepts them. */
export const CLOCK_SKEW_MS = 60 * 60 * 1000;
/** Random bytes in an operator token (base64url in its file). */
export const OPERATOR_TOKEN_BYTES = 32;

/**
 * A new operator token: 32 random bytes in base64url, drawn again when the text would start with
 * '-', which a command line would take for an option (`--token -x…`).
 */
export function newOperatorToken(random: (length: number) => Uint8Array): string {
  for (;;) {
    const token = toBase64url(random(OPERATOR_TOKEN_BYTES));
    if (!token.startsWith('-')) return token;
  }
}

/** Options of createIdentity. */
export interface CreateIdentityOptions {
  dataDir: string;
  passphrase: string;
  provider: CryptoProvider;
  currency: Currency;
  now: number;
  /** The signature suite of the node's keys (the deployment's choice); Ed25519 by default. */
  suite?: SuiteName | undefined;
  /** `standalone` (the default) or `central-bank`; an intermediary's identity comes from `enrolled`. */
  role?: Exclude<NodeRole, 'intermediary'> | undefined;
  /** An intermediary's enrolment, completed: the identity is made around the certificate the central bank gave. */
  enrolled?: Enrolled | undefined;
}

/** What an intermediary's identity is made from: its central bank's root and the certificate the root gave its key. */
export interface Enrolled {
  /** The central bank's base URL. */
  readonly centralBank: string;
  readonly rootCertificate: Certificate;
  /** The sealed key file of the intermediary key, made at enrolment; copied into the identity. */
  readonly intermediaryKeyFile: string;
  readonly intermediary: Signer;
  readonly intermediaryCertificate: Certificate;
}

/** What createIdentity did: `raced` when another process put an identity in place first. */
export type CreateIdentityResult = 'created' | 'raced';

function certify(issuer: Signer, issuerRole: Role, role: Role, subject: Signer, notBefore: number, validityMs: number, name: string, code: string): Certificate {
  return issueCertificate({
    issuer,
    issuerRole,
    role,
    subject: subject.publicKey,
    notBefore,
    notAfter: Math.min(TIME_MS_MAX, Math.floor(notBefore + validityMs)),
    extensions: { name, currency: code },
  });
}

/**
 * Removes temporary identity folders a crashed first start left behind; returns their names.
 * Only folders named with IDENTITY_TEMP_PREFIX are touched.
 */
export async function removeAbandonedIdentities(dataDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dataDir);
  } catch (e) {
    if (isFsError(e, 'ENOENT')) return [];
    throw e;
  }
  const abandoned = names.filter((name) => name.startsWith(IDENTITY_TEMP_PREFIX));
  for (const name of abandoned) await rm(join(dataDir, name), { recursive: true, force: true });
  return abandoned;
}

async function writeAll(dir: string, options: CreateIdentityOptions): Promise<void> {
  const { provider, passphrase, now, enrolled } = options;
  const code = options.currency.code;
  const suite: SignatureSuite = enrolled === undefined ? provider.suites[options.suite ?? 'ed25519'] : provider.suites[enrolled.intermediary.publicKey.suite];
  const issuerNodeSecret = suite.generateSecretKey();
  // The central bank's account on an Ethereum chain is secp256k1 whatever the suite of its certificates.
  const chainSuite = provider.suites.secp256k1;
  const chainKey = chainSuite.generateSecretKey();
  const issuerNode = signerFromSecret(suite, issuerNodeSecret);
  const notBefore = Math.max(0, now - CLOCK_SKEW_MS);
  const file = (name: string) => join(dir, name);

  let rootCertificate: Certificate;
  let intermediary: Signer;
  let intermediaryCertificate: Certificate;
  const sealing: Promise<unknown>[] = [];
  if (enrolled === undefined) {
    const rootSecret = suite.generateSecretKey();
    const intermediarySecret = suite.generateSecretKey();
    const root = signerFromSecret(suite, rootSecret);
    intermediary = signerFromSecret(suite, intermediarySecret);
    rootCertificate = certify(root, 'root', 'root', root, notBefore, ROOT_VALIDITY_MS, `Tally central bank (${code})`, code);
    intermediaryCertificate = certify(root, 'root', 'intermediary', intermediary, notBefore, INTERMEDIARY_VALIDITY_MS, `Tally intermediary (${code})`, code);
    sealing.push(
      writeKeyFile(file(IDENTITY_FILES.rootKey), { suite, secretKey: rootSecret }, passphrase),
      writeKeyFile(file(IDENTITY_FILES.intermediaryKey), { suite, secretKey: intermediarySecret }, passphrase),
    );
  } else {
    ({ rootCertificate, intermediary, intermediaryCertificate } = enrolled);
    // The key sealed at enrolment, under the same passphrase: copied, never unsealed to disk.
    sealing.push(readFile(enrolled.intermediaryKeyFile).then((sealedKey) => writeDurably(file(IDENTITY_FILES.intermediaryKey), sealedKey, 'wx')));
  }
  const issuerNodeName = enrolled === undefined ? `Tally issuer node (${code})` : `${intermediaryCertificate.body.extensions.name ?? 'Tally intermediary'}: issuer node`;
  const issuerNodeCertificate = certify(intermediary, 'intermediary', 'issuer-node', issuerNode, notBefore, ISSUER_NODE_VALIDITY_MS, issuerNodeName, code);
  const revocationList = issueRevocationList({ issuer: intermediary, version: 1, issuedAt: now, revoked: [] });
  const operatorToken = newOperatorToken(randomBytes);

  // The scrypt derivations run in libuv's thread pool, side by side; all settle before a
  // failure is thrown, so that no write is still running when the caller removes the folder.
  const sealed = await Promise.allSettled([
    ...sealing,
    writeKeyFile(file(IDENTITY_FILES.issuerNodeKey), { suite, secretKey: issuerNodeSecret }, passphrase),
    writeKeyFile(file(IDENTITY_FILES.chainKey), { suite: chainSuite, secretKey: chainKey }, passphrase),
  ]);
  for (const result of sealed) {
    if (result.status === 'rejected') {
      const reason: unknown = result.reason;
      throw reason;
    }
  }
  await writeDurably(file(IDENTITY_FILES.rootCertificate), encodeCertificate(rootCertificate), 'wx');
  await writeDurably(file(IDENTITY_FILES.intermediaryCertificate), encodeCertificate(intermediaryCertificate), 'wx');
  await writeDurably(file(IDENTITY_FILES.issuerNodeCertificate), encodeCertificate(issuerNodeCertificate), 'wx');
  await writeDurably(file(IDENTITY_FILES.revocationList), encodeRevocationList(revocationList), 'wx');
  await writeDurably(file(IDENTITY_FILES.operatorToken), utf8(`${operatorToken}\n`), 'wx');
  const manifest = enrolled === undefined ? newManifest(options.currency, now, options.role ?? 'standalone') : newManifest(options.currency, now, 'intermediary', enrolled.centralBank);
  await writeDurably(file(IDENTITY_FILES.manifest), encodeManifest(manifest), 'wx');
  await syncDirectory(dir);
}

/**
 * Creates a node identity in `<dataDir>/identity`: everything is written and fsynced in a temporary
 * folder first, then renamed into place, so a crash leaves either no identity or a complete one.
 * @throws node:fs errors when the data folder cannot be written
 */
export async function createIdentity(options: CreateIdentityOptions): Promise<CreateIdentityResult> {
  const { dataDir } = options;
  await ensurePrivateDir(dataDir);
  const temp = join(dataDir, `${IDENTITY_TEMP_PREFIX}${toHex(randomBytes(8))}`);
  await mkdir(temp, { mode: PRIVATE_DIR_MODE });
  try {
    await writeAll(temp, options);
  } catch (e) {
    await rm(temp, { recursive: true, force: true });
    throw e;
  }
  try {
    await rename(temp, identityDir(dataDir));
  } catch (e) {
    await rm(temp, { recursive: true, force: true });
    // Renaming onto a folder that is there and not empty fails: another start got there first.
    if (isFsError(e, 'ENOTEMPTY') || isFsError(e, 'EEXIST')) return 'raced';
    throw e;
  }
  await syncDirectory(dataDir);
  return 'created';
}
