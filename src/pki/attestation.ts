/**
 * OEM attestation (OPS §3.1-3.2, `OEMVerify`): the device maker's key signs
 * `[SE public key, "Secure Device", model, TA measurement]`, vouching that the key lives in a
 * genuine secure element running a known trusted app. The intermediary checks it before it
 * certifies the key; the OEM's own certificate must chain to the central bank.
 */
import { equalBytes, toHex } from '../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { bytes, record, text, type Codec } from '../core/codec.ts';
import { signRecord, verifyRecord } from '../core/crypto/record.ts';
import { checkBytes, publicKeyCodec, suiteFor, SUITE_NAMES, SUITE_SIZES, type CryptoProvider, type PublicKey, type Signer, type SuiteName } from '../core/crypto/suite.ts';
import { checkSize, isTallyError, TallyError } from '../core/errors.ts';
import type { Certificate } from './certificate.ts';
import { verifyChain, type VerifiedChain } from './chain.ts';
import { DEVICE_MODEL_CHARS_MAX, TA_MEASUREMENT_BYTES } from './extensions.ts';
import type { RevocationChecker, RevocationList } from './revocation.ts';

/** The domain tag an OEM attestation signature covers. */
export const OEM_ATTESTATION_DOMAIN_TAG = 'tally/pki/oem-attestation/v1';
/** The label OPS's OEMVerify signs next to the key. */
export const SECURE_DEVICE_LABEL = 'Secure Device';
/** Largest encoded attestation accepted. */
export const ATTESTATION_BYTES_MAX = 512;

const SIGNATURE_BYTES_MIN = Math.min(...SUITE_NAMES.map((s) => SUITE_SIZES[s].signature));
const SIGNATURE_BYTES_MAX = Math.max(...SUITE_NAMES.map((s) => SUITE_SIZES[s].signature));

/** What the OEM vouches for: a secure element's key, its model and the measurement of its trusted app. */
export interface AttestationBody {
  readonly sePublicKey: PublicKey;
  readonly model: string;
  readonly taMeasurement: Uint8Array;
}

/** An OEM attestation: the body and the OEM's signature over `[sePublicKey, "Secure Device", model, taMeasurement]`. */
export interface OemAttestation {
  readonly body: AttestationBody;
  readonly signature: Uint8Array;
}

/** Decodes what an attestation vouches for. */
export const attestationBodyCodec: Codec<AttestationBody> = record({
  sePublicKey: publicKeyCodec,
  model: text({ min: 1, max: DEVICE_MODEL_CHARS_MAX, pattern: /^[^\p{Cc}\p{Cs}]*$/u, describe: `text of 1 to ${DEVICE_MODEL_CHARS_MAX} characters without control characters` }),
  taMeasurement: bytes({ length: TA_MEASUREMENT_BYTES }),
});

/** Decodes an attestation `{ body, signature }` from its CBOR data model. */
export const oemAttestationCodec: Codec<OemAttestation> = record({
  body: attestationBodyCodec,
  signature: bytes({ min: SIGNATURE_BYTES_MIN, max: SIGNATURE_BYTES_MAX }),
});

/** The wire form of a body: exactly the known fields. */
function wire(body: AttestationBody): Record<string, unknown> {
  return { sePublicKey: { suite: body.sePublicKey.suite, key: body.sePublicKey.key }, model: body.model, taMeasurement: body.taMeasurement };
}

/** The record the OEM signs, in OPS's order: `[vk, "Secure Device", M, measurement]`. */
function signedRecord(body: AttestationBody): unknown[] {
  return [{ suite: body.sePublicKey.suite, key: body.sePublicKey.key }, SECURE_DEVICE_LABEL, body.model, body.taMeasurement];
}

function invalid(reason: string, cause?: unknown): TallyError<'ATTESTATION_INVALID'> {
  return new TallyError('ATTESTATION_INVALID', `OEM attestation refused: ${reason}`, { reason }, { cause });
}

/**
 * Signs an attestation with the OEM key, at provisioning.
 * @throws TallyError ATTESTATION_INVALID for a model or measurement out of bounds
 */
export function attestDevice(oem: Signer, body: AttestationBody): OemAttestation {
  let checked: AttestationBody;
  try {
    checked = attestationBodyCodec.decode(wire(body), 'attestation.body');
  } catch (e) {
    if (isTallyError(e, 'DECODE_FAILED')) throw invalid(e.message, e);
    throw e;
  }
  return { body: checked, signature: signRecord(oem, OEM_ATTESTATION_DOMAIN_TAG, signedRecord(checked)) };
}

