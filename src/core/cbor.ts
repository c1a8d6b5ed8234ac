/**
 * Deterministic CBOR (RFC 8949 §4.2.1 core deterministic encoding), written and read by hand.
 *
 * The data model is deliberately small: null, booleans, integers (number or bigint), text, byte
 * strings, arrays and records with text keys. Floats, undefined values, tags and indefinite
 * lengths are refused, so one value has exactly one encoding.
 *
 * The encoder writes each value once into a growing buffer and sorts a record's entries by the
 * bytes of their encoded keys. The decoder checks canonical form as it reads (shortest heads,
 * keys in order and unique, valid UTF-8), so a document is never encoded again to be checked.
 */
import { checkSize, TallyError } from './errors.ts';

/** The largest CBOR document decoded unless a caller sets a smaller bound. */
export const CBOR_BYTES_MAX = 1024 * 1024;

/** How deep values nest: the top value is at depth 0, so 65 nested arrays are one too many. */
const DEPTH_MAX = 64;

/** A value CBOR can carry; objects may also offer `toCbor()` to give their wire form. */
export type CborValue = null | boolean | number | bigint | string | Uint8Array | readonly CborValue[] | { readonly [key: string]: CborValue | undefined };

/** An object that knows its own wire form (e.g. `Amount`). */
export interface CborEncodable {
  toCbor(): unknown;
}

function hasToCbor(value: object): value is CborEncodable {
  return typeof (value as Partial<CborEncodable>).toCbor === 'function';
}

const MAJOR_UINT = 0x00;
const MAJOR_NEGINT = 0x20;
const MAJOR_BYTES = 0x40;
const MAJOR_TEXT = 0x60;
const MAJOR_ARRAY = 0x80;
const MAJOR_MAP = 0xa0;
const FALSE = 0xf4;
const TRUE = 0xf5;
const NULL = 0xf6;

const TWO_32 = 4294967296;
const UINT64_END = 2n ** 64n;
const INT64_MIN = -(2n ** 64n);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Bytes taken by the head of an item whose argument is `n` (a length or a non-negative integer). */
function headSize(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < TWO_32 ? 5 : 9;
}

// A lone UTF-16 surrogate has no UTF-8 form: TextEncoder would silently write U+FFFD instead.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** Text longer than this goes through TextEncoder; shorter text is encoded by hand. */
const TEXT_BY_HAND_MAX = 64;
const LONE_SURROGATE_MESSAGE = 'text with a lone surrogate has no UTF-8 encoding';

/** A value outside the data model, found deep inside: each enclosing container adds its part of the path. */
class EncodeFailure {
  readonly path: string[] = [];
  constructor(readonly message: string) {}
}

const textEncoder = new TextEncoder();

/** Buffers kept between calls; each is taken while in use, so a `toCbor()` that encodes gets its own. */
let spareOut: Uint8Array | null = new Uint8Array(4096);
const SPARE_OUT_MAX = 64 * 1024;
/** Where a record's entries wait while they are put in order, and that order (no user code runs meanwhile). */
let sortScratch = new Uint8Array(1024);
const sortOrder: number[] = [];
/** Records with more entries than this are sorted by Array.prototype.sort. */
const INSERTION_SORT_MAX = 16;
/** Entries shorter than this are copied byte by byte rather than through a view. */
const SHORT_COPY_MAX = 32;

