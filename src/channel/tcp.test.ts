import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { text, record } from '../core/codec.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { openLink } from './link.ts';
import type { ByteStream } from './stream.ts';
import { connectTcp, listenTcp } from './tcp.ts';

const hello = record({ hello: text({ max: 32 }) });

/** Borrows a free port, then frees it again. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe('TCP transport', () => {
  test('listening on port 0 reports the chosen port, and connections arrive through the iterator', async () => {
    const server = await listenTcp(0, '127.0.0.1');
    assert.ok(server.port > 0);
    assert.equal(server.host, '127.0.0.1');
    const accepted: ByteStream[] = [];
    const serving = (async () => {
      for await (const stream of server) {
        accepted.push(stream);
        const link = openLink(stream);
        const { hello: name } = await link.receive(hello);
        link.send({ hello: `hi ${name}` });
      }
    })();
    for (const name of ['ann', 'bob']) {
      const link = openLink(await connectTcp('127.0.0.1', server.port));
      link.send({ hello: name });
      assert.deepEqual(await link.receive(hello), { hello: `hi ${name}` });
      link.close();
    }
    await server.close();
    await serving; // the iterator ends when the server closes
    assert.equal(accepted.length, 2);
    for (const stream of accepted) stream.close();
  });

  test('accept times out with TIMEOUT, and fails with LINK_CLOSED once the server is closed', async () => {
    const server = await listenTcp(0, '127.0.0.1');
    await assert.rejects(server.accept({ timeoutMs: 20 }), (e) => isTallyError(e, 'TIMEOUT') && e.details.timeoutMs === 20);
    const waiting = server.accept({ timeoutMs: 5_000 });
    await server.close();
    await assert.rejects(waiting, (e) => isTallyError(e, 'LINK_CLOSED'));
    await assert.rejects(server.accept(), (e) => isTallyError(e, 'LINK_CLOSED'));
  });

  test('connecting to a port nobody listens on is LINK_CLOSED', async () => {
    const port = await freePort();
    await assert.rejects(connectTcp('127.0.0.1', port), (e) => isTallyError(e, 'LINK_CLOSED') && /ECONNREFUSED/.test(e.message));
  });

  test('with retryRefused, a refused connection is tried again until the listener comes up', async () => {
    const port = await freePort();
    const connecting = connectTcp('127.0.0.1', port, { timeoutMs: 5_000, retryRefused: true });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const server = await listenTcp(port, '127.0.0.1');
    try {
      const [client, accepted] = await Promise.all([connecting, server.accept({ timeoutMs: 5_000 })]);
      const link = openLink(accepted);
      openLink(client).send({ hello: 'late' });
      assert.deepEqual(await link.receive(hello), { hello: 'late' });
      client.close();
      link.close();
    } finally {
      await server.close();
    }
  });

  test('with retryRefused, nobody listening within the timeout is LINK_CLOSED after several tries', async () => {
    const port = await freePort();
    const started = Date.now();
    await assert.rejects(connectTcp('127.0.0.1', port, { timeoutMs: 400, retryRefused: true }), (e) => isTallyError(e, 'LINK_CLOSED') && /nobody listened there in 400 ms \([2-9] tries/.test(e.message));
    const tookMs = Date.now() - started;
    assert.ok(tookMs >= 200 && tookMs < 1_500, `gave up after ${tookMs} ms`);
  });

  test('a peer that drops the connection (a close with an error) mid-wait gives LINK_CLOSED', async () => {
    const server = await listenTcp(0, '127.0.0.1');
    const [client, accepted] = await Promise.all([connectTcp('127.0.0.1', server.port), server.accept({ timeoutMs: 2_000 })]);
    await server.close();
    const link = openLink(accepted);
    const waiting = link.receive(hello, { timeoutMs: 5_000 });
    client.close(new TallyError('FRAME_INVALID', 'simulated failure', { reason: 'test' }));
    await assert.rejects(waiting, (e) => isTallyError(e, 'LINK_CLOSED'));
    link.close();
  });
});
