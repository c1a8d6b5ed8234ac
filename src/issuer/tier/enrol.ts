/**
 * Enrolling an intermediary node at a central bank (`tally node enrol`), and finishing it at its
 * next start: the request goes once (again harmlessly), the central bank's operator approves it,
 * and the certificate the root signed becomes the node's identity.
 */
import { toHex } from '../../core/bytes.ts';
import type { CryptoProvider, SuiteName } from '../../core/crypto/suite.ts';
import { keyId } from '../../pki/key-id.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import { beginEnrolment, completeEnrolment, readPendingEnrolment, type PendingEnrolment } from '../identity/enrolment.ts';
import { hasIdentity } from '../identity/layout.ts';
import { centralBankInfo, enrolmentAt, submitEnrolment, type EnrolmentStatus } from './link.ts';

/** How often a waiting enrolment asks the central bank again. */
export const ENROLMENT_POLL_MS = 1_000;

/** What `tally node enrol` did. */
export interface EnrolOutcome {
  readonly keyId: string;
  readonly name: string;
  readonly centralBank: string;
  /** The root's key id, as pinned (or first seen). */
  readonly rootKeyId: string;
  readonly status: EnrolmentStatus['status'];
  /** True when the node's identity was made: the node can start. */
  readonly completed: boolean;
  /** True when this call made the request (false: it was made by an earlier one). */
  readonly requested: boolean;
}

/** Options of enrol. */
export interface EnrolOptions {
  dataDir: string;
  passphrase: string;
  provider: CryptoProvider;
  centralBank: string;
  /** The intermediary's name; needed the first time only. */
  name?: string | undefined;
  suite?: SuiteName | undefined;
  /** The root's key id the operator expects (hex); the enrolment stops if the central bank's differs. */
  rootKeyId?: string | undefined;
  /** Wait for the operator's decision, at most this long. */
  waitMs?: number | undefined;
  onWaiting?: ((status: EnrolmentStatus) => void) | undefined;
  now: () => number;
}

/**
 * Asks (or asks again) to be enrolled, and makes the node's identity when the central bank has
 * approved; with `waitMs`, waits for the decision.
 * @throws TallyError ROLE_MISMATCH (a folder with a node already; a URL that is no central bank; another central bank than the enrolment's),
 *   CERT_CHAIN_INVALID (a root other than the pinned one), ENROLMENT_REFUSED, NODE_UNREACHABLE, NODE_REFUSED
 */
export async function enrol(options: EnrolOptions): Promise<EnrolOutcome> {
  const { dataDir, passphrase, provider } = options;
  if (await hasIdentity(dataDir)) throw new TallyError('ROLE_MISMATCH', `the data folder ${dataDir} already holds a node`, { role: 'existing node' });
  let pending = await readPendingEnrolment(dataDir, passphrase, provider);
  let requested = false;
  if (pending === null) {
    if (options.name === undefined) throw new RangeError('the first enrolment of a data folder needs the intermediary\'s name');
    const info = await centralBankInfo(options.centralBank);
    if (options.rootKeyId !== undefined && options.rootKeyId !== info.rootKeyId) {
      throw new TallyError('CERT_CHAIN_INVALID', `the central bank at ${options.centralBank} has root ${info.rootKeyId}, not the ${options.rootKeyId} expected: nothing was made or sent`, { reason: 'root differs from the pinned one' });
    }
    pending = await beginEnrolment({ dataDir, passphrase, provider, centralBank: options.centralBank, name: options.name, currency: info.currency, rootCertificate: info.rootCertificate, suite: options.suite ?? info.rootCertificate.body.subject.suite, now: options.now() });
    requested = true;
  } else if (pending.centralBank !== options.centralBank) {
    throw new TallyError('ROLE_MISMATCH', `the data folder ${dataDir} is enrolling at ${pending.centralBank}, not ${options.centralBank}`, { role: 'enrolling' });
  }
  let status = requested ? await submit(pending) : await lookUp(pending);
  const deadline = options.now() + (options.waitMs ?? 0);
  while (status.status === 'pending' && options.now() < deadline) {
    options.onWaiting?.(status);
    await new Promise((done) => setTimeout(done, ENROLMENT_POLL_MS));
    status = await enrolmentAt(pending.centralBank, pending.keyId);
  }
  const completed = await settle(options, pending, status);
  return { keyId: pending.keyId, name: pending.name, centralBank: pending.centralBank, rootKeyId: rootKeyIdOf(pending), status: status.status, completed, requested };
}

function submit(p: PendingEnrolment): Promise<EnrolmentStatus> {
  return submitEnrolment(p.centralBank, { name: p.name, currency: p.currency.code, rootKeyId: rootKeyIdOf(p), intermediary: p.intermediary, keyId: p.keyId });
}

/** A request made before, looked up; sent again when the central bank does not know it (it never arrived). */
function lookUp(pending: PendingEnrolment): Promise<EnrolmentStatus> {
  return enrolmentAt(pending.centralBank, pending.keyId).catch((e: unknown) => (isTallyError(e, 'NODE_REFUSED') && e.details.status === 404 ? submit(pending) : Promise.reject(e)));
}

function rootKeyIdOf(pending: PendingEnrolment): string {
  return toHex(keyId(pending.rootCertificate.body.subject));
}

/** Completes an approved enrolment; answers whether it did. @throws TallyError ENROLMENT_REFUSED */
async function settle(options: { dataDir: string; passphrase: string; provider: CryptoProvider; now: () => number }, pending: PendingEnrolment, status: EnrolmentStatus): Promise<boolean> {
  if (status.status === 'refused' || status.status === 'revoked') {
    throw new TallyError('ENROLMENT_REFUSED', `the central bank at ${pending.centralBank} ${status.status} the enrolment of ${pending.keyId}${status.reason === undefined ? '' : `: ${status.reason}`}; remove ${pending.directory} to ask again with a new key`, {
      centralBank: pending.centralBank,
      keyId: pending.keyId,
      reason: status.reason ?? status.status,
    });
  }
  if (status.status !== 'approved' || status.certificate === undefined) return false;
  await completeEnrolment({ dataDir: options.dataDir, passphrase: options.passphrase, provider: options.provider, pending, certificate: status.certificate, now: options.now() });
  return true;
}

/**
 * At a node's start: a data folder with an enrolment under way and no identity yet asks its
 * central bank once, and makes the identity if it was approved. Answers false when there was no
 * enrolment to finish.
 * @throws TallyError ENROLMENT_PENDING, ENROLMENT_REFUSED, NODE_UNREACHABLE
 */
export async function finishEnrolment(options: { dataDir: string; passphrase: string; provider: CryptoProvider; now: () => number }): Promise<boolean> {
  if (await hasIdentity(options.dataDir)) return false;
  const pending = await readPendingEnrolment(options.dataDir, options.passphrase, options.provider);
  if (pending === null) return false;
  const status = await lookUp(pending);
  if (await settle(options, pending, status)) return true;
  throw new TallyError('ENROLMENT_PENDING', `the data folder ${options.dataDir} is an intermediary waiting for its central bank at ${pending.centralBank} to approve enrolment ${pending.keyId} (there: tally cb approve ${pending.keyId})`, {
    centralBank: pending.centralBank,
    keyId: pending.keyId,
  });
}