/**
 * Encodes an attestation as deterministic CBOR `{ body, signature }`.
 * @throws TallyError TOO_LARGE past ATTESTATION_BYTES_MAX
 */
export function encodeAttestation(attestation: OemAttestation): Uint8Array {
  const encoded = encodeCbor({ body: wire(attestation.body), signature: attestation.signature });
  checkSize('attestation', encoded.length, ATTESTATION_BYTES_MAX);
  return encoded;
}

/**
 * Decodes attestation bytes; verifyAttestation checks what they claim.
 * @throws TallyError TOO_LARGE past ATTESTATION_BYTES_MAX, ATTESTATION_INVALID for malformed bytes
 */
export function decodeAttestation(encoded: Uint8Array): OemAttestation {
  checkBytes('attestation', encoded);
  checkSize('attestation', encoded.length, ATTESTATION_BYTES_MAX);
  try {
    return oemAttestationCodec.decode(decodeCbor(encoded, { maxBytes: ATTESTATION_BYTES_MAX }), 'attestation');
  } catch (e) {
    if (isTallyError(e, 'DECODE_FAILED') || isTallyError(e, 'CBOR_MALFORMED') || isTallyError(e, 'CBOR_NONCANONICAL')) throw invalid(`malformed: ${e.message}`, e);
    throw e;
  }
}

/** Options of verifyAttestation. */
export interface VerifyAttestationOptions {
  provider: CryptoProvider;
  attestation: OemAttestation;
  /** The OEM's certificate, issued by the central bank. */
  oemCertificate: Certificate;
  /** Certificates above the OEM's, up to the root (the root may be left out; usually empty). */
  chain?: readonly Certificate[] | undefined;
  /** The root certificates trusted. */
  trustAnchors: readonly Certificate[];
  /** The key the trusted app presented for certification; must be the key attested. */
  sePublicKey: PublicKey;
  /** Measurements of trusted-app builds the verifier accepts. */
  allowedMeasurements: readonly Uint8Array[];
  /** Unix milliseconds. */
  now: number;
  revocations?: readonly RevocationList[] | RevocationChecker | undefined;
  /** Suites allowed for the OEM chain and the SE key; all by default. */
  allowedSuites?: readonly SuiteName[] | undefined;
}

/** What a verified attestation vouches for. */
export interface VerifiedAttestation {
  readonly sePublicKey: PublicKey;
  readonly model: string;
  readonly taMeasurement: Uint8Array;
  /** The verified OEM chain. */
  readonly oem: VerifiedChain;
}

/**
 * OPS `OEMVerify`, with the OEM's key vouched for by the central bank: checks the OEM chain, the
 * signature over `[sePublicKey, "Secure Device", model, taMeasurement]`, that the attested key is
 * the presented one, and that the measurement is allowed.
 * @throws TallyError ATTESTATION_INVALID with a reason (a failing OEM chain is its cause)
 */
export function verifyAttestation(options: VerifyAttestationOptions): VerifiedAttestation {
  const { provider, attestation, now } = options;
  const allowedSuites = options.allowedSuites ?? SUITE_NAMES;
  let oem: VerifiedChain;
  try {
    oem = verifyChain({
      provider,
      chain: [options.oemCertificate, ...(options.chain ?? [])],
      trustAnchors: options.trustAnchors,
      now,
      revocations: options.revocations,
      allowedSuites,
      leafRoles: ['oem'],
    });
  } catch (e) {
    if (isTallyError(e)) throw invalid(`OEM certificate: ${e.message}`, e);
    throw e;
  }
  const { sePublicKey, model, taMeasurement } = attestation.body;
  if (!verifyRecord(provider, oem.subject, OEM_ATTESTATION_DOMAIN_TAG, signedRecord(attestation.body), attestation.signature)) {
    throw invalid(`signature does not verify under the OEM key ${toHex(oem.subjectKeyId)}`);
  }
  if (sePublicKey.suite !== options.sePublicKey.suite || !equalBytes(sePublicKey.key, options.sePublicKey.key)) {
    throw invalid('the attested secure-element key is not the key presented');
  }
  if (!allowedSuites.includes(sePublicKey.suite)) throw invalid(`secure-element key suite ${sePublicKey.suite} is not allowed`);
  if (!suiteFor(provider, sePublicKey.suite).isValidPublicKey(sePublicKey.key)) throw invalid(`secure-element key is not a valid ${sePublicKey.suite} public key`);
  if (!options.allowedMeasurements.some((m) => equalBytes(m, taMeasurement))) {
    throw invalid(`trusted-app measurement ${toHex(taMeasurement)} is not on the allow list`);
  }
  return { sePublicKey, model, taMeasurement, oem };
}
