/**
 * Change against a lying side, a cut and a report online: can either ODW end with more than it
 * started with, or the change be counted twice? A payee that claims the tokens taken before the
 * payer released PTK_A; a payer that reports to the bank with PTK_B in flight and is then handed it;
 * a payee that settles online and then meets the payer again; a Msg 2-1 whose amount or change is
 * malformed or out of bounds. The genuine side refuses with the code and changes nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeCbor } from '../../core/cbor.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { flipNonce, type ChainMessage } from './exchange.ts';
import { ACCEPT_TAG, SETTLED_TAG, settledBodyCodec, signed, TOKENS_PER_MESSAGE_MAX } from './messages.ts';
import { sealMessage } from './otk.ts';
import { changePayment, finishes, Flight, logOf, mountPair, nonceOf, payment, refused, refusedUnchanged, snOf } from './ta-attack-fixtures.ts';
import { balance, bankSigner, charge, PureOdw, type Caller } from './ta-fixtures.ts';
import { claimOf, TA_KEY_LABEL } from './trusted-app-common.ts';
import { sendChain } from './trusted-app-chain-send.ts';

const se = (odw: PureOdw): Caller => odw;

/** The bank's answer to `report`, as the node would sign it. */
function bankAnswer(report: { body: { nonce: Uint8Array; txid: Uint8Array } }, outcome: 'refunded' | 'paid' | 'abandoned' | 'pending', credited: bigint) {
  return signed(settledBodyCodec, bankSigner, SETTLED_TAG, { nonce: report.body.nonce, txid: report.body.txid, outcome, credited });
}

/** The broken payee's Msg 2-2 for the message in flight: "I took the tokens", signed with its own device key, with `extra` fields. */
function acceptedEarly(f: Flight, extra: Partial<Extract<ChainMessage, { msg: '2-2' }>> = {}): Uint8Array {
  const claim = claimOf(logOf(f.payer.state), snOf(f.payer));
  const accept = signRecord(f.payee.env.signer(TA_KEY_LABEL), ACCEPT_TAG, claim);
  return f.forged((m) => ({ msg: '2-2', nonce: flipNonce(nonceOf(m)), received: 0, accepted: 1, accept, ...extra }));
}

describe('OPERA: a payee claiming the tokens taken before PTK_A went out', () => {
  it('at the first Msg 2-2, with its own valid acceptance: the payer refuses, keeps its tokens and its log', async () => {
    const f = await payment('early-accept', [5n, 2n, 1n], 8n);
    await refusedUnchanged(f.payer, () => f.payer.call('step', { box: acceptedEarly(f) }), 'OPERA_MESSAGE_INVALID');
    assert.deepEqual([logOf(f.payer.state).released, f.payer.state.outgoing.length], [0, 3]);
    await finishes(f, [0n, 8n]);
  });

  it('at a resumed Msg 2-2 after two tokens, before Msg 3-1: the payer refuses, and reported online it is refunded', async () => {
    const f = await payment('early-accept-resume', [5n, 2n, 1n], 8n);
    await f.until('2-3', 3);
    const again = await Flight.start(f.payer, f.payee, undefined);
    await refusedUnchanged(f.payer, () => f.payer.call('step', { box: acceptedEarly(again, { received: 2 }) }), 'OPERA_MESSAGE_INVALID');
    const { report } = await se(f.payer).call('settleReport', {});
    assert.deepEqual([report.body.released, report.body.tokens.length], [0, 3]);
  });

  it('with change, claiming acceptance and giving a PTK_B at the first Msg 2-2: the payer refuses and takes nothing', async () => {
    const f = await changePayment('early-accept-change');
    await refusedUnchanged(f.payer, () => f.payer.call('step', { box: acceptedEarly(f, { change: 3, ptk: randomBytes(32) }) }), 'OPERA_MESSAGE_INVALID');
    await finishes(f, [23n, 100n]);
  });
});

