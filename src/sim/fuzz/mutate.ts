/**
 * Mutations of valid inputs: bit flips, interesting bytes, truncation, extension, deletion,
 * duplication, splicing with another input, changed CBOR length heads and lengths of a frame
 * header; and, one level up, mutations of a decoded value (a field dropped, added, retyped, a list
 * or a text grown past its bound) before it is encoded again.
 */
import type { Rng } from './random.ts';

/** Bytes that CBOR and length headers give meaning to. */
const INTERESTING = [0x00, 0x01, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1f, 0x3f, 0x40, 0x5f, 0x60, 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0, 0xf4, 0xf5, 0xf6, 0xf7, 0xf9, 0xfa, 0xfb, 0xff];

/** One mutation of `input`, given another input to splice with. */
type ByteMutation = (input: Uint8Array, rng: Rng, other: Uint8Array) => Uint8Array;

function withByte(input: Uint8Array, at: number, value: number): Uint8Array {
  const out = input.slice();
  out[at] = value;
  return out;
}

const BYTE_MUTATIONS: readonly ByteMutation[] = [
  // A flipped bit.
  (input, rng) => (input.length === 0 ? rng.bytes(1) : withByte(input, rng.below(input.length), (input[rng.below(input.length)] as number) ^ (1 << rng.below(8)))),
  // A byte set to one CBOR and headers give meaning to.
  (input, rng) => (input.length === 0 ? Uint8Array.of(rng.pick(INTERESTING)) : withByte(input, rng.below(input.length), rng.pick(INTERESTING))),
  // A random byte.
  (input, rng) => (input.length === 0 ? rng.bytes(1) : withByte(input, rng.below(input.length), rng.u32() & 0xff)),
  // Cut short.
  (input, rng) => input.slice(0, rng.below(input.length)),
  // Random bytes added at the end.
  (input, rng) => concat(input, rng.bytes(1 + rng.below(16))),
  // A range removed.
  (input, rng) => {
    const at = rng.below(input.length);
    const n = 1 + rng.below(Math.max(1, Math.min(16, input.length - at)));
    return concat(input.subarray(0, at), input.subarray(at + n));
  },
  // A range repeated.
  (input, rng) => {
    const at = rng.below(input.length);
    const n = 1 + rng.below(Math.max(1, Math.min(32, input.length - at)));
    return concat(input.subarray(0, at + n), input.subarray(at, at + n), input.subarray(at + n));
  },
  // Spliced: the head of this input, the tail of another.
  (input, rng, other) => concat(input.subarray(0, rng.below(input.length + 1)), other.subarray(rng.below(other.length + 1))),
  // Random bytes inserted.
  (input, rng) => {
    const at = rng.below(input.length + 1);
    return concat(input.subarray(0, at), rng.bytes(1 + rng.below(8)), input.subarray(at));
  },
  // A CBOR length head made to announce more or fewer items or bytes.
  (input, rng) => changeCborHead(input, rng),
  // A 4-byte big-endian length at the start (a frame header) changed.
  (input, rng) => {
    if (input.length < 4) return input;
    const out = input.slice();
    const view = new DataView(out.buffer);
    const length = view.getUint32(0);
    view.setUint32(0, rng.pick([0, length + 1, Math.max(0, length - 1), 0xffffffff, 0x7fffffff, length * 2 + 1, rng.u32()]) >>> 0);
    return out;
  },
];

/** Changes the additional information of one byte that could be a CBOR head of bytes, text, a list or a map. */
function changeCborHead(input: Uint8Array, rng: Rng): Uint8Array {
  for (let tries = 0; tries < 8 && input.length > 0; tries++) {
    const at = rng.below(input.length);
    const byte = input[at] as number;
    const major = byte >> 5;
    if (major < 2 || major > 5) continue;
    const info = byte & 0x1f;
    const next = rng.pick([Math.min(23, info + 1), Math.max(0, info - 1), 24, 25, 26, 27, 31]);
    const out = concat(input.subarray(0, at), Uint8Array.of((major << 5) | next));
    // A long head takes argument bytes: give it a large one, so the count points far past the end.
    const argument = next === 24 ? [0xff] : next === 25 ? [0xff, 0xff] : next === 26 ? [0x7f, 0xff, 0xff, 0xff] : next === 27 ? [0, 0, 0, 1, 0, 0, 0, 0] : [];
    return concat(out, Uint8Array.from(argument), input.subarray(at + 1));
  }
  return input;
}

