/**
 * Later starts: read the identity folder back and trust nothing in it. Every certificate is decoded
 * and its chain verified, every key file opened and matched against its certificate, the
 * revocation list checked against the intermediary's key, the operator token's file mode checked.
 */
import { join } from 'node:path';
import type { Currency } from '../../core/amount.ts';
import { equalBytes, fromBase64url, toHex } from '../../core/bytes.ts';
import type { CryptoProvider, PublicKey } from '../../core/crypto/suite.ts';
import { TallyError } from '../../core/errors.ts';
import { decodeCertificate, serialHex, CERTIFICATE_BYTES_MAX, type Certificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { decodeRevocationList, verifyRevocationList, REVOCATION_LIST_BYTES_MAX } from '../../pki/revocation.ts';
import { corrupt, readFileBounded, requirePrivateDir, requirePrivateMode } from '../../host/files.ts';
import { readKeyFile } from './keystore.ts';
import { hasIdentity, identityDir, IDENTITY_FILES } from './layout.ts';
import { keyId } from '../../pki/key-id.ts';
import { decodeManifest, manifestRole, requireSameCurrency, MANIFEST_BYTES_MAX } from './manifest.ts';
import type { CertifiedKey, NodeIdentity } from './node-identity.ts';

/** A certificate this close to its end makes the loader log a warning. */
export const EXPIRY_WARNING_MS = 30 * 86_400_000;
/** Largest operator token file accepted. */
const OPERATOR_TOKEN_FILE_BYTES_MAX = 256;
const OPERATOR_TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}\n?$/;

/** Options of loadIdentity. */
export interface LoadIdentityOptions {
  dataDir: string;
  passphrase: string;
  provider: CryptoProvider;
  currency: Currency;
  now: number;
  log: (line: string) => void;
}

/** What loadIdentity returns: the identity without the facts only the caller knows. */
export type LoadedIdentity = Omit<NodeIdentity, 'created' | 'generatedPassphrase'>;

async function readRequired(dir: string, name: string, what: string, maxBytes: number): Promise<{ path: string; data: Uint8Array; mode: number }> {
  const path = join(dir, name);
  const file = await readFileBounded(path, what, maxBytes);
  if (file === null) throw corrupt(`the identity folder ${dir} is incomplete: ${name} is missing; restore the data folder from a backup`, `${name} missing`);
  return { path, ...file };
}

/** Rethrows a TallyError with the file it came from in front of its message, keeping code and details. */
function inFile<T>(path: string, read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof TallyError) throw new TallyError(e.code, `${path}: ${e.message}`, e.details, { cause: e });
    throw e;
  }
}

async function readCertificate(dir: string, name: string): Promise<Certificate> {
  const file = await readRequired(dir, name, 'certificate', CERTIFICATE_BYTES_MAX);
  return inFile(file.path, () => decodeCertificate(file.data));
}

function requireKeyMatches(certificate: Certificate, key: PublicKey, keyFile: string, certificateFile: string): void {
  const subject = certificate.body.subject;
  if (subject.suite !== key.suite || !equalBytes(subject.key, key.key)) {
    throw new TallyError('KEY_INVALID', `${keyFile} holds another key than the one certificate ${certificateFile} (serial ${serialHex(certificate)}) certifies; restore the data folder from a backup`, {
      suite: key.suite,
      reason: 'key does not match its certificate',
    });
  }
}

async function readOperatorToken(dir: string): Promise<{ token: string; path: string }> {
  const file = await readRequired(dir, IDENTITY_FILES.operatorToken, 'operator token file', OPERATOR_TOKEN_FILE_BYTES_MAX);
  requirePrivateMode(file.path, 'operator token file', file.mode);
  const text = new TextDecoder().decode(file.data);
  if (!OPERATOR_TOKEN_PATTERN.test(text)) throw corrupt(`operator token file ${file.path} does not hold a token (43 base64url characters)`, 'malformed token');
  const token = text.trimEnd();
  try {
    fromBase64url(token);
  } catch (e) {
    throw corrupt(`operator token file ${file.path} does not hold a token: ${e instanceof Error ? e.message : String(e)}`, 'malformed token', e);
  }
  return { token, path: file.path };
}

function warnIfExpiring(certificates: readonly [string, Certificate][], now: number, log: (line: string) => void): void {
  for (const [name, certificate] of certificates) {
    const left = certificate.body.notAfter - now;
    if (left <= EXPIRY_WARNING_MS) {
      log(`certificate ${name} (serial ${serialHex(certificate)}) expires on ${new Date(certificate.body.notAfter).toISOString()}, in ${Math.max(0, Math.floor(left / 86_400_000))} days`);
    }
  }
}

/**
 * Loads and verifies the identity in `<dataDir>/identity`. Reads only: a refusal changes nothing.
 * @throws TallyError CURRENCY_MISMATCH for a folder of another currency; AEAD_FAILED for a wrong
 *   passphrase; STATE_CORRUPT for a missing, damaged or too widely readable file; KEY_INVALID for a
 *   key that is not its certificate's; CERT_* for a certificate that does not verify; CRL_INVALID
 */
