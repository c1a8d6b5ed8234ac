import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { bigint, bytes, record, taggedUnion, text, uint } from '../core/codec.ts';
import { isTallyError } from '../core/errors.ts';
import { MESSAGE_BYTES_MAX, openLink, type Link } from './link.ts';
import { memoryPair } from './memory.ts';
import type { ByteStream } from './stream.ts';
import { connectTcp, listenTcp } from './tcp.ts';

const request = record({ amount: bigint({ min: 0n, max: 2n ** 63n - 1n }), memo: text({ max: 64 }) });
const reply = taggedUnion('kind', {
  accepted: { receipt: bytes({ length: 4 }) },
  refused: { code: uint({ max: 999 }) },
});

const open: Link[] = [];
afterEach(() => {
  for (const link of open.splice(0)) link.close();
});

function track(link: Link): Link {
  open.push(link);
  return link;
}

interface Transport {
  readonly name: string;
  pair(): Promise<[ByteStream, ByteStream]>;
}

const transports: Transport[] = [
  { name: 'in-memory pair', pair: () => Promise.resolve(memoryPair()) },
  {
    name: 'TCP loopback',
    async pair() {
      const server = await listenTcp(0, '127.0.0.1');
      try {
        return await Promise.all([connectTcp('127.0.0.1', server.port), server.accept({ timeoutMs: 2_000 })]);
      } finally {
        await server.close();
      }
    },
  },
];

async function links(transport: Transport): Promise<[Link, Link]> {
  const [a, b] = await transport.pair();
  return [track(openLink(a)), track(openLink(b))];
}

for (const transport of transports) {
  describe(`plain link over ${transport.name}`, () => {
    test('typed messages go both ways, in order', async () => {
      const [payer, payee] = await links(transport);
      payer.send({ amount: 1250n, memo: 'coffee' });
      payer.send({ amount: 2n ** 63n - 1n, memo: '' });
      assert.deepEqual(await payee.receive(request), { amount: 1250n, memo: 'coffee' });
      assert.deepEqual(await payee.receive(request), { amount: 2n ** 63n - 1n, memo: '' });
      payee.send({ kind: 'accepted', receipt: new Uint8Array([1, 2, 3, 4]) });
      payee.send({ kind: 'refused', code: 402 });
      assert.deepEqual(await payer.receive(reply), { kind: 'accepted', receipt: new Uint8Array([1, 2, 3, 4]) });
      assert.deepEqual(await payer.receive(reply), { kind: 'refused', code: 402 });
    });

    test('a message near the size limit arrives whole', async () => {
      const [a, b] = await links(transport);
      const blob = new Uint8Array(MESSAGE_BYTES_MAX - 16).map((_, i) => (i * 7) & 0xff);
      a.send({ blob });
      assert.deepEqual(await b.receive(record({ blob: bytes({ max: MESSAGE_BYTES_MAX }) })), { blob });
    });

    test('a silent peer gives TIMEOUT, and the link stays usable', async () => {
      const [a, b] = await links(transport);
      await assert.rejects(b.receive(request, { timeoutMs: 30, what: 'payment request' }), (e) => {
        assert.ok(isTallyError(e, 'TIMEOUT'));
        assert.deepEqual(e.details, { what: 'payment request', timeoutMs: 30 });
        return true;
      });
      a.send({ amount: 1n, memo: 'late' });
      assert.deepEqual(await b.receive(request), { amount: 1n, memo: 'late' });
    });

    test('the peer closing mid-wait gives LINK_CLOSED; messages sent before the close are still read', async () => {
      const [a, b] = await links(transport);
      a.send({ amount: 5n, memo: 'last words' });
      const first = await b.receive(request);
      assert.equal(first.memo, 'last words');
      const waiting = b.receive(request, { timeoutMs: 5_000 });
      a.send({ amount: 6n, memo: 'really last' });
      a.close();
      assert.deepEqual(await waiting, { amount: 6n, memo: 'really last' });
      await assert.rejects(b.receive(request, { timeoutMs: 5_000 }), (e) => isTallyError(e, 'LINK_CLOSED') && e.details.reason === 'closed by the peer');
      assert.ok(isTallyError(await b.closed, 'LINK_CLOSED'));
      assert.throws(() => b.send({ amount: 1n, memo: '' }), (e) => isTallyError(e, 'LINK_CLOSED'));
    });

    test('closing this side fails this side\'s waits and sends with LINK_CLOSED', async () => {
      const [a] = await links(transport);
      const waiting = a.receive(request, { timeoutMs: 5_000 });
      a.close();
      await assert.rejects(waiting, (e) => isTallyError(e, 'LINK_CLOSED') && e.details.reason === 'closed by this side');
      assert.throws(() => a.send({}), (e) => isTallyError(e, 'LINK_CLOSED'));
    });

    test('a message the codec refuses is DECODE_FAILED with its path, and the link goes on', async () => {
      const [a, b] = await links(transport);
      a.send({ amount: -1n, memo: 'x' });
      a.send({ amount: 1n, memo: 'fine' });
      await assert.rejects(b.receive(request, { what: 'request' }), (e) => isTallyError(e, 'DECODE_FAILED') && e.details.path === 'request.amount');
      assert.deepEqual(await b.receive(request), { amount: 1n, memo: 'fine' });
    });
  });
}

