/**
 * Change between two ODWs: the payer's tokens cannot make the amount, so it offers a little more and
 * the payee gives the difference back in its own tokens before Stage 3. Then what a broken side can
 * do to it: change worth less or more than agreed, forged change tokens, change tokens without the
 * payee's escrow tag or with a full chain, a wrong or missing PTK_B,
 * change messages replayed or out of order, Msg 3-1 before the change, and a payee that stops
 * after PTK_A. The genuine side refuses with a code, changes nothing, and keeps its log to finish
 * the transaction at the next mount or settle it online.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomBytes } from '../../core/crypto/hash.ts';
import { signRecord } from '../../core/crypto/record.ts';
import type { SealedTag } from '../../pki/escrow-tags.ts';
import { signer } from '../../pki/test-fixtures.ts';
import { flipNonce } from './exchange.ts';
import { ACCEPT_TAG, RELEASE_TAG, SETTLED_TAG, settledBodyCodec, signed } from './messages.ts';
import { odwSerial } from './serial.ts';
import { changePayment, finishes, Flight, logOf, nonceOf, refused, refusedUnchanged } from './ta-attack-fixtures.ts';
import { assertPaid, balance, bankSigner, charge, makeOdw, NOW, pay, PureOdw, type Caller } from './ta-fixtures.ts';
import { PAYABLE_TAGS_MAX } from './escrow.ts';
import { bare, signToken, tagsOf, type Token } from './token.ts';
import { claimOf, TA_KEY_LABEL } from './trusted-app-common.ts';
import type { TxLog } from './trusted-app-state.ts';

const se = (odw: PureOdw): Caller => odw;

/**
 * The payee's change token `at` replaced (its TA is broken) before it is sent: by `token` with the
 * escrow tags of the token it replaces (only the replacement is the lie), or by what `make` makes of it.
 */
function replaceChange(payee: PureOdw, at: number, token: Token | ((t: Token) => Token)): void {
  const make = typeof token === 'function' ? token : (t: Token) => ({ ...token, tags: t.tags });
  payee.state = { ...payee.state, outgoing: payee.state.outgoing.map((t, i) => (i === at ? make(t) : t)) };
}

const bankToken = (value: bigint, bank = bankSigner) => signToken(bank, { serial: randomBytes(16), value, currency: 'EUR', issued: NOW });

/** The payer refuses the Msg 3-2 in flight: it keeps its log (released, the change unopened) and its state. */
async function payerRefuses32(f: Flight, code: string): Promise<void> {
  await f.until('3-2');
  await refusedUnchanged(f.payer, () => f.deliver(), code);
  const log = logOf(f.payer.state);
  assert.deepEqual([log.released, log.change?.done, log.change?.count], [1, 3, 3], 'released, every change token buffered, none opened');
  const { report } = await se(f.payer).call('settleReport', {});
  assert.deepEqual([report.body.released, report.body.change, report.body.amount], [1, 23n, 77n]);
}

describe('OPERA change: the payee gives change in the same mount', () => {
  it('the payer offers 1.00 for 0.77 and takes 0.23 back; both logs end empty', async () => {
    const [a, b] = await Promise.all([makeOdw('ch-a'), makeOdw('ch-b')]);
    await charge(a, [100n]);
    await charge(b, [20n, 2n, 1n]);
    const [paid, got] = assertPaid(await pay(a, b, 77n));
    assert.deepEqual([paid.ending, got.ending, paid.count], ['paid', 'paid', 1]);
    assert.deepEqual([await balance(a), await balance(b)], [23n, 100n]);
    for (const odw of [a, b]) assert.equal((await odw.se.call('status', {})).pending, undefined);
  });

  it('a payee that cannot make the change refuses it before any key goes out: OPERA_NO_CHANGE on both sides, nothing moves', async () => {
    const [a, b] = await Promise.all([makeOdw('nc-a'), makeOdw('nc-b')]);
    await charge(a, [100n]);
    await charge(b, [10n]);
    const outcomes = await pay(a, b, 77n);
    for (const o of outcomes) assert.ok(o instanceof Error && (o as { code?: string }).code === 'OPERA_NO_CHANGE', String(o));
    assert.deepEqual([await balance(a), await balance(b)], [100n, 10n]);
    for (const odw of [a, b]) assert.equal((await odw.se.call('status', {})).pending, undefined);
    await charge(b, [20n, 2n, 1n]);
    assertPaid(await pay(a, b, 77n));
    assert.deepEqual([await balance(a), await balance(b)], [23n, 110n]);
  });

  it('the payer asks for the change after its last token and releases PTK_A only when every change token arrived', async () => {
    const f = await changePayment('order');
    const seen: string[] = [];
    while (f.box !== undefined) {
      const m = f.message;
      seen.push('counter' in m ? `${m.msg}#${m.counter}` : m.msg);
      await f.deliver();
    }
    assert.deepEqual(seen, ['2-1', '2-2', '2-3#1', '2-4#1', '2-5', '2-6#1', '2-7#1', '2-6#2', '2-7#2', '2-6#3', '3-1#1', '3-2#1', 'fin']);
    assert.deepEqual([await balance(f.payer), await balance(f.payee)], [23n, 100n]);
  });
});

