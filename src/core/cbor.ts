/**
 * Deterministic CBOR (RFC 8949 §4.2.1 core deterministic encoding) through cborg.
 *
 * The data model is deliberately small: null, booleans, integers (number or bigint), text, byte
 * strings, arrays and records with text keys. Floats, undefined values, tags and indefinite
 * lengths are refused, so one value has exactly one encoding.
 */
import { decode as cborgDecode, encode as cborgEncode, rfc8949EncodeOptions } from 'cborg';
import { equalBytes } from './bytes.ts';
import { checkSize, TallyError } from './errors.ts';

/** The largest CBOR document decoded unless a caller sets a smaller bound. */
export const CBOR_BYTES_MAX = 1024 * 1024;

/** A value CBOR can carry; objects may also offer `toCbor()` to give their wire form. */
export type CborValue = null | boolean | number | bigint | string | Uint8Array | readonly CborValue[] | { readonly [key: string]: CborValue | undefined };

/** An object that knows its own wire form (e.g. `Amount`). */
export interface CborEncodable {
  toCbor(): unknown;
}

function hasToCbor(value: object): value is CborEncodable {
  return typeof (value as Partial<CborEncodable>).toCbor === 'function';
}

// A lone UTF-16 surrogate has no UTF-8 form: the encoder would silently write U+FFFD instead.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkText(text: string, path: string): void {
  if (LONE_SURROGATE.test(text)) throw new TypeError(`cbor: ${path}: text with a lone surrogate has no UTF-8 encoding`);
}

function normalize(value: unknown, path: string, depth: number): unknown {
  if (depth > 64) throw new TypeError(`cbor: ${path}: nested deeper than 64`);
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    checkText(value, path);
    return value;
  }
  if (typeof value === 'bigint') {
    if (value < -(2n ** 64n) || value >= 2n ** 64n) throw new TypeError(`cbor: ${path}: integer ${value} is outside the 64-bit range CBOR encodes`);
    return value;
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new TypeError(`cbor: ${path}: only safe integers are encoded, got ${value}`);
    return value;
  }
  if (value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map((v, i) => normalize(v, `${path}[${i}]`, depth + 1));
  if (typeof value === 'object') {
    if (hasToCbor(value)) return normalize(value.toCbor(), path, depth + 1);
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const name: unknown = (proto as { constructor?: { name?: unknown } }).constructor?.name;
      throw new TypeError(`cbor: ${path}: cannot encode a ${typeof name === 'string' && name !== '' ? name : 'non-plain object'}`);
    }
    // A Map, not an object: assigning a "__proto__" key to an object would change its prototype
    // and silently drop the field.
    const out = new Map<string, unknown>();
    for (const [key, v] of Object.entries(value)) {
      checkText(key, `${path} key`);
      if (v !== undefined) out.set(key, normalize(v, `${path}.${key}`, depth + 1));
    }
    return out;
  }
  throw new TypeError(`cbor: ${path}: cannot encode ${typeof value}`);
}

/**
 * Encodes a value in core deterministic CBOR: the same record gives the same bytes whatever its key
 * order. Record fields whose value is undefined are left out.
 * @throws TypeError for values outside the data model (floats, class instances, functions)
 */
export function encodeCbor(value: unknown): Uint8Array {
  const encoded = cborgEncode(normalize(value, 'value', 0), rfc8949EncodeOptions);
  // In Node cborg may answer a Buffer or a view into Node's shared 8 KiB pool: `.buffer` would
  // expose other data and `.slice()` would not copy. Give a plain Uint8Array of its own.
  const own = encoded.constructor === Uint8Array && encoded.byteOffset === 0 && encoded.byteLength === encoded.buffer.byteLength;
  return own ? encoded : new Uint8Array(encoded);
}

const DECODE_OPTIONS = {
  strict: true,
  rejectDuplicateMapKeys: true,
  allowUndefined: false,
  allowIndefinite: false,
  allowNaN: false,
  allowInfinity: false,
  allowBigInt: true,
  // Maps, turned into records by fromMaps: cborg would assign a "__proto__" key into an object.
  useMaps: true,
  tags: [],
} as const;

/** Turns decoded maps into plain records with text keys, keeping a "__proto__" key as a field. */
function fromMaps(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromMaps);
  if (!(value instanceof Map)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of value) {
    if (typeof key !== 'string') throw new Error(`map keys must be text, got ${typeof key}`);
    Object.defineProperty(out, key, { value: fromMaps(v), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/**
 * Decodes deterministic CBOR of at most `maxBytes`, refusing anything that does not re-encode to
 * exactly the same bytes (unsorted keys, long-form lengths, floats, tags).
 * @throws TallyError TOO_LARGE, CBOR_MALFORMED, CBOR_NONCANONICAL
 */
export function decodeCbor(bytes: Uint8Array, options?: { maxBytes?: number }): unknown {
  const maxBytes = options?.maxBytes ?? CBOR_BYTES_MAX;
  if (!(bytes instanceof Uint8Array)) throw new TypeError('cbor: expected a Uint8Array');
  checkSize('cbor', bytes.length, maxBytes, { label: 'CBOR document' });
  let value: unknown;
  let again: Uint8Array;
  try {
    value = fromMaps(cborgDecode(bytes, DECODE_OPTIONS));
    again = encodeCbor(value);
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new TallyError('CBOR_MALFORMED', `malformed CBOR: ${reason}`, { reason }, { cause: e });
  }
  if (!equalBytes(again, bytes)) {
    throw new TallyError('CBOR_NONCANONICAL', 'CBOR is not in core deterministic encoding (RFC 8949 §4.2.1)', {});
  }
  return value;
}
