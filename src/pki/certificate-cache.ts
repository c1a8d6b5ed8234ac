/**
 * Decoded certificates kept by their bytes, for a verifier that is shown the same certificates
 * over and over (a node settling DOT-M blocks reads each user's certificate in every record of
 * every upload). A certificate it hands out is frozen, decoded from a copy of the bytes that no
 * one else holds, so nothing derived from it can go stale: the bytes its issuer signed and its
 * subject's key id are computed once (certificateSignedBytes, keyId), where verifyChain would
 * otherwise encode the certificate again on every check.
 *
 * It answers exactly what decodeCertificate answers for the same bytes (the same fields, the same
 * errors, nothing kept for bytes that do not decode); verifyChain still checks every signature
 * (through the caller's memo), window and revocation on every call.
 */
import { toHex } from '../core/bytes.ts';
import { sha256 } from '../core/crypto/hash.ts';
import { signedBytes } from '../core/crypto/record.ts';
import { CERTIFICATE_BYTES_MAX, CERTIFICATE_DOMAIN_TAG, certificateBodyWire, decodeCertificate, encodeCertificate, type Certificate, type CertificateBody } from './certificate.ts';
import { rememberKeyId } from './key-id.ts';

/** Certificates a cache keeps at most by default (two generations of half each): a few MB. */
export const CERTIFICATES_KEPT_MAX = 8_192;

/** The signed bytes of the bodies of certificates this module froze. */
const signedOfFrozen = new WeakMap<CertificateBody, Uint8Array>();

/** Freezes a value and every object and array in it; byte arrays cannot be frozen and are left as they are. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !ArrayBuffer.isView(value) && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** Decodes a certificate from a private copy of its bytes and freezes it, its signed bytes and key id computed once. */
function frozenCertificate(encoded: Uint8Array): Certificate {
  const certificate = deepFreeze(decodeCertificate(encoded.slice()));
  signedOfFrozen.set(certificate.body, signedBytes(CERTIFICATE_DOMAIN_TAG, certificateBodyWire(certificate.body)));
  rememberKeyId(certificate.body.subject);
  return certificate;
}

/**
 * The bytes a certificate's issuer signed, `[CERTIFICATE_DOMAIN_TAG, body]`: kept for a
 * certificate from a CertificateCache, encoded for any other.
 */
export function certificateSignedBytes(certificate: Certificate): Uint8Array {
  return signedOfFrozen.get(certificate.body) ?? signedBytes(CERTIFICATE_DOMAIN_TAG, certificateBodyWire(certificate.body));
}

/** decodeCertificate, through `cache` when the caller keeps one. */
export function decodeThrough(cache: CertificateCache | undefined, encoded: Uint8Array): Certificate {
  return cache === undefined ? decodeCertificate(encoded) : cache.decode(encoded);
}

/**
 * Frozen decoded certificates by the SHA-256 of their bytes, at most `max`, in two generations: when the young
 * one is full, the old one is dropped whole and the young one becomes old; a certificate found in
 * the old one moves to the young one.
 */
export class CertificateCache {
  readonly max: number;
  #young = new Map<string, Certificate>();
  #old = new Map<string, Certificate>();

  constructor(max = CERTIFICATES_KEPT_MAX) {
    if (!Number.isSafeInteger(max) || max < 2) throw new RangeError(`max: expected an integer of at least 2, got ${max}`);
    this.max = max;
  }

  /** Certificates held (both generations). */
  get size(): number {
    return this.#young.size + this.#old.size;
  }

  /**
   * decodeCertificate, answered from the cache when these bytes were decoded before.
   * @throws what decodeCertificate throws for bytes that are not a certificate (nothing is kept)
   */
  decode(encoded: Uint8Array): Certificate {
    // What decodeCertificate refuses before reading the bytes is refused by it, as it says.
    if (!(encoded instanceof Uint8Array) || encoded.length > CERTIFICATE_BYTES_MAX) return decodeCertificate(encoded);
    // By digest: a short key, whatever the certificate's size (an uploader chooses the bytes).
    const key = toHex(sha256(encoded));
    const young = this.#young.get(key);
    if (young !== undefined) return young;
    const certificate = this.#old.get(key) ?? frozenCertificate(encoded);
    this.#old.delete(key);
    if (this.#young.size >= Math.floor(this.max / 2)) {
      this.#old = this.#young;
      this.#young = new Map();
    }
    this.#young.set(key, certificate);
    return certificate;
  }

  /** The cache's frozen copy of a certificate already decoded (a node's own, a peer's from its database). */
  adopt(certificate: Certificate): Certificate {
    return this.decode(encodeCertificate(certificate));
  }
}
