/**
 * An intermediary's enrolment at a central bank, on its side: `tally node enrol` makes the
 * intermediary key (sealed with the node's passphrase), fetches the central bank's root
 * certificate, and keeps both with the request in `<data>/enrolment/` while the central bank's
 * operator decides. Once the central bank answers a certificate (checked: the root signed it, for
 * this key, as an intermediary, in this currency), the node's identity is made around it in one
 * rename and the enrolment folder goes. Nothing here speaks to the network: the caller does.
 */
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { currency as checkCurrency, type Currency } from '../../core/amount.ts';
import { equalBytes, fromBase64url, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import type { CryptoProvider, Signer, SuiteName } from '../../core/crypto/suite.ts';
import { TallyError } from '../../core/errors.ts';
import { decodeCertificate, encodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import { corrupt, ensurePrivateDir, isFsError, PRIVATE_DIR_MODE, readFileBounded } from '../../host/files.ts';
import { syncDirectory, writeDurably } from '../../secure-element/durable-file.ts';
import { createIdentity } from './create-identity.ts';
import { readKeyFile, writeKeyFile } from './keystore.ts';
import { ENROLMENT_DIR, hasIdentity, IDENTITY_FILES } from './layout.ts';

/** The folder of a pending enrolment inside the data folder. */
export { ENROLMENT_DIR };
const REQUEST_FILE = 'request.json';
const REQUEST_FILE_BYTES_MAX = 16 * 1024;

/** A pending enrolment, read back. */
export interface PendingEnrolment {
  readonly centralBank: string;
  readonly name: string;
  readonly currency: Currency;
  readonly rootCertificate: Certificate;
  readonly intermediary: Signer;
  /** The intermediary key's id (hex): its enrolment's id at the central bank. */
  readonly keyId: string;
  readonly requestedAt: number;
  readonly directory: string;
}

/** The enrolment folder of a data folder. */
export function enrolmentDir(dataDir: string): string {
  return join(dataDir, ENROLMENT_DIR);
}

/** Options of beginEnrolment. */
export interface BeginEnrolmentOptions {
  dataDir: string;
  passphrase: string;
  provider: CryptoProvider;
  centralBank: string;
  name: string;
  currency: Currency;
  /** The central bank's root certificate, as it served it (pinned by the caller). */
  rootCertificate: Certificate;
  suite: SuiteName;
  now: number;
}

/**
 * Makes the intermediary key and keeps the pending enrolment, whole or not at all (a temporary
 * folder renamed into place).
 * @throws TallyError ROLE_MISMATCH when the folder already holds a node identity or an enrolment
 */
export async function beginEnrolment(options: BeginEnrolmentOptions): Promise<PendingEnrolment> {
  const { dataDir, passphrase, provider } = options;
  await ensurePrivateDir(dataDir);
  if (await hasIdentity(dataDir)) throw new TallyError('ROLE_MISMATCH', `the data folder ${dataDir} already holds a node; enrol a new intermediary in an empty folder`, { role: 'existing node' });
  const temp = join(dataDir, `.enrolment.tmp-${toHex(randomBytes(8))}`);
  await mkdir(temp, { mode: PRIVATE_DIR_MODE });
  try {
    const suite = provider.suites[options.suite];
    const secretKey = suite.generateSecretKey();
    const publicKey = await writeKeyFile(join(temp, IDENTITY_FILES.intermediaryKey), { suite, secretKey }, passphrase);
    const request = {
      centralBank: options.centralBank,
      name: options.name,
      currency: { code: options.currency.code, decimals: options.currency.decimals },
      rootCertificate: toBase64url(encodeCertificate(options.rootCertificate)),
      keyId: toHex(keyId(publicKey)),
      requestedAt: options.now,
    };
    await writeDurably(join(temp, REQUEST_FILE), utf8(`${JSON.stringify(request, null, 2)}\n`), 'wx');
    await syncDirectory(temp);
    await rename(temp, enrolmentDir(dataDir));
  } catch (e) {
    await rm(temp, { recursive: true, force: true });
    if (isFsError(e, 'ENOTEMPTY') || isFsError(e, 'EEXIST')) throw new TallyError('ROLE_MISMATCH', `the data folder ${dataDir} already holds an enrolment under way`, { role: 'enrolling' });
    throw e;
  }
  await syncDirectory(dataDir);
  const pending = await readPendingEnrolment(dataDir, passphrase, provider);
  if (pending === null) throw new Error(`the enrolment in ${dataDir} vanished`);
  return pending;
}

/**
 * The pending enrolment of a data folder, or null when it has none.
 * @throws TallyError STATE_CORRUPT for a damaged request file; AEAD_FAILED for a wrong passphrase
 */
export async function readPendingEnrolment(dataDir: string, passphrase: string, provider: CryptoProvider): Promise<PendingEnrolment | null> {
  const dir = enrolmentDir(dataDir);
  const file = await readFileBounded(join(dir, REQUEST_FILE), 'enrolment request', REQUEST_FILE_BYTES_MAX);
  if (file === null) return null;
  let request: { centralBank: string; name: string; currency: { code: string; decimals: number }; rootCertificate: string; keyId: string; requestedAt: number };
  let rootCertificate: Certificate;
  let currency: Currency;
  try {
    request = JSON.parse(new TextDecoder().decode(file.data)) as typeof request;
    rootCertificate = decodeCertificate(fromBase64url(request.rootCertificate));
    currency = checkCurrency(request.currency.code, request.currency.decimals);
    if (typeof request.centralBank !== 'string' || typeof request.name !== 'string' || typeof request.keyId !== 'string' || typeof request.requestedAt !== 'number') throw new Error('a field is missing');
  } catch (e) {
    throw corrupt(`the enrolment request ${join(dir, REQUEST_FILE)} is damaged (${e instanceof Error ? e.message : String(e)}); remove ${dir} and enrol again`, 'damaged enrolment request', e);
  }
  const key = await readKeyFile(join(dir, IDENTITY_FILES.intermediaryKey), passphrase, provider);
  if (toHex(keyId(key.publicKey)) !== request.keyId) throw corrupt(`the enrolment in ${dir} holds another key than its request names; remove ${dir} and enrol again`, 'key differs from request');
  return { centralBank: request.centralBank, name: request.name, currency, rootCertificate, intermediary: key.signer, keyId: request.keyId, requestedAt: request.requestedAt, directory: dir };
}

/**
 * Checks the certificate the central bank answered and makes the node's identity around it; the
 * enrolment folder goes once the identity is in place.
 * @throws TallyError CERT_* when the certificate is not the root's, for this key, as an intermediary, in this currency
 */
export async function completeEnrolment(options: { dataDir: string; passphrase: string; provider: CryptoProvider; pending: PendingEnrolment; certificate: Uint8Array; now: number }): Promise<void> {
  const { pending, provider, now } = options;
  const certificate = decodeCertificate(options.certificate);
  const subject = certificate.body.subject;
  if (subject.suite !== pending.intermediary.publicKey.suite || !equalBytes(subject.key, pending.intermediary.publicKey.key)) {
    throw new TallyError('CERT_CHAIN_INVALID', 'the central bank answered a certificate for another key than this intermediary\'s', { reason: 'subject differs' });
  }
  verifyChain({ provider, chain: [certificate, pending.rootCertificate], trustAnchors: [pending.rootCertificate], now, leafRoles: ['intermediary'] });
  if (certificate.body.extensions.currency !== pending.currency.code) {
    throw new TallyError('CERT_CHAIN_INVALID', `the central bank certified the key for ${certificate.body.extensions.currency ?? 'no currency'}, not ${pending.currency.code}`, { reason: 'currency differs' });
  }
  if (certificate.body.extensions.name !== pending.name) {
    throw new TallyError('CERT_CHAIN_INVALID', `the central bank certified the key as ${JSON.stringify(certificate.body.extensions.name ?? '')}, not as ${JSON.stringify(pending.name)} it asked for`, { reason: 'name differs' });
  }
  const created = await createIdentity({
    dataDir: options.dataDir,
    passphrase: options.passphrase,
    provider,
    currency: pending.currency,
    now,
    enrolled: {
      centralBank: pending.centralBank,
      rootCertificate: pending.rootCertificate,
      intermediaryKeyFile: join(pending.directory, IDENTITY_FILES.intermediaryKey),
      intermediary: pending.intermediary,
      intermediaryCertificate: certificate,
    },
  });
  if (created === 'raced') throw new TallyError('DATA_FOLDER_LOCKED', `another process made the identity in ${options.dataDir} first`, { path: options.dataDir, pid: 0, host: '' });
  await rm(pending.directory, { recursive: true, force: true });
  await syncDirectory(options.dataDir);
}
