/**
 * Structure-aware inputs: a fast-check arbitrary built from a codec's shape (core/codec.ts), giving
 * values of the CBOR data model that the codec's combinators accept, boundaries included (the
 * shortest and longest byte strings, the smallest and largest integers). A refinement or a codec
 * written by hand may still refuse what is generated; the fuzzer counts that as a rejection.
 */
import fc from 'fast-check';
import type { Codec, CodecShape } from '../../core/codec.ts';

/** Longest byte string or text generated for a field, unless its exact maximum is drawn. */
const FREE_LENGTH_MAX = 48;
/** Largest field maximum drawn exactly (a frame's 2 MiB is reached by mutation instead). */
const EXACT_MAX_LENGTH = 16 * 1024;
/** Most items generated for a list, unless its exact maximum is drawn. */
const FREE_ITEMS_MAX = 3;
/** Largest list maximum drawn exactly. */
const EXACT_MAX_ITEMS = 200;
/** How many times a recursive codec unfolds before it gives the smallest value. */
const LAZY_DEPTH_MAX = 3;

const CBOR_INT_MIN = -(2n ** 64n);
const CBOR_INT_MAX = 2n ** 64n - 1n;

/** Any value of the CBOR data model, nested a few levels. */
export const cborValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n - 1n }),
    fc.string({ maxLength: 24 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

/** The lengths drawn for a bounded field: mostly short, sometimes exactly the bounds. */
function lengthOf(min: number, max: number, freeMax: number, exactMax: number): fc.Arbitrary<number> {
  const free = fc.integer({ min, max: Math.min(max, min + freeMax) });
  const edges = [min, ...(max <= exactMax ? [max] : [])];
  return fc.oneof({ weight: 6, arbitrary: free }, { weight: 1, arbitrary: fc.constantFrom(...edges) });
}

/** The characters of a plain class such as `[0-9a-f]` or `[A-Za-z0-9_-]`, or undefined for anything richer. */
function classChars(body: string): string[] | undefined {
  if (/[\\^\]]/.test(body)) return undefined;
  const chars: string[] = [];
  for (let i = 0; i < body.length; i++) {
    const c = body[i] as string;
    const to = body[i + 2];
    if (body[i + 1] === '-' && to !== undefined) {
      for (let code = c.charCodeAt(0); code <= to.charCodeAt(0); code++) chars.push(String.fromCharCode(code));
      i += 2;
    } else chars.push(c);
  }
  return chars.length > 0 ? chars : undefined;
}

function textOf(shape: Extract<CodecShape, { kind: 'text' }>): fc.Arbitrary<string> {
  const lengths = lengthOf(shape.min, shape.max, FREE_LENGTH_MAX, EXACT_MAX_LENGTH);
  const plain = lengths.chain((n) => fc.string({ minLength: n, maxLength: n }));
  if (shape.pattern === undefined) return plain;
  // A class repeated (`^[0-9a-f]*$`, hex and base64url text): its characters at the lengths the bounds allow.
  const repeated = /^\^\[([^\]]+)\]\*\$$/.exec(shape.pattern.source);
  const chars = repeated === null ? undefined : classChars(repeated[1] as string);
  if (chars !== undefined) {
    const unit = fc.constantFrom(...chars);
    return lengths.chain((n) => fc.string({ unit, minLength: n, maxLength: n }));
  }
  let matching: fc.Arbitrary<string>;
  try {
    matching = fc.stringMatching(shape.pattern, { size: 'small' });
  } catch {
    // A pattern fast-check cannot read (Unicode property classes): plain text, which the codec judges.
    return plain;
  }
  // Text matching the pattern, mostly in bounds (fast-check does not bound it): the codec judges the rest.
  return matching;
}

/**
 * An arbitrary of values `codec` is built to accept (its shape), else of any CBOR value.
 * `depth` counts the lazy codecs unfolded on the way.
 */
export function arbitraryOf(codec: Codec<unknown>, depth = 0): fc.Arbitrary<unknown> {
  const shape = codec.shape;
  if (shape === undefined) return cborValue;
  switch (shape.kind) {
    case 'bytes':
      return lengthOf(shape.min, shape.max, FREE_LENGTH_MAX, EXACT_MAX_LENGTH).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));
    case 'text':
      return textOf(shape);
    case 'bigint': {
      // CBOR carries integers in [-2^64, 2^64 - 1]: a wider range (a uint128) is drawn inside it.
      const min = shape.min > CBOR_INT_MIN ? shape.min : CBOR_INT_MIN;
      const max = shape.max < CBOR_INT_MAX ? shape.max : CBOR_INT_MAX;
      return fc.oneof({ weight: 4, arbitrary: fc.bigInt({ min, max }) }, { weight: 1, arbitrary: fc.constantFrom(min, max) });
    }
    case 'uint':
      return fc.oneof({ weight: 4, arbitrary: fc.integer({ min: shape.min, max: shape.max }) }, { weight: 1, arbitrary: fc.constantFrom(shape.min, shape.max) });
    case 'boolean':
      return fc.boolean();
    case 'literal':
      return fc.constant(shape.value);
    case 'oneOf':
      return fc.constantFrom(...shape.values);
    case 'array': {
      const item = arbitraryOf(shape.item, depth);
      // Deep in a recursive codec, lists take their fewest items, so the value ends.
      if (depth >= LAZY_DEPTH_MAX) return fc.array(item, { minLength: shape.min, maxLength: shape.min });
      return lengthOf(shape.min, shape.max, FREE_ITEMS_MAX, EXACT_MAX_ITEMS).chain((n) => fc.array(item, { minLength: n, maxLength: n }));
    }
    case 'tuple':
      return fc.tuple(...shape.items.map((item) => arbitraryOf(item, depth)));
    case 'optional':
      return depth >= LAZY_DEPTH_MAX ? fc.constant(undefined) : fc.option(arbitraryOf(shape.inner, depth), { nil: undefined });
    case 'record':
      return recordOf(shape.fields, depth);
    case 'union':
      return fc.oneof(
        ...Object.entries(shape.variants).map(([tag, fields]) => recordOf(fields, depth).map((value) => ({ [shape.tagField]: tag, ...value }))),
      );
    case 'refine':
      return arbitraryOf(shape.inner, depth);
    case 'lazy':
      // Unfolded lazily, and deeper each time; past the bound only a codec that cannot end gives null.
      return depth >= LAZY_DEPTH_MAX + 4 ? fc.constant(null) : fc.constant(null).chain(() => arbitraryOf(shape.get(), depth + 1));
  }
}

/** A record of `fields`, an optional field present or absent. */
function recordOf(fields: Readonly<Record<string, Codec<unknown>>>, depth: number): fc.Arbitrary<Record<string, unknown>> {
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  const required: string[] = [];
  for (const [key, field] of Object.entries(fields)) {
    if (field.shape?.kind === 'optional') model[key] = arbitraryOf(field.shape.inner, depth);
    else {
      model[key] = arbitraryOf(field, depth);
      required.push(key);
    }
  }
  return fc.record(model, { requiredKeys: required });
}
