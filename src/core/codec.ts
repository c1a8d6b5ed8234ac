/**
 * Codecs decode `unknown` (from CBOR, JSON, a peer) into typed values. Every length and count is
 * bounded, and a failure names the field path: `payment.sender.key: expected 32 bytes, got 31`.
 */
import { TallyError } from './errors.ts';

/** Decodes untrusted input into a `T`, or throws a DECODE_FAILED TallyError naming the path. */
export interface Codec<T> {
  /** What the codec accepts, in words, for error messages. */
  readonly expected: string;
  /** @throws TallyError DECODE_FAILED */
  decode(input: unknown, path?: string): T;
  /**
   * What the combinators know of the accepted values' structure, for tools that generate inputs
   * (the fuzzer builds its structure-aware inputs from it); absent for a codec written by hand.
   */
  readonly shape?: CodecShape | undefined;
}

/** The structure a combinator accepts, as data: one variant per combinator of this file. */
export type CodecShape =
  | { readonly kind: 'bytes'; readonly min: number; readonly max: number }
  | { readonly kind: 'text'; readonly min: number; readonly max: number; readonly pattern?: RegExp | undefined }
  | { readonly kind: 'bigint'; readonly min: bigint; readonly max: bigint }
  | { readonly kind: 'uint'; readonly min: number; readonly max: number }
  | { readonly kind: 'boolean' }
  | { readonly kind: 'literal'; readonly value: string | number | boolean }
  | { readonly kind: 'oneOf'; readonly values: readonly string[] }
  | { readonly kind: 'array'; readonly item: Codec<unknown>; readonly min: number; readonly max: number }
  | { readonly kind: 'tuple'; readonly items: readonly Codec<unknown>[] }
  | { readonly kind: 'optional'; readonly inner: Codec<unknown> }
  | { readonly kind: 'record'; readonly fields: Readonly<Record<string, Codec<unknown>>> }
  | { readonly kind: 'union'; readonly tagField: string; readonly variants: Readonly<Record<string, Readonly<Record<string, Codec<unknown>>>>> }
  | { readonly kind: 'refine'; readonly inner: Codec<unknown> }
  | { readonly kind: 'lazy'; readonly get: () => Codec<unknown> };

/** A record field that may be absent. */
export interface OptionalCodec<T> extends Codec<T | undefined> {
  readonly optional: true;
}

/** The type a codec decodes to. */
export type Infer<C> = C extends Codec<infer T> ? T : never;

type Shape = Record<string, Codec<unknown>>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
type RequiredKeys<S extends Shape> = { [K in keyof S]: S[K] extends OptionalCodec<unknown> ? never : K }[keyof S];
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K] extends OptionalCodec<unknown> ? K : never }[keyof S];
/** The record type a shape of codecs describes; optional fields are `x?: T | undefined`. */
export type RecordOf<S extends Shape> = Simplify<
  { [K in RequiredKeys<S>]: Infer<S[K]> } & { [K in OptionalKeys<S>]?: Infer<S[K]> | undefined }
>;

const ROOT = 'value';

/** Describes a value for an error message without echoing large or secret content. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'string') return value.length <= 32 ? `text ${JSON.stringify(value)}` : `text of ${value.length} characters`;
  if (typeof value === 'number') return Number.isInteger(value) ? `integer ${value}` : `number ${value}`;
  if (typeof value === 'bigint') return `integer ${value}`;
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'object') return 'a record';
  return typeof value;
}

/**
 * Throws the DECODE_FAILED error for `path`.
 * @throws TallyError DECODE_FAILED always
 */
export function decodeFailure(path: string, expected: string, got: string): never {
  throw new TallyError('DECODE_FAILED', `${path}: expected ${expected}, got ${got}`, { path, expected, got });
}

function codec<T>(expected: string, shape: CodecShape, decode: (input: unknown, path: string) => T): Codec<T> {
  return { expected, shape, decode: (input, path = ROOT) => decode(input, path) };
}