export async function loadIdentity(options: LoadIdentityOptions): Promise<LoadedIdentity> {
  const { dataDir, passphrase, provider, now } = options;
  const dir = identityDir(dataDir);
  await requirePrivateDir(dir, 'identity folder');

  const manifestFile = await readRequired(dir, IDENTITY_FILES.manifest, 'manifest', MANIFEST_BYTES_MAX);
  const manifest = decodeManifest(manifestFile.data, manifestFile.path);
  requireSameCurrency(manifest, options.currency, dataDir);

  const rootCertificate = await readCertificate(dir, manifest.certificates.root);
  const intermediaryCertificate = await readCertificate(dir, manifest.certificates.intermediary);
  const issuerNodeCertificate = await readCertificate(dir, manifest.certificates.issuerNode);
  const listFile = await readRequired(dir, IDENTITY_FILES.revocationList, 'revocation list', REVOCATION_LIST_BYTES_MAX);
  const revocationList = inFile(listFile.path, () => decodeRevocationList(listFile.data));
  const operatorToken = await readOperatorToken(dir);

  const keyFile = (name: string) => join(dir, name);
  const role = manifestRole(manifest);
  // An intermediary enrolled at a central bank holds the root's certificate but not its key.
  const holdsRoot = role !== 'intermediary';
  const [root, intermediary, issuerNode] = await Promise.all([
    holdsRoot ? readKeyFile(keyFile(IDENTITY_FILES.rootKey), passphrase, provider) : Promise.resolve(undefined),
    readKeyFile(keyFile(IDENTITY_FILES.intermediaryKey), passphrase, provider),
    readKeyFile(keyFile(IDENTITY_FILES.issuerNodeKey), passphrase, provider),
  ]);
  if (root !== undefined) requireKeyMatches(rootCertificate, root.publicKey, keyFile(IDENTITY_FILES.rootKey), manifest.certificates.root);
  requireKeyMatches(intermediaryCertificate, intermediary.publicKey, keyFile(IDENTITY_FILES.intermediaryKey), manifest.certificates.intermediary);
  requireKeyMatches(issuerNodeCertificate, issuerNode.publicKey, keyFile(IDENTITY_FILES.issuerNodeKey), manifest.certificates.issuerNode);

  inFile(listFile.path, () => verifyRevocationList(provider, revocationList, intermediary.publicKey));
  const anchors = [rootCertificate];
  inFile(join(dir, manifest.certificates.intermediary), () =>
    verifyChain({ provider, chain: [intermediaryCertificate, rootCertificate], trustAnchors: anchors, now, revocations: [revocationList], leafRoles: ['intermediary'] }),
  );
  inFile(join(dir, manifest.certificates.issuerNode), () =>
    verifyChain({ provider, chain: [issuerNodeCertificate, intermediaryCertificate, rootCertificate], trustAnchors: anchors, now, revocations: [revocationList], leafRoles: ['issuer-node'] }),
  );
  const certificates: [string, Certificate][] = [
    [manifest.certificates.root, rootCertificate],
    [manifest.certificates.intermediary, intermediaryCertificate],
    [manifest.certificates.issuerNode, issuerNodeCertificate],
  ];
  for (const [name, certificate] of certificates) {
    if (certificate.body.extensions.currency !== manifest.currency.code) {
      throw corrupt(`${join(dir, name)} certifies a key for ${certificate.body.extensions.currency ?? 'no currency'}, but the manifest says ${manifest.currency.code}`, 'currency differs from the manifest');
    }
  }
  warnIfExpiring(certificates, now, options.log);

  const certified = (certificate: Certificate, signer: CertifiedKey['signer']): CertifiedKey => ({ certificate, signer });
  return {
    root: { certificate: rootCertificate, ...(root === undefined ? {} : { signer: root.signer }) },
    role,
    ...(manifest.centralBank === undefined ? {} : { centralBank: manifest.centralBank }),
    intermediary: certified(intermediaryCertificate, intermediary.signer),
    issuerNode: certified(issuerNodeCertificate, issuerNode.signer),
    revocationList,
    operatorToken: operatorToken.token,
    operatorTokenFile: operatorToken.path,
    currency: manifest.currency,
    createdAt: manifest.createdAt,
    directory: dir,
  };
}

/**
 * The issuer node's key id (hex) and currency as its data folder records them, read without the
 * passphrase: the manifest and the node's certificate only, nothing verified. Tools that only need
 * to name the node's streams use it.
 * @throws TallyError NODE_NOT_FOUND when the folder holds no node; STATE_CORRUPT for a damaged file
 */
export async function readIssuerNodeName(dataDir: string): Promise<{ keyId: string; currency: Currency }> {
  if (!(await hasIdentity(dataDir))) {
    throw new TallyError('NODE_NOT_FOUND', `${dataDir} holds no node: give the node's data folder (tally node start --data)`, { dataDir });
  }
  const dir = identityDir(dataDir);
  const manifestFile = await readRequired(dir, IDENTITY_FILES.manifest, 'manifest', MANIFEST_BYTES_MAX);
  const manifest = decodeManifest(manifestFile.data, manifestFile.path);
  const certificate = await readCertificate(dir, manifest.certificates.issuerNode);
  return { keyId: toHex(keyId(certificate.body.subject)), currency: manifest.currency };
}
