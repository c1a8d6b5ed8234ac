/**
 * The node's answers through codecs: each codec takes a well-formed answer and refuses one with a
 * malformed field, naming it; the client turns a malformed answer into DECODE_FAILED naming the route
 * and the field, instead of handing a wrong shape to the caller.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import type { Codec } from '../core/codec.ts';
import { isTallyError } from '../core/errors.ts';
import {
  accountAnswer,
  auditAnswer,
  deviceAnswer,
  infoAnswer,
  mintAnswer,
  revocationsAnswer,
  userAnswer,
  withRaw,
} from './node-answers.ts';
import { NodeClient } from './node-client.ts';

const KEY = 'ab'.repeat(32);
const B64 = 'QUJDRA';

/** [name, codec, a good answer, a path to break, the broken value, the path the error names]. */
const CASES: [string, Codec<unknown>, Record<string, unknown>, (a: Record<string, unknown>) => void, string][] = [
  ['info', infoAnswer, { currency: { code: 'EUR', decimals: 2 }, certificates: { root: B64, intermediary: B64, issuerNode: B64 }, suites: ['ed25519'], limits: { bodyBytesMax: 65536, requestWindowMs: 300000, holdingLimit: '500.00', offlinePaymentsMax: 100 }, extra: 1 }, (a) => ((a['currency'] as Record<string, unknown>)['decimals'] = -1), 'answer.currency.decimals'],
  ['users', userAnswer, { account: 'acct', keyId: KEY, certificate: B64 }, (a) => (a['keyId'] = 'ab'), 'answer.keyId'],
  ['devices', deviceAnswer, { keyId: KEY, certificate: B64, owner: 'x' }, (a) => (a['certificate'] = 'not base64url!'), 'answer.certificate'],
  ['accounts', accountAnswer, { id: 'acct', balance: '12.50', history: [] }, (a) => (a['balance'] = 12.5), 'answer.balance'],
  ['revocations', revocationsAnswer, { version: 3, list: B64 }, (a) => (a['version'] = '3'), 'answer.version'],
  ['mint', mintAnswer, { transfer: { id: 't1', amount: '1.00', currency: 'EUR' } }, (a) => (a['transfer'] = null), 'answer.transfer'],
  ['audit', auditAnswer, { balanced: true, ledgerBalanced: true, currency: 'EUR', currencies: [{ currency: 'EUR', totalIssued: '1.00', totalOnline: '1.00', totalOfflineFloat: '0.00', balanced: true }], exposure: [], problemCount: 0, transferCount: 2 }, (a) => ((a['currencies'] as Record<string, unknown>[])[0]!['totalOnline'] = undefined), 'answer.currencies[0].totalOnline'],
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

test('withRaw keeps the whole record for --json while the value is checked', () => {
  const good = CASES.find(([n]) => n === 'audit')![2];
  const decoded = withRaw(auditAnswer).decode({ ...good, problems: [{ account: 'a' }] }, 'answer');
  assert.deepEqual(decoded.raw['problems'], [{ account: 'a' }]);
  assert.equal(decoded.value.transferCount, 2);
});

async function serve(body: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

test('the client refuses a malformed answer with DECODE_FAILED naming the route and the field', async () => {
  const bad = await serve(JSON.stringify({ version: 1, list: 42 }));
  try {
    await assert.rejects(new NodeClient(bad.url).call('GET', '/v1/revocations', { answer: revocationsAnswer }), (e) => isTallyError(e, 'DECODE_FAILED') && e.details.path === 'answer.list' && /GET \/v1\/revocations/.test(e.message));
    await assert.rejects(new NodeClient(bad.url).info(), (e) => isTallyError(e, 'DECODE_FAILED') && /\/v1\/info/.test(e.message));
  } finally {
    await bad.close();
  }
  const notJson = await serve('<html>');
  try {
    await assert.rejects(new NodeClient(notJson.url).call('GET', '/v1/revocations', { answer: revocationsAnswer }), (e) => isTallyError(e, 'DECODE_FAILED') && e.details.path === 'answer');
  } finally {
    await notJson.close();
  }
  const good = await serve(JSON.stringify({ version: 4, list: B64, more: true }));
  try {
    assert.deepEqual((await new NodeClient(good.url).call('GET', '/v1/revocations', { answer: revocationsAnswer })).body, { version: 4, list: B64 });
  } finally {
    await good.close();
  }
});