describe('plain link limits', () => {
  test('bytes that are not deterministic CBOR are DECODE_FAILED', async () => {
    const [a, b] = memoryPair();
    const raw = track(openLink(a));
    const link = track(openLink(b));
    // Writes a frame by hand: the CBOR map {"b": 1, "a": 2}, keys out of deterministic order.
    a.send(new Uint8Array([0, 0, 0, 7, 0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02]));
    await assert.rejects(link.receive(request), (e) => isTallyError(e, 'DECODE_FAILED') && e.details.expected === 'deterministic CBOR');
    assert.equal(raw.closeError, undefined);
  });

  test('a message over MESSAGE_BYTES_MAX is refused before sending; the link stays open', async () => {
    const [a, b] = memoryPair();
    const sender = track(openLink(a));
    const receiver = track(openLink(b));
    assert.throws(() => sender.send({ blob: new Uint8Array(MESSAGE_BYTES_MAX) }), (e) => isTallyError(e, 'TOO_LARGE'));
    sender.send({ amount: 1n, memo: 'ok' });
    assert.equal((await receiver.receive(request)).memo, 'ok');
  });

  test('a peer that sends more than the inbox holds has the link closed with FRAME_INVALID', async () => {
    const [a, b] = memoryPair();
    const sender = track(openLink(a));
    const receiver = track(openLink(b, { inbox: { framesMax: 3 } }));
    for (let i = 0; i < 4; i++) sender.send({ amount: BigInt(i), memo: '' });
    const error = await receiver.closed;
    assert.ok(isTallyError(error, 'FRAME_INVALID'));
    assert.equal(error.details.reason, 'inbox overflow');
    // What was queued before the overflow is still readable; then the close error.
    for (let i = 0; i < 4; i++) assert.equal((await receiver.receive(request)).amount, BigInt(i));
    await assert.rejects(receiver.receive(request), (e) => isTallyError(e, 'FRAME_INVALID'));
    assert.ok(isTallyError(await sender.closed, 'LINK_CLOSED'));
  });

  test('concurrent receives are served in order', async () => {
    const [a, b] = memoryPair();
    const sender = track(openLink(a));
    const receiver = track(openLink(b));
    const first = receiver.receive(request);
    const second = receiver.receive(request);
    sender.send({ amount: 1n, memo: 'one' });
    sender.send({ amount: 2n, memo: 'two' });
    assert.equal((await first).memo, 'one');
    assert.equal((await second).memo, 'two');
  });
});
