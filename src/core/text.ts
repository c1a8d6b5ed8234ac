/**
 * The text form of a token that travels by QR code or copy-paste:
 * `tally1` + base64url(CBOR ‖ first 4 bytes of SHA-256("tally1" ‖ CBOR)).
 * A mistyped, truncated or foreign string is refused with a clear error.
 */
import { concatBytes, equalBytes, fromBase64url, toBase64url, utf8 } from './bytes.ts';
import { decodeCbor, encodeCbor } from './cbor.ts';
import type { Codec } from './codec.ts';
import { sha256 } from './crypto/hash.ts';
import { checkSize, TallyError } from './errors.ts';

/** The prefix of every text token (format version 1). */
export const TEXT_PREFIX = 'tally1';
const CHECKSUM_BYTES = 4;
/** Longest text token accepted (characters); about 48 KiB of CBOR. */
export const TEXT_CHARS_MAX = 65536;

function checksum(payload: Uint8Array): Uint8Array {
  return sha256(concatBytes(utf8(TEXT_PREFIX), payload)).subarray(0, CHECKSUM_BYTES);
}

/**
 * Encodes a value as a `tally1...` text token.
 * @throws TallyError TOO_LARGE when the token would be longer than decodeText accepts; TypeError as encodeCbor
 */
export function encodeText(value: unknown): string {
  const payload = encodeCbor(value);
  const token = TEXT_PREFIX + toBase64url(concatBytes(payload, checksum(payload)));
  checkSize('text token', token.length, TEXT_CHARS_MAX, { unit: 'characters' });
  return token;
}

/**
 * Decodes a `tally1...` token (surrounding white space is ignored) and then the value with `codec`.
 * @throws TallyError TEXT_INVALID, TEXT_CHECKSUM, TOO_LARGE, CBOR_MALFORMED, CBOR_NONCANONICAL, DECODE_FAILED
 */
export function decodeText<T>(token: string, codec: Codec<T>, path = 'token'): T {
  const trimmed = token.trim();
  checkSize('text token', trimmed.length, TEXT_CHARS_MAX, { unit: 'characters' });
  if (!trimmed.startsWith(TEXT_PREFIX)) {
    throw new TallyError('TEXT_INVALID', `not a Tally token: it should start with "${TEXT_PREFIX}"`, { reason: 'prefix' });
  }
  let raw: Uint8Array;
  try {
    raw = fromBase64url(trimmed.slice(TEXT_PREFIX.length));
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new TallyError('TEXT_INVALID', `token is damaged (${reason}); copy it again in full`, { reason }, { cause: e });
  }
  if (raw.length <= CHECKSUM_BYTES) throw new TallyError('TEXT_INVALID', 'token is too short; copy it again in full', { reason: 'short' });
  const payload = raw.subarray(0, raw.length - CHECKSUM_BYTES);
  if (!equalBytes(checksum(payload), raw.subarray(raw.length - CHECKSUM_BYTES))) {
    throw new TallyError('TEXT_CHECKSUM', 'token checksum does not match: it was mistyped or cut short; copy it again in full', {});
  }
  return codec.decode(decodeCbor(payload), path);
}
