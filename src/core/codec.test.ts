import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as c from './codec.ts';
import { isTallyError, type TallyError } from './errors.ts';

/** Decodes and returns the DECODE_FAILED error, failing the test when decoding succeeds or throws anything else. */
function failure(codec: c.Codec<unknown>, input: unknown, path?: string): TallyError<'DECODE_FAILED'> {
  try {
    codec.decode(input, path);
  } catch (e) {
    if (isTallyError(e, 'DECODE_FAILED')) return e;
    throw e;
  }
  assert.fail(`decoding ${c.describeValue(input)} should have failed`);
}

function message(codec: c.Codec<unknown>, input: unknown, path?: string): string {
  return failure(codec, input, path).message;
}

describe('describeValue', () => {
  it('names each kind of value without echoing long text', () => {
    assert.equal(c.describeValue(null), 'null');
    assert.equal(c.describeValue(undefined), 'nothing');
    assert.equal(c.describeValue(new Uint8Array(3)), '3 bytes');
    assert.equal(c.describeValue([1, 2]), 'an array of 2');
    assert.equal(c.describeValue('hi'), 'text "hi"');
    assert.equal(c.describeValue('x'.repeat(33)), 'text of 33 characters');
    assert.equal(c.describeValue(7), 'integer 7');
    assert.equal(c.describeValue(1.5), 'number 1.5');
    assert.equal(c.describeValue(-3n), 'integer -3');
    assert.equal(c.describeValue(false), 'false');
    assert.equal(c.describeValue({}), 'a record');
    assert.equal(c.describeValue(() => 0), 'function');
  });
});

describe('decodeFailure', () => {
  it('throws DECODE_FAILED with path, expected and got in message and details', () => {
    const e = failure(c.refine(c.boolean, 'x', (_v, path) => c.decodeFailure(path, 'something', 'other')), true, 'a.b');
    assert.equal(e.message, 'a.b: expected something, got other');
    assert.deepEqual(e.details, { path: 'a.b', expected: 'something', got: 'other' });
  });
});

describe('bytes', () => {
  it('accepts an exact length and returns the same bytes', () => {
    const input = new Uint8Array(32).fill(7);
    assert.equal(c.bytes({ length: 32 }).decode(input), input);
  });

  it('refuses another length or type, naming the root path "value" by default', () => {
    assert.equal(message(c.bytes({ length: 32 }), new Uint8Array(31)), 'value: expected 32 bytes, got 31 bytes');
    assert.equal(message(c.bytes({ length: 32 }), new Uint8Array(33)), 'value: expected 32 bytes, got 33 bytes');
    assert.equal(message(c.bytes({ length: 2 }), [1, 2]), 'value: expected 2 bytes, got an array of 2');
    assert.equal(message(c.bytes({ length: 2 }), 'ab'), 'value: expected 2 bytes, got text "ab"');
  });

  it('enforces min and max bounds inclusively', () => {
    const codec = c.bytes({ min: 2, max: 4 });
    assert.equal(codec.expected, '2 to 4 bytes');
    assert.equal(codec.decode(new Uint8Array(2)).length, 2);
    assert.equal(codec.decode(new Uint8Array(4)).length, 4);
    assert.equal(message(codec, new Uint8Array(1)), 'value: expected 2 to 4 bytes, got 1 bytes');
    assert.equal(message(codec, new Uint8Array(5)), 'value: expected 2 to 4 bytes, got 5 bytes');
    assert.equal(c.bytes({ max: 3 }).decode(new Uint8Array(0)).length, 0);
  });
});

describe('text', () => {
  it('bounds the length in UTF-16 units', () => {
    const codec = c.text({ min: 1, max: 3 });
    assert.equal(codec.decode('abc'), 'abc');
    assert.equal(message(codec, ''), 'value: expected text of 1 to 3 characters, got text ""');
    assert.equal(message(codec, 'abcd'), 'value: expected text of 1 to 3 characters, got text "abcd"');
    assert.equal(message(codec, 5), 'value: expected text of 1 to 3 characters, got integer 5');
    assert.equal(message(c.text({ max: 1 }), '😀'), 'value: expected text of 0 to 1 characters, got text "😀"');
  });

  it('checks a pattern and uses its description', () => {
    const codec = c.text({ max: 8, pattern: /^[a-z]+$/, describe: 'a lower-case word' });
    assert.equal(codec.decode('tally'), 'tally');
    assert.equal(message(codec, 'Tally'), 'value: expected a lower-case word, got text "Tally"');
    assert.equal(message(codec, 'toolongword'), 'value: expected a lower-case word, got text "toolongword"');
  });
});

