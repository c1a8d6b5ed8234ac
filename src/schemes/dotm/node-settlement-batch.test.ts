/** Which events of an upload may settle in one run (node-settlement-batch.ts), without a database. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toHex } from '../../core/bytes.ts';
import { Run, batchable, linkTransaction, type TransactionLinks } from './node-settlement-batch.ts';
import type { Path } from './node-tree.ts';
import type { EventKind, WalletEvent } from './online.ts';

const serial = (n: number) => new Uint8Array(16).fill(n);
const root = (n: number) => new Uint8Array(32).fill(n);
const tsn = (n: number) => new Uint8Array(16).fill(100 + n);

function path(n: number, rootByte = n): Path {
  return { serial: serial(n), root: root(rootByte), records: [], tip: root(rootByte), holder: 'aa'.repeat(32), issuer: undefined };
}

function event(kind: EventKind, t: number): WalletEvent {
  return {
    body: { wallet: new Uint8Array(32), seq: 1, kind, tsn: tsn(t), transaction: new Uint8Array(32), amount: 1n, time: 0, parts: [] },
    signature: new Uint8Array(64),
  };
}

/** Serials 1 to 4 issued here, each with its root. */
const locked = new Map([1, 2, 3, 4].map((n) => [toHex(serial(n)), root(n)]));

test('a transaction event of this node\'s blocks, distinct serials, no tsn elsewhere: batchable', () => {
  for (const kind of ['sent', 'received', 'abandoned', 'rolled-back'] as const) assert.equal(batchable(event(kind, 1), [path(1), path(2)], locked, new Map(), [false, false]), true, kind);
});

test('a redemption, another bank\'s copy, a serial twice, or a block not issued here: not batchable', () => {
  assert.equal(batchable(event('redeemed', 1), [path(1)], locked, new Map(), [false]), false);
  assert.equal(batchable(event('sent', 1), [path(1), path(2)], locked, new Map(), [false, true]), false);
  assert.equal(batchable(event('sent', 1), [path(1), path(1)], locked, new Map(), [false, false]), false);
  assert.equal(batchable(event('sent', 1), [path(5)], locked, new Map(), [false]), false, 'serial 5 was not issued here');
  assert.equal(batchable(event('sent', 1), [path(1, 9)], locked, new Map(), [false]), false, 'another presentation under serial 1');
});

test('current records under its tsn in another serial send the event one at a time; in its own serials they do not', () => {
  const links: TransactionLinks = new Map();
  linkTransaction(links, toHex(tsn(1)), [toHex(serial(1))]);
  assert.equal(batchable(event('received', 1), [path(1)], locked, links, [false]), true);
  linkTransaction(links, toHex(tsn(1)), [toHex(serial(3))]);
  assert.equal(batchable(event('received', 1), [path(1)], locked, links, [false]), false);
  assert.equal(batchable(event('received', 2), [path(1)], locked, links, [false]), true, 'another tsn');
});

test('a run admits only events that share no serial and no tsn with it, and empties when taken', () => {
  const run = new Run();
  const a = { event: { ...event('sent', 1), body: { ...event('sent', 1).body, kind: 'sent' as const } }, paths: [path(1), path(2)] };
  run.add(a, 0);
  assert.equal(run.admits({ event: { ...a.event, body: { ...a.event.body, tsn: tsn(2) } }, paths: [path(2)] }), false, 'serial 2 again');
  assert.equal(run.admits({ event: a.event, paths: [path(3)] }), false, 'tsn 1 again');
  const b = { event: { ...a.event, body: { ...a.event.body, tsn: tsn(2) } }, paths: [path(3)] };
  assert.equal(run.admits(b), true);
  run.add(b, 1);
  assert.throws(() => run.add(b, 2), /independent/);
  assert.deepEqual(run.take().map((e) => e.index), [0, 1]);
  assert.equal(run.admits(a), true);
  assert.deepEqual(run.take(), []);
});
