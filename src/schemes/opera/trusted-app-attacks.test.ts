/**
 * Attacks on the ODW trusted app from outside it (paper §4.2): a falsified ODW in Stage 1, a man in
 * the middle or a replayer on the link in Stages 2 and 3, and oversized or malformed input at the
 * command boundary. Each refusal names its code and leaves the refusing ODW exactly as it was.
 * A broken partner's own lies are in trusted-app-attacks-lies.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { CREDENTIAL_PROOF_BYTES } from '../../pki/anonymous-credential.ts';
import { CHAIN_BOX_MAX, flipNonce, HELLO_BOX_MAX, type ChainMessage } from './exchange.ts';
import { MAKERS_MAX } from './messages.ts';
import { sealMessage } from './otk.ts';
import { operaMessageCodec } from './session.ts';
import { finishes, Flight, mountPair, payment, refused, refusedUnchanged } from './ta-attack-fixtures.ts';
import { makeOdw, PureOdw, REFERENCE, type Caller } from './ta-fixtures.ts';

const se = (odw: PureOdw): Caller => odw;
const hash = () => randomBytes(32);

async function pair(name: string): Promise<[PureOdw, PureOdw]> {
  return Promise.all([PureOdw.make(`${name}-a`), PureOdw.make(`${name}-b`)]);
}

describe('OPERA Stage 1: a falsified ODW cannot mount with a genuine one (§4.2)', () => {
  it('an ODW without a credential refuses to mount; through a host the refusal names its code', async () => {
    const bare = await makeOdw('bare', { credential: 'none' });
    const before = await bare.se.call('status', {});
    await refused(bare.se.call('mount', { handshakeHash: hash(), role: 'payer' }), 'OPERA_NO_CREDENTIAL');
    assert.deepEqual(await bare.se.call('status', {}), before);
  });

  for (const how of ['rogue-maker', 'other-build'] as const) {
    it(`an ODW credentialed by ${how === 'rogue-maker' ? 'a maker the bank does not list' : 'the maker for another build'}: it refuses to mount, and its proof, passed off as the listed maker's, is refused`, async () => {
      const [rogue, honest] = await Promise.all([PureOdw.make(`rogue-${how}`, { credential: how }), PureOdw.make(`honest-${how}`)]);
      const handshakeHash = hash();
      await refusedUnchanged(rogue, () => rogue.call('mount', { handshakeHash, role: 'payer' }), 'OPERA_NO_CREDENTIAL');
      // The broken TA lists its own maker and build as the bank's first, so it offers a proof as maker 0.
      const held = rogue.state.credential;
      assert(held !== undefined && rogue.state.params !== undefined);
      rogue.state = { ...rogue.state, params: { ...rogue.state.params, makers: [{ publicKey: held.maker, reference: held.reference }] } };
      const { offer } = await se(rogue).call('mount', { handshakeHash, role: 'payer' });
      assert.equal(offer.maker, 0);
      await honest.call('mount', { handshakeHash, role: 'payee' });
      await refusedUnchanged(honest, () => honest.call('meet', { offer }), 'OPERA_MOUNT_REFUSED');
    });
  }

  it('an ODW of another build that claims the reference build in its credential proves nothing', async () => {
    const [rogue, honest] = await Promise.all([PureOdw.make('liar-build', { credential: 'other-build' }), PureOdw.make('honest-build')]);
    const held = rogue.state.credential;
    assert(held !== undefined);
    rogue.state = { ...rogue.state, credential: { ...held, reference: REFERENCE } };
    const handshakeHash = hash();
    const { offer } = await se(rogue).call('mount', { handshakeHash, role: 'payer' });
    await honest.call('mount', { handshakeHash, role: 'payee' });
    await refusedUnchanged(honest, () => honest.call('meet', { offer }), 'OPERA_MOUNT_REFUSED');
  });

  it('a proof recorded from another mount (another handshake hash) is refused', async () => {
    const [a, b] = await pair('replay');
    const { offer: recorded } = await se(a).call('mount', { handshakeHash: hash(), role: 'payer' });
    await b.call('mount', { handshakeHash: hash(), role: 'payee' });
    await refusedUnchanged(b, () => b.call('meet', { offer: recorded }), 'OPERA_MOUNT_REFUSED');
  });

  it("a payer's proof fed as a payee's, an ODW's own proof reflected to it, or a proof under another's ephemeral key is refused", async () => {
    const [a, b] = await pair('role');
    const handshakeHash = hash();
    const { offer: payers } = await se(a).call('mount', { handshakeHash, role: 'payer' });
    const { offer: own } = await se(b).call('mount', { handshakeHash, role: 'payer' });
    // b mounted as a payer too: it waits for a payee's proof, and a's says payer.
    await refusedUnchanged(b, () => b.call('meet', { offer: payers }), 'OPERA_MOUNT_REFUSED');
    await refusedUnchanged(b, () => b.call('meet', { offer: own }), 'OPERA_MOUNT_REFUSED');
    await b.call('mount', { handshakeHash, role: 'payee' });
    // A man in the middle keeps the proof and puts in its own key, to hold the SEED itself.
    await refusedUnchanged(b, () => b.call('meet', { offer: { ...payers, ephemeral: randomBytes(32) } }), 'OPERA_MOUNT_REFUSED');
    await refusedUnchanged(b, () => b.call('meet', { offer: { ...payers, maker: 1 } }), 'OPERA_MOUNT_REFUSED');
    await b.call('meet', { offer: payers });
  });

  it('a hello from another mount of the same two ODWs, or its own reflected, does not open', async () => {
    const [a, b] = await pair('hello');
    const earlier = await mountPair(a, b);
    const handshakeHash = hash();
    const { offer: fromA } = await se(a).call('mount', { handshakeHash, role: 'payer' });
    const { offer: fromB } = await se(b).call('mount', { handshakeHash, role: 'payee' });
    const { hello: own } = await se(a).call('meet', { offer: fromB });
    const { hello } = await se(b).call('meet', { offer: fromA });
    await refusedUnchanged(a, () => a.call('greet', { hello: earlier.hellos.payee }), 'AEAD_FAILED');
    await refusedUnchanged(a, () => a.call('greet', { hello: own }), 'AEAD_FAILED');
    assert.equal((await se(a).call('greet', { hello })).plan, 'new');
  });
});

describe('OPERA Stages 2–3: the one-time-key chain takes only its next message (§3.3.1, §4.2)', () => {
  it('a message replayed (the same box twice) is refused by either side, and the payment still completes', async () => {
    const f = await payment('twice', [5n, 2n, 1n], 8n);
    for (let i = 0; i < 4; i++) {
      const box = f.box;
      assert(box !== undefined);
      const to = f.to;
      await f.deliver();
      await refusedUnchanged(to, () => to.call('step', { box }), 'AEAD_FAILED');
    }
    await finishes(f, [0n, 8n]);
  });

  it('a later message before an earlier one is refused', async () => {
    const f = await payment('order', [5n, 2n, 1n], 8n);
    const { payer: a, payee: b } = f;
    await f.until('2-3', 1);
    // Run ahead on the side, then put both back: the payer's token 2 before its token 1.
    const saved = { a: a.state, b: b.state };
    const { box: ack } = await se(b).call('step', { box: f.box as Uint8Array });
    const { box: later } = await se(a).call('step', { box: ack as Uint8Array });
    [a.state, b.state] = [saved.a, saved.b];
    await refusedUnchanged(b, () => b.call('step', { box: later }), 'AEAD_FAILED');
    await finishes(f, [0n, 8n]);
  });

  it('a box with a flipped byte (nonce, sealed text or tag) is refused', async () => {
    const f = await payment('flip', [5n, 2n], 7n);
    const b = f.payee;
    await f.until('2-3', 2);
    const box = f.box;
    assert(box !== undefined);
    for (const at of [0, 30, box.length - 1]) {
      const altered = box.slice();
      altered[at] = (altered[at] as number) ^ 0x01;
      await refusedUnchanged(b, () => b.call('step', { box: altered }), 'AEAD_FAILED');
    }
    await finishes(f, [0n, 7n]);
  });

  it('a box from an earlier mount of the same two ODWs is refused on the next one, which resumes the payment', async () => {
    const earlier = await payment('mounts', [5n, 2n, 1n, 10n], 8n);
    const { payer: a, payee: b } = earlier;
    await earlier.until('2-3', 2);
    const [toPayee, toPayer] = [[...earlier.delivered.filter((_, i) => i % 2 === 0), earlier.box as Uint8Array], earlier.delivered.filter((_, i) => i % 2 === 1)];
    const f = await Flight.start(a, b, undefined);
    assert.deepEqual(f.mounted.plans, { payer: 'resume', payee: 'resume' });
    for (const box of toPayee) await refusedUnchanged(b, () => b.call('step', { box }), 'AEAD_FAILED');
    await f.deliver();
    for (const box of toPayer) await refusedUnchanged(a, () => a.call('step', { box }), 'AEAD_FAILED');
    await finishes(f, [10n, 8n]);
  });

  it('a box sealed without the OTK, or an ODW\'s own box reflected to it, is refused', async () => {
    const f = await payment('forge', [5n], 5n);
    const b = f.payee;
    const message = encodeCbor({ msg: '2-1', txid: randomBytes(16), amount: 500n, count: 1, nonce: randomBytes(16) });
    await refusedUnchanged(b, () => b.call('step', { box: sealMessage(randomBytes(32), 0, 'payer', message) }), 'AEAD_FAILED');
    await f.deliver();
    const answer = f.box as Uint8Array;
    await refusedUnchanged(b, () => b.call('step', { box: answer }), 'AEAD_FAILED');
    await finishes(f, [0n, 5n]);
  });

  it('a payer\'s message that opens but breaks the protocol\'s order is refused (OPERA_MESSAGE_INVALID)', async () => {
    const f = await payment('order-lies', [5n, 2n], 7n);
    const b = f.payee;
    await f.deliver();
    // The payer is broken: in answer to Msg 2-2 it seals, in the chain, something other than token 1.
    const answer = f.message;
    assert(answer.msg === '2-2');
    const nonce = flipNonce(answer.nonce);
    const token = randomBytes(120);
    const lies: ChainMessage[] = [
      { msg: '2-3', token, counter: 2, nonce },
      { msg: '2-3', token, counter: 1, nonce: randomBytes(16) },
      { msg: '2-1', txid: randomBytes(16), amount: 7n, count: 2, nonce },
      { msg: 'fin' },
      { msg: '2-4', counter: 1, nonce },
    ];
    for (const lie of lies) await refusedUnchanged(b, () => b.call('step', { box: f.forged(() => lie) }), 'OPERA_MESSAGE_INVALID');
    await finishes(f, [0n, 7n]);
  });

  it('a partner holding the OTK that seals what is not CBOR, or not a message of the chain, is refused', async () => {
    const [a, b] = await pair('garbage');
    await mountPair(a, b);
    const otk = a.state.mount?.otk;
    assert(otk !== undefined);
    const garbage = [Uint8Array.of(0xff, 0xff), encodeCbor({ msg: '2-9' }), encodeCbor({ msg: '2-1', txid: randomBytes(16), amount: -1n, count: 1, nonce: randomBytes(16) })];
    for (const [plaintext, code] of garbage.map((p, i) => [p, i === 0 ? 'CBOR_MALFORMED' : 'DECODE_FAILED'] as const)) {
      await refusedUnchanged(b, () => b.call('step', { box: sealMessage(otk, 0, 'payer', plaintext) }), code);
    }
  });
});

describe('OPERA commands and link: oversized and malformed input is refused at the boundary', () => {
  it('the host decodes every command input with bounds before the TA runs: nothing changes', async () => {
    const odw = await makeOdw('bounds');
    const before = await odw.se.call('status', {});
    const tooLong = (n: number) => new Uint8Array(n + 1);
    await refused(odw.se.call('step', { box: tooLong(CHAIN_BOX_MAX) }), 'DECODE_FAILED');
    await refused(odw.se.call('greet', { hello: tooLong(HELLO_BOX_MAX) }), 'DECODE_FAILED');
    await refused(odw.se.call('mount', { handshakeHash: tooLong(64), role: 'payer' }), 'DECODE_FAILED');
    await refused(odw.se.call('mount', { handshakeHash: new Uint8Array(31), role: 'payer' }), 'DECODE_FAILED');
    const offer = { ephemeral: new Uint8Array(32), maker: 0, proof: new Uint8Array(CREDENTIAL_PROOF_BYTES) };
    await refused(odw.se.call('meet', { offer: { ...offer, proof: tooLong(CREDENTIAL_PROOF_BYTES) } }), 'DECODE_FAILED');
    await refused(odw.se.call('meet', { offer: { ...offer, ephemeral: new Uint8Array(31) } }), 'DECODE_FAILED');
    await refused(odw.se.call('meet', { offer: { ...offer, maker: MAKERS_MAX } }), 'DECODE_FAILED');
    await refused(odw.se.call('begin', { amount: AMOUNT_MINOR_MAX + 1n }), 'DECODE_FAILED');
    await refused(odw.se.call('begin', { amount: -1n }), 'DECODE_FAILED');
    assert.deepEqual(await odw.se.call('status', {}), before);
  });

  it('the pure ODW decodes with the same codecs: a wrong role, a missing field, a box of another type', async () => {
    const odw = await PureOdw.make('shapes');
    await refusedUnchanged(odw, () => odw.call('mount', { handshakeHash: hash(), role: 'broker' }), 'DECODE_FAILED');
    await refusedUnchanged(odw, () => odw.call('mount', { role: 'payer' }), 'DECODE_FAILED');
    await refusedUnchanged(odw, () => odw.call('step', { box: 'a box' }), 'DECODE_FAILED');
  });

  it('the link refuses an oversized step or hello before an ODW sees it', () => {
    assert.throws(() => operaMessageCodec.decode({ kind: 'step', box: new Uint8Array(CHAIN_BOX_MAX + 1) }, 'frame'), { code: 'DECODE_FAILED' });
    assert.throws(() => operaMessageCodec.decode({ kind: 'hello', hello: new Uint8Array(HELLO_BOX_MAX + 1) }, 'frame'), { code: 'DECODE_FAILED' });
    operaMessageCodec.decode({ kind: 'step', box: new Uint8Array(CHAIN_BOX_MAX) }, 'frame');
  });
});