describe('OPERA change: a report online and a later mount never give the change twice', () => {
  it('a payer that reported with Msg 3-2 (and PTK_B) in flight never opens the change: refused now and at the next mount', async () => {
    const f = await changePayment('reported-then-ptk');
    await f.until('3-2');
    const { report } = await se(f.payer).call('settleReport', {});
    assert.deepEqual([report.body.released, report.body.change, report.body.tokens.map((t) => t.body.value)], [1, 23n, [100n]]);
    await refusedUnchanged(f.payer, () => f.deliver(), 'OPERA_PENDING');
    assert.deepEqual([await balance(f.payer), f.payer.state.buffer.length], [0n, 3], 'the change stays sealed in the buffer');
    await refused(Flight.start(f.payer, f.payee, undefined), 'OPERA_PENDING');
    // Told to wait (the payee has not reported), the payer still never takes the change offline.
    const again = (await se(f.payer).call('settleReport', {})).report;
    await se(f.payer).call('settleTake', { settled: bankAnswer(again, 'pending', 0n) });
    await refused(Flight.start(f.payer, f.payee, undefined), 'OPERA_PENDING');
    // The bank refunds the change's value from the payee's report: the payer ends with it once.
    await se(f.payer).call('settleTake', { settled: bankAnswer((await se(f.payer).call('settleReport', {})).report, 'paid', 23n) });
    assert.deepEqual([f.payer.state.log, f.payer.state.buffer, await balance(f.payer)], [undefined, [], 0n]);
  });

  it('a payee that reported before Msg 3-1 arrived and took its change back online does not give it back again at the next mount', async () => {
    const f = await changePayment('payee-settled');
    await f.until('3-1');
    const { report } = await se(f.payee).call('settleReport', {});
    assert.deepEqual([report.body.accepted, report.body.tokens.map((t) => t.body.value)], [0, [20n, 2n, 1n]]);
    await refusedUnchanged(f.payee, () => f.deliver(), 'OPERA_PENDING');
    await f.payee.call('settleTake', { settled: bankAnswer(report, 'abandoned', 23n) });
    assert.deepEqual([f.payee.state.outgoing, await balance(f.payee)], [[], 0n], 'its change was credited online, not put back');
    // The payer released PTK_A and was never answered; meeting the payee, it learns the tokens were never taken.
    const again = await mountPair(f.payer, f.payee);
    assert.deepEqual(again.plans, { payer: 'new', payee: 'new' });
    assert.deepEqual([await balance(f.payer), await balance(f.payee), f.payer.state.log, f.payee.state.log], [100n, 0n, undefined, undefined]);
  });
});

describe('OPERA change: a malformed or out-of-bounds Msg 2-1 from a broken payer', () => {
  /** Mounts a fresh pair; the payee's ODW holds 0.20 + 0.02 + 0.01. Answers them and `seal`, which seals a plaintext as the payer's Msg 2-1. */
  async function mounted(name: string) {
    const [payer, payee] = await Promise.all([PureOdw.make(`${name}-payer`), PureOdw.make(`${name}-payee`)]);
    await charge(payer, [100n]);
    await charge(payee, [20n, 2n, 1n]);
    await mountPair(payer, payee);
    const otk = payer.state.mount?.otk;
    assert(otk !== undefined);
    return { payer, payee, seal: (plaintext: Uint8Array) => sealMessage(otk, 0, 'payer', plaintext) };
  }

  it('a change of zero, negative or past the largest amount, a token count past the bound: DECODE_FAILED, nothing moves', async () => {
    const { payee, seal } = await mounted('bounds');
    const base = { msg: '2-1', txid: randomBytes(16), amount: 77n, count: 1, nonce: randomBytes(16) };
    for (const fields of [{ change: 0n }, { change: -23n }, { change: AMOUNT_MINOR_MAX + 1n }, { change: 23n, count: TOKENS_PER_MESSAGE_MAX + 1 }, { change: 23n, count: 0 }]) {
      await refusedUnchanged(payee, () => payee.call('step', { box: seal(encodeCbor({ ...base, ...fields })) }), 'DECODE_FAILED');
    }
    assert.equal(await balance(payee), 23n);
  });

  it('an amount of zero with change (a swap, not a payment): the payee refuses before it moves its change out', async () => {
    const { payer, payee } = await mounted('zero');
    const sent = sendChain(payer.state, { msg: '2-1', txid: randomBytes(16), amount: 0n, count: 1, nonce: randomBytes(16), change: 23n }, 1);
    assert(sent.ok);
    await refusedUnchanged(payee, () => payee.call('step', { box: sent.output.box }), 'OPERA_AMOUNT_INVALID');
    assert.deepEqual([payee.state.log, payee.state.outgoing, await balance(payee)], [undefined, [], 23n]);
  });

  it('change larger than the amount is a payment like another: 0.30 paid with a 2.00 token, 1.70 given back', async () => {
    const [payer, payee] = await Promise.all([PureOdw.make('large-payer'), PureOdw.make('large-payee')]);
    await charge(payer, [200n]);
    await charge(payee, [100n, 50n, 20n]);
    const f = await Flight.start(payer, payee, 30n);
    assert.deepEqual(f.message.msg === '2-1' ? [f.message.amount, f.message.change] : [], [30n, 170n]);
    await finishes(f, [170n, 200n]);
  });
});
