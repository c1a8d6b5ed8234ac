/**
 * Codecs for the text fields that JSON answers and files carry again and again: hex key ids,
 * base64url byte strings, decimal integers in minor units, millisecond timestamps. Defined once so
 * that every boundary bounds and names them alike.
 */
import { fromBase64url, fromHex } from './bytes.ts';
import { decodeFailure, describeValue, record, refine, text, uint, type Codec, type RecordOf } from './codec.ts';

/** Longest base64url field accepted unless a codec says less (a certificate or a payment, not a blob). */
export const BASE64URL_CHARS_MAX = 1024 * 1024;
/** Latest timestamp accepted (year 2286 in ms): guards against seconds-vs-ms and garbage. */
export const TIMESTAMP_MS_MAX = 10_000_000_000_000;

/** Lowercase hex of exactly `bytes` bytes, kept as text. */
export function hexText(bytes: number): Codec<string> {
  return text({ min: 2 * bytes, max: 2 * bytes, pattern: /^[0-9a-f]*$/, describe: `${bytes} bytes in lowercase hex` });
}

/** A key id (SHA-256 of a public key) as 64 lowercase hex characters. */
export const keyIdHex: Codec<string> = hexText(32);

/** Base64url text (no padding) of at most `max` characters, kept as text. */
export function base64urlText(bound: { min?: number; max: number }): Codec<string> {
  return text({ min: bound.min ?? 1, max: bound.max, pattern: /^[A-Za-z0-9_-]*$/, describe: `base64url text of ${bound.min ?? 1} to ${bound.max} characters` });
}

/** Base64url text decoded to bytes, of at most `maxBytes` bytes. */
export function base64urlBytes(bound: { maxBytes: number }): Codec<Uint8Array> {
  const expected = `base64url of at most ${bound.maxBytes} bytes`;
  return refine(base64urlText({ max: Math.ceil((bound.maxBytes * 4) / 3) }), expected, (value, path) => {
    try {
      return fromBase64url(value);
    } catch {
      return decodeFailure(path, expected, 'text that is not base64url');
    }
  });
}

/** Hex text decoded to exactly `bytes` bytes. */
export function hexBytes(bytes: number): Codec<Uint8Array> {
  return refine(hexText(bytes), `${bytes} bytes in hex`, (value) => fromHex(value));
}

/** A decimal integer in text (minor units, a counter, an index): no sign, no leading zero, up to `digits` digits. */
export function decimalText(bound: { digits: number } = { digits: 38 }): Codec<string> {
  return text({ min: 1, max: bound.digits, pattern: /^(0|[1-9][0-9]*)$/, describe: `a decimal integer of up to ${bound.digits} digits` });
}

/** A time in milliseconds since 1970, as a number. */
export const timestampMs: Codec<number> = uint({ max: TIMESTAMP_MS_MAX });

/** An ISO 8601 time in UTC as the node writes it (`2026-01-02T03:04:05.678Z`), kept as text. */
export const isoTime: Codec<string> = refine(
  text({ min: 20, max: 30, pattern: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/, describe: 'an ISO 8601 UTC time' }),
  'an ISO 8601 UTC time',
  (value, path) => (Number.isNaN(Date.parse(value)) ? decodeFailure(path, 'an ISO 8601 UTC time', `text ${JSON.stringify(value)}`) : value),
);

/** Free text from outside (a memo, a reason, a message) of at most `max` characters. */
export function prose(max: number): Codec<string> {
  return text({ max });
}

/** A value or null (JSON's way of saying "none yet"). */
export function nullable<T>(inner: Codec<T>): Codec<T | null> {
  return { expected: `${inner.expected} or null`, decode: (input, path = 'value') => (input === null ? null : inner.decode(input, path)) };
}

/**
 * A record read for the fields named in `shape`; other fields are ignored rather than refused (an
 * answer from a newer peer may carry more). Use `record` where the input must be exactly the shape.
 */
export function looseRecord<S extends Record<string, Codec<unknown>>>(shape: S): Codec<RecordOf<S>> {
  const strict = record(shape);
  return {
    expected: strict.expected,
    decode(input, path = 'value') {
      if (typeof input !== 'object' || input === null || Array.isArray(input) || input instanceof Uint8Array) return strict.decode(input, path);
      const picked: Record<string, unknown> = {};
      for (const key of Object.keys(shape)) if (Object.hasOwn(input, key)) picked[key] = (input as Record<string, unknown>)[key];
      return strict.decode(picked, path);
    },
  };
}

/** A JSON object used as a map from text keys (bounded) to values of one codec, with at most `max` entries. */
export function textMap<T>(value: Codec<T>, bound: { max: number; keyCharsMax: number }): Codec<Record<string, T>> {
  const expected = `a record of at most ${bound.max} entries`;
  return {
    expected,
    decode(input, path = 'value') {
      if (typeof input !== 'object' || input === null || Array.isArray(input) || input instanceof Uint8Array) return decodeFailure(path, expected, describeValue(input));
      const entries = Object.entries(input);
      if (entries.length > bound.max) return decodeFailure(path, expected, `${entries.length} entries`);
      const out: Record<string, T> = Object.create(null) as Record<string, T>;
      for (const [key, v] of entries) {
        if (key.length === 0 || key.length > bound.keyCharsMax) decodeFailure(`${path}[${JSON.stringify(key.slice(0, 40))}]`, `a key of 1 to ${bound.keyCharsMax} characters`, `${key.length} characters`);
        out[key] = value.decode(v, `${path}[${JSON.stringify(key)}]`);
      }
      return out;
    },
  };
}