/** Byte strings of an exact length, or of a bounded length (`max` is required: limit everything). */
export function bytes(bound: { length: number } | { min?: number; max: number }): Codec<Uint8Array> {
  const [min, max] = 'length' in bound ? [bound.length, bound.length] : [bound.min ?? 0, bound.max];
  const expected = min === max ? `${min} bytes` : `${min} to ${max} bytes`;
  return codec(expected, { kind: 'bytes', min, max }, (input, path) => {
    if (!(input instanceof Uint8Array)) return decodeFailure(path, expected, describeValue(input));
    if (input.length < min || input.length > max) return decodeFailure(path, expected, describeValue(input));
    return input;
  });
}

/** Text of bounded length (UTF-16 units), optionally matching a pattern described in words. */
export function text(bound: { min?: number; max: number; pattern?: RegExp; describe?: string }): Codec<string> {
  const min = bound.min ?? 0;
  const expected = bound.describe ?? `text of ${min} to ${bound.max} characters`;
  return codec(expected, { kind: 'text', min, max: bound.max, pattern: bound.pattern }, (input, path) => {
    if (typeof input !== 'string' || input.length < min || input.length > bound.max) {
      return decodeFailure(path, expected, describeValue(input));
    }
    if (bound.pattern !== undefined && !bound.pattern.test(input)) return decodeFailure(path, expected, describeValue(input));
    return input;
  });
}

/** An integer in [min, max] as a bigint; accepts a bigint or a safe-integer number. */
export function bigint(range: { min: bigint; max: bigint }): Codec<bigint> {
  const expected = `an integer in [${range.min}, ${range.max}]`;
  return codec(expected, { kind: 'bigint', min: range.min, max: range.max }, (input, path) => {
    let value: bigint;
    if (typeof input === 'bigint') value = input;
    else if (typeof input === 'number' && Number.isSafeInteger(input)) value = BigInt(input);
    else return decodeFailure(path, expected, describeValue(input));
    if (value < range.min || value > range.max) return decodeFailure(path, expected, describeValue(input));
    return value;
  });
}

/** A non-negative safe integer up to `max`, as a number. */
export function uint(range: { max: number; min?: number }): Codec<number> {
  const min = range.min ?? 0;
  const expected = `an integer in [${min}, ${range.max}]`;
  return codec(expected, { kind: 'uint', min, max: range.max }, (input, path) => {
    const value = typeof input === 'bigint' && input <= BigInt(Number.MAX_SAFE_INTEGER) && input >= 0n ? Number(input) : input;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > range.max) {
      return decodeFailure(path, expected, describeValue(input));
    }
    return value;
  });
}

/** A boolean. */
export const boolean: Codec<boolean> = codec('a boolean', { kind: 'boolean' }, (input, path) =>
  typeof input === 'boolean' ? input : decodeFailure(path, 'a boolean', describeValue(input)),
);

/** Exactly one value (a tag, a version). */
export function literal<const L extends string | number | boolean>(value: L): Codec<L> {
  const expected = JSON.stringify(value);
  return codec(expected, { kind: 'literal', value }, (input, path) => (input === value ? value : decodeFailure(path, expected, describeValue(input))));
}

/** One of a fixed set of strings. */
export function oneOf<const L extends string>(values: readonly L[]): Codec<L> {
  const allowed = new Set<string>(values);
  const expected = `one of ${values.map((v) => JSON.stringify(v)).join(', ')}`;
  return codec(expected, { kind: 'oneOf', values }, (input, path) =>
    typeof input === 'string' && allowed.has(input) ? (input as L) : decodeFailure(path, expected, describeValue(input)),
  );
}

/** An array of at most `max` items, each decoded by `item`. */
export function array<T>(item: Codec<T>, bound: { min?: number; max: number }): Codec<T[]> {
  const min = bound.min ?? 0;
  const expected = `an array of ${min} to ${bound.max} items`;
  return codec(expected, { kind: 'array', item, min, max: bound.max }, (input, path) => {
    if (!Array.isArray(input)) return decodeFailure(path, expected, describeValue(input));
    if (input.length < min || input.length > bound.max) return decodeFailure(path, expected, describeValue(input));
    return input.map((value, i) => item.decode(value, `${path}[${i}]`));
  });
}

