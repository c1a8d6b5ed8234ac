/**
 * decodeField takes Node's native base64url decoder only where it agrees with the strict one: every
 * text either decodes to the same bytes both ways or is refused as BODY_INVALID, never decoded
 * leniently (padding, other alphabets, non-zero trailing bits, impossible lengths). decodeFieldList
 * answers the same for each text of a list, decoded side by side into one buffer.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { fromBase64url, toBase64url } from '../../core/bytes.ts';
import { ApiProblem } from './problem.ts';
import { decodeField, decodeFieldList } from './validate.ts';

function strict(text: string): Uint8Array | 'refused' {
  try {
    return fromBase64url(text);
  } catch {
    return 'refused';
  }
}

function fast(text: string): Uint8Array | 'refused' {
  try {
    return decodeField('body.x', text);
  } catch (e) {
    assert.ok(e instanceof ApiProblem && e.code === 'BODY_INVALID', String(e));
    return 'refused';
  }
}

describe('decodeField', () => {
  test('agrees with the strict decoder on canonical texts and on mutations of them', () => {
    const alphabet = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. '.split(''));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.tuple(fc.nat(), alphabet), { maxLength: 3 }), (bytes, edits) => {
        const chars = [...toBase64url(bytes)];
        for (const [at, c] of edits) if (chars.length > 0) chars[at % chars.length] = c;
        const text = chars.join('');
        assert.deepEqual(fast(text), strict(text));
      }),
      { numRuns: 3000 },
    );
  });

  test('refuses padding, the other alphabet, trailing bits and impossible lengths', () => {
    for (const text of ['AA==', 'ab+/', 'AB', 'A', 'AAAAA', 'AQ=', ' AQ']) assert.equal(fast(text), 'refused', text);
    assert.deepEqual(fast('AQ'), new Uint8Array([1]));
    assert.deepEqual(fast(''), new Uint8Array(0));
  });
});

describe('decodeFieldList', () => {
  const alphabet = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. é'.split(''));
  const mutated = fc.tuple(fc.uint8Array({ maxLength: 300 }), fc.array(fc.tuple(fc.nat(), alphabet), { maxLength: 2 })).map(([bytes, edits]) => {
    const chars = [...toBase64url(bytes)];
    for (const [at, c] of edits) if (chars.length > 0) chars[at % chars.length] = c;
    return chars.join('');
  });

  test('answers each text of a list as the strict decoder does, the texts past the limit refused as too large', () => {
    fc.assert(
      fc.property(fc.array(mutated, { maxLength: 12 }), fc.integer({ min: 0, max: 300 }), (texts, bytesMax) => {
        const answers = decodeFieldList('body.payments', texts, bytesMax);
        assert.equal(answers.length, texts.length);
        // Checked once every text is decoded: no view overlaps another.
        texts.forEach((text, k) => {
          const answer = answers[k];
          const expected = strict(text);
          if (expected === 'refused') {
            assert.ok(answer instanceof ApiProblem && answer.code === 'BODY_INVALID', text);
            assert.match(answer.message, new RegExp(`^body\\.payments\\.${k}: `));
          } else if (expected.length > bytesMax) {
            assert.ok(answer instanceof ApiProblem && answer.code === 'TOO_LARGE', text);
          } else {
            assert.ok(answer instanceof Uint8Array && answer.constructor === Uint8Array);
            assert.deepEqual(answer, expected);
          }
        });
      }),
      { numRuns: 2000 },
    );
  });

  test('refuses padding, the other alphabet, trailing bits and impossible lengths in place, and decodes the rest', () => {
    const answers = decodeFieldList('body.x', ['AQ', 'AA==', 'ab+/', 'AB', 'A', 'AAAAA', 'AQ=', ' AQ', '', 'AQID'], 16);
    assert.deepEqual(
      answers.map((a) => (a instanceof ApiProblem ? a.code : [...a])),
      [[1], 'BODY_INVALID', 'BODY_INVALID', 'BODY_INVALID', 'BODY_INVALID', 'BODY_INVALID', 'BODY_INVALID', 'BODY_INVALID', [], [1, 2, 3]],
    );
    assert.equal(decodeFieldList('body.x', ['AQID'], 2)[0] instanceof ApiProblem, true);
  });
});