class Encoder {
  buf: Uint8Array;
  pos = 0;
  /** Offsets of the entries of the records being written: [keyStart, keyEnd] pairs, stacked. */
  readonly marks: number[] = [];

  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
  }

  /** Writes a head of major type `major` with argument `n`, 0 ≤ n ≤ 2^53 - 1, in its shortest form. */
  head(major: number, n: number): void {
    this.reserve(9);
    this.pos = this.headAt(this.pos, major, n);
  }

  /** Writes a head at `at`, where room was reserved before; answers where it ends. */
  headAt(at: number, major: number, n: number): number {
    const buf = this.buf;
    let p = at;
    if (n < 24) {
      buf[p++] = major | n;
    } else if (n < 0x100) {
      buf[p++] = major | 24;
      buf[p++] = n;
    } else if (n < 0x10000) {
      buf[p++] = major | 25;
      buf[p++] = n >>> 8;
      buf[p++] = n & 0xff;
    } else if (n < TWO_32) {
      buf[p++] = major | 26;
      buf[p++] = n >>> 24;
      buf[p++] = (n >>> 16) & 0xff;
      buf[p++] = (n >>> 8) & 0xff;
      buf[p++] = n & 0xff;
    } else {
      p = this.head64(p, major, Math.floor(n / TWO_32), n >>> 0);
    }
    return p;
  }

  head64(at: number, major: number, hi: number, lo: number): number {
    const buf = this.buf;
    let p = at;
    buf[p++] = major | 27;
    buf[p++] = hi >>> 24;
    buf[p++] = (hi >>> 16) & 0xff;
    buf[p++] = (hi >>> 8) & 0xff;
    buf[p++] = hi & 0xff;
    buf[p++] = lo >>> 24;
    buf[p++] = (lo >>> 16) & 0xff;
    buf[p++] = (lo >>> 8) & 0xff;
    buf[p++] = lo & 0xff;
    return p;
  }

  bigint(value: bigint): void {
    const negative = value < 0n;
    const n = negative ? -1n - value : value;
    const major = negative ? MAJOR_NEGINT : MAJOR_UINT;
    if (n <= MAX_SAFE) {
      this.head(major, Number(n));
      return;
    }
    this.reserve(9);
    this.pos = this.head64(this.pos, major, Number(n >> 32n), Number(n & 0xffffffffn));
  }

  /** Writes text as UTF-8 with its head; throws EncodeFailure for a lone surrogate. */
  text(text: string): void {
    const units = text.length;
    // UTF-8 takes at least one byte per UTF-16 unit and at most three: write after a head sized
    // for `units` bytes and move the bytes along in the rare case the head must grow.
    this.reserve(9 + 3 * units);
    const start = this.pos;
    const guess = headSize(units);
    const buf = this.buf;
    let p = start + guess;
    if (units <= TEXT_BY_HAND_MAX) {
      for (let i = 0; i < units; i++) {
        const c = text.charCodeAt(i);
        if (c < 0x80) {
          buf[p++] = c;
        } else if (c < 0x800) {
          buf[p++] = 0xc0 | (c >> 6);
          buf[p++] = 0x80 | (c & 0x3f);
        } else if (c < 0xd800 || c > 0xdfff) {
          buf[p++] = 0xe0 | (c >> 12);
          buf[p++] = 0x80 | ((c >> 6) & 0x3f);
          buf[p++] = 0x80 | (c & 0x3f);
        } else {
          const d = i + 1 < units ? text.charCodeAt(i + 1) : 0;
          if (c > 0xdbff || d < 0xdc00 || d > 0xdfff) throw new EncodeFailure(LONE_SURROGATE_MESSAGE);
          i++;
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          buf[p++] = 0xf0 | (cp >> 18);
          buf[p++] = 0x80 | ((cp >> 12) & 0x3f);
          buf[p++] = 0x80 | ((cp >> 6) & 0x3f);
          buf[p++] = 0x80 | (cp & 0x3f);
        }
      }
    } else {
      if (LONE_SURROGATE.test(text)) throw new EncodeFailure(LONE_SURROGATE_MESSAGE);
      p += textEncoder.encodeInto(text, buf.subarray(p)).written;
    }
    const length = p - start - guess;
    const size = headSize(length);
    if (size !== guess) buf.copyWithin(start + size, start + guess, p);
    this.headAt(start, MAJOR_TEXT, length);
    this.pos = start + size + length;
  }

  value(value: unknown, depth: number): void {
    if (depth > DEPTH_MAX) throw new EncodeFailure(`nested deeper than ${DEPTH_MAX}`);
    switch (typeof value) {
      case 'number':
        if (!Number.isSafeInteger(value)) throw new EncodeFailure(`only safe integers are encoded, got ${value}`);
        if (value >= 0) this.head(MAJOR_UINT, value);
        else this.head(MAJOR_NEGINT, -1 - value);
        return;
      case 'string':
        this.text(value);
        return;
      case 'boolean':
        this.reserve(1);
        this.buf[this.pos++] = value ? TRUE : FALSE;
        return;
      case 'bigint':
        if (value < INT64_MIN || value >= UINT64_END) throw new EncodeFailure(`integer ${value} is outside the 64-bit range CBOR encodes`);
        this.bigint(value);
        return;
      case 'object':
        if (value === null) {
          this.reserve(1);
          this.buf[this.pos++] = NULL;
          return;
        }
        if (value instanceof Uint8Array) {
          this.head(MAJOR_BYTES, value.length);
          this.reserve(value.length);
          this.buf.set(value, this.pos);
          this.pos += value.length;
          return;
        }
        if (Array.isArray(value)) {
          this.array(value, depth);
          return;
        }
        if (hasToCbor(value)) {
          this.value(value.toCbor(), depth + 1);
          return;
        }
        this.record(value, depth);
        return;
      default:
        throw new EncodeFailure(`cannot encode ${typeof value}`);
    }
  }

  array(items: readonly unknown[], depth: number): void {
    const length = items.length;
    this.head(MAJOR_ARRAY, length);
    let i = 0;
    try {
      // A hole reads as undefined and is refused like an undefined element.
      for (; i < length; i++) this.value(items[i], depth + 1);
    } catch (e) {
      if (e instanceof EncodeFailure) e.path.push(`[${i}]`);
      throw e;
    }
  }

  record(value: object, depth: number): void {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const name: unknown = (proto as { constructor?: { name?: unknown } }).constructor?.name;
      throw new EncodeFailure(`cannot encode a ${typeof name === 'string' && name !== '' ? name : 'non-plain object'}`);
    }
    const fields = value as Record<string, unknown>;
    const keys = Object.keys(fields);
    // The head is written once the number of defined fields is known; reserve room for the most.
    const guess = headSize(keys.length);
    this.reserve(guess);
    const start = this.pos;
    this.pos += guess;
    const marks = this.marks;
    const base = marks.length;
    let key = '';
    let inKey = false;
    try {
      for (let i = 0; i < keys.length; i++) {
        key = keys[i] as string;
        const field = fields[key];
        inKey = true;
        if (field === undefined) {
          // A left-out field's key must still have a UTF-8 form.
          if (LONE_SURROGATE.test(key)) throw new EncodeFailure(LONE_SURROGATE_MESSAGE);
          continue;
        }
        const keyStart = this.pos;
        this.text(key);
        inKey = false;
        marks.push(keyStart, this.pos);
        this.value(field, depth + 1);
      }
    } catch (e) {
      marks.length = base;
      if (e instanceof EncodeFailure) e.path.push(inKey ? ' key' : `.${key}`);
      throw e;
    }
    const count = (marks.length - base) / 2;
    const size = headSize(count);
    const bodyStart = start + guess;
    if (!this.inOrder(base, count)) this.sortEntries(base, count, bodyStart);
    if (size !== guess) {
      this.buf.copyWithin(start + size, bodyStart, this.pos);
      this.pos -= guess - size;
    }
    // The head fits in the room reserved for it: `size` is at most `guess`.
    this.headAt(start, MAJOR_MAP, count);
    marks.length = base;
  }

  /** Compares the encoded keys of entries `a` and `b` (indices into marks) bytewise. */
  compareKeys(a: number, b: number): number {
    const marks = this.marks;
    const buf = this.buf;
    const a0 = marks[a] as number;
    const b0 = marks[b] as number;
    const aLength = (marks[a + 1] as number) - a0;
    const bLength = (marks[b + 1] as number) - b0;
    const n = aLength < bLength ? aLength : bLength;
    for (let i = 0; i < n; i++) {
      const d = (buf[a0 + i] as number) - (buf[b0 + i] as number);
      if (d !== 0) return d;
    }
    return aLength - bLength;
  }

  inOrder(base: number, count: number): boolean {
    for (let i = 1; i < count; i++) {
      if (this.compareKeys(base + 2 * (i - 1), base + 2 * i) > 0) return false;
    }
    return true;
  }

  /** Rewrites the `count` entries that start at `bodyStart` in the order of their encoded keys. */
  sortEntries(base: number, count: number, bodyStart: number): void {
    const marks = this.marks;
    const order = sortOrder;
    order.length = 0;
    if (count <= INSERTION_SORT_MAX) {
      for (let i = 0; i < count; i++) {
        const m = base + 2 * i;
        let j = i;
        while (j > 0 && this.compareKeys(order[j - 1] as number, m) > 0) {
          order[j] = order[j - 1] as number;
          j--;
        }
        order[j] = m;
      }
    } else {
      for (let i = 0; i < count; i++) order.push(base + 2 * i);
      order.sort((a, b) => this.compareKeys(a, b));
    }
    const bodyLength = this.pos - bodyStart;
    if (sortScratch.length < bodyLength) sortScratch = new Uint8Array(Math.max(bodyLength, sortScratch.length * 2));
    const scratch = sortScratch;
    const buf = this.buf;
    scratch.set(buf.subarray(bodyStart, this.pos));
    const last = base + 2 * (count - 1);
    let p = bodyStart;
    for (let i = 0; i < count; i++) {
      const m = order[i] as number;
      // An entry runs from its key to the next entry's key (or the end of the body).
      const from = (marks[m] as number) - bodyStart;
      const to = m < last ? (marks[m + 2] as number) - bodyStart : bodyLength;
      if (to - from <= SHORT_COPY_MAX) {
        for (let k = from; k < to; k++) buf[p++] = scratch[k] as number;
      } else {
        buf.set(scratch.subarray(from, to), p);
        p += to - from;
      }
    }
  }
}