describe('OPERA change: a lying payee; the payer refuses the change and keeps its log', () => {
  it('change worth less than agreed', async () => {
    const f = await changePayment('less');
    await f.until('2-2');
    replaceChange(f.payee, 0, bankToken(10n));
    await payerRefuses32(f, 'OPERA_MESSAGE_INVALID');
  });

  it('change worth more than agreed', async () => {
    const f = await changePayment('more');
    await f.until('2-2');
    replaceChange(f.payee, 1, bankToken(5n));
    await payerRefuses32(f, 'OPERA_MESSAGE_INVALID');
  });

  it('a forged change token (not the bank signature)', async () => {
    const f = await changePayment('forged');
    await f.until('2-2');
    replaceChange(f.payee, 2, bankToken(1n, signer('opera-change/rogue-bank')));
    await payerRefuses32(f, 'OPERA_TOKEN_INVALID');
  });

  it('a change token the payer already holds', async () => {
    const f = await changePayment('repeated');
    await charge(f.payer, [20n]);
    await f.until('2-2');
    replaceChange(f.payee, 0, f.payer.state.repository.at(-1) as Token);
    await payerRefuses32(f, 'OPERA_TOKEN_REPEATED');
  });

  it('a change token without the escrow tag of this change', async () => {
    const f = await changePayment('untagged');
    await f.until('2-2');
    replaceChange(f.payee, 1, bare);
    await payerRefuses32(f, 'OPERA_TOKEN_INVALID');
  });

  it('a change token whose escrow chain leaves no room for its deposit', async () => {
    const f = await changePayment('full-chain');
    await f.until('2-2');
    replaceChange(f.payee, 2, (t) => ({ ...t, tags: Array.from({ length: PAYABLE_TAGS_MAX + 1 }, () => tagsOf(t)[0] as SealedTag) }));
    await payerRefuses32(f, 'OPERA_TOKEN_INVALID');
  });

  it('a wrong PTK_B in Msg 3-2', async () => {
    const f = await changePayment('ptk');
    await f.until('3-1');
    const log = logOf(f.payee.state);
    f.payee.state = { ...f.payee.state, log: { ...log, change: { ...(log.change as NonNullable<TxLog['change']>), ptk: randomBytes(32) } } };
    await payerRefuses32(f, 'AEAD_FAILED');
  });

  it('a Msg 3-2 without PTK_B', async () => {
    const f = await changePayment('no-ptk');
    await f.until('3-1');
    const key = f.payee.env.signer(TA_KEY_LABEL);
    const sn = odwSerial(key.publicKey);
    f.forge((_m, state) => ({ msg: '3-2', counter: 1, sn, signature: signRecord(key, ACCEPT_TAG, claimOf(logOf(state), sn)) }));
    await payerRefuses32(f, 'OPERA_MESSAGE_INVALID');
  });

  it('a Msg 2-2 without the change count, a change token out of order, a refusal of change after Stage 2 began: refused, and the payment still finishes', async () => {
    const f = await changePayment('order-lies');
    const noCount = f.forged((m) => ({ msg: '2-2', nonce: flipNonce(nonceOf(m)), received: 0, accepted: 0 }));
    await refusedUnchanged(f.payer, () => f.payer.call('step', { box: noCount }), 'OPERA_MESSAGE_INVALID');
    await f.until('2-5');
    const second = f.forged((m) => ({ msg: '2-6', counter: 2, token: randomBytes(80), nonce: flipNonce(nonceOf(m)) }));
    await refusedUnchanged(f.payer, () => f.payer.call('step', { box: second }), 'OPERA_MESSAGE_INVALID');
    await f.until('2-7', 1);
    const late = f.forged((m) => ({ msg: '2-2', nonce: flipNonce(nonceOf(m)), received: 0, accepted: 0, refused: 1 }));
    await refusedUnchanged(f.payer, () => f.payer.call('step', { box: late }), 'OPERA_MESSAGE_INVALID');
    await finishes(f, [23n, 100n]);
  });
});

