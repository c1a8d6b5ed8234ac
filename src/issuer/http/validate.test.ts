/**
 * decodeField takes Node's native base64url decoder only where it agrees with the strict one: every
 * text either decodes to the same bytes both ways or is refused as BODY_INVALID, never decoded
 * leniently (padding, other alphabets, non-zero trailing bits, impossible lengths).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { fromBase64url, toBase64url } from '../../core/bytes.ts';
import { ApiProblem } from './problem.ts';
import { decodeField } from './validate.ts';

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