/**
 * Encodes a value in core deterministic CBOR: the same record gives the same bytes whatever its key
 * order. Record fields whose value is undefined are left out.
 * @throws TypeError for values outside the data model (floats, class instances, functions, array holes)
 */
export function encodeCbor(value: unknown): Uint8Array {
  const buf = spareOut ?? new Uint8Array(256);
  spareOut = null;
  const encoder = new Encoder(buf);
  try {
    encoder.value(value, 0);
  } catch (e) {
    if (e instanceof EncodeFailure) throw new TypeError(`cbor: value${e.path.reverse().join('')}: ${e.message}`);
    throw e;
  } finally {
    if (encoder.buf.length <= SPARE_OUT_MAX) spareOut = encoder.buf;
  }
  // A plain Uint8Array that owns exactly its bytes.
  return encoder.buf.slice(0, encoder.pos);
}

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

  constructor(readonly data: Uint8Array) {
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
        // A copy, never a view of the input.
        return this.data.slice(start, start + length);
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
 * encoding of a value of the data model (unsorted keys, long-form lengths, floats, tags).
 * @throws TallyError TOO_LARGE, CBOR_MALFORMED, CBOR_NONCANONICAL
 */
export function decodeCbor(bytes: Uint8Array, options?: { maxBytes?: number }): unknown {
  const maxBytes = options?.maxBytes ?? CBOR_BYTES_MAX;
  if (!(bytes instanceof Uint8Array)) throw new TypeError('cbor: expected a Uint8Array');
  checkSize('cbor', bytes.length, maxBytes, { label: 'CBOR document' });
  // A plain view, so that slicing a byte string copies it (Buffer's slice would not).
  const data = bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new Decoder(data);
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
