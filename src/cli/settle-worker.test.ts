/**
 * `tally settle worker` refuses what it cannot work with, at once and in one line, before it takes
 * any part: bad usage (exit 2, naming the flag), a folder that holds no node, a node whose stream
 * does not exist yet, and another shard count than the node's (exit 1, with the code).
 * (Workers that settle are settle-kill.test.ts's, against a node in a process of its own.)
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { cliOf, killChildren } from './e2e-process.ts';
import { loadOrCreateIdentity } from '../issuer/identity/node-identity.ts';
import { currency } from '../core/amount.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { testNatsUrl } from '../issuer/queue/test-nats.ts';

after(() => killChildren());

const postgresUrl = process.env['TEST_DATABASE_URL'];
const env = { ...process.env, TALLY_NODE_PASSPHRASE: 'settle worker test passphrase', TALLY_NATS: '', DATABASE_URL: '' };
const { run } = cliOf(env);

describe('tally settle worker, refusals', () => {
  test('bad usage names the flag and exits 2', async () => {
    for (const [args, flag] of [
      [[], '--nats'],
      [['--nats', 'http://127.0.0.1:4222'], '--nats'],
      [['--nats', testNatsUrl(), '--shards', '0'], '--shards'],
      [['--nats', testNatsUrl(), '--shards', '2', '--shard', '2'], '--shard'],
      [['--nats', testNatsUrl()], '--database-url'],
      [['--nats', testNatsUrl(), '--database-url', 'postgres://x', '--ack-wait', '0'], '--ack-wait'],
    ] as const) {
      const r = await run(['settle', 'worker', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^tally settle worker: ${flag}: `), r.stderr);
    }
  });

  test('a folder without a node, and a node that never settled through NATS, are refused with their codes', { skip: postgresUrl === undefined || postgresUrl === '' ? 'TEST_DATABASE_URL is not set' : false }, async () => {
    const empty = await mkdtemp(join(tmpdir(), 'tally-worker-empty-'));
    const node = await mkdtemp(join(tmpdir(), 'tally-worker-node-'));
    try {
      const common = ['--nats', testNatsUrl(), '--database-url', postgresUrl as string];
      const none = await run(['settle', 'worker', '--data', empty, ...common]);
      assert.equal(none.code, 1, none.stderr);
      assert.match(none.stderr, /holds no node.*\[NODE_NOT_FOUND\]\n$/, none.stderr);
      // A node's identity, but no stream on the server for it.
      await loadOrCreateIdentity({ dataDir: node, passphrase: env.TALLY_NODE_PASSPHRASE, provider: nodeProvider, currency: currency('EUR', 2), now: Date.now() });
      const noStream = await run(['settle', 'worker', '--data', node, ...common]);
      assert.equal(noStream.code, 1, noStream.stderr);
      assert.match(noStream.stderr, /(no Tally node tables|start the node with --nats first).*\[(NODE_NOT_FOUND|SETTLE_SHARDS_MISMATCH)\]\n$/, noStream.stderr);
    } finally {
      await rm(empty, { recursive: true, force: true });
      await rm(node, { recursive: true, force: true });
    }
  });
});
