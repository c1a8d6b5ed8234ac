/**
 * Certificates: a signed deterministic-CBOR record binding a public key to a role, an issuer and a
 * validity window. The signature covers `[CERTIFICATE_DOMAIN_TAG, body]` (OPS `CertVerify`); on the
 * wire a certificate is `{ body, signature }`.
 */
import { equalBytes, toHex } from '../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { bytes, literal, record, refine, uint, decodeFailure, type Codec } from '../core/codec.ts';
import { randomBytes } from '../core/crypto/hash.ts';
import { signRecord } from '../core/crypto/record.ts';
import { checkBytes, publicKeyCodec, SUITE_NAMES, SUITE_SIZES, type PublicKey, type Signer } from '../core/crypto/suite.ts';
import { checkSize, isTallyError, TallyError } from '../core/errors.ts';
import { extensionsCodec, type CertificateExtensions } from './extensions.ts';
import { keyId, keyIdCodec } from './key-id.ts';
import { isSelfSignedRole, mayCertify, roleCodec, type Role } from './roles.ts';

/** The domain tag a certificate signature covers. */
export const CERTIFICATE_DOMAIN_TAG = 'tally/pki/certificate/v1';
/** The certificate format version carried in every body. */
export const CERTIFICATE_VERSION = 1;
/** Length of a certificate serial number. */
export const SERIAL_BYTES = 16;
/** Largest encoded certificate accepted; a certificate with every extension at its bound fits. */
export const CERTIFICATE_BYTES_MAX = 2048;
/** Latest time a certificate can name: 9999-12-31T23:59:59.999Z, in Unix milliseconds. */
export const TIME_MS_MAX = 253_402_300_799_999;

const SIGNATURE_BYTES_MIN = Math.min(...SUITE_NAMES.map((s) => SUITE_SIZES[s].signature));
const SIGNATURE_BYTES_MAX = Math.max(...SUITE_NAMES.map((s) => SUITE_SIZES[s].signature));

/** The signed part of a certificate. Times are Unix milliseconds, both ends inclusive. */
export interface CertificateBody {
  readonly version: 1;
  readonly serial: Uint8Array;
  readonly role: Role;
  readonly subject: PublicKey;
  /** Key id of the issuer's public key (its own key id for a self-signed root). */
  readonly issuer: Uint8Array;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly extensions: CertificateExtensions;
}

/** A certificate: its body and the issuer's signature over `[CERTIFICATE_DOMAIN_TAG, body]`. */
export interface Certificate {
  readonly body: CertificateBody;
  readonly signature: Uint8Array;
}

/** Decodes a serial number. */
export const serialCodec: Codec<Uint8Array> = bytes({ length: SERIAL_BYTES });

/** Decodes a time in Unix milliseconds, up to TIME_MS_MAX. */
export const timeMsCodec: Codec<number> = uint({ max: TIME_MS_MAX });

/** Decodes a certificate body; a window that ends before it starts is refused. */
export const certificateBodyCodec: Codec<CertificateBody> = refine(
  record({
    version: literal(CERTIFICATE_VERSION),
    serial: serialCodec,
    role: roleCodec,
    subject: publicKeyCodec,
    issuer: keyIdCodec,
    notBefore: timeMsCodec,
    notAfter: timeMsCodec,
    extensions: extensionsCodec,
  }),
  'a certificate body',
  (body, path) => (body.notBefore <= body.notAfter ? body : decodeFailure(`${path}.notAfter`, `a time at or after notBefore (${body.notBefore})`, `${body.notAfter}`)),
);

/** Decodes a certificate `{ body, signature }` from its CBOR data model. */
export const certificateCodec: Codec<Certificate> = record({
  body: certificateBodyCodec,
  signature: bytes({ min: SIGNATURE_BYTES_MIN, max: SIGNATURE_BYTES_MAX }),
});

/** The wire form of a body: exactly the known fields, whatever else the objects carry. */
export function certificateBodyWire(body: CertificateBody): Record<string, unknown> {
  const x = body.extensions;
  return {
    version: body.version,
    serial: body.serial,
    role: body.role,
    subject: { suite: body.subject.suite, key: body.subject.key },
    issuer: body.issuer,
    notBefore: body.notBefore,
    notAfter: body.notAfter,
    extensions: {
      name: x.name,
      scheme: x.scheme,
      deviceModel: x.deviceModel,
      taMeasurement: x.taMeasurement,
      holdingLimit: x.holdingLimit,
      currency: x.currency,
      offlinePaymentsMax: x.offlinePaymentsMax,
      owner: x.owner,
    },
  };
}

/** A certificate's serial in hex, for messages and error details. */
export function serialHex(certificate: Certificate): string {
  return toHex(certificate.body.serial);
}

