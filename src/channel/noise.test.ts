import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { toHex, utf8 } from '../core/bytes.ts';
import { bytes, record, text } from '../core/codec.ts';
import { nobleEd25519, nobleP256, nobleProvider } from '../core/crypto/noble.ts';
import { signerFromSecret, type PublicKey } from '../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { createBinding, type ChannelIdentity, type PeerTrust } from './binding.ts';
import { framed } from './frame.ts';
import { injectFaults } from './faults.ts';
import { Inbox } from './inbox.ts';
import { openLink, type Link } from './link.ts';
import { memoryPair } from './memory.ts';
import { noiseHandshake, SECURE_MESSAGE_BYTES_MAX } from './noise.ts';
import { generateStaticKeyPair } from './static-key.ts';
import { openSecureLink, type SecureLink, type SecureLinkOptions } from './secure-link.ts';
import type { ByteStream } from './stream.ts';
import { connectTcp, listenTcp } from './tcp.ts';

const signers = {
  alice: signerFromSecret(nobleEd25519, new Uint8Array(32).fill(1)),
  bob: signerFromSecret(nobleP256, new Uint8Array(32).fill(2)),
  mallory: signerFromSecret(nobleEd25519, new Uint8Array(32).fill(3)),
};
// The channel does not know certificates: here a "certificate" is any bytes the verifier maps to a key.
const certificates = { alice: utf8('cert:alice'), bob: utf8('cert:bob'), mallory: utf8('cert:mallory') };
const directory = new Map<string, PublicKey>([
  [toHex(certificates.alice), signers.alice.publicKey],
  [toHex(certificates.bob), signers.bob.publicKey],
  [toHex(certificates.mallory), signers.mallory.publicKey],
]);
const identity = (name: keyof typeof signers): ChannelIdentity => ({ certificate: certificates[name], signer: signers[name] });
const trust: PeerTrust = {
  provider: nobleProvider,
  verify(certificate) {
    const key = directory.get(toHex(certificate));
    if (key === undefined) throw new TallyError('CERT_UNKNOWN_ISSUER', 'unknown certificate', { serial: '?', issuer: '?' });
    return key;
  },
};

const note = record({ text: text({ max: 64 }) });

const open: Link[] = [];
afterEach(() => {
  for (const link of open.splice(0)) link.close();
});

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

type Side = Omit<SecureLinkOptions, 'role'>;

/** Opens both ends at once; answers each side's outcome. Links that opened are closed after the test. */
async function connect(
  transport: Transport,
  initiator: Side,
  responder: Side,
): Promise<[PromiseSettledResult<SecureLink>, PromiseSettledResult<SecureLink>]> {
  const [a, b] = await transport.pair();
  const results = await Promise.allSettled([openSecureLink(a, { role: 'initiator', ...initiator }), openSecureLink(b, { role: 'responder', ...responder })]);
  for (const result of results) if (result.status === 'fulfilled') open.push(result.value.link);
  return results;
}

function opened(result: PromiseSettledResult<SecureLink>): SecureLink {
  if (result.status === 'rejected') throw result.reason;
  return result.value;
}

function refusedWith(result: PromiseSettledResult<SecureLink>, code: TallyError['code'], reason?: string): TallyError {
  assert.equal(result.status, 'rejected', `expected ${code}, the link opened`);
  const error: unknown = result.reason;
  assert.ok(isTallyError(error, code), `expected ${code}, got ${String(error)}`);
  if (reason !== undefined) assert.equal((error.details as { reason: string }).reason, reason);
  return error;
}

