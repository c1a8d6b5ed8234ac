/** The strict deterministic CBOR decoder (see cbor.ts): canonical form checked while reading, never by encoding again. */
import { checkSize, TallyError } from './errors.ts';
import { CBOR_BYTES_MAX, DEPTH_MAX, FALSE, NULL, TRUE, TWO_32 } from './cbor-model.ts';

/** Input that is not CBOR of the data model; turned into CBOR_MALFORMED. */
class Malformed extends Error {}

const fatalDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lenientDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
/** Text shorter than this is read by hand when it is ASCII; longer text goes through TextDecoder. */
const ASCII_BY_HAND_MAX = 32;
const OBJECT_PROTOTYPE: object = Object.prototype;
const hasOwn = Object.prototype.hasOwnProperty;

/** A strict reader over one document; `noncanonical` is raised and checked once the whole document has been read. */
class Decoder {
  pos = 0;
  readonly end: number;
  /** Set by well-formed input that is not canonical (unsorted keys, integral floats, invalid UTF-8). */
  noncanonical = false;
  /** Set by text that was not valid UTF-8 (read with U+FFFD in its place). */
  invalidText = false;

  constructor(
    readonly data: Uint8Array,
    /** Byte strings as views of `data` rather than copies. */
    readonly views: boolean,
  ) {
    this.end = data.length;
  }

  need(n: number): void {
    if (n > this.end - this.pos) throw new Malformed('unexpected end of input');
  }

  /** Reads the argument of a length head (additional information `info`), refusing non-shortest forms. */
  length(info: number): number {
    if (info < 24) return info;
    const data = this.data;
    const p = this.pos;
    let n: number;
    if (info === 24) {
      this.need(1);
      n = data[p] as number;
      this.pos = p + 1;
      if (n < 24) throw new Malformed('length encoded in more bytes than necessary');
    } else if (info === 25) {
      this.need(2);
      n = ((data[p] as number) << 8) | (data[p + 1] as number);
      this.pos = p + 2;
      if (n < 0x100) throw new Malformed('length encoded in more bytes than necessary');
    } else if (info === 26) {
      this.need(4);
      n = this.uint32(p);
      this.pos = p + 4;
      if (n < 0x10000) throw new Malformed('length encoded in more bytes than necessary');
    } else if (info === 27) {
      throw new Malformed('64-bit lengths are not supported');
    } else {
      throw new Malformed(info === 31 ? 'indefinite lengths are not allowed' : `invalid additional information ${info}`);
    }
    return n;
  }

  uint32(p: number): number {
    const data = this.data;
    return (data[p] as number) * 0x1000000 + (((data[p + 1] as number) << 16) | ((data[p + 2] as number) << 8) | (data[p + 3] as number));
  }

  /** Reads an integer of major type 0 (`negative` false) or 1: a number when safe, else a bigint, as cborg did. */
  integer(info: number, negative: boolean): number | bigint {
    if (info !== 27) {
      const n = this.length(info);
      return negative ? -1 - n : n;
    }
    this.need(8);
    const hi = this.uint32(this.pos);
    const lo = this.uint32(this.pos + 4);
    this.pos += 8;
    if (hi === 0) throw new Malformed('integer encoded in more bytes than necessary');
    if (hi < 0x200000) {
      const n = hi * TWO_32 + lo;
      // -1 - MAX_SAFE_INTEGER is itself unsafe and comes back as a bigint.
      if (!negative) return n;
      if (n < Number.MAX_SAFE_INTEGER) return -1 - n;
    }
    const n = (BigInt(hi) << 32n) | BigInt(lo);
    return negative ? -1n - n : n;
  }

  text(length: number): string {
    this.need(length);
    const data = this.data;
    const start = this.pos;
    const end = start + length;
    this.pos = end;
    if (length < ASCII_BY_HAND_MAX) {
      let s = '';
      for (let i = start; i < end; i++) {
        const c = data[i] as number;
        if (c >= 0x80) return this.utf8(start, end);
        s += String.fromCharCode(c);
      }
      return s;
    }
    return this.utf8(start, end);
  }

  utf8(start: number, end: number): string {
    const bytes = this.data.subarray(start, end);
    try {
      return fatalDecoder.decode(bytes);
    } catch {
      this.noncanonical = true;
      this.invalidText = true;
      return lenientDecoder.decode(bytes);
    }
  }

  float(info: number): number {
    const data = this.data;
    const p = this.pos;
    let value: number;
    if (info === 25) {
      this.need(2);
      const half = ((data[p] as number) << 8) | (data[p + 1] as number);
      const exponent = (half >> 10) & 0x1f;
      const mantissa = half & 0x3ff;
      const magnitude = exponent === 0 ? mantissa * 2 ** -24 : exponent === 31 ? (mantissa === 0 ? Infinity : NaN) : (mantissa + 1024) * 2 ** (exponent - 25);
      value = half & 0x8000 ? -magnitude : magnitude;
      this.pos = p + 2;
    } else if (info === 26) {
      this.need(4);
      value = new DataView(data.buffer, data.byteOffset + p, 4).getFloat32(0);
      this.pos = p + 4;
    } else {
      this.need(8);
      value = new DataView(data.buffer, data.byteOffset + p, 8).getFloat64(0);
      this.pos = p + 8;
    }
    if (Number.isNaN(value)) throw new Malformed('NaN is not in the data model');
    if (!Number.isFinite(value)) throw new Malformed('Infinity is not in the data model');
    // An integral float has an integer's encoding instead: well-formed, but not canonical.
    if (!Number.isSafeInteger(value)) throw new Malformed(`only safe integers are in the data model, got ${value}`);
    this.noncanonical = true;
    return value;
  }