/** `input` after 1 to 4 mutations, splicing with `other`. */
export function mutateBytes(input: Uint8Array, rng: Rng, other: Uint8Array): Uint8Array {
  let out = input;
  const n = 1 + rng.below(4);
  for (let i = 0; i < n; i++) out = rng.pick(BYTE_MUTATIONS)(out, rng, other);
  return out;
}

/** Concatenation (a local copy of core's, without its argument checks, for the hot loop). */
function concat(...parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const part of parts) total += part.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Values swapped in for another of the wrong type or out of range. */
function strayValue(rng: Rng): unknown {
  switch (rng.below(12)) {
    case 0: return null;
    case 1: return rng.chance(0.5);
    case 2: return -1;
    case 3: return 2 ** 53 - 1;
    case 4: return 2n ** 64n - 1n;
    case 5: return -(2n ** 64n);
    case 6: return '';
    case 7: return 'x'.repeat(1 + rng.below(300));
    case 8: return rng.bytes(rng.below(70));
    case 9: return [];
    case 10: return {};
    default: return rng.u32();
  }
}

/**
 * A copy of `value` (a CBOR data-model value) with one change at a random place: a field dropped or
 * added, a value replaced by one of another type or at an edge, a list or byte string grown or cut.
 */
export function mutateValue(value: unknown, rng: Rng): unknown {
  // Walk down to a random node, copying the path so the original stays as it was.
  if (Array.isArray(value)) {
    if (value.length > 0 && rng.chance(0.7)) {
      const at = rng.below(value.length);
      const copy = value.slice();
      copy[at] = mutateValue(value[at], rng);
      return copy;
    }
    switch (rng.below(4)) {
      case 0: return value.slice(0, rng.below(value.length + 1));
      case 1: return [...value, ...Array.from({ length: 1 + rng.below(300) }, () => value[0] ?? strayValue(rng))];
      case 2: return [...value, strayValue(rng)];
      default: return strayValue(rng);
    }
  }
  if (value instanceof Uint8Array) {
    switch (rng.below(4)) {
      case 0: return value.slice(0, Math.max(0, value.length - 1 - rng.below(4)));
      case 1: return concat(value, rng.bytes(1 + rng.below(rng.chance(0.2) ? 70_000 : 8)));
      case 2: return rng.bytes(value.length);
      default: return strayValue(rng);
    }
  }
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value);
    if (entries.length > 0 && rng.chance(0.7)) {
      const [key, inner] = entries[rng.below(entries.length)] as [string, unknown];
      return { ...value, [key]: mutateValue(inner, rng) };
    }
    switch (rng.below(3)) {
      case 0: {
        if (entries.length === 0) return { extra: strayValue(rng) };
        const drop = (entries[rng.below(entries.length)] as [string, unknown])[0];
        return Object.fromEntries(entries.filter(([key]) => key !== drop));
      }
      case 1: return { ...value, [rng.pick(['extra', '__proto__', 'constructor', 'type', 'toString', ''])]: strayValue(rng) };
      default: return strayValue(rng);
    }
  }
  if (typeof value === 'string') {
    switch (rng.below(4)) {
      case 0: return value + 'x'.repeat(1 + rng.below(rng.chance(0.1) ? 70_000 : 40));
      case 1: return value.slice(0, Math.max(0, value.length - 1));
      case 2: return value + rng.pick(['\u0000', '\u007f', '\u202e', '\ud800', 'é', '\n']);
      default: return strayValue(rng);
    }
  }
  if (typeof value === 'bigint') return rng.pick([value + 1n, value - 1n, -value, value * 2n ** 64n, 0n]);
  if (typeof value === 'number') return rng.pick([value + 1, value - 1, -value - 1, 2 ** 53, Number.MAX_SAFE_INTEGER, 0]);
  return strayValue(rng);
}
