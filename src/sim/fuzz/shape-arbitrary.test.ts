/**
 * The structure-aware inputs: every value drawn from a codec built of the combinators alone (no
 * refinement, no codec written by hand) is one the codec accepts, boundaries included, and the
 * mutations turn valid inputs into refused ones.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { array, bigint, boolean, bytes, lazy, literal, oneOf, optional, record, taggedUnion, text, tuple, uint, type Codec } from '../../core/codec.ts';
import { hexText } from '../../core/fields.ts';
import { mutateBytes } from './mutate.ts';
import { Rng } from './random.ts';
import { arbitraryOf } from './shape-arbitrary.ts';

interface Tree {
  readonly label: string;
  readonly children: readonly Tree[];
}
const tree: Codec<Tree> = lazy(() => record({ label: text({ max: 8 }), children: array(tree, { max: 2 }) }));

const message = record({
  v: literal(1),
  kind: oneOf(['pay', 'collect']),
  key: bytes({ length: 32 }),
  memo: optional(text({ max: 140 })),
  digest: hexText(32),
  amount: bigint({ min: 1n, max: 2n ** 70n }),
  count: uint({ min: 1, max: 128 }),
  flags: tuple([boolean, uint({ max: 3 })]),
  items: array(bytes({ min: 1, max: 4 }), { min: 1, max: 200 }),
  body: taggedUnion('type', { a: { x: uint({ max: 9 }) }, b: { y: text({ min: 2, max: 2 }) } }),
  tree,
});

test('a value drawn from a codec of combinators is accepted by the codec, through CBOR', () => {
  fc.assert(
    fc.property(arbitraryOf(message), (value) => {
      message.decode(decodeCbor(encodeCbor(value)));
    }),
    { numRuns: 500 },
  );
});

test('the bounds are drawn: the shortest and longest byte strings, the smallest and largest integers', () => {
  const values = fc.sample(arbitraryOf(record({ b: bytes({ min: 3, max: 300 }), n: uint({ min: 5, max: 9000 }) })), { seed: 7, numRuns: 2000 }) as { b: Uint8Array; n: number }[];
  const lengths = new Set(values.map((v) => v.b.length));
  const numbers = new Set(values.map((v) => v.n));
  assert.ok(lengths.has(3) && lengths.has(300), 'both length bounds');
  assert.ok(numbers.has(5) && numbers.has(9000), 'both integer bounds');
});

test('byte mutations of valid encodings are mostly refused, and never throw anything but a TallyError', () => {
  const rng = new Rng(3);
  const valid = fc.sample(arbitraryOf(message), { seed: 3, numRuns: 50 }).map((v) => encodeCbor(v));
  let refused = 0;
  for (let i = 0; i < 2000; i++) {
    const input = mutateBytes(valid[i % valid.length] as Uint8Array, rng, valid[(i * 7) % valid.length] as Uint8Array);
    try {
      message.decode(decodeCbor(input));
    } catch (e) {
      assert.ok(e instanceof Error && 'code' in e, String(e));
      refused++;
    }
  }
  assert.ok(refused > 1000, `${refused} of 2000 refused`);
});