describe('OPERA change: replays, Msg 3-1 before the change, and a payee that stops after PTK_A', () => {
  it('change messages replayed or taken out of order do not open under the chain, and the payment still finishes', async () => {
    const f = await changePayment('replay');
    await f.until('2-7', 1);
    const [taken, asked, token] = [f.delivered.at(-1), f.delivered.at(-2), f.delivered.at(-4)] as Uint8Array[];
    await refusedUnchanged(f.payer, () => f.payer.call('step', { box: taken }), 'AEAD_FAILED');
    await refusedUnchanged(f.payee, () => f.payee.call('step', { box: asked }), 'AEAD_FAILED');
    await refusedUnchanged(f.payee, () => f.payee.call('step', { box: token }), 'AEAD_FAILED');
    await finishes(f, [23n, 100n]);
  });

  it('a broken payer sending Msg 3-1 before the change arrived: the payee refuses and takes nothing', async () => {
    const f = await changePayment('early');
    await f.until('2-6', 1);
    const key = f.payer.env.signer(TA_KEY_LABEL);
    const sn = odwSerial(key.publicKey);
    const log = logOf(f.payer.state);
    const early = f.forged(() => ({ msg: '3-1', ptk: log.ptk as Uint8Array, counter: log.count, sn, signature: signRecord(key, RELEASE_TAG, claimOf(log, sn)) }));
    await refusedUnchanged(f.payee, () => f.payee.call('step', { box: early }), 'OPERA_MESSAGE_INVALID');
    assert.equal(logOf(f.payee.state).accepted, 0);
  });

  it('a payee that stops after taking PTK_A released PTK_B with it: the next mount gives it again and the payer takes the change', async () => {
    const f = await changePayment('stops');
    await f.until('3-1');
    await f.deliver();
    assert.deepEqual([logOf(f.payee.state).accepted, logOf(f.payer.state).released], [1, 1], 'the 3-2 in flight is lost');
    const again = await Flight.start(f.payer, f.payee, undefined);
    assert.deepEqual(again.mounted.plans, { payer: 'resume', payee: 'resume' });
    await finishes(again, [23n, 100n]);
    for (const odw of [f.payer, f.payee]) assert.equal(odw.state.log, undefined);
  });

  it('a payee that stops after taking PTK_A and settles online: the payer keeps its log for the bank rather than end without the change', async () => {
    const f = await changePayment('stops-online');
    await f.until('3-1');
    await f.deliver();
    const { report } = await se(f.payee).call('settleReport', {});
    assert.deepEqual([report.body.accepted, report.body.change, report.body.tokens.map((t) => t.body.value)], [1, 23n, [20n, 2n, 1n]]);
    const settled = signed(settledBodyCodec, bankSigner, SETTLED_TAG, { nonce: report.body.nonce, txid: report.body.txid, outcome: 'paid', credited: 0n });
    await f.payee.call('settleTake', { settled });
    assert.deepEqual([f.payee.state.log, await balance(f.payee)], [undefined, 100n]);
    await refused(Flight.start(f.payer, f.payee, undefined), 'OPERA_PENDING');
    const payer = (await se(f.payer).call('settleReport', {})).report.body;
    assert.deepEqual([payer.released, payer.change, payer.amount, payer.tokens.map((t) => t.body.value)], [1, 23n, 77n, [100n]]);
  });
});