for (const transport of transports) {
  describe(`Noise XX secure link over ${transport.name}`, () => {
    test('both sides verify each other\'s certificate binding, then talk', async () => {
      const aliceKeys = generateStaticKeyPair();
      const bobKeys = generateStaticKeyPair();
      const [a, b] = await connect(
        transport,
        { identity: identity('alice'), trust, staticKeyPair: aliceKeys },
        { identity: identity('bob'), trust, staticKeyPair: bobKeys },
      );
      const alice = opened(a);
      const bob = opened(b);
      assert.deepEqual(alice.peer.binding?.certificate, certificates.bob);
      assert.deepEqual(alice.peer.publicKey, signers.bob.publicKey);
      assert.deepEqual(bob.peer.binding?.certificate, certificates.alice);
      assert.deepEqual(bob.peer.publicKey, signers.alice.publicKey);
      assert.deepEqual(alice.peer.staticKey, bobKeys.publicKey);
      assert.deepEqual(bob.peer.staticKey, aliceKeys.publicKey);
      assert.deepEqual(alice.peer.handshakeHash, bob.peer.handshakeHash);
      assert.equal(alice.peer.handshakeHash.length, 64);

      alice.link.send({ text: 'pay 5' });
      assert.deepEqual(await bob.link.receive(note), { text: 'pay 5' });
      bob.link.send({ text: 'paid' });
      assert.deepEqual(await alice.link.receive(note), { text: 'paid' });
    });

    test('a message larger than one Noise message (64 KiB) is split and arrives whole', async () => {
      const [a, b] = await connect(transport, {}, {});
      const blob = new Uint8Array(SECURE_MESSAGE_BYTES_MAX - 16).map((_, i) => (i * 13) & 0xff);
      opened(a).link.send({ blob });
      opened(a).link.send({ text: 'after' });
      assert.deepEqual(await opened(b).link.receive(record({ blob: bytes({ max: SECURE_MESSAGE_BYTES_MAX }) })), { blob });
      assert.deepEqual(await opened(b).link.receive(note), { text: 'after' });
    });

    test('a verifier that refuses the certificate gives PEER_UNTRUSTED with its error as cause', async () => {
      const refusing: PeerTrust = {
        provider: nobleProvider,
        verify: () => {
          throw new TallyError('CERT_REVOKED', 'certificate 42 is revoked', { serial: '42' });
        },
      };
      const [a, b] = await connect(transport, { identity: identity('alice'), trust }, { identity: identity('bob'), trust: refusing });
      const error = refusedWith(b, 'PEER_UNTRUSTED', 'certificate refused');
      assert.ok(isTallyError(error.cause, 'CERT_REVOKED'));
      assert.match(error.message, /revoked/);
      // Alice had verified Bob and got her link; Bob's refusal closes it under her.
      await assert.rejects(opened(a).link.receive(note), (e) => isTallyError(e, 'LINK_CLOSED'));
    });

    test('sides naming different schemes both get SCHEME_MISMATCH naming both; one scheme opens', async () => {
      const [a, b] = await connect(transport, { scheme: 'ops', prologue: utf8('ops/v1') }, { scheme: 'dotm', prologue: utf8('dotm/v1') });
      const mine = refusedWith(a, 'SCHEME_MISMATCH');
      const theirs = refusedWith(b, 'SCHEME_MISMATCH');
      assert.deepEqual(mine.details, { local: 'ops', peer: 'dotm' });
      assert.deepEqual(theirs.details, { local: 'dotm', peer: 'ops' });
      assert.equal(mine.message, "the peer's wallet runs scheme dotm, this one ops: a payment needs two wallets of the same scheme");
      const [c, d] = await connect(transport, { scheme: 'ops', identity: identity('alice'), trust }, { scheme: 'ops', identity: identity('bob'), trust });
      opened(c).link.send({ text: 'same scheme' });
      assert.deepEqual(await opened(d).link.receive(note), { text: 'same scheme' });
    });
  });
}

