/**
 * The parts every scheme's known-answer vectors share (test-vectors/, docs/test-vectors.md): a
 * signing key from a fixed label, a signed record shown as its tag, record, signed bytes and
 * signature, and a certificate shown the same way. Each scheme's vectors module builds its files
 * from these, so another implementation reads every file alike. Pure: no randomness, no clock.
 */
import { toHex, utf8 } from '../core/bytes.ts';
import { encodeCbor } from '../core/cbor.ts';
import { sha256 } from '../core/crypto/hash.ts';
import { signedBytes } from '../core/crypto/record.ts';
import { signerFromSecret, type SignatureSuite, type Signer } from '../core/crypto/suite.ts';
import { CERTIFICATE_DOMAIN_TAG, certificateBodyWire, encodeCertificate, issueCertificate, type Certificate } from './certificate.ts';
import type { CertificateExtensions } from './extensions.ts';
import type { Role } from './roles.ts';
import { keyId } from './key-id.ts';

/** The source line of every generated file. */
export const GENERATED_SOURCE = "Tally's own vectors, written by scripts/test-vectors.ts (npm run vectors)";

/** How a key's secret comes from its label, in the files' words. */
export const KEY_DERIVATION = 'secretKey = SHA-256(UTF-8 label); keyId = SHA-256 of the deterministic CBOR of { suite, key }';

/** How a signed record's bytes are made, in the files' words. */
export const SIGNED_RECORD = 'signedBytes = deterministic CBOR of [tag, record]; record is the CBOR of what the tag covers; message is the CBOR of the whole wire message';

/** 2026-01-01T00:00:00Z and 2027-01-01T00:00:00Z: every certificate's window. */
export const NOT_BEFORE = 1_767_225_600_000;
export const NOT_AFTER = 1_798_761_600_000;
/** The time of every payment in the files: ten days into the window. */
export const NOW = NOT_BEFORE + 10 * 86_400_000;

/** A certificate of the files: `issuer` certifies `subject` in `role` over the window, serial `n` (16 bytes, big-endian). */
export function vectorCertificate(issuer: VectorKey, issuerRole: Role, role: Role, subject: VectorKey, n: number, extensions: CertificateExtensions): Certificate {
  const serial = new Uint8Array(16);
  serial[15] = n;
  return issueCertificate({ issuer: issuer.signer, issuerRole, role, subject: subject.signer.publicKey, notBefore: NOT_BEFORE, notAfter: NOT_AFTER, extensions, serial });
}

/** The text of a vector file: two-space JSON and a final newline. */
export function vectorText(value: object): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** A key of a vector file: its label, its secret and its signer. */
export interface VectorKey {
  readonly name: string;
  readonly label: string;
  readonly secretKey: Uint8Array;
  readonly signer: Signer;
}

/** The key of `suite` whose secret is SHA-256 of `label` (a valid scalar for every suite with overwhelming odds; the test checks each). */
export function vectorKey(suite: SignatureSuite, name: string, label: string): VectorKey {
  const secretKey = sha256(utf8(label));
  return { name, label, secretKey, signer: signerFromSecret(suite, secretKey) };
}

/** A key as a file shows it. */
export function keyJson(key: VectorKey): Record<string, string> {
  return {
    label: key.label,
    suite: key.signer.publicKey.suite,
    secretKey: toHex(key.secretKey),
    publicKey: toHex(key.signer.publicKey.key),
    keyId: toHex(keyId(key.signer.publicKey)),
  };
}

/** The keys of a file, by name. */
export function keysJson(keys: readonly VectorKey[]): Record<string, Record<string, string>> {
  return Object.fromEntries(keys.map((key) => [key.name, keyJson(key)]));
}

/** One signed record as a file shows it: the signature is the one the protocol code made, carried in `message`. */
export interface SignedRecordJson {
  readonly name: string;
  readonly tag: string;
  /** The name of the key that signed, in the file's `keys`. */
  readonly signer: string;
  readonly record: string;
  readonly signedBytes: string;
  readonly signature: string;
  readonly message: string;
}

/** A signed record: `record` is what the tag covers, `message` the whole wire message that carries `signature`. */
export function signedRecordJson(name: string, signer: VectorKey, tag: string, record: unknown, signature: Uint8Array, message: unknown): SignedRecordJson {
  return {
    name,
    tag,
    signer: signer.name,
    record: toHex(encodeCbor(record)),
    signedBytes: toHex(signedBytes(tag, record)),
    signature: toHex(signature),
    message: toHex(encodeCbor(message)),
  };
}

/** A certificate as a signed record: its body under the certificate tag, its encoding as the message. */
export function certificateJson(name: string, issuer: VectorKey, certificate: Certificate): SignedRecordJson & { subjectKeyId: string } {
  return {
    ...signedRecordJson(name, issuer, CERTIFICATE_DOMAIN_TAG, certificateBodyWire(certificate.body), certificate.signature, { body: certificateBodyWire(certificate.body), signature: certificate.signature }),
    message: toHex(encodeCertificate(certificate)),
    subjectKeyId: toHex(keyId(certificate.body.subject)),
  };
}
