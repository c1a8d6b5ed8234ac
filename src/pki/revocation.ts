/**
 * Revocation lists: an issuer (an intermediary, or the root) signs the serials of the certificates
 * it revoked, under a version number that only goes up. A list signed by key K can only revoke
 * certificates whose issuer is K, so a list is checked against its signer's key alone. When a
 * device is caught double spending at settlement its certificate lands here, and devices that
 * sync the list refuse it as a payer.
 */
import { compareBytes, equalBytes, toHex } from '../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { array, bytes, record, refine, uint, decodeFailure, type Codec } from '../core/codec.ts';
import { sha256 } from '../core/crypto/hash.ts';
import { signRecord, verifyRecord } from '../core/crypto/record.ts';
import { checkBytes, SUITE_NAMES, SUITE_SIZES, type CryptoProvider, type PublicKey, type Signer } from '../core/crypto/suite.ts';
import { checkSize, isTallyError, TallyError } from '../core/errors.ts';
import { serialCodec, timeMsCodec, SERIAL_BYTES } from './certificate.ts';
import { keyId, keyIdCodec, KEY_ID_BYTES } from './key-id.ts';

/** The domain tag a revocation list signature covers. */
export const REVOCATION_LIST_DOMAIN_TAG = 'tally/pki/revocation-list/v1';
/** Most serials one list may carry (an issuer drops expired certificates to stay under it). */
export const REVOKED_SERIALS_MAX = 100_000;
/** Largest encoded revocation list accepted: a full list of serials plus the envelope. */
export const REVOCATION_LIST_BYTES_MAX = REVOKED_SERIALS_MAX * (SERIAL_BYTES + 1) + 1024;
/** Most issuers whose lists one RevocationStore keeps, unless its constructor says otherwise. */
export const REVOCATION_ISSUERS_MAX = 64;

const SIGNATURE_BYTES_MIN = Math.min(...SUITE_NAMES.map((s) => SUITE_SIZES[s].signature));
const SIGNATURE_BYTES_MAX = Math.max(...SUITE_NAMES.map((s) => SUITE_SIZES[s].signature));

/** The signed part of a revocation list; `revoked` is sorted and has no duplicates. */
export interface RevocationListBody {
  /** Issuer-monotonic: a device refuses a list older than the one it has. */
  readonly version: number;
  /** Key id of the signing key; only certificates naming this issuer are revoked by the list. */
  readonly issuer: Uint8Array;
  /** When the list was signed, Unix milliseconds. */
  readonly issuedAt: number;
  readonly revoked: readonly Uint8Array[];
}

/** A revocation list and its issuer's signature over `[REVOCATION_LIST_DOMAIN_TAG, body]`. */
export interface RevocationList {
  readonly body: RevocationListBody;
  readonly signature: Uint8Array;
}

/** Answers whether a certificate, named by its issuer's key id and its serial, is revoked. */
export interface RevocationChecker {
  isRevoked(issuerKeyId: Uint8Array, serial: Uint8Array): boolean;
}

function isStrictlyIncreasing(serials: readonly Uint8Array[]): boolean {
  for (let i = 1; i < serials.length; i++) {
    if (compareBytes(serials[i - 1] as Uint8Array, serials[i] as Uint8Array) >= 0) return false;
  }
  return true;
}

/** Decodes a revocation list body; serials must be strictly increasing (sorted, no duplicates). */
export const revocationListBodyCodec: Codec<RevocationListBody> = refine(
  record({
    version: uint({ max: Number.MAX_SAFE_INTEGER }),
    issuer: keyIdCodec,
    issuedAt: timeMsCodec,
    revoked: array(serialCodec, { max: REVOKED_SERIALS_MAX }),
  }),
  'a revocation list body',
  (body, path) => (isStrictlyIncreasing(body.revoked) ? body : decodeFailure(`${path}.revoked`, 'serials in strictly increasing order', 'serials out of order or repeated')),
);

