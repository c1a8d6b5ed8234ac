/** The deterministic CBOR encoder (see cbor.ts): one pass into a growing buffer, each record's entries sorted by their encoded keys. */
import { DEPTH_MAX, FALSE, MAJOR_ARRAY, MAJOR_BYTES, MAJOR_MAP, MAJOR_NEGINT, MAJOR_TEXT, MAJOR_UINT, NULL, TRUE, TWO_32, type CborEncodable } from './cbor-model.ts';

function hasToCbor(value: object): value is CborEncodable {
  return typeof (value as Partial<CborEncodable>).toCbor === 'function';
}

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
