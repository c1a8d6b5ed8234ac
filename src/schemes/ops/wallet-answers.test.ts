/** The codecs of the node's answers to OPS's routes: each decodes a good answer and names the malformed field. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Codec } from '../../core/codec.ts';
import { isTallyError } from '../../core/errors.ts';
import { opsClaimsAnswer, opsDepositAnswer, opsReleaseAnswer, opsRetireAnswer, opsSyncAnswer } from './wallet-answers.ts';

const KEY = 'ab'.repeat(32);
const B64 = 'QUJDRA';

/** [name, codec, a good answer, what breaks it, the path the error names]. */
const CASES: [string, Codec<unknown>, Record<string, unknown>, (a: Record<string, unknown>) => void, string][] = [
  ['ops deposit', opsDepositAnswer, { confirmation: B64 }, (a) => (a['confirmation'] = ''), 'answer.confirmation'],
  ['ops claims', opsClaimsAnswer, { results: [{ status: 'credited', amount: '1.00', sender: KEY, index: '1', transfer: {} }, { status: 'refused', code: 'DOUBLE_SPEND', message: 'no' }] }, (a) => ((a['results'] as Record<string, unknown>[])[1]!['code'] = undefined), 'answer.results[1].code'],
  ['ops sync', opsSyncAnswer, { ack: B64, crl: B64, crlVersion: 2, fraud: [{ device: KEY, kind: 'double-spend', new: true }] }, (a) => ((a['fraud'] as Record<string, unknown>[])[0]!['kind'] = 7), 'answer.fraud[0].kind'],
  ['ops retire', opsRetireAnswer, { device: KEY, status: 'held', escrow: '3.00', releaseAt: '2026-01-01T00:00:00.000Z' }, (a) => (a['releaseAt'] = undefined), 'answer.releaseAt'],
  ['ops release', opsReleaseAnswer, { status: 'released', escrow: '0.00', refund: { amount: '3.00' } }, (a) => (a['refund'] = { amount: 'lots' }), 'answer.refund.amount'],
];

for (const [name, codec, good, breakIt, path] of CASES) {
  test(`node answer ${name}: decodes a good answer and names the malformed field`, () => {
    codec.decode(structuredClone(good), 'answer');
    const bad = structuredClone(good);
    breakIt(bad);
    assert.throws(() => codec.decode(bad, 'answer'), (e) => isTallyError(e, 'DECODE_FAILED') && e.details.path === path);
    assert.throws(() => codec.decode('not a record', 'answer'), (e) => isTallyError(e, 'DECODE_FAILED') && e.details.path === 'answer');
  });
}