describe('bigint', () => {
  const codec = c.bigint({ min: -5n, max: 2n ** 64n - 1n });

  it('accepts bigints and safe-integer numbers in range, as bigints', () => {
    assert.equal(codec.decode(-5n), -5n);
    assert.equal(codec.decode(2n ** 64n - 1n), 2n ** 64n - 1n);
    assert.equal(codec.decode(7), 7n);
  });

  it('refuses values outside the range and non-integers', () => {
    assert.equal(message(codec, -6n), 'value: expected an integer in [-5, 18446744073709551615], got integer -6');
    assert.equal(message(codec, 2n ** 64n), 'value: expected an integer in [-5, 18446744073709551615], got integer 18446744073709551616');
    assert.equal(message(codec, 1.5), 'value: expected an integer in [-5, 18446744073709551615], got number 1.5');
    assert.equal(message(codec, 2 ** 53), `value: expected an integer in [-5, 18446744073709551615], got integer ${2 ** 53}`);
    assert.equal(message(codec, '1'), 'value: expected an integer in [-5, 18446744073709551615], got text "1"');
  });
});

describe('uint', () => {
  const codec = c.uint({ min: 1, max: 10 });

  it('accepts numbers and small bigints in range, as numbers', () => {
    assert.equal(codec.decode(1), 1);
    assert.equal(codec.decode(10n), 10);
  });

  it('refuses out-of-range, negative, fractional and huge values', () => {
    assert.equal(message(codec, 0), 'value: expected an integer in [1, 10], got integer 0');
    assert.equal(message(codec, 11), 'value: expected an integer in [1, 10], got integer 11');
    assert.equal(message(codec, 2.5), 'value: expected an integer in [1, 10], got number 2.5');
    assert.equal(message(codec, -1n), 'value: expected an integer in [1, 10], got integer -1');
    assert.equal(message(c.uint({ max: Number.MAX_SAFE_INTEGER }), 2n ** 53n), 'value: expected an integer in [0, 9007199254740991], got integer 9007199254740992');
    assert.equal(message(codec, true), 'value: expected an integer in [1, 10], got true');
  });
});

describe('boolean, literal, oneOf', () => {
  it('boolean accepts only true and false', () => {
    assert.equal(c.boolean.decode(true), true);
    assert.equal(c.boolean.decode(false), false);
    assert.equal(message(c.boolean, 0), 'value: expected a boolean, got integer 0');
  });

  it('literal accepts exactly its value', () => {
    assert.equal(c.literal('tally/v1').decode('tally/v1'), 'tally/v1');
    assert.equal(c.literal(3).decode(3), 3);
    assert.equal(message(c.literal('tally/v1'), 'tally/v2'), 'value: expected "tally/v1", got text "tally/v2"');
    assert.equal(message(c.literal(3), 3n), 'value: expected 3, got integer 3');
  });

  it('oneOf accepts only the listed strings', () => {
    const codec = c.oneOf(['a', 'b']);
    assert.equal(codec.decode('b'), 'b');
    assert.equal(message(codec, 'c'), 'value: expected one of "a", "b", got text "c"');
    assert.equal(message(codec, 'toString'), 'value: expected one of "a", "b", got text "toString"');
  });
});

describe('array and tuple', () => {
  it('array decodes every item and names the failing index', () => {
    const codec = c.array(c.uint({ max: 9 }), { min: 1, max: 3 });
    assert.deepEqual(codec.decode([1, 2, 3]), [1, 2, 3]);
    assert.equal(message(codec, [1, 10], 'list'), 'list[1]: expected an integer in [0, 9], got integer 10');
  });

  it('array bounds the count', () => {
    const codec = c.array(c.uint({ max: 9 }), { min: 1, max: 3 });
    assert.equal(message(codec, []), 'value: expected an array of 1 to 3 items, got an array of 0');
    assert.equal(message(codec, [1, 2, 3, 4]), 'value: expected an array of 1 to 3 items, got an array of 4');
    assert.equal(message(codec, { length: 1 }), 'value: expected an array of 1 to 3 items, got a record');
  });

  it('array refuses a count over the bound before looking at any item', () => {
    let decoded = 0;
    const counting = c.refine(c.boolean, 'a boolean', (v) => {
      decoded++;
      return v;
    });
    assert.equal(message(c.array(counting, { max: 2 }), [true, true, true]), 'value: expected an array of 0 to 2 items, got an array of 3');
    assert.equal(decoded, 0);
  });

  it('tuple decodes each position with its codec and requires the exact length', () => {
    const codec = c.tuple([c.text({ max: 4 }), c.boolean]);
    assert.deepEqual(codec.decode(['ab', true]), ['ab', true]);
    assert.equal(message(codec, ['ab', 1]), 'value[1]: expected a boolean, got integer 1');
    assert.equal(message(codec, ['ab']), 'value: expected an array of 2, got an array of 1');
    assert.equal(message(codec, ['ab', true, false]), 'value: expected an array of 2, got an array of 3');
  });
});