  item(depth: number): unknown {
    if (depth > DEPTH_MAX) throw new Malformed(`nested deeper than ${DEPTH_MAX}`);
    this.need(1);
    const initial = this.data[this.pos++] as number;
    const info = initial & 0x1f;
    switch (initial >> 5) {
      case 0:
        return this.integer(info, false);
      case 1:
        return this.integer(info, true);
      case 2: {
        const length = this.length(info);
        this.need(length);
        const start = this.pos;
        this.pos = start + length;
        // A copy unless the caller asked for views (a copy of more than 64 bytes is an allocation outside the heap).
        return this.views ? this.data.subarray(start, start + length) : this.data.slice(start, start + length);
      }
      case 3:
        return this.text(this.length(info));
      case 4:
        return this.array(this.length(info), depth);
      case 5:
        return this.map(this.length(info), depth);
      case 6:
        throw new Malformed('tags are not in the data model');
      default:
        if (initial === FALSE) return false;
        if (initial === TRUE) return true;
        if (initial === NULL) return null;
        if (info === 25 || info === 26 || info === 27) return this.float(info);
        throw new Malformed(`simple value or break 0x${initial.toString(16)} is not in the data model`);
    }
  }

  array(length: number, depth: number): unknown[] {
    // Every item takes at least one byte: refuse an impossible count before allocating.
    this.need(length);
    const items: unknown[] = [];
    for (let i = 0; i < length; i++) items.push(this.item(depth + 1));
    return items;
  }

  map(count: number, depth: number): Record<string, unknown> {
    if (count > (this.end - this.pos) / 2) throw new Malformed('unexpected end of input');
    const data = this.data;
    const out: Record<string, unknown> = {};
    let previousStart = -1;
    let previousEnd = -1;
    // Keys strictly in order and valid UTF-8 are distinct; after an irregular one, look them up.
    let lookUp = false;
    for (let i = 0; i < count; i++) {
      this.need(1);
      const keyStart = this.pos;
      const initial = data[this.pos++] as number;
      if (initial >> 5 !== 3) throw new Malformed('map keys must be text');
      this.invalidText = false;
      const key = this.text(this.length(initial & 0x1f));
      const keyEnd = this.pos;
      if (previousStart >= 0) {
        const order = this.compare(previousStart, previousEnd, keyStart, keyEnd);
        if (order === 0) throw new Malformed(`duplicate map key ${JSON.stringify(key)}`);
        if (order > 0) {
          this.noncanonical = true;
          lookUp = true;
        }
      }
      if (this.invalidText) lookUp = true;
      if (lookUp && hasOwn.call(out, key)) throw new Malformed(`duplicate map key ${JSON.stringify(key)}`);
      previousStart = keyStart;
      previousEnd = keyEnd;
      const value = this.item(depth + 1);
      // Plain assignment makes the same own data property as defineProperty, unless a property of
      // Object.prototype (a setter such as "__proto__") would be met on the way.
      if (key in OBJECT_PROTOTYPE) Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
      else out[key] = value;
    }
    return out;
  }

  compare(a0: number, a1: number, b0: number, b1: number): number {
    const data = this.data;
    const aLength = a1 - a0;
    const bLength = b1 - b0;
    const n = aLength < bLength ? aLength : bLength;
    for (let i = 0; i < n; i++) {
      const d = (data[a0 + i] as number) - (data[b0 + i] as number);
      if (d !== 0) return d;
    }
    return aLength - bLength;
  }
}

/**
 * Decodes deterministic CBOR of at most `maxBytes`, refusing anything that is not the one canonical
 * encoding of a value of the data model (unsorted keys, long-form lengths, floats, tags). Byte
 * strings are copies, or with `byteViews` views of `bytes`, for a caller that never changes them.
 * @throws TallyError TOO_LARGE, CBOR_MALFORMED, CBOR_NONCANONICAL
 */
export function decodeCbor(bytes: Uint8Array, options?: { maxBytes?: number; byteViews?: boolean }): unknown {
  const maxBytes = options?.maxBytes ?? CBOR_BYTES_MAX;
  if (!(bytes instanceof Uint8Array)) throw new TypeError('cbor: expected a Uint8Array');
  checkSize('cbor', bytes.length, maxBytes, { label: 'CBOR document' });
  // A plain view, so that slicing a byte string copies it (Buffer's slice would not).
  const data = bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new Decoder(data, options?.byteViews === true);
  let value: unknown;
  try {
    value = decoder.item(0);
    if (decoder.pos !== decoder.end) throw new Malformed(`${decoder.end - decoder.pos} bytes after the value`);
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new TallyError('CBOR_MALFORMED', `malformed CBOR: ${reason}`, { reason }, { cause: e });
  }
  // Checked last: anything malformed anywhere in the document wins over non-canonical form.
  if (decoder.noncanonical) {
    throw new TallyError('CBOR_NONCANONICAL', 'CBOR is not in core deterministic encoding (RFC 8949 §4.2.1)', {});
  }
  return value;
}