/** Decodes a revocation list `{ body, signature }` from its CBOR data model. */
export const revocationListCodec: Codec<RevocationList> = record({
  body: revocationListBodyCodec,
  signature: bytes({ min: SIGNATURE_BYTES_MIN, max: SIGNATURE_BYTES_MAX }),
});

function wire(body: RevocationListBody): Record<string, unknown> {
  return { version: body.version, issuer: body.issuer, issuedAt: body.issuedAt, revoked: body.revoked };
}

function invalid(reason: string, cause?: unknown): TallyError<'CRL_INVALID'> {
  return new TallyError('CRL_INVALID', `invalid revocation list: ${reason}`, { reason }, { cause });
}

/**
 * Signs a revocation list; the serials are sorted and duplicates dropped.
 * @throws TallyError CRL_INVALID for a version, time or serial out of bounds or too many serials
 */
export function issueRevocationList(options: {
  issuer: Signer;
  version: number;
  issuedAt: number;
  revoked: readonly Uint8Array[];
}): RevocationList {
  const sorted = [...options.revoked].sort(compareBytes).filter((s, i, all) => i === 0 || !equalBytes(s, all[i - 1] as Uint8Array));
  let body: RevocationListBody;
  try {
    body = revocationListBodyCodec.decode(
      { version: options.version, issuer: keyId(options.issuer.publicKey), issuedAt: options.issuedAt, revoked: sorted },
      'revocationList.body',
    );
  } catch (e) {
    if (isTallyError(e, 'DECODE_FAILED')) throw invalid(e.message, e);
    throw e;
  }
  return { body, signature: signRecord(options.issuer, REVOCATION_LIST_DOMAIN_TAG, wire(body)) };
}

/**
 * Encodes a revocation list as deterministic CBOR `{ body, signature }`.
 * @throws TallyError TOO_LARGE past REVOCATION_LIST_BYTES_MAX
 */
export function encodeRevocationList(list: RevocationList): Uint8Array {
  const encoded = encodeCbor({ body: wire(list.body), signature: list.signature });
  checkSize('revocation list', encoded.length, REVOCATION_LIST_BYTES_MAX);
  return encoded;
}

/**
 * Decodes revocation list bytes; the signature is checked by verifyRevocationList or a store.
 * @throws TallyError TOO_LARGE past REVOCATION_LIST_BYTES_MAX, CRL_INVALID for anything else malformed
 */
export function decodeRevocationList(encoded: Uint8Array): RevocationList {
  checkBytes('revocationList', encoded);
  checkSize('revocation list', encoded.length, REVOCATION_LIST_BYTES_MAX);
  try {
    return revocationListCodec.decode(decodeCbor(encoded, { maxBytes: REVOCATION_LIST_BYTES_MAX }), 'revocationList');
  } catch (e) {
    if (isTallyError(e, 'DECODE_FAILED') || isTallyError(e, 'CBOR_MALFORMED') || isTallyError(e, 'CBOR_NONCANONICAL')) throw invalid(e.message, e);
    throw e;
  }
}

/**
 * Checks that `issuerKey` signed the list and that the list names that key as its issuer.
 * @throws TallyError CRL_INVALID
 */
export function verifyRevocationList(provider: CryptoProvider, list: RevocationList, issuerKey: PublicKey): void {
  if (!equalBytes(list.body.issuer, keyId(issuerKey))) {
    throw invalid(`the list names issuer ${toHex(list.body.issuer)}, not the key it was checked against (${toHex(keyId(issuerKey))})`);
  }
  if (list.body.revoked.length > REVOKED_SERIALS_MAX) throw invalid(`more than ${REVOKED_SERIALS_MAX} serials`);
  if (!isStrictlyIncreasing(list.body.revoked)) throw invalid('serials are not in strictly increasing order');
  if (!verifyRecord(provider, issuerKey, REVOCATION_LIST_DOMAIN_TAG, wire(list.body), list.signature)) {
    throw invalid(`signature by issuer ${toHex(list.body.issuer)} does not verify`);
  }
}

