import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { equalBytes } from '../core/bytes.ts';
import { bytes, record, text } from '../core/codec.ts';
import { isTallyError, type TallyError } from '../core/errors.ts';
import { injectFaults, seededRandom, type FaultPlan, type FaultyDuplex } from './faults.ts';
import { encodeFrame, framed } from './frame.ts';
import { openLink, type Link } from './link.ts';
import { memoryPair } from './memory.ts';
import { openSecureLink, type SecureLink } from './secure-link.ts';
import type { DuplexReceiver } from './stream.ts';

const note = record({ text: text({ max: 64 }) });
const frames = [0, 1, 2, 3, 4].map((i) => new Uint8Array([i, i, i, i]));

const open: Link[] = [];
afterEach(() => {
  for (const link of open.splice(0)) link.close();
});

function collector(): DuplexReceiver & { units: Uint8Array[]; error: Promise<TallyError> } {
  let settle: (error: TallyError) => void = () => {};
  const error = new Promise<TallyError>((resolve) => (settle = resolve));
  const units: Uint8Array[] = [];
  return { units, error, data: (unit) => units.push(unit), closed: (e) => settle(e) };
}

/** A frame channel with faults on the sending end; answers what the other end received. */
function faultyFrames(plan: FaultPlan): { sender: FaultyDuplex<'frames'>; received: ReturnType<typeof collector> } {
  const [a, b] = memoryPair();
  const sender = injectFaults(framed(a), plan);
  sender.attach(collector());
  const received = collector();
  framed(b).attach(received);
  return { sender, received };
}

const tick = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));

function bitsDiffering(x: Uint8Array, y: Uint8Array): number {
  let bits = 0;
  for (let i = 0; i < x.length; i++) for (let v = (x[i] as number) ^ (y[i] as number); v !== 0; v >>= 1) bits += v & 1;
  return bits;
}

/** Opens a secure link whose responder (Bob) has faults on its frames; Alice's first message is Bob's incoming frame 3. */
async function secureWithFaults(plan: FaultPlan): Promise<{ alice: SecureLink; bob: SecureLink; faults: FaultyDuplex<'frames'> }> {
  const [a, b] = memoryPair();
  const faults = injectFaults(framed(b), plan);
  const [alice, bob] = await Promise.all([openSecureLink(a, { role: 'initiator' }), openSecureLink(faults, { role: 'responder' })]);
  open.push(alice.link, bob.link);
  return { alice, bob, faults };
}

