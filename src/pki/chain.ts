/**
 * Chain verification: from a trusted root (the central bank) down to a leaf, every link signed by
 * the key above it, allowed by the role table, valid at `now`, of an allowed suite and not revoked.
 * Every failure throws its own error code. Pure: the caller passes `now` and the crypto provider.
 */
import { equalBytes, toHex } from '../core/bytes.ts';
import { verifyWithMemo, type MemoOfChecks } from '../core/crypto/signature-memo.ts';
import { suiteFor, SUITE_NAMES, type CryptoProvider, type PublicKey, type SuiteName } from '../core/crypto/suite.ts';
import { TallyError } from '../core/errors.ts';
import { encodeCertificate, serialHex, TIME_MS_MAX, type Certificate } from './certificate.ts';
import type { CertificateExtensions } from './extensions.ts';
import { keyId } from './key-id.ts';
import { certificateSignedBytes } from './certificate-cache.ts';
import { isSelfSignedRole, mayCertify, type Role } from './roles.ts';
import { listRevokes, verifyRevocationList, type RevocationChecker, type RevocationList } from './revocation.ts';

/** Most certificates in a chain, root included (the two-tier model needs three). */
export const CHAIN_LENGTH_MAX = 4;

/** Options of verifyChain. */
export interface VerifyChainOptions {
  provider: CryptoProvider;
  /** Leaf first; the root at the end may be given or left out. */
  chain: readonly Certificate[];
  /** The root certificates trusted (the central bank's). */
  trustAnchors: readonly Certificate[];
  /** The time to check validity windows at, Unix milliseconds. */
  now: number;
  /** Signed revocation lists (each checked against the chain's own keys), or a checker such as a RevocationStore. */
  revocations?: readonly RevocationList[] | RevocationChecker | undefined;
  /** Suites a subject key may use; all suites by default. */
  allowedSuites?: readonly SuiteName[] | undefined;
  /** Roles the leaf may have; any role by default. */
  leafRoles?: readonly Role[] | undefined;
  /**
   * Certificate signatures already verified (core/crypto/signature-memo.ts), keyed by a digest of
   * the issuer's key, the certificate's signed bytes and its signature: a signature found here is
   * not verified again, and each one verified is added; so is each subject key found to be a valid
   * public key. Only those are skipped; roles, suites, windows and revocation are checked on every
   * call. A Set for one unit of work, or a bounded SignatureMemo kept by a verifier across many.
   */
  verifiedSignatures?: MemoOfChecks | undefined;
}

/** What a verified chain vouches for. */
export interface VerifiedChain {
  /** The leaf certificate. */
  readonly leaf: Certificate;
  readonly role: Role;
  readonly subject: PublicKey;
  /** Key id of the leaf's subject key. */
  readonly subjectKeyId: Uint8Array;
  readonly serial: Uint8Array;
  readonly extensions: CertificateExtensions;
  /** The trust anchor the chain ends in. */
  readonly anchor: Certificate;
  /** The whole path, leaf first, anchor last. */
  readonly path: readonly Certificate[];
}

function chainInvalid(reason: string): TallyError<'CERT_CHAIN_INVALID'> {
  return new TallyError('CERT_CHAIN_INVALID', `invalid certificate chain: ${reason}`, { reason });
}