describe('Noise XX secure link: modes', () => {
  test('an anonymous payer and a certified payee', async () => {
    const [a, b] = await connect(transport0(), { trust }, { identity: identity('bob') });
    assert.deepEqual(opened(a).peer.publicKey, signers.bob.publicKey);
    assert.equal(opened(b).peer.binding, undefined);
    assert.equal(opened(b).peer.publicKey, undefined);
    assert.equal(opened(b).peer.staticKey.length, 32);
  });

  test('both anonymous', async () => {
    const [a, b] = await connect(transport0(), {}, {});
    opened(a).link.send({ text: 'hi' });
    assert.deepEqual(await opened(b).link.receive(note), { text: 'hi' });
  });

  test('an anonymous peer where a binding is required is PEER_UNTRUSTED', async () => {
    const [, b] = await connect(transport0(), {}, { trust });
    refusedWith(b, 'PEER_UNTRUSTED', 'no binding');
  });

  test('a binding sent to a side that takes anonymous peers only is HANDSHAKE_FAILED', async () => {
    const [, b] = await connect(transport0(), { identity: identity('alice') }, {});
    refusedWith(b, 'HANDSHAKE_FAILED', 'unexpected binding');
  });

  test('different prologues fail the handshake', async () => {
    const [a, b] = await connect(transport0(), { prologue: utf8('scheme-a/v1') }, { prologue: utf8('scheme-b/v1') });
    // The initiator detects it on message 2; the responder then sees the link close.
    refusedWith(a, 'HANDSHAKE_FAILED');
    assert.equal(b.status, 'rejected');
  });
});

function transport0(): Transport {
  return transports[0] as Transport;
}