describe('fault injector on frames', () => {
  test('drop: the chosen frames never arrive', async () => {
    const { sender, received } = faultyFrames({ seed: 1, outgoing: { drop: [1, 3] } });
    for (const frame of frames) sender.send(frame);
    await tick();
    assert.deepEqual(received.units, [frames[0], frames[2], frames[4]]);
    assert.equal(sender.stats.outgoing.dropped, 2);
    assert.equal(sender.stats.outgoing.passed, 3);
  });

  test('duplicate: the chosen frames arrive twice, in place', async () => {
    const { sender, received } = faultyFrames({ seed: 1, outgoing: { duplicate: [0, 2] } });
    for (const frame of frames.slice(0, 3)) sender.send(frame);
    await tick();
    assert.deepEqual(received.units, [frames[0], frames[0], frames[1], frames[2], frames[2]]);
  });

  test('corrupt: exactly one bit of the chosen frame is flipped; the sender\'s buffer is untouched', async () => {
    const { sender, received } = faultyFrames({ seed: 9, outgoing: { corrupt: [1] } });
    const original = frames.map((f) => f.slice());
    for (const frame of frames) sender.send(frame);
    await tick();
    assert.equal(received.units.length, frames.length);
    received.units.forEach((unit, i) => assert.equal(bitsDiffering(unit, original[i] as Uint8Array), i === 1 ? 1 : 0, `frame ${i}`));
    assert.deepEqual(frames, original);
  });

  test('delay: the chosen frame is held back, later frames wait behind it (order is kept)', async () => {
    const { sender, received } = faultyFrames({ seed: 1, outgoing: { delay: [0], delayMs: 40 } });
    sender.send(frames[0] as Uint8Array);
    sender.send(frames[1] as Uint8Array);
    await tick(5);
    assert.deepEqual(received.units, []);
    await tick(60);
    assert.deepEqual(received.units, [frames[0], frames[1]]);
    assert.equal(sender.stats.outgoing.delayed, 1);
  });

  test('delay: a receive with a shorter timeout gives TIMEOUT, the frame still arrives later', async () => {
    const [a, b] = memoryPair();
    const sender = track(openLink(injectFaults(framed(a), { seed: 1, outgoing: { delay: 1, delayMs: 60 } })));
    const receiver = track(openLink(b));
    sender.send({ text: 'slow' });
    await assert.rejects(receiver.receive(note, { timeoutMs: 10 }), (e) => isTallyError(e, 'TIMEOUT'));
    assert.deepEqual(await receiver.receive(note, { timeoutMs: 2_000 }), { text: 'slow' });
  });

  test('an orderly close waits for delayed frames, as a socket end would', async () => {
    const { sender, received } = faultyFrames({ seed: 1, outgoing: { delay: [0], delayMs: 20 } });
    sender.send(frames[0] as Uint8Array);
    sender.close();
    assert.throws(() => sender.send(frames[1] as Uint8Array), (e) => isTallyError(e, 'LINK_CLOSED'));
    const error = await received.error;
    assert.deepEqual(received.units, [frames[0]]);
    assert.ok(isTallyError(error, 'LINK_CLOSED') && error.details.reason === 'closed by the peer');
  });

  test('cut after N frames: N arrive, then both sides see LINK_CLOSED', async () => {
    const [a, b] = memoryPair();
    const sender = injectFaults(framed(a), { seed: 1, outgoing: { cutAfterUnits: 2 } });
    const local = collector();
    sender.attach(local);
    const received = collector();
    framed(b).attach(received);
    sender.send(frames[0] as Uint8Array);
    sender.send(frames[1] as Uint8Array);
    assert.throws(() => sender.send(frames[2] as Uint8Array), (e) => isTallyError(e, 'LINK_CLOSED'));
    const localError = await local.error;
    assert.ok(isTallyError(localError, 'LINK_CLOSED'));
    assert.match(localError.details.reason, /fault injector cut the link \(outgoing\) after 2 units/);
    assert.ok(isTallyError(await received.error, 'LINK_CLOSED'));
    assert.deepEqual(received.units, [frames[0], frames[1]]);
    assert.equal(sender.stats.outgoing.cut, true);
  });

  test('faults are per direction: incoming duplicates do not touch what this end sends', async () => {
    const [a, b] = memoryPair();
    const left = injectFaults(framed(a), { seed: 1, incoming: { duplicate: 1 } });
    const leftGot = collector();
    left.attach(leftGot);
    const right = framed(b);
    const rightGot = collector();
    right.attach(rightGot);
    left.send(frames[0] as Uint8Array);
    right.send(frames[1] as Uint8Array);
    await tick();
    assert.deepEqual(rightGot.units, [frames[0]]);
    assert.deepEqual(leftGot.units, [frames[1], frames[1]]);
  });

  test('the same seed gives the same faults; probabilities hit about as often as asked', async () => {
    const run = async (seed: number) => {
      const { sender, received } = faultyFrames({ seed, outgoing: { drop: 0.3, corrupt: 0.2, duplicate: 0.1 } });
      for (let i = 0; i < 200; i++) sender.send(new Uint8Array([i, 0, 0, 0, 0, 0, 0, 0]));
      await tick();
      return { stats: { ...sender.stats.outgoing }, units: received.units };
    };
    const first = await run(42);
    const again = await run(42);
    const other = await run(43);
    assert.deepEqual(again, first);
    assert.notDeepEqual(other.units, first.units);
    assert.ok(first.stats.dropped > 30 && first.stats.dropped < 90, `dropped ${first.stats.dropped} of 200`);
    assert.ok(first.stats.corrupted > 10 && first.stats.corrupted < 60, `corrupted ${first.stats.corrupted}`);
    assert.equal(first.units.length, 200 - first.stats.dropped + first.stats.duplicated);
  });

  test('seededRandom is deterministic and in [0, 1)', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    for (let i = 0; i < 1000; i++) {
      const x = a();
      assert.equal(x, b());
      assert.ok(x >= 0 && x < 1);
    }
  });

  test('a bad plan is refused', () => {
    const [a] = memoryPair();
    assert.throws(() => injectFaults(framed(a), { seed: 1, outgoing: { drop: 1.5 } }), RangeError);
    const [c] = memoryPair();
    assert.throws(() => injectFaults(framed(c), { seed: 1, incoming: { corrupt: [-1] } }), RangeError);
  });
});