/** Options of issueCertificate; give a `serial`, or a `random` source to draw one from. */
export type IssueCertificateOptions = {
  /** The issuer's signing key (inside an SE or in memory). */
  issuer: Signer;
  /** The role of the issuer's own certificate, checked against the role table. */
  issuerRole: Role;
  role: Role;
  subject: PublicKey;
  notBefore: number;
  notAfter: number;
  extensions?: CertificateExtensions | undefined;
} & ({ serial: Uint8Array; random?: undefined } | { serial?: undefined; random?: ((length: number) => Uint8Array) | undefined });

function malformed(reason: string, cause?: unknown): TallyError<'CERT_MALFORMED'> {
  return new TallyError('CERT_MALFORMED', `malformed certificate: ${reason}`, { reason }, { cause });
}

function isDecodeError(e: unknown): e is TallyError {
  return isTallyError(e, 'DECODE_FAILED') || isTallyError(e, 'CBOR_MALFORMED') || isTallyError(e, 'CBOR_NONCANONICAL');
}

function checkIssuable(options: IssueCertificateOptions, serial: Uint8Array): void {
  const { issuer, issuerRole, role, subject } = options;
  const forbidden = (why: string) => new TallyError('CERT_ROLE_FORBIDDEN', why, { serial: toHex(serial), role, issuerRole });
  if (isSelfSignedRole(role)) {
    const self = issuerRole === role && issuer.publicKey.suite === subject.suite && equalBytes(issuer.publicKey.key, subject.key);
    if (!self) throw forbidden(`a ${role} certificate is self-signed: the issuer must be a ${role} signing its own key`);
  } else if (!mayCertify(issuerRole, role)) {
    throw forbidden(`a ${issuerRole} may not certify a ${role}`);
  }
}

/**
 * Issues a certificate signed by `issuer`. The role table is checked first, then every field
 * against the codec's bounds, so a certificate this returns always decodes.
 * @throws TallyError CERT_ROLE_FORBIDDEN when `issuerRole` may not certify `role`, CERT_MALFORMED
 *   for a field out of bounds, TOO_LARGE past CERTIFICATE_BYTES_MAX
 */
export function issueCertificate(options: IssueCertificateOptions): Certificate {
  const serial = options.serial ?? (options.random ?? randomBytes)(SERIAL_BYTES);
  checkBytes('serial', serial, SERIAL_BYTES);
  checkIssuable(options, serial);
  const wire = certificateBodyWire({
    version: CERTIFICATE_VERSION,
    serial,
    role: options.role,
    subject: options.subject,
    issuer: keyId(options.issuer.publicKey),
    notBefore: options.notBefore,
    notAfter: options.notAfter,
    extensions: options.extensions ?? {},
  });
  let body: CertificateBody;
  try {
    body = certificateBodyCodec.decode(wire, 'certificate.body');
  } catch (e) {
    if (isTallyError(e, 'DECODE_FAILED')) throw malformed(e.message, e);
    throw e;
  }
  const certificate: Certificate = { body, signature: signRecord(options.issuer, CERTIFICATE_DOMAIN_TAG, certificateBodyWire(body)) };
  encodeCertificate(certificate); // throws TOO_LARGE rather than hand out a certificate nobody can decode
  return certificate;
}

/**
 * Encodes a certificate as deterministic CBOR `{ body, signature }`.
 * @throws TallyError TOO_LARGE past CERTIFICATE_BYTES_MAX
 */
export function encodeCertificate(certificate: Certificate): Uint8Array {
  const encoded = encodeCbor({ body: certificateBodyWire(certificate.body), signature: certificate.signature });
  checkSize('certificate', encoded.length, CERTIFICATE_BYTES_MAX);
  return encoded;
}

/**
 * Decodes certificate bytes from a peer, a file or the network. Only the form is checked here;
 * verifyChain checks the signature, the role, the window and revocation.
 * @throws TallyError TOO_LARGE past CERTIFICATE_BYTES_MAX; CERT_MALFORMED for anything else that
 *   is not exactly one canonical certificate (bad CBOR, trailing bytes, a field out of bounds)
 */
export function decodeCertificate(encoded: Uint8Array): Certificate {
  checkBytes('certificate', encoded);
  checkSize('certificate', encoded.length, CERTIFICATE_BYTES_MAX);
  try {
    return certificateCodec.decode(decodeCbor(encoded, { maxBytes: CERTIFICATE_BYTES_MAX }), 'certificate');
  } catch (e) {
    if (isDecodeError(e)) throw malformed(e.message, e);
    throw e;
  }
}

/** True when the certificate names its own subject key as issuer (a root's form). */
export function isSelfIssued(certificate: Certificate): boolean {
  return equalBytes(certificate.body.issuer, keyId(certificate.body.subject));
}
