/**
 * The bench node in a process of its own: a real child serving a real node over loopback, found
 * through the registry by name; its CPU is its own and moves with the work it does; stop ends the
 * process; a scheme the registry does not have, or a malformed message, fails with what was wrong.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SCHEMES } from '../../schemes/index.ts';
import { childMessageCodec, openProcessNode, parentMessageCodec } from './node-process.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('a node process serves the schemes named, answers its CPU time, and is gone after stop', { timeout: 120_000 }, async () => {
  const name = SCHEMES[0]?.name ?? 'none';
  const node = await openProcessNode({ schemes: [name], deviceLimits: (d) => ({ ...d, offlinePaymentsMax: 7 }) });
  try {
    assert.notEqual(node.pid, process.pid);
    assert.ok(alive(node.pid));
    assert.match(node.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(node.deviceLimits.offlinePaymentsMax, 7);
    assert.equal(node.certificates.root.body.role, 'root');
    const before = await node.cpuMs();
    const users = await Promise.all(Array.from({ length: 20 }, () => node.registerUser()));
    await node.mint(users[0]?.account ?? '', 500n);
    const after = await node.cpuMs();
    assert.ok(after > before, `the node's CPU moved with its work: ${before} → ${after} ms`);
    // Served in the child: the scheme's routes answer (an unsigned claim is refused, not missing).
    const response = await fetch(`${node.url}/v1/${name}/claims`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.notEqual(response.status, 404);
    assert.ok(response.status >= 400);
    await response.arrayBuffer();
    await node.assertBalanced();
  } finally {
    await node.stop();
  }
  assert.equal(alive(node.pid), false, 'the node process ended');
  await node.stop(); // a second stop is harmless
});

test('a scheme the registry does not have fails the start with the names it has', { timeout: 120_000 }, async () => {
  await assert.rejects(openProcessNode({ schemes: ['no-such-scheme'] }), /no scheme "no-such-scheme" in the registry/);
});

test('the channel refuses malformed messages both ways', () => {
  assert.throws(() => parentMessageCodec.decode({ kind: 'open', schemes: ['../x'], database: 'pglite', holdingLimitMinor: '1', offlinePaymentsMax: 1 }, 'm'), /scheme name/);
  assert.throws(() => parentMessageCodec.decode({ kind: 'open', schemes: ['a'], database: 'sqlite', holdingLimitMinor: '1', offlinePaymentsMax: 1 }, 'm'));
  assert.throws(() => parentMessageCodec.decode({ kind: 'open', schemes: ['a'], database: 'pglite', holdingLimitMinor: '-1', offlinePaymentsMax: 1 }, 'm'), /minor units/);
  assert.throws(() => parentMessageCodec.decode({ kind: 'kill' }, 'm'));
  assert.throws(() => childMessageCodec.decode({ kind: 'ready', url: 'http://10.0.0.1:80', database: 'pglite', operatorToken: 't', root: new Uint8Array(1), intermediary: new Uint8Array(1), issuerNode: new Uint8Array(1) }, 'm'), /loopback/);
  assert.throws(() => childMessageCodec.decode({ kind: 'cpu', id: 1, microseconds: -5 }, 'm'));
  assert.deepEqual(parentMessageCodec.decode({ kind: 'cpu', id: 3 }, 'm'), { kind: 'cpu', id: 3 });
});