describe('fault injector on a byte stream', () => {
  test('cut after N bytes mid-frame: whole frames before it arrive, the torn one does not', async () => {
    const [a, b] = memoryPair();
    const stream = injectFaults(a, { seed: 1, outgoing: { cutAfterBytes: 10 } });
    const sender = framed(stream);
    sender.attach(collector());
    const received = collector();
    framed(b).attach(received);
    sender.send(new Uint8Array([1, 2])); // 6 bytes on the wire
    sender.send(new Uint8Array([3, 4, 5, 6, 7, 8])); // 10 bytes: only 4 pass
    const error = await received.error;
    assert.ok(isTallyError(error, 'LINK_CLOSED'));
    assert.deepEqual(received.units, [new Uint8Array([1, 2])]);
    assert.equal(stream.stats.outgoing.cut, true);
  });

  test('a bit flip in a length header: refused at once when the length goes over the limit, never a bogus frame', async () => {
    const outcomes = { refused: 0, waiting: 0 };
    for (let seed = 0; seed < 32; seed++) {
      const [a, b] = memoryPair();
      const stream = injectFaults(a, { seed, outgoing: { corrupt: [0] } });
      stream.attach(collector());
      const channel = framed(b);
      const received = collector();
      channel.attach(received);
      // An empty frame is its 4 header bytes only: any flip lands in the length.
      stream.send(encodeFrame(new Uint8Array(0)));
      await tick(1);
      assert.deepEqual(received.units, [], `seed ${seed}: a frame was delivered`);
      const error = channel.closeError;
      if (error === undefined) outcomes.waiting++;
      else {
        assert.ok(isTallyError(error, 'FRAME_INVALID'), `seed ${seed}: ${error.code}`);
        outcomes.refused++;
      }
      stream.close();
    }
    // High bits announce more than 256 KiB (refused); low bits a frame whose body never comes.
    assert.ok(outcomes.refused > 0 && outcomes.waiting > 0, JSON.stringify(outcomes));
  });
});

describe('the secure session detects every fault instead of delivering altered data', () => {
  test('corrupt: decryption fails, FRAME_INVALID, the altered message is never delivered', async () => {
    const { alice, bob, faults } = await secureWithFaults({ seed: 11, incoming: { corrupt: [3] } });
    alice.link.send({ text: 'pay 100' });
    await assert.rejects(bob.link.receive(note), (e) => isTallyError(e, 'FRAME_INVALID') && e.details.reason === 'decryption failed');
    assert.equal(faults.stats.incoming.corrupted, 1);
    assert.ok(isTallyError(await alice.link.closed, 'LINK_CLOSED'));
  });

  test('drop: the next frame fails decryption (its nonce is one ahead)', async () => {
    const { alice, bob } = await secureWithFaults({ seed: 1, incoming: { drop: [3] } });
    alice.link.send({ text: 'first' });
    alice.link.send({ text: 'second' });
    await assert.rejects(bob.link.receive(note), (e) => isTallyError(e, 'FRAME_INVALID') && e.details.reason === 'decryption failed');
  });

  test('duplicate: the message arrives once, the replayed copy fails decryption', async () => {
    const { alice, bob } = await secureWithFaults({ seed: 1, incoming: { duplicate: [3] } });
    alice.link.send({ text: 'pay once' });
    assert.deepEqual(await bob.link.receive(note), { text: 'pay once' });
    await assert.rejects(bob.link.receive(note), (e) => isTallyError(e, 'FRAME_INVALID') && e.details.reason === 'decryption failed');
  });

  test('delay: only latency; every message arrives intact and in order', async () => {
    const { alice, bob, faults } = await secureWithFaults({ seed: 5, incoming: { delay: 0.5, delayMs: 5, jitterMs: 10 } });
    for (let i = 0; i < 10; i++) alice.link.send({ text: `m${i}` });
    for (let i = 0; i < 10; i++) assert.deepEqual(await bob.link.receive(note), { text: `m${i}` });
    assert.ok(faults.stats.incoming.delayed > 0);
  });

  test('cut: both sides see LINK_CLOSED', async () => {
    const { alice, bob } = await secureWithFaults({ seed: 1, incoming: { cutAfterUnits: 4 } });
    alice.link.send({ text: 'one' });
    alice.link.send({ text: 'two' });
    assert.deepEqual(await bob.link.receive(note), { text: 'one' });
    await assert.rejects(bob.link.receive(note), (e) => isTallyError(e, 'LINK_CLOSED') && /cut/.test(e.details.reason));
    assert.ok(isTallyError(await alice.link.closed, 'LINK_CLOSED'));
  });

  test('for contrast: a plain link delivers a corrupted message altered, or fails to decode it', async () => {
    const blob = new Uint8Array(64).fill(0x55);
    const [a, b] = memoryPair();
    const sender = track(openLink(injectFaults(framed(a), { seed: 2, outgoing: { corrupt: [0] } })));
    const receiver = track(openLink(b));
    sender.send({ blob });
    try {
      const got = await receiver.receive(record({ blob: bytes({ max: 128 }) }));
      assert.ok(!equalBytes(got.blob, blob), 'the corruption went through unnoticed');
    } catch (e) {
      assert.ok(isTallyError(e, 'DECODE_FAILED'));
    }
  });
});

function track(link: Link): Link {
  open.push(link);
  return link;
}
