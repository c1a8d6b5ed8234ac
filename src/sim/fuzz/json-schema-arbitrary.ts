/**
 * Structure-aware JSON bodies: a fast-check arbitrary built from a route's request schema in the
 * node's OpenAPI document (objects with their required and optional fields, strings with their
 * patterns and lengths, enums, numbers in range, arrays in bounds). Anything the generator does not
 * model gives any JSON value, which the route must refuse cleanly.
 */
import fc from 'fast-check';

/** A JSON Schema object as the OpenAPI document holds it (only what the generator reads). */
export interface JsonSchema {
  readonly type?: string | readonly string[] | undefined;
  readonly properties?: Readonly<Record<string, JsonSchema>> | undefined;
  readonly required?: readonly string[] | undefined;
  readonly items?: JsonSchema | undefined;
  readonly enum?: readonly unknown[] | undefined;
  readonly pattern?: string | undefined;
  readonly minLength?: number | undefined;
  readonly maxLength?: number | undefined;
  readonly minimum?: number | undefined;
  readonly maximum?: number | undefined;
  readonly minItems?: number | undefined;
  readonly maxItems?: number | undefined;
  readonly anyOf?: readonly JsonSchema[] | undefined;
  readonly oneOf?: readonly JsonSchema[] | undefined;
  readonly allOf?: readonly JsonSchema[] | undefined;
  readonly nullable?: boolean | undefined;
  readonly $ref?: string | undefined;
  readonly additionalProperties?: boolean | JsonSchema | undefined;
}

/** Any JSON value, nested a little. */
export const jsonValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ maxLength: 24 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

const FREE_LENGTH_MAX = 40;
const FREE_ITEMS_MAX = 3;
const DEPTH_MAX = 6;

function stringOf(schema: JsonSchema): fc.Arbitrary<string> {
  const min = schema.minLength ?? 0;
  const max = schema.maxLength ?? min + FREE_LENGTH_MAX;
  const plain = fc.string({ minLength: min, maxLength: Math.min(max, min + FREE_LENGTH_MAX) });
  if (schema.pattern === undefined) return plain;
  let matching: fc.Arbitrary<string>;
  try {
    matching = fc.stringMatching(new RegExp(schema.pattern, 'u'), { size: 'small' });
  } catch {
    return plain;
  }
  return fc.oneof({ weight: 5, arbitrary: matching }, { weight: 1, arbitrary: plain });
}

/** Values the node knows (its user's account, a valid public key), drawn for the fields of these names. */
export type KnownValues = Readonly<Record<string, fc.Arbitrary<unknown>>>;

/**
 * An arbitrary of bodies the schema describes; `refs` resolves `#/components/schemas/NAME`; a field
 * named in `known` is drawn from it half the time, so bodies also reach past "no such account".
 */
export function arbitraryOfSchema(schema: JsonSchema, refs: (ref: string) => JsonSchema | undefined, depth = 0, known: KnownValues = {}): fc.Arbitrary<unknown> {
  if (depth > DEPTH_MAX) return fc.constant(null);
  if (schema.$ref !== undefined) {
    const target = refs(schema.$ref);
    return target === undefined ? jsonValue : arbitraryOfSchema(target, refs, depth + 1, known);
  }
  const inner = (s: JsonSchema) => arbitraryOfSchema(s, refs, depth + 1, known);
  const base = ((): fc.Arbitrary<unknown> => {
    if (schema.enum !== undefined && schema.enum.length > 0) return fc.constantFrom(...schema.enum);
    const choices = schema.anyOf ?? schema.oneOf;
    if (choices !== undefined && choices.length > 0) return fc.oneof(...choices.map(inner));
    if (schema.allOf !== undefined && schema.allOf.length > 0) return inner(schema.allOf[0] as JsonSchema);
    const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
    switch (type) {
      case 'string':
        return stringOf(schema);
      case 'integer':
        return fc.integer({ min: Math.max(schema.minimum ?? -(2 ** 31), Number.MIN_SAFE_INTEGER), max: Math.min(schema.maximum ?? 2 ** 31, Number.MAX_SAFE_INTEGER) });
      case 'number':
        return fc.double({ min: schema.minimum ?? -1e9, max: schema.maximum ?? 1e9, noNaN: true });
      case 'boolean':
        return fc.boolean();
      case 'null':
        return fc.constant(null);
      case 'array': {
        const min = schema.minItems ?? 0;
        return fc.array(schema.items === undefined ? jsonValue : inner(schema.items), { minLength: min, maxLength: Math.min(schema.maxItems ?? min + FREE_ITEMS_MAX, min + FREE_ITEMS_MAX) });
      }
      case 'object': {
        const properties = schema.properties ?? {};
        const model: Record<string, fc.Arbitrary<unknown>> = {};
        for (const [key, value] of Object.entries(properties)) {
          const drawn = Object.hasOwn(known, key) ? known[key] : undefined;
          model[key] = drawn === undefined ? inner(value) : fc.oneof(drawn, inner(value));
        }
        const required = (schema.required ?? []).filter((key) => Object.hasOwn(properties, key));
        if (Object.keys(model).length === 0) return fc.dictionary(fc.string({ maxLength: 8 }), jsonValue, { maxKeys: 3 });
        return fc.record(model, { requiredKeys: required });
      }
      default:
        return jsonValue;
    }
  })();
  return schema.nullable === true ? fc.oneof({ weight: 5, arbitrary: base }, { weight: 1, arbitrary: fc.constant(null) }) : base;
}
