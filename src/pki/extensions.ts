/**
 * Certificate extensions: a small, closed record of optional fields. Unknown fields are refused
 * rather than ignored, so a verifier never accepts a certificate whose meaning it cannot read.
 */
import { AMOUNT_MINOR_MAX } from '../core/amount.ts';
import { bigint, bytes, optional, record, refine, text, uint, type Codec, type RecordOf } from '../core/codec.ts';
import { decodeFailure } from '../core/codec.ts';
import { keyIdCodec } from './key-id.ts';

/** Longest `name` extension, in UTF-16 units. */
export const NAME_CHARS_MAX = 128;
/** Longest `deviceModel` extension, in UTF-16 units. */
export const DEVICE_MODEL_CHARS_MAX = 64;
/** Longest `scheme` extension, in characters. */
export const SCHEME_CHARS_MAX = 32;
/** Length of a trusted-app measurement (a SHA-256 of the TA binary, as OPS §3.1 provisioning signs). */
export const TA_MEASUREMENT_BYTES = 32;
/** Largest `offlinePaymentsMax` extension. */
export const OFFLINE_PAYMENTS_MAX_LIMIT = 2 ** 32 - 1;

/** Printable text: no control characters and no lone surrogates (which have no UTF-8 form). */
const PRINTABLE = /^[^\p{Cc}\p{Cs}]*$/u;

const shape = {
  /** A display name for the subject ("Bank A", "Alice's phone"). */
  name: optional(text({ min: 1, max: NAME_CHARS_MAX, pattern: PRINTABLE, describe: `text of 1 to ${NAME_CHARS_MAX} characters without control characters` })),
  /** The payment scheme the key serves ("ops", "dotm", "otp", "chain", "opera"). */
  scheme: optional(text({ min: 1, max: SCHEME_CHARS_MAX, pattern: /^[a-z][a-z0-9-]*$/, describe: 'a scheme name in lower case' })),
  /** The secure element's model, as its OEM attestation names it. */
  deviceModel: optional(text({ min: 1, max: DEVICE_MODEL_CHARS_MAX, pattern: PRINTABLE, describe: `text of 1 to ${DEVICE_MODEL_CHARS_MAX} characters without control characters` })),
  /** The measurement of the trusted app the OEM attestation vouched for. */
  taMeasurement: optional(bytes({ length: TA_MEASUREMENT_BYTES })),
  /** The most a device may hold offline, in minor units of `currency`. */
  holdingLimit: optional(bigint({ min: 0n, max: AMOUNT_MINOR_MAX })),
  /** The currency code `holdingLimit` counts in. */
  currency: optional(text({ max: 12, pattern: /^[A-Z][A-Z0-9]{2,11}$/, describe: 'a currency code of 3 to 12 capitals or digits' })),
  /** The most payments a device may make offline before it syncs. */
  offlinePaymentsMax: optional(uint({ max: OFFLINE_PAYMENTS_MAX_LIMIT })),
  /** Key id of the user key that registered this device (OPS §3.2 keeps the pair (vk, T.vk)). */
  owner: optional(keyIdCodec),
};

/** The optional fields a certificate may carry. */
export type CertificateExtensions = RecordOf<typeof shape>;

/** Decodes extensions: unknown fields refused, every length bounded, a holding limit names its currency. */
export const extensionsCodec: Codec<CertificateExtensions> = refine(record(shape), 'certificate extensions', (value, path) => {
  if (value.holdingLimit !== undefined && value.currency === undefined) {
    return decodeFailure(`${path}.currency`, 'a currency code alongside holdingLimit', 'nothing');
  }
  return value;
});