function checkNow(now: number): void {
  if (typeof now !== 'number') throw new TypeError('now: expected Unix milliseconds as a number');
  if (!Number.isSafeInteger(now) || now < 0 || now > TIME_MS_MAX) throw new RangeError(`now: expected an integer in [0, ${TIME_MS_MAX}], got ${now}`);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The checks every certificate gets, anchor included: suite, key, window. */
function checkSubjectAndWindow(provider: CryptoProvider, certificate: Certificate, now: number, allowedSuites: readonly SuiteName[], memo: MemoOfChecks | undefined): void {
  const { subject, notBefore, notAfter } = certificate.body;
  const serial = serialHex(certificate);
  if (!allowedSuites.includes(subject.suite)) {
    throw new TallyError('CERT_SUITE_FORBIDDEN', `certificate ${serial} uses suite ${subject.suite}, which is not allowed here (allowed: ${allowedSuites.join(', ')})`, {
      serial,
      suite: subject.suite,
    });
  }
  // Whether a key is a point of its curve depends on its bytes alone: found valid once in this unit of work, it stays valid.
  const valid = memo === undefined ? undefined : `key:${subject.suite}:${toHex(subject.key)}`;
  if (valid === undefined || !memo?.has(valid)) {
    if (!suiteFor(provider, subject.suite).isValidPublicKey(subject.key)) {
      throw new TallyError('CERT_MALFORMED', `certificate ${serial}: subject key is not a valid ${subject.suite} public key`, {
        reason: 'subject key is not a valid public key',
      });
    }
    if (valid !== undefined) memo?.add(valid);
  }
  if (now < notBefore) {
    throw new TallyError('CERT_NOT_YET_VALID', `certificate ${serial} is not valid before ${iso(notBefore)} (now ${iso(now)})`, {
      serial,
      notBefore: String(notBefore),
      now: String(now),
    });
  }
  if (now > notAfter) {
    throw new TallyError('CERT_EXPIRED', `certificate ${serial} expired at ${iso(notAfter)} (now ${iso(now)})`, {
      serial,
      notAfter: String(notAfter),
      now: String(now),
    });
  }
}

function checkSignature(provider: CryptoProvider, certificate: Certificate, signerKey: PublicKey, memo: MemoOfChecks | undefined): void {
  const message = certificateSignedBytes(certificate);
  // The memo entry names everything the verification reads: the issuer's key, the signed bytes and the signature.
  if (!verifyWithMemo(provider, memo, signerKey, message, certificate.signature)) {
    const serial = serialHex(certificate);
    throw new TallyError('CERT_SIGNATURE_INVALID', `certificate ${serial}: the issuer's signature does not verify`, { serial });
  }
}

/** A trust anchor must be a self-signed root that verifies under its own key and is valid now. */
function checkAnchor(provider: CryptoProvider, anchor: Certificate, now: number, allowedSuites: readonly SuiteName[], memo: MemoOfChecks | undefined): void {
  if (!isSelfSignedRole(anchor.body.role)) throw chainInvalid(`trust anchor ${serialHex(anchor)} is a ${anchor.body.role} certificate, not a root`);
  if (!equalBytes(anchor.body.issuer, keyId(anchor.body.subject))) throw chainInvalid(`trust anchor ${serialHex(anchor)} is not self-signed`);
  checkSignature(provider, anchor, anchor.body.subject, memo);
  checkSubjectAndWindow(provider, anchor, now, allowedSuites, memo);
}

/** Picks the anchor the top of the chain names; with several (a renewed root), the first that checks out. */
function findAnchor(options: VerifyChainOptions, top: Certificate, allowedSuites: readonly SuiteName[]): Certificate {
  const candidates = options.trustAnchors.filter((a) => equalBytes(keyId(a.body.subject), top.body.issuer));
  if (candidates.length === 0) {
    const serial = serialHex(top);
    const issuer = toHex(top.body.issuer);
    throw new TallyError('CERT_UNKNOWN_ISSUER', `certificate ${serial} names issuer ${issuer}, which is no trusted root nor in the chain`, { serial, issuer });
  }
  let firstError: unknown;
  for (const anchor of candidates) {
    try {
      checkAnchor(options.provider, anchor, options.now, allowedSuites, options.verifiedSignatures);
      return anchor;
    } catch (e) {
      firstError ??= e;
    }
  }
  throw firstError;
}

/** Builds a checker from signed lists: each list counts only if one of the path's issuing keys signed it. */
function listsChecker(provider: CryptoProvider, lists: readonly RevocationList[], issuers: readonly Certificate[]): RevocationChecker {
  const applicable: RevocationList[] = [];
  for (const list of lists) {
    const signer = issuers.find((c) => equalBytes(keyId(c.body.subject), list.body.issuer));
    if (signer === undefined) continue;
    verifyRevocationList(provider, list, signer.body.subject);
    applicable.push(list);
  }
  return {
    // Revocation is permanent, so a serial named by any authentic list of its issuer is revoked.
    isRevoked: (issuerKeyId, serial) => applicable.some((l) => equalBytes(l.body.issuer, issuerKeyId) && listRevokes(l, serial)),
  };
}

function isChecker(value: readonly RevocationList[] | RevocationChecker): value is RevocationChecker {
  return !Array.isArray(value);
}

/**
 * Verifies a certificate chain, leaf first, against trusted roots, and returns what the leaf vouches
 * for. Each link: issuer key id equals the next key's id, signature by the next key, role allowed
 * by the role table, suite allowed, window holds at `now` (both ends inclusive), not revoked.
 * @throws TallyError CERT_CHAIN_INVALID (empty, longer than CHAIN_LENGTH_MAX, links out of order,
 *   a root not at the end), CERT_UNKNOWN_ISSUER, CERT_SIGNATURE_INVALID, CERT_ROLE_FORBIDDEN,
 *   CERT_SUITE_FORBIDDEN, CERT_MALFORMED, CERT_NOT_YET_VALID, CERT_EXPIRED, CERT_REVOKED, CRL_INVALID
 */
export function verifyChain(options: VerifyChainOptions): VerifiedChain {
  const { provider, chain, now } = options;
  checkNow(now);
  if (chain.length === 0) throw chainInvalid('no certificates');
  if (chain.length > CHAIN_LENGTH_MAX) throw chainInvalid(`${chain.length} certificates, more than the ${CHAIN_LENGTH_MAX} allowed`);
  const allowedSuites = options.allowedSuites ?? SUITE_NAMES;

  // A root given at the end of the chain must be one of the trust anchors, byte for byte.
  let links = chain;
  let anchor: Certificate;
  const last = chain[chain.length - 1] as Certificate;
  if (isSelfSignedRole(last.body.role)) {
    const encoded = encodeCertificate(last);
    const trusted = options.trustAnchors.find((a) => equalBytes(encodeCertificate(a), encoded));
    if (trusted === undefined) {
      const serial = serialHex(last);
      const issuer = toHex(last.body.issuer);
      throw new TallyError('CERT_UNKNOWN_ISSUER', `root certificate ${serial} at the end of the chain is not a trust anchor`, { serial, issuer });
    }
    checkAnchor(provider, trusted, now, allowedSuites, options.verifiedSignatures);
    anchor = trusted;
    links = chain.slice(0, -1);
  } else {
    anchor = findAnchor(options, last, allowedSuites);
  }
  const path = [...links, anchor];

  const revocations = options.revocations;
  const checker = revocations === undefined ? undefined : isChecker(revocations) ? revocations : listsChecker(provider, revocations, path.slice(1));

  // From the anchor down, so that each certificate is judged by an issuer already verified.
  for (let i = links.length - 1; i >= 0; i--) {
    const certificate = links[i] as Certificate;
    const parent = path[i + 1] as Certificate;
    const serial = serialHex(certificate);
    if (isSelfSignedRole(certificate.body.role)) throw chainInvalid(`root certificate ${serial} is not at the end of the chain`);
    if (!equalBytes(certificate.body.issuer, keyId(parent.body.subject))) {
      throw chainInvalid(`certificate ${serial} names issuer ${toHex(certificate.body.issuer)}, but the next certificate ${serialHex(parent)} is for key ${toHex(keyId(parent.body.subject))}`);
    }
    checkSignature(provider, certificate, parent.body.subject, options.verifiedSignatures);
    if (!mayCertify(parent.body.role, certificate.body.role)) {
      throw new TallyError('CERT_ROLE_FORBIDDEN', `certificate ${serial}: a ${parent.body.role} may not certify a ${certificate.body.role}`, {
        serial,
        role: certificate.body.role,
        issuerRole: parent.body.role,
      });
    }
    checkSubjectAndWindow(provider, certificate, now, allowedSuites, options.verifiedSignatures);
    if (checker?.isRevoked(certificate.body.issuer, certificate.body.serial) === true) {
      throw new TallyError('CERT_REVOKED', `certificate ${serial} has been revoked by its issuer`, { serial });
    }
  }

  const leaf = path[0] as Certificate;
  if (options.leafRoles !== undefined && !options.leafRoles.includes(leaf.body.role)) {
    const issuerRole = (path[1] ?? anchor).body.role;
    throw new TallyError('CERT_ROLE_FORBIDDEN', `certificate ${serialHex(leaf)} is a ${leaf.body.role}; expected ${options.leafRoles.join(' or ')}`, {
      serial: serialHex(leaf),
      role: leaf.body.role,
      issuerRole,
    });
  }
  return {
    leaf,
    role: leaf.body.role,
    subject: leaf.body.subject,
    subjectKeyId: keyId(leaf.body.subject),
    serial: leaf.body.serial,
    extensions: leaf.body.extensions,
    anchor,
    path,
  };
}