describe('Noise XX secure link: attacks and failures', () => {
  test('a binding signed by the wrong key (forged) is PEER_UNTRUSTED', async () => {
    // Mallory presents Alice's certificate but can only sign with her own key.
    const forged: ChannelIdentity = { certificate: certificates.alice, signer: signers.mallory };
    const [, b] = await connect(transport0(), { identity: forged, trust }, { identity: identity('bob'), trust });
    const error = refusedWith(b, 'PEER_UNTRUSTED', 'binding signature invalid');
    assert.match(error.message, /does not verify/);
  });

  test('a binding replayed from another session names another static key: PEER_UNTRUSTED', async () => {
    // Session 1: Alice talks to Mallory, who keeps Alice's binding.
    const [m1, a1] = await connect(transport0(), { identity: identity('mallory'), trust }, { identity: identity('alice'), trust });
    const stolen = opened(m1).peer.binding;
    assert.ok(stolen !== undefined);
    opened(a1).link.close();

    // Session 2: Mallory presents Alice's binding to Bob.
    const [m, b] = memoryPair();
    const bobSide = openSecureLink(b, { role: 'responder', identity: identity('bob'), trust });
    const session = await noiseHandshake(framed(m), { role: 'initiator' });
    const mallory = openLink(session.channel);
    open.push(mallory);
    mallory.send({ binding: stolen });
    const error = await bobSide.then(
      () => assert.fail('Bob accepted a replayed binding'),
      (e: unknown) => e,
    );
    assert.ok(isTallyError(error, 'PEER_UNTRUSTED'));
    assert.equal(error.details.reason, 'binding names another static key');
  });

  test('a binding over another session\'s handshake hash (same static key) is PEER_UNTRUSTED', async () => {
    const aliceKeys = generateStaticKeyPair();
    const [a1] = await connect(transport0(), { identity: identity('alice'), trust, staticKeyPair: aliceKeys }, { identity: identity('bob'), trust });
    const oldHash = opened(a1).peer.handshakeHash;

    const [m, b] = memoryPair();
    const bobSide = openSecureLink(b, { role: 'responder', identity: identity('bob'), trust });
    const session = await noiseHandshake(framed(m), { role: 'initiator', staticKeyPair: aliceKeys });
    const alice = openLink(session.channel);
    open.push(alice);
    alice.send({ binding: createBinding(identity('alice'), { handshakeHash: oldHash, localStaticKey: session.localStaticKey }) });
    const error = await bobSide.then(
      () => assert.fail('Bob accepted a binding for another session'),
      (e: unknown) => e,
    );
    assert.ok(isTallyError(error, 'PEER_UNTRUSTED'));
    assert.equal(error.details.reason, 'binding is for another session');
  });

  test('a tampered transport ciphertext closes the link with FRAME_INVALID; nothing altered is delivered', async () => {
    const [a, b] = memoryPair();
    // Bob's incoming frames: 0 = handshake message 1, 1 = message 3, 2 = Alice's hello, 3 = her first message.
    const bobFrames = injectFaults(framed(b), { seed: 7, incoming: { corrupt: [3] } });
    const [alice, bob] = await Promise.all([
      openSecureLink(a, { role: 'initiator', identity: identity('alice'), trust }),
      openSecureLink(bobFrames, { role: 'responder', identity: identity('bob'), trust }),
    ]);
    open.push(alice.link, bob.link);
    alice.link.send({ text: 'pay 5' });
    alice.link.send({ text: 'pay 6' });
    await assert.rejects(bob.link.receive(note), (e) => isTallyError(e, 'FRAME_INVALID') && e.details.reason === 'decryption failed');
    // The intact message behind the tampered one is not delivered either: the session is over.
    await assert.rejects(bob.link.receive(note), (e) => isTallyError(e, 'FRAME_INVALID'));
    assert.equal(bobFrames.stats.incoming.corrupted, 1);
    assert.ok(isTallyError(await alice.link.closed, 'LINK_CLOSED'));
  });

  test('a tampered handshake message fails the handshake', async () => {
    const [a, b] = memoryPair();
    const bobFrames = injectFaults(framed(b), { seed: 3, incoming: { corrupt: [1] } });
    const results = await Promise.allSettled([
      openSecureLink(a, { role: 'initiator', identity: identity('alice'), trust }),
      openSecureLink(bobFrames, { role: 'responder', identity: identity('bob'), trust }),
    ]);
    for (const result of results) if (result.status === 'fulfilled') open.push(result.value.link);
    refusedWith(results[1], 'HANDSHAKE_FAILED');
  });

  test('bytes that are not Noise are HANDSHAKE_FAILED', async () => {
    const [a, b] = memoryPair();
    const bobSide = openSecureLink(b, { role: 'responder' });
    framed(a).send(utf8('GET / HTTP/1.1\r\nHost: example\r\n\r\n'));
    await assert.rejects(bobSide, (e) => isTallyError(e, 'HANDSHAKE_FAILED') && /message 1/.test(e.message));
  });

  test('a peer that stops mid-handshake gives TIMEOUT naming the awaited message', async () => {
    const [a, b] = memoryPair();
    // Bob reads Alice's first message and never answers.
    const silent = new Inbox(framed(b));
    const started = openSecureLink(a, { role: 'initiator', handshakeTimeoutMs: 40 });
    await assert.rejects(started, (e) => {
      assert.ok(isTallyError(e, 'TIMEOUT'));
      assert.equal(e.details.timeoutMs, 40);
      assert.match(e.details.what, /handshake message 2/);
      return true;
    });
    assert.equal(silent.size, 1);
    // The timed-out side closed the link.
    assert.ok(isTallyError(await silent.closed, 'LINK_CLOSED'));
  });

  test('a responder whose initiator never speaks gives TIMEOUT too', async () => {
    const [, b] = memoryPair();
    await assert.rejects(openSecureLink(b, { role: 'responder', handshakeTimeoutMs: 20 }), (e) => isTallyError(e, 'TIMEOUT') && /message 1/.test(e.details.what));
  });

  test('a side naming its scheme takes a peer that sends no link hello as HANDSHAKE_FAILED', async () => {
    const [a, b] = await connect(transport0(), {}, { scheme: 'ops' });
    refusedWith(b, 'HANDSHAKE_FAILED', 'no link hello');
    assert.equal(a.status, 'rejected');
  });

  test('a peer that never sends its link hello gives TIMEOUT naming it, within the handshake timeout', async () => {
    const [, b] = memoryPair();
    const started = Date.now();
    await assert.rejects(openSecureLink(b, { role: 'initiator', scheme: 'ops', handshakeTimeoutMs: 50 }), (e) => isTallyError(e, 'TIMEOUT') && /link hello/.test(e.details.what));
    assert.ok(Date.now() - started < 1_000);
  });

  test('a peer that completes the handshake but never sends its hello gives TIMEOUT', async () => {
    const [a, b] = memoryPair();
    const bobSide = openSecureLink(b, { role: 'responder', handshakeTimeoutMs: 300 });
    const session = await noiseHandshake(framed(a), { role: 'initiator' });
    await assert.rejects(bobSide, (e) => isTallyError(e, 'TIMEOUT') && /hello/.test(e.details.what) && e.details.timeoutMs === 300);
    session.channel.close();
  });
});
