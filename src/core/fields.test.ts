/** The shared text-field codecs: each takes a good value and refuses a malformed one, naming the path. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { text } from './codec.ts';
import { isTallyError } from './errors.ts';
import { base64urlBytes, base64urlText, decimalText, hexBytes, isoTime, keyIdHex, looseRecord, nullable, textMap, timestampMs } from './fields.ts';

const refused = (f: () => unknown, path: string) => assert.throws(f, (e) => isTallyError(e, 'DECODE_FAILED') && e.details.path === path);

test('key ids, hex and base64url fields', () => {
  assert.equal(keyIdHex.decode('ab'.repeat(32)), 'ab'.repeat(32));
  refused(() => keyIdHex.decode('AB'.repeat(32), 'k'), 'k');
  refused(() => keyIdHex.decode('ab'.repeat(31), 'k'), 'k');
  assert.deepEqual(hexBytes(2).decode('0aff'), new Uint8Array([10, 255]));
  assert.equal(base64urlText({ max: 8 }).decode('QUJD_-'), 'QUJD_-');
  refused(() => base64urlText({ max: 8 }).decode('QUJD+/', 'b'), 'b');
  refused(() => base64urlText({ max: 4 }).decode('QUJDRA', 'b'), 'b');
  assert.deepEqual(base64urlBytes({ maxBytes: 3 }).decode('QUJD'), new Uint8Array([65, 66, 67]));
  refused(() => base64urlBytes({ maxBytes: 3 }).decode('QUJDRA', 'b'), 'b');
});

test('numbers and times', () => {
  assert.equal(decimalText().decode('120'), '120');
  for (const bad of ['-1', '01', '1.5', '', 12]) refused(() => decimalText().decode(bad, 'n'), 'n');
  assert.equal(timestampMs.decode(1_700_000_000_000), 1_700_000_000_000);
  refused(() => timestampMs.decode(-1, 't'), 't');
  refused(() => timestampMs.decode(1.5, 't'), 't');
  assert.equal(isoTime.decode('2026-01-02T03:04:05.678Z'), '2026-01-02T03:04:05.678Z');
  refused(() => isoTime.decode('2026-13-45T99:04:05Z', 't'), 't');
  refused(() => isoTime.decode('yesterday', 't'), 't');
});

test('nullable, loose records and text maps', () => {
  assert.equal(nullable(keyIdHex).decode(null), null);
  refused(() => nullable(keyIdHex).decode(undefined, 'n'), 'n');
  const loose = looseRecord({ a: text({ max: 4 }) });
  assert.deepEqual(loose.decode({ a: 'x', extra: [1, 2] }), { a: 'x' });
  refused(() => loose.decode({ a: 5 }, 'r'), 'r.a');
  refused(() => loose.decode([], 'r'), 'r');
  const map = textMap(keyIdHex, { max: 2, keyCharsMax: 8 });
  assert.deepEqual({ ...map.decode({ u: 'ab'.repeat(32) }) }, { u: 'ab'.repeat(32) });
  refused(() => map.decode({ u: 'zz' }, 'm'), 'm["u"]');
  refused(() => map.decode({ a: 'ab'.repeat(32), b: 'ab'.repeat(32), c: 'ab'.repeat(32) }, 'm'), 'm');
  refused(() => map.decode({ toolongkey: 'ab'.repeat(32) }, 'm'), 'm["toolongkey"]');
});