describe('record', () => {
  const sender = c.record({ key: c.bytes({ length: 32 }) });
  const payment = c.record({ sender, amount: c.uint({ max: 100 }) });

  it('decodes exactly the given fields', () => {
    const key = new Uint8Array(32);
    assert.deepEqual(payment.decode({ sender: { key }, amount: 5 }), { sender: { key }, amount: 5 });
  });

  it('names the nested field path in the error', () => {
    const input = { sender: { key: new Uint8Array(31) }, amount: 5 };
    const e = failure(payment, input, 'payment');
    assert.equal(e.message, 'payment.sender.key: expected 32 bytes, got 31 bytes');
    assert.deepEqual(e.details, { path: 'payment.sender.key', expected: '32 bytes', got: '31 bytes' });
  });

  it('refuses unknown fields, naming them', () => {
    const input = { sender: { key: new Uint8Array(32), extra: 1 }, amount: 5 };
    assert.equal(message(payment, input, 'payment'), 'payment.sender.extra: expected no such field, got an unknown field');
    assert.equal(message(payment, { sender: { key: new Uint8Array(32) }, amount: 5, memo: 'x' }), 'value.memo: expected no such field, got an unknown field');
  });

  it('refuses a missing required field', () => {
    assert.equal(message(payment, { sender: { key: new Uint8Array(32) } }, 'payment'), 'payment.amount: expected an integer in [0, 100], got nothing');
    assert.equal(message(payment, { sender: { key: new Uint8Array(32) }, amount: undefined }), 'value.amount: expected an integer in [0, 100], got nothing');
  });

  it('refuses non-records: arrays, bytes, null, class instances', () => {
    const expected = 'value: expected a record with sender, amount';
    assert.equal(message(payment, []), `${expected}, got an array of 0`);
    assert.equal(message(payment, new Uint8Array(1)), `${expected}, got 1 bytes`);
    assert.equal(message(payment, null), `${expected}, got null`);
    assert.equal(message(payment, new Date(0)), `${expected}, got a record`);
    assert.equal(message(payment, new Map()), `${expected}, got a record`);
  });

  it('accepts a record without prototype', () => {
    const input: Record<string, unknown> = Object.create(null);
    input['key'] = new Uint8Array(32);
    assert.deepEqual(sender.decode(input), { key: new Uint8Array(32) });
  });

  it('does not take fields from the prototype chain', () => {
    const withToString = c.record({ toString: c.optional(c.text({ max: 3 })) });
    assert.deepEqual(withToString.decode({}), {});
    const inherited: unknown = Object.create({ key: new Uint8Array(32) });
    assert.equal(message(sender, inherited), 'value: expected a record with key, got a record');
  });

  it('returns a fresh record that carries only the shape fields', () => {
    const input = { key: new Uint8Array(32) };
    const out = sender.decode(input);
    assert.notEqual(out, input);
    assert.deepEqual(Object.keys(out), ['key']);
  });
});

describe('optional', () => {
  const codec = c.record({ name: c.text({ max: 8 }), memo: c.optional(c.text({ max: 4 })) });

  it('leaves an absent or undefined field out', () => {
    assert.deepEqual(codec.decode({ name: 'a' }), { name: 'a' });
    const out = codec.decode({ name: 'a', memo: undefined });
    assert.deepEqual(out, { name: 'a' });
    assert.equal(Object.hasOwn(out, 'memo'), false);
  });

  it('decodes a present field with the inner codec', () => {
    assert.deepEqual(codec.decode({ name: 'a', memo: 'hi' }), { name: 'a', memo: 'hi' });
    assert.equal(message(codec, { name: 'a', memo: 'hello' }), 'value.memo: expected text of 0 to 4 characters, got text "hello"');
    assert.equal(message(codec, { name: 'a', memo: null }), 'value.memo: expected text of 0 to 4 characters, got null');
  });

  it('describes itself and decodes undefined at top level', () => {
    const opt = c.optional(c.boolean);
    assert.equal(opt.optional, true);
    assert.equal(opt.expected, 'a boolean or nothing');
    assert.equal(opt.decode(undefined), undefined);
    assert.equal(message(opt, 1), 'value: expected a boolean, got integer 1');
  });
});

