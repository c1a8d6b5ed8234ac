/**
 * The privacy table of the evaluation page, built from what each message carries: the field paths
 * of a message are read off its codec's shape (`Scheme.wire()`), each is given the class its
 * scheme's profile declares for it (identity, amount, device key, ...), and what a party learns is
 * every class in the messages it receives. Nothing here is typed by hand per scheme.
 */
import type { Codec } from '../../core/codec.ts';
import { FIELD_CLASSES, type FieldClass, type SchemeProfile } from './plugin.ts';

/** The deepest a shape is followed (a lazy codec may recurse). */
const DEPTH_MAX = 12;

/**
 * Every leaf field path of what `codec` accepts: `a.b` for record fields, `a[]` for array items,
 * `a[0]` for tuple items; a union's variants give their fields under the same path.
 */
export function fieldPaths(codec: Codec<unknown>, path = '', depth = 0): string[] {
  const shape = codec.shape;
  if (shape === undefined || depth > DEPTH_MAX) return [path];
  const join = (name: string) => (path === '' ? name : `${path}.${name}`);
  switch (shape.kind) {
    case 'record':
      return Object.entries(shape.fields).flatMap(([name, field]) => fieldPaths(field, join(name), depth + 1));
    case 'union':
      return [...new Set(Object.values(shape.variants).flatMap((fields) => Object.entries(fields).flatMap(([name, field]) => fieldPaths(field, join(name), depth + 1))))];
    case 'array':
      return fieldPaths(shape.item, `${path}[]`, depth + 1);
    case 'tuple':
      return shape.items.flatMap((item, i) => fieldPaths(item, `${path}[${i}]`, depth + 1));
    case 'optional':
    case 'refine':
      return fieldPaths(shape.inner, path, depth + 1);
    case 'lazy':
      return fieldPaths(shape.get(), path, depth + 1);
    default:
      return [path];
  }
}

/** The class of `path` by the longest declared prefix (whole segments only), or undefined. */
export function classOf(path: string, fields: Readonly<Record<string, FieldClass>>): FieldClass | undefined {
  let best: { length: number; kind: FieldClass } | undefined;
  for (const [prefix, kind] of Object.entries(fields)) {
    const covers = path === prefix || path.startsWith(`${prefix}.`) || path.startsWith(`${prefix}[`);
    if (covers && (best === undefined || prefix.length > best.length)) best = { length: prefix.length, kind };
  }
  return best?.kind;
}

/** A message's decoder as the privacy table needs it. */
export interface WireShape {
  readonly name: string;
  readonly codec: Codec<unknown>;
}

/** What one party learns: each class with the fields that carry it, and the fields no class covers. */
export interface Learned {
  readonly classes: ReadonlyMap<FieldClass, readonly string[]>;
  readonly unclassified: readonly string[];
}

/** The parties of the privacy table. */
export type Party = 'payee' | 'bank';

/**
 * What `party` learns from the messages the profile says it receives.
 * @throws Error when the profile names a message the scheme's wire does not list
 */
export function learned(profile: SchemeProfile, wire: readonly WireShape[], party: Party): Learned {
  const classes = new Map<FieldClass, string[]>();
  const unclassified: string[] = [];
  for (const message of profile.messages.filter((m) => m.to === party)) {
    const decoder = wire.find((w) => w.name === message.wire);
    if (decoder === undefined) throw new Error(`the profile names the message ${message.wire}, which the scheme's wire does not list`);
    const within = message.within;
    const paths = fieldPaths(decoder.codec).filter((p) => within === undefined || p === within || p.startsWith(`${within}.`) || p.startsWith(`${within}[`));
    for (const path of paths) {
      const shown = `${message.wire}:${path}`;
      const kind = classOf(path, profile.fields);
      if (kind === undefined) unclassified.push(shown);
      else classes.set(kind, [...(classes.get(kind) ?? []), shown]);
    }
  }
  return { classes: new Map(FIELD_CLASSES.filter((k) => classes.has(k)).map((k) => [k, classes.get(k) ?? []])), unclassified };
}

/** One cell of the table: the classes learned, in order, the protocol's own fields left out. */
export function learnedText(l: Learned): string {
  const kinds = [...l.classes.keys()].filter((k) => k !== 'protocol');
  const parts: string[] = [...kinds];
  if (l.unclassified.length > 0) parts.push(`${l.unclassified.length} unclassified field(s)`);
  return parts.length === 0 ? 'nothing beyond the protocol' : parts.join(', ');
}