/** A fixed-length array whose positions have their own codecs. */
export function tuple<const C extends readonly Codec<unknown>[]>(items: C): Codec<{ -readonly [K in keyof C]: Infer<C[K]> }> {
  const expected = `an array of ${items.length}`;
  return codec(expected, { kind: 'tuple', items }, (input, path) => {
    if (!Array.isArray(input) || input.length !== items.length) return decodeFailure(path, expected, describeValue(input));
    return items.map((c, i) => c.decode(input[i], `${path}[${i}]`)) as { -readonly [K in keyof C]: Infer<C[K]> };
  });
}

/** Marks a record field as optional: absent (or undefined) decodes to undefined. */
export function optional<T>(inner: Codec<T>): OptionalCodec<T> {
  return {
    optional: true,
    expected: `${inner.expected} or nothing`,
    shape: { kind: 'optional', inner },
    decode: (input, path = ROOT) => (input === undefined ? undefined : inner.decode(input, path)),
  };
}

function isPlainRecord(input: unknown): input is Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input) || input instanceof Uint8Array) return false;
  const proto: unknown = Object.getPrototypeOf(input);
  return proto === Object.prototype || proto === null;
}

function decodeFields<S extends Shape>(shape: S, input: Record<string, unknown>, path: string, skip?: string): RecordOf<S> {
  for (const key of Object.keys(input)) {
    if (key !== skip && !Object.hasOwn(shape, key)) decodeFailure(`${path}.${key}`, 'no such field', 'an unknown field');
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(shape)) {
    const value = field.decode(Object.hasOwn(input, key) ? input[key] : undefined, `${path}.${key}`);
    if (value !== undefined) out[key] = value;
  }
  return out as RecordOf<S>;
}

/** A record with exactly the given fields; unknown fields are refused. */
export function record<S extends Shape>(shape: S): Codec<RecordOf<S>> {
  const expected = `a record with ${Object.keys(shape).join(', ')}`;
  return codec(expected, { kind: 'record', fields: shape }, (input, path) => {
    if (!isPlainRecord(input)) return decodeFailure(path, expected, describeValue(input));
    return decodeFields(shape, input, path);
  });
}

/** The decoded type of a tagged union: each variant's record plus its tag. */
export type UnionOf<K extends string, V extends Record<string, Shape>> = {
  [T in keyof V & string]: Simplify<{ [P in K]: T } & RecordOf<V[T]>>;
}[keyof V & string];

/** A tagged union: the field `tagField` names the variant, whose other fields follow its shape. */
export function taggedUnion<const K extends string, V extends Record<string, Shape>>(tagField: K, variants: V): Codec<UnionOf<K, V>> {
  const tags = Object.keys(variants);
  const expected = `a record whose ${tagField} is one of ${tags.join(', ')}`;
  return codec(expected, { kind: 'union', tagField, variants }, (input, path) => {
    if (!isPlainRecord(input)) return decodeFailure(path, expected, describeValue(input));
    const tag = input[tagField];
    if (typeof tag !== 'string' || !Object.hasOwn(variants, tag)) {
      return decodeFailure(`${path}.${tagField}`, `one of ${tags.join(', ')}`, describeValue(tag));
    }
    const fields = decodeFields(variants[tag] as Shape, input, path, tagField);
    return { [tagField]: tag, ...fields } as UnionOf<K, V>;
  });
}

/** Decodes with `inner`, then checks or converts the value; `convert` throws or returns the new value. */
export function refine<T, U>(inner: Codec<T>, expected: string, convert: (value: T, path: string) => U): Codec<U> {
  return codec(expected, { kind: 'refine', inner }, (input, path) => convert(inner.decode(input, path), path));
}

/** A codec defined later (for recursive types). */
export function lazy<T>(get: () => Codec<T>): Codec<T> {
  return { get expected() { return get().expected; }, shape: { kind: 'lazy', get }, decode: (input, path = ROOT) => get().decode(input, path) };
}