describe('taggedUnion', () => {
  const union = c.taggedUnion('type', {
    pay: { amount: c.uint({ max: 100 }) },
    refund: { reason: c.text({ max: 10 }), note: c.optional(c.text({ max: 4 })) },
  });

  it('decodes each variant with its tag', () => {
    assert.deepEqual(union.decode({ type: 'pay', amount: 3 }), { type: 'pay', amount: 3 });
    assert.deepEqual(union.decode({ type: 'refund', reason: 'late' }), { type: 'refund', reason: 'late' });
    const decoded = union.decode({ type: 'refund', reason: 'late', note: 'ok' });
    assert.equal(decoded.type === 'refund' ? decoded.note : undefined, 'ok');
  });

  it('refuses an unknown, missing or non-text tag at the tag path', () => {
    assert.equal(message(union, { type: 'steal', amount: 3 }, 'msg'), 'msg.type: expected one of pay, refund, got text "steal"');
    assert.equal(message(union, { amount: 3 }, 'msg'), 'msg.type: expected one of pay, refund, got nothing');
    assert.equal(message(union, { type: 1 }, 'msg'), 'msg.type: expected one of pay, refund, got integer 1');
    assert.equal(message(union, { type: 'toString' }, 'msg'), 'msg.type: expected one of pay, refund, got text "toString"');
  });

  it("refuses fields of another variant and checks the variant's fields", () => {
    assert.equal(message(union, { type: 'pay', amount: 3, reason: 'x' }, 'msg'), 'msg.reason: expected no such field, got an unknown field');
    assert.equal(message(union, { type: 'pay', amount: 300 }, 'msg'), 'msg.amount: expected an integer in [0, 100], got integer 300');
    assert.equal(message(union, { type: 'refund' }, 'msg'), 'msg.reason: expected text of 0 to 10 characters, got nothing');
  });

  it('refuses non-records', () => {
    assert.equal(message(union, ['pay']), 'value: expected a record whose type is one of pay, refund, got an array of 1');
  });
});

describe('refine', () => {
  const even = c.refine(c.uint({ max: 100 }), 'an even integer', (v, path) => (v % 2 === 0 ? v / 2 : c.decodeFailure(path, 'an even integer', `integer ${v}`)));

  it('converts after the inner codec', () => {
    assert.equal(even.decode(8), 4);
    assert.equal(even.expected, 'an even integer');
  });

  it('reports the inner failure or its own, at the same path', () => {
    assert.equal(message(even, 101, 'n'), 'n: expected an integer in [0, 100], got integer 101');
    assert.equal(message(even, 7, 'n'), 'n: expected an even integer, got integer 7');
    assert.equal(message(c.record({ n: even }), { n: 7 }), 'value.n: expected an even integer, got integer 7');
  });
});

describe('lazy', () => {
  interface Tree {
    name: string;
    children: Tree[];
  }
  const tree: c.Codec<Tree> = c.record({
    name: c.text({ max: 8 }),
    children: c.array(
      c.lazy(() => tree),
      { max: 2 },
    ),
  });

  it('decodes a recursive type and names the deep path', () => {
    const input = { name: 'root', children: [{ name: 'a', children: [] }] };
    assert.deepEqual(tree.decode(input), input);
    const bad = { name: 'root', children: [{ name: 'a', children: [{ name: 1, children: [] }] }] };
    assert.equal(message(tree, bad, 'tree'), 'tree.children[0].children[0].name: expected text of 0 to 8 characters, got integer 1');
  });

  it('gives the expectation of the codec it defers to', () => {
    assert.equal(c.lazy(() => c.boolean).expected, 'a boolean');
    assert.equal(c.lazy(() => c.boolean).decode(true), true);
  });
});

describe('RecordOf', () => {
  it('types required and optional fields', () => {
    const codec = c.record({ a: c.uint({ max: 1 }), b: c.optional(c.boolean) });
    const value: c.RecordOf<{ a: c.Codec<number>; b: c.OptionalCodec<boolean> }> = codec.decode({ a: 1 });
    const withB: c.Infer<typeof codec> = { a: 0, b: undefined };
    assert.deepEqual(value, { a: 1 });
    assert.equal(withB.b, undefined);
  });
});

describe('any input', () => {
  it('either decodes or throws DECODE_FAILED, never anything else', () => {
    const codec = c.taggedUnion('type', {
      pay: { to: c.record({ key: c.bytes({ length: 4 }) }), amount: c.bigint({ min: 0n, max: 10n }), memo: c.optional(c.text({ max: 4 })) },
      list: { items: c.array(c.tuple([c.boolean, c.uint({ max: 3 })]), { max: 3 }), kind: c.oneOf(['a', 'b']) },
    });
    fc.assert(
      fc.property(fc.oneof(fc.anything({ withTypedArray: true, withNullPrototype: true, withBigInt: true }), fc.record({ type: fc.constantFrom('pay', 'list', 'x') })), (input) => {
        try {
          codec.decode(input);
        } catch (e) {
          assert.ok(isTallyError(e, 'DECODE_FAILED'), String(e));
          assert.match(e.message, /^value(\.|\[|:)/);
        }
      }),
      { numRuns: 500 },
    );
  });
});
