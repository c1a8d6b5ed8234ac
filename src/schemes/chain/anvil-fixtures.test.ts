/**
 * The test anvil works only on a chain of its own: when something else already answers JSON-RPC on
 * the port it was given (another test's anvil that bound it first), it starts again elsewhere
 * instead of deploying on, and later reverting, that other chain.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { ANVIL_CHAIN_ID, freePort, startAnvilEnv } from './anvil-fixtures.ts';

test('a port where another node already answers eth_chainId is left alone: the anvil starts on the next one', async () => {
  const seen: string[] = [];
  const other = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      const call = JSON.parse(body) as { id: number; method: string };
      seen.push(call.method);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ jsonrpc: '2.0', id: call.id, result: `0x${ANVIL_CHAIN_ID.toString(16)}` }));
    });
  });
  await new Promise<void>((ready) => other.listen(0, '127.0.0.1', ready));
  const taken = (other.address() as { port: number }).port;
  const ports = [taken];
  try {
    const env = await startAnvilEnv({ pickPort: async () => ports.shift() ?? freePort() });
    try {
      assert.notEqual(new URL(env.url).port, String(taken), 'the anvil runs on a port of its own');
      assert.equal(await env.publicClient.getChainId(), ANVIL_CHAIN_ID);
      assert.ok((await env.publicClient.getCode({ address: env.token })) !== undefined, 'the token is deployed on its own chain');
      assert.deepEqual(seen.filter((method) => method !== 'eth_chainId'), [], 'nothing was sent to the other node');
    } finally {
      await env.close();
    }
  } finally {
    await new Promise<void>((closed) => other.close(() => closed()));
  }
});