/**
 * A checker over one list whose signature was verified when it was accepted (a trusted app keeps
 * its latest list that way): unlike passing the list to verifyChain, it does not verify the list
 * again on every chain.
 */
export function acceptedListChecker(list: RevocationList): RevocationChecker {
  return { isRevoked: (issuer, serial) => equalBytes(issuer, list.body.issuer) && listRevokes(list, serial) };
}

/** True when a (verified) list names `serial`; binary search over its sorted serials. */
export function listRevokes(list: RevocationList, serial: Uint8Array): boolean {
  const serials = list.body.revoked;
  let low = 0;
  let high = serials.length - 1;
  while (low <= high) {
    const mid = (low + high) >>> 1;
    const order = compareBytes(serials[mid] as Uint8Array, serial);
    if (order === 0) return true;
    if (order < 0) low = mid + 1;
    else high = mid - 1;
  }
  return false;
}

function bodyDigest(body: RevocationListBody): string {
  return toHex(sha256(encodeCbor(wire(body))));
}

/** What RevocationStore.accept did with a list. */
export type RevocationAcceptResult = 'accepted' | 'unchanged';

/**
 * The latest revocation list of each issuer, in memory. A list older than the one held is refused
 * (a replayed old list would un-revoke a culprit); a rejected list changes nothing.
 */
export class RevocationStore implements RevocationChecker {
  private readonly provider: CryptoProvider;
  private readonly issuersMax: number;
  private readonly byIssuer = new Map<string, { list: RevocationList; digest: string }>();

  /** A store verifying with `provider`, keeping lists of at most `issuersMax` issuers. */
  constructor(options: { provider: CryptoProvider; issuersMax?: number | undefined }) {
    this.provider = options.provider;
    this.issuersMax = options.issuersMax ?? REVOCATION_ISSUERS_MAX;
  }

  /**
   * Verifies a list against its issuer's key and keeps it if it is newer than the one held. The
   * same version with the same body (whatever its signature bytes) is accepted again as 'unchanged'.
   * Feed it only keys the caller trusts as issuers (e.g. from a verified chain).
   * @throws TallyError CRL_INVALID (bad signature, wrong issuer, same version with other content,
   *   too many issuers), CRL_ROLLBACK for a version lower than the one held
   */
  accept(list: RevocationList, issuerKey: PublicKey): RevocationAcceptResult {
    verifyRevocationList(this.provider, list, issuerKey);
    const id = toHex(list.body.issuer);
    const held = this.byIssuer.get(id);
    const digest = bodyDigest(list.body);
    if (held === undefined) {
      if (this.byIssuer.size >= this.issuersMax) throw invalid(`the store already keeps lists of ${this.issuersMax} issuers, the most it holds`);
    } else {
      const have = held.list.body.version;
      if (list.body.version < have) {
        throw new TallyError('CRL_ROLLBACK', `revocation list version ${list.body.version} is older than version ${have} already held for issuer ${id}`, {
          have: String(have),
          got: String(list.body.version),
        });
      }
      if (list.body.version === have) {
        if (held.digest === digest) return 'unchanged';
        throw invalid(`version ${have} of issuer ${id} is already held with different content`);
      }
    }
    this.byIssuer.set(id, { list, digest });
    return 'accepted';
  }

  /** True when the held list of the certificate's issuer names its serial. */
  isRevoked(issuerKeyId: Uint8Array, serial: Uint8Array): boolean {
    checkBytes('issuerKeyId', issuerKeyId, KEY_ID_BYTES);
    checkBytes('serial', serial, SERIAL_BYTES);
    const held = this.byIssuer.get(toHex(issuerKeyId));
    return held !== undefined && listRevokes(held.list, serial);
  }

  /** The version held for an issuer, if any. */
  versionOf(issuerKeyId: Uint8Array): number | undefined {
    return this.byIssuer.get(toHex(issuerKeyId))?.list.body.version;
  }

  /** The lists held, one per issuer, to persist and accept again later. */
  lists(): RevocationList[] {
    return [...this.byIssuer.values()].map((held) => held.list);
  }
}
