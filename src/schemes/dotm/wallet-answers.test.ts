/** The codecs of the node's answers to DOT-M's routes: each decodes a good answer and names the malformed field. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Codec } from '../../core/codec.ts';
import { isTallyError } from '../../core/errors.ts';
import { dotmEventsAnswer, dotmIssueAnswer, dotmWalletAnswer } from './wallet-answers.ts';

const KEY = 'ab'.repeat(32);
const B64 = 'QUJDRA';

/** [name, codec, a good answer, what breaks it, the path the error names]. */
const CASES: [string, Codec<unknown>, Record<string, unknown>, (a: Record<string, unknown>) => void, string][] = [
  ['dotm wallets', dotmWalletAnswer, { wallet: KEY, user: KEY, ucert: B64, wcert: B64 }, (a) => (a['wcert'] = 1), 'answer.wcert'],
  ['dotm issue', dotmIssueAnswer, { blocks: [B64, B64] }, (a) => (a['blocks'] = [B64, 5]), 'answer.blocks[1]'],
  ['dotm events', dotmEventsAnswer, { ack: B64, crl: B64, results: [{ seq: 1, status: 'applied' }], findings: [] }, (a) => ((a['results'] as Record<string, unknown>[])[0]!['seq'] = -1), 'answer.results[0].seq'],
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
