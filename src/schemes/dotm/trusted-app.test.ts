/**
 * The DOT-M trusted app by direct commands: the nine steps of §3.3.3 (R.request → P.pay → R.accept
 * → P.confirm → R.complete), with one block, several, and a block paid on; then every refusal by
 * its code, each leaving the wallet as it was (status and log equal before and after): forged α,
 * β, γ, records, presentations and notifications, the payer's intention, replays, passwords, the
 * per-block limit, a busy wallet; abandon, rollback, redeem, load and the node's ack.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { equalBytes } from '../../core/bytes.ts';
import { isTallyError } from '../../core/errors.ts';
import { signRecord, verifyRecord } from '../../core/crypto/record.ts';
import type { Signer } from '../../core/crypto/suite.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { certify, DAY, signer, T0 } from '../../pki/test-fixtures.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { appendRecord, blockTip, verifyBlock, type VerifyBlockOptions } from './block.ts';
import {
  ALPHA_TAG,
  alphaSigned,
  BETA_TAG,
  betaSigned,
  GAMMA_TAG,
  gammaSigned,
  NOTIFICATION_TAG,
  notificationDigest,
  notificationSigned,
  RECORD_TAG,
  recordSigned,
  RECORDS_PER_BLOCK_MAX,
  SUCCESS_TAG,
  successSigned,
  transactionDigest,
  type CurrencyBlock,
  type Notification,
  type SuccessNotice,
  type TransactionMessage,
  type TransactionRecord,
  type TransactionRequest,
} from './messages.ts';
import { EVENT_TAG, eventBodyWire, type WalletEvent } from './online.ts';
import { PASSWORD_TRIES_MAX } from './trusted-app.ts';
import { ack, issueBlock, makeWallet, mintBlock, NOW, PASSWORD, pki, refused, snapshot, type Wallet } from './ta-fixtures.ts';

const verifyOptions: VerifyBlockOptions = {
  provider: nodeProvider,
  centralBankKey: pki.root.publicKey,
  trustAnchors: [pki.rootCert],
  intermediaries: [pki.intermediaryCert],
  now: NOW,
  currency: 'EUR',
};

const request = (payee: Wallet, v: bigint) => payee.se.call('request', { v, now: NOW });

/** Steps 2–3 with the right password; the payer meant to pay `v` to `payee` when given. */
async function pay(payer: Wallet, lambda: TransactionRequest, expect: { v?: bigint; payee?: Uint8Array } = {}): Promise<TransactionMessage> {
  const out = await payer.se.call('pay', { request: lambda, password: PASSWORD, expect: { v: expect.v ?? lambda.v, payee: expect.payee }, now: NOW });
  assert.equal(out.kind, 'transaction');
  assert.ok(out.transaction !== undefined);
  return out.transaction;
}

/** The nine steps, in order. */
async function transfer(payer: Wallet, payee: Wallet, v: bigint) {
  const lambda = await request(payee, v);
  const sigma = await pay(payer, lambda, { payee: payee.userId });
  const notification = await payee.se.call('accept', { transaction: sigma, now: NOW });
  const success = await payer.se.call('confirm', { notification });
  const closed = await payee.se.call('complete', { success });
  return { lambda, sigma, notification, success, closed };
}

const balance = async (w: Wallet) => (await w.se.call('status', {})).balance;
const lastEvent = async (w: Wallet): Promise<WalletEvent> => {
  const { events } = await w.se.call('events', {});
  const last = events.at(-1);
  assert.ok(last !== undefined, `${w.name} has an event`);
  assert.ok(verifyRecord(nodeProvider, w.walletKey, EVENT_TAG, eventBodyWire(last.body), last.signature), 'the event is signed with wsk');
  return last;
};

/** What the payee holds after `sigma`: each block with its current record linked in (step 5). */
const copiesOf = (sigma: TransactionMessage): CurrencyBlock[] => sigma.tsd.blocks.map(({ block, current }) => appendRecord(block, current));

/** Step 8's message for `notification`, signed with `by` (wsk_P when genuine). */
function successBy(by: Signer, tsn: Uint8Array, notification: Uint8Array): SuccessNotice {
  const fields = { tsn, notification };
  return { ...fields, signature: signRecord(by, SUCCESS_TAG, successSigned(fields)) };
}

function flip(bytes: Uint8Array): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[0] = (out[0] as number) ^ 1;
  return out;
}

/**
 * σ as a payer whose SE is broken into would build it: any blocks, each current record signed
 * with its usk and linked to the block's tip, γ signed with its wsk.
 */
function forge(payer: Wallet, lambda: TransactionRequest, rows: readonly { block: CurrencyBlock; amount: bigint }[], payeeCert = lambda.ucertR, timestamp = NOW): TransactionMessage {
  const blocks = rows.map(({ block, amount }) => {
    const fields = { prev: blockTip(block), amount, timestamp, ucertP: payer.ucert, ucertR: payeeCert };
    return { block, current: { ...fields, signature: signRecord(payer.usk, RECORD_TAG, recordSigned(fields)) } };
  });
  const v = rows.reduce((s, r) => s + r.amount, 0n);
  const tsd = { tsn: lambda.tsn, v, nb: blocks.length, nd: blocks.reduce((n, b) => n + b.block.records.length, 0), blocks };
  return { tsd, gamma: signRecord(payer.wsk, GAMMA_TAG, gammaSigned(tsd)), wcertP: payer.wcert };
}

/** Two users outside any wallet, to carry a block through many records. */
const hops = ['xavier', 'yvonne'].map((name) => {
  const key = signer(`dotm-ta/user/${name}`);
  return { key, id: keyId(key.publicKey), cert: encodeCertificate(certify({ issuer: pki.intermediary, issuerRole: 'intermediary', role: 'user', subject: key, extensions: { currency: 'EUR' } })) };
}) as [{ key: Signer; id: Uint8Array; cert: Uint8Array }, { key: Signer; id: Uint8Array; cert: Uint8Array }];

/** A block carried through `records` records between the two users, the last paying `holder`. */
function carried(records: number, holder: Wallet, value = 50n): CurrencyBlock {
  let block = mintBlock(hops[0].id, value);
  for (let k = 0; k < records; k++) {
    const payer = hops[k % 2] as (typeof hops)[0];
    const payee = k === records - 1 ? holder.ucert : (hops[(k + 1) % 2] as (typeof hops)[0]).cert;
    const fields = { prev: blockTip(block), amount: value, timestamp: T0 + DAY + k, ucertP: payer.cert, ucertR: payee };
    block = appendRecord(block, { ...fields, signature: signRecord(payer.key, RECORD_TAG, recordSigned(fields)) });
  }
  return block;
}

/** Runs `call`, which the TA must refuse with `code`, and checks the wallet did not change. */
async function refusedUnchanged(w: Wallet, call: () => Promise<unknown>, code: string, what = code): Promise<void> {
  const before = await snapshot(w);
  await refused(call(), code, what);
  assert.deepEqual(await snapshot(w), before, `${what}: nothing changed`);
}

describe('DOT-M trusted app: the nine steps', () => {
  test('one block: balances move by v, the payee copy verifies, both logs hold the same notification', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    await issueBlock(alice, 100n);
    const { lambda, sigma, notification, success, closed } = await transfer(alice, bob, 30n);
    assert.equal(lambda.v, 30n);
    assert.equal(sigma.tsd.nb, 1);
    assert.equal(sigma.tsd.nd, 0);
    assert.deepEqual({ tsn: success.tsn, notification: success.notification }, { tsn: lambda.tsn, notification: notificationDigest(notification) });
    assert.ok(verifyRecord(nodeProvider, alice.walletKey, SUCCESS_TAG, successSigned(success), success.signature), 'step 8 signed with wsk_P');
    assert.deepEqual(closed, { tsn: lambda.tsn, amount: 30n, seq: 1 });
    assert.ok(verifyRecord(nodeProvider, bob.userKey, NOTIFICATION_TAG, notificationSigned(notification), notification.signature), 'signed with usk_R');
    assert.equal(await balance(alice), 70n);
    assert.equal(await balance(bob), 30n);

    const [copy] = copiesOf(sigma) as [CurrencyBlock];
    const verified = verifyBlock(copy, verifyOptions);
    assert.ok(equalBytes(verified.holder, bob.userId));
    assert.equal(verified.received, 30n);
    const bobs = await bob.se.call('status', {});
    assert.deepEqual(bobs.blocks, [{ serial: copy.presentation.serial, tip: blockTip(copy), value: 100n, remaining: 30n, count: 1, held: false }]);
    const alices = await alice.se.call('status', {});
    assert.deepEqual(alices.blocks.map((b) => [b.remaining, b.count, b.held]), [[70n, 0, false]]);

    const sent = await lastEvent(alice);
    const received = await lastEvent(bob);
    assert.equal(sent.body.kind, 'sent');
    assert.equal(received.body.kind, 'received');
    for (const e of [sent, received]) {
      assert.deepEqual(e.body.notification, notification);
      assert.deepEqual(e.body.tsn, lambda.tsn);
      assert.deepEqual(e.body.transaction, transactionDigest(sigma));
      assert.equal(e.body.amount, 30n);
      assert.deepEqual(e.body.parts, sigma.tsd.blocks);
    }
    // The log survives a reboot of the SE.
    const again = await bob.reopen();
    assert.deepEqual((await lastEvent(again)).body, received.body);
    assert.equal(await balance(again), 30n);
  });

  test('several blocks, all in full but the last, which pays in part; the payee takes each copy', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    await alice.se.call('load', { blocks: [mintBlock(alice.userId, 20n), mintBlock(alice.userId, 50n), mintBlock(alice.userId, 30n)], now: NOW });
    const { sigma } = await transfer(alice, bob, 70n);
    assert.deepEqual(sigma.tsd.blocks.map((b) => [b.block.presentation.value, b.current.amount]), [[50n, 50n], [30n, 20n]]);
    assert.equal(await balance(alice), 30n);
    assert.deepEqual((await alice.se.call('status', {})).blocks.map((b) => [b.value, b.remaining]), [[20n, 20n], [30n, 10n]]);
    assert.deepEqual((await bob.se.call('status', {})).blocks.map((b) => [b.value, b.remaining, b.count]), [[50n, 50n, 1], [30n, 20n, 1]]);
    for (const copy of copiesOf(sigma)) assert.ok(equalBytes(verifyBlock(copy, verifyOptions).holder, bob.userId));
    assert.equal(await balance(bob), 70n);
  });

  test('the received blocks are paid on to a third wallet: the records chain from the original owner', async () => {
    const [alice, bob, carol] = await Promise.all([makeWallet('alice'), makeWallet('bob'), makeWallet('carol')]);
    await issueBlock(alice, 100n);
    await transfer(alice, bob, 60n);
    const { sigma } = await transfer(bob, carol, 45n);
    const [copy] = copiesOf(sigma) as [CurrencyBlock];
    assert.equal(copy.records.length, 2);
    assert.deepEqual(copy.records.map((r) => r.amount), [60n, 45n]);
    assert.deepEqual(copy.records.map((r) => r.ucertP), [alice.ucert, bob.ucert]);
    assert.deepEqual(copy.records.map((r) => r.ucertR), [bob.ucert, carol.ucert]);
    assert.ok(equalBytes(verifyBlock(copy, verifyOptions).holder, carol.userId));
    assert.deepEqual([await balance(alice), await balance(bob), await balance(carol)], [40n, 15n, 45n]);
  });
});

describe('DOT-M trusted app: the payer refuses a forged λ (step 2), nothing changed', () => {
  test('α altered or signed by another user key; β altered, by another wallet key, or lifted from another request', async () => {
    const [alice, bob, carol] = await Promise.all([makeWallet('alice'), makeWallet('bob'), makeWallet('carol')]);
    await issueBlock(alice, 100n);
    const first = await request(bob, 10n);
    const lambda = await request(bob, 10n);
    const cases: [string, TransactionRequest][] = [
      ['α altered', { ...lambda, alpha: flip(lambda.alpha) }],
      ['α by another user key', { ...lambda, alpha: signRecord(carol.usk, ALPHA_TAG, alphaSigned(lambda)) }],
      ['α from another request', { ...lambda, alpha: first.alpha }],
      ['β altered', { ...lambda, beta: flip(lambda.beta) }],
      ['β by another wallet key', { ...lambda, beta: signRecord(carol.wsk, BETA_TAG, betaSigned(lambda)) }],
      ['β from another request for the same v (tsn swap)', { ...lambda, beta: first.beta }],
      ['another tsn under both signatures', { ...lambda, tsn: first.tsn }],
    ];
    for (const [what, forged] of cases) {
      await refusedUnchanged(alice, () => alice.se.call('pay', { request: forged, password: PASSWORD, expect: { v: 10n }, now: NOW }), 'SIGNATURE_INVALID', what);
    }
    // The genuine λ still pays.
    await pay(alice, lambda);
  });

  test("the payer's intention: another payee, another amount, its own user", async () => {
    const [alice, bob, carol] = await Promise.all([makeWallet('alice'), makeWallet('bob'), makeWallet('carol')]);
    await issueBlock(alice, 100n);
    const lambda = await request(bob, 10n);
    const payAs = (r: TransactionRequest, expect: { v: bigint; payee?: Uint8Array }) => () => alice.se.call('pay', { request: r, password: PASSWORD, expect, now: NOW });
    await refusedUnchanged(alice, payAs(lambda, { v: 10n, payee: carol.userId }), 'PAYEE_MISMATCH');
    await refusedUnchanged(alice, payAs(lambda, { v: 9n, payee: bob.userId }), 'AMOUNT_MISMATCH');
    await refusedUnchanged(alice, payAs(await request(alice, 10n), { v: 10n }), 'PAYEE_MISMATCH', 'paying its own request');
    await refusedUnchanged(alice, payAs(await request(bob, 101n), { v: 101n }), 'INSUFFICIENT_FUNDS');
  });
});

describe('DOT-M trusted app: the payee refuses a forged σ (step 4), nothing changed', () => {
  test('γ forged or over an altered tsd; the genuine σ is still accepted after', async () => {
    const [alice, bob, carol] = await Promise.all([makeWallet('alice'), makeWallet('bob'), makeWallet('carol')]);
    await issueBlock(alice, 100n);
    const lambda = await request(bob, 25n);
    const sigma = await pay(alice, lambda);
    const row = sigma.tsd.blocks[0] as { block: CurrencyBlock; current: TransactionRecord };
    const cases: [string, TransactionMessage][] = [
      ['γ altered', { ...sigma, gamma: flip(sigma.gamma) }],
      ['γ by another wallet key', { ...sigma, gamma: signRecord(carol.wsk, GAMMA_TAG, gammaSigned(sigma.tsd)) }],
      ['tsd altered under γ', { ...sigma, tsd: { ...sigma.tsd, blocks: [{ ...row, current: { ...row.current, timestamp: NOW - 1 } }] } }],
    ];
    for (const [what, forged] of cases) await refusedUnchanged(bob, () => bob.se.call('accept', { transaction: forged, now: NOW }), 'SIGNATURE_INVALID', what);
    // Another wallet certificate than the one of the user who signed the records.
    await refusedUnchanged(bob, () => bob.se.call('accept', { transaction: { ...sigma, wcertP: carol.wcert }, now: NOW }), 'CERT_MISMATCH', 'wcert of another user');
    await bob.se.call('accept', { transaction: sigma, now: NOW });
    assert.equal(await balance(bob), 25n);
  });

  test('a record altered anywhere in a chain (amount, timestamp, prev, ucert_R), even re-signed by the payer, is refused', async () => {
    const [alice, bob, carol] = await Promise.all([makeWallet('alice'), makeWallet('bob'), makeWallet('carol')]);
    await issueBlock(alice, 100n);
    const { sigma: toBob } = await transfer(alice, bob, 60n);
    const { sigma: toCarol } = await transfer(bob, carol, 40n);
    const [copy] = copiesOf(toCarol) as [CurrencyBlock];
    assert.equal(copy.records.length, 2);
    assert.ok(equalBytes(blockTip(copiesOf(toBob)[0] as CurrencyBlock), copy.records[1]?.prev ?? new Uint8Array()));

    // Carol, her SE broken into, pays Alice with records earlier than her own altered.
    const lambda = await request(alice, 30n);
    const withRecord = (k: number, change: Partial<TransactionRecord>): CurrencyBlock => ({ ...copy, records: copy.records.map((r, i) => (i === k ? { ...r, ...change } : r)) });
    for (const k of [0, 1]) {
      const r = copy.records[k] as TransactionRecord;
      const changes: [string, Partial<TransactionRecord>, string][] = [
        ['amount', { amount: r.amount + 1n }, 'SIGNATURE_INVALID'],
        // Earlier or later, but still in order with its neighbours.
        ['timestamp', { timestamp: k === 0 ? r.timestamp - 1 : r.timestamp + 1 }, 'SIGNATURE_INVALID'],
        ['prev', { prev: new Uint8Array(32).fill(9) }, 'PAYMENT_INVALID'],
        ['ucertR', { ucertR: k === 0 ? carol.ucert : alice.ucert }, 'SIGNATURE_INVALID'],
      ];
      for (const [field, change, code] of changes) {
        const forged = forge(carol, lambda, [{ block: withRecord(k, change), amount: 30n }], lambda.ucertR, NOW + 1_000);
        await refusedUnchanged(alice, () => alice.se.call('accept', { transaction: forged, now: NOW }), code, `record ${k} ${field}`);
      }
    }
    // The presentation: its value raised, or signed by a key that is not the central bank's.
    const raised = { ...copy, presentation: { ...copy.presentation, value: 1000n } };
    await refusedUnchanged(alice, () => alice.se.call('accept', { transaction: forge(carol, lambda, [{ block: raised, amount: 30n }]), now: NOW }), 'SIGNATURE_INVALID', 'presentation value');
    const counterfeit = mintBlock(carol.userId, 30n, signer('not the central bank'));
    await refusedUnchanged(alice, () => alice.se.call('accept', { transaction: forge(carol, lambda, [{ block: counterfeit, amount: 30n }]), now: NOW }), 'SIGNATURE_INVALID', 'counterfeit block');
    // More than the copy holds.
    await refusedUnchanged(alice, () => alice.se.call('accept', { transaction: forge(carol, { ...lambda, v: 41n }, [{ block: copy, amount: 41n }]), now: NOW }), 'AMOUNT_MISMATCH');
    // The same forgery, unaltered, is what a genuine σ looks like: Alice takes it.
    await alice.se.call('accept', { transaction: forge(carol, lambda, [{ block: copy, amount: 30n }]), now: NOW });
    assert.equal(await balance(alice), 70n);
  });

  test('σ for another payee, replayed after complete, or whose records pay someone else', async () => {
    const [alice, bob, carol] = await Promise.all([makeWallet('alice'), makeWallet('bob'), makeWallet('carol')]);
    await issueBlock(alice, 100n);
    await request(carol, 20n);
    const { sigma, lambda } = await transfer(alice, bob, 20n);
    await refusedUnchanged(carol, () => carol.se.call('accept', { transaction: sigma, now: NOW }), 'TRANSACTION_UNKNOWN', "σ for Bob's request");
    await refusedUnchanged(bob, () => bob.se.call('accept', { transaction: sigma, now: NOW }), 'TRANSACTION_UNKNOWN', 'replayed after complete');
    await request(bob, 20n);
    await refusedUnchanged(bob, () => bob.se.call('accept', { transaction: sigma, now: NOW }), 'TRANSACTION_UNKNOWN', 'replayed to a new request');
    // A σ naming Carol's tsn whose current record pays Bob.
    const carols = await request(carol, 20n);
    const [bobsCopy] = copiesOf(sigma) as [CurrencyBlock];
    const misdirected = forge(bob, carols, [{ block: bobsCopy, amount: 20n }], alice.ucert);
    await refusedUnchanged(carol, () => carol.se.call('accept', { transaction: misdirected, now: NOW }), 'PAYEE_MISMATCH');
    assert.deepEqual(lambda.ucertR, bob.ucert);
    assert.deepEqual([await balance(alice), await balance(bob), await balance(carol)], [80n, 20n, 0n]);
  });
});

describe('DOT-M trusted app: the payment password', () => {
  test('a wrong password is answered, counted and kept; a right one before the limit resets the count', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    await issueBlock(alice, 100n);
    const lambda = await request(bob, 10n);
    const before = await alice.se.call('status', {});
    const wrong = () => alice.se.call('pay', { request: lambda, password: '0000', expect: { v: 10n }, now: NOW });
    for (const left of [4, 3]) {
      assert.deepEqual(await wrong(), { kind: 'wrong-password', triesLeft: left });
      assert.deepEqual(await alice.se.call('status', {}), { ...before, triesLeft: left });
    }
    const reopened = await alice.reopen();
    assert.equal((await reopened.se.call('status', {})).triesLeft, 3, 'the count is in the sealed state');
    const out = await reopened.se.call('pay', { request: lambda, password: PASSWORD, expect: { v: 10n }, now: NOW });
    assert.equal(out.kind, 'transaction');
    assert.equal(out.triesLeft, PASSWORD_TRIES_MAX);
    assert.equal((await reopened.se.call('status', {})).triesLeft, PASSWORD_TRIES_MAX);
  });

  test(`after ${PASSWORD_TRIES_MAX} wrong ones the wallet is locked, even for the right one`, async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    await issueBlock(alice, 100n);
    const lambda = await request(bob, 10n);
    for (let k = 1; k <= PASSWORD_TRIES_MAX; k++) {
      const out = await alice.se.call('pay', { request: lambda, password: `wrong${k}`, expect: { v: 10n }, now: NOW });
      assert.deepEqual(out, { kind: 'wrong-password', triesLeft: PASSWORD_TRIES_MAX - k });
    }
    await refusedUnchanged(alice, () => alice.se.call('pay', { request: lambda, password: PASSWORD, expect: { v: 10n }, now: NOW }), 'PASSWORD_LOCKED');
    await refusedUnchanged(alice, () => alice.se.call('setPassword', { password: '5678', old: PASSWORD }), 'PASSWORD_LOCKED');
    assert.equal((await alice.se.call('status', {})).triesLeft, 0);
  });

  test('redeem needs pwd: a wrong one is counted and gives nothing up; a locked wallet redeems nothing, even with the right one', async () => {
    const alice = await makeWallet('alice');
    await issueBlock(alice, 100n);
    const before = await alice.se.call('status', {});
    for (let k = 1; k <= PASSWORD_TRIES_MAX; k++) {
      assert.deepEqual(await alice.se.call('redeem', { amount: 60n, password: `wrong${k}`, now: NOW }), { kind: 'wrong-password', triesLeft: PASSWORD_TRIES_MAX - k });
      assert.deepEqual(await alice.se.call('status', {}), { ...before, triesLeft: PASSWORD_TRIES_MAX - k }, 'nothing given up');
    }
    await refusedUnchanged(alice, () => alice.se.call('redeem', { amount: 60n, password: PASSWORD, now: NOW }), 'PASSWORD_LOCKED');
    await refusedUnchanged(alice, () => alice.se.call('checkPassword', { password: PASSWORD }), 'PASSWORD_LOCKED');
    const after = await alice.se.call('status', {});
    assert.equal(after.balance, 100n);
    assert.equal(after.unsyncedEvents, 0, 'no redemption event for the node to credit');
  });

  test('checkPassword proves pwd and moves nothing; a wrong one counts as a try, the right one leaves the count', async () => {
    const alice = await makeWallet('alice');
    await issueBlock(alice, 100n);
    const before = await alice.se.call('status', {});
    assert.deepEqual(await alice.se.call('checkPassword', { password: 'nope' }), { right: false, triesLeft: PASSWORD_TRIES_MAX - 1 });
    assert.deepEqual(await alice.se.call('checkPassword', { password: PASSWORD }), { right: true, triesLeft: PASSWORD_TRIES_MAX - 1 });
    assert.deepEqual(await alice.se.call('status', {}), { ...before, triesLeft: PASSWORD_TRIES_MAX - 1 });
    // A redemption with pwd resets it.
    assert.equal((await alice.se.call('redeem', { amount: 1n, password: PASSWORD, now: NOW })).triesLeft, PASSWORD_TRIES_MAX);
    assert.equal((await alice.se.call('status', {})).triesLeft, PASSWORD_TRIES_MAX);
  });
});

describe(`DOT-M trusted app: the limit of ${RECORDS_PER_BLOCK_MAX} records per block`, () => {
  test('a block at the limit is passed over for payment, and a σ carrying one is refused', async () => {
    const [payer, wallet, bob] = await Promise.all([makeWallet('payer'), makeWallet('wallet'), makeWallet('bob')]);
    // The wallet receives a block whose last allowed record pays it.
    const lambda = await request(wallet, 50n);
    const full = forge(payer, lambda, [{ block: carried(RECORDS_PER_BLOCK_MAX - 1, payer), amount: 50n }]);
    const notification = await wallet.se.call('accept', { transaction: full, now: NOW });
    await wallet.se.call('complete', { success: successBy(payer.wsk, lambda.tsn, notificationDigest(notification)) });
    assert.deepEqual((await wallet.se.call('status', {})).blocks.map((b) => [b.count, b.remaining]), [[RECORDS_PER_BLOCK_MAX, 50n]]);

    // Alone, it pays nothing: the payment is refused and the wallet unchanged.
    const before = await snapshot(wallet);
    const alone = await request(bob, 5n);
    await assert.rejects(wallet.se.call('pay', { request: alone, password: PASSWORD, expect: { v: 5n }, now: NOW }), (e: unknown) => isTallyError(e, 'SE_REJECTED') && e.details.reason === 'LIMIT_REACHED');
    assert.deepEqual(await snapshot(wallet), before);
    // With another block at hand, the one at the limit is not chosen, though it holds more.
    const fresh = await issueBlock(wallet, 10n);
    const sigma = await pay(wallet, await request(bob, 5n));
    assert.deepEqual(sigma.tsd.blocks.map((b) => b.block.presentation.serial), [fresh.presentation.serial]);
    await wallet.se.call('abandon', {});

    // A σ whose block already has the most records: linking one more is too many (it must go online).
    // Its n_d (RECORDS_PER_BLOCK_MAX) is past RECORDS_PER_PAYMENT_MAX, so σ is refused as it is decoded.
    const lambdaBob = await request(bob, 50n);
    const tooLong = forge(payer, lambdaBob, [{ block: carried(RECORDS_PER_BLOCK_MAX, payer), amount: 50n }]);
    const bobBefore = await snapshot(bob);
    await assert.rejects(bob.se.call('accept', { transaction: tooLong, now: NOW }), (e: unknown) => {
      assert.ok(isTallyError(e, 'DECODE_FAILED') && e.details.path.endsWith('tsd.nd'), String(e));
      assert.ok(e.message.includes(`got integer ${RECORDS_PER_BLOCK_MAX}`), e.message);
      return true;
    });
    assert.deepEqual(await snapshot(bob), bobBefore);
    // And the same block can take no record in the payee's own hands either (appendRecord's limit).
    assert.throws(() => appendRecord(carried(RECORDS_PER_BLOCK_MAX, payer), carried(1, payer).records[0] as TransactionRecord), (e: unknown) => isTallyError(e, 'TOO_LARGE'));
  });
});

describe('DOT-M trusted app: after σ (steps 7 and 9)', () => {
  test('a forged notification, or one for another σ, is refused and the offer stays open; the genuine one confirms', async () => {
    const [alice, bob, carol] = await Promise.all([makeWallet('alice'), makeWallet('bob'), makeWallet('carol')]);
    await issueBlock(alice, 100n);
    const lambda = await request(bob, 15n);
    const sigma = await pay(alice, lambda);
    const notification = await bob.se.call('accept', { transaction: sigma, now: NOW });
    const fields = { tsn: notification.tsn, transaction: notification.transaction };
    const cases: [string, Notification, string][] = [
      ['signature altered', { ...notification, signature: flip(notification.signature) }, 'SIGNATURE_INVALID'],
      ['signed by another user', { ...fields, signature: signRecord(carol.usk, NOTIFICATION_TAG, notificationSigned(fields)) }, 'SIGNATURE_INVALID'],
      ['signed by the payee wallet key, not usk_R', { ...fields, signature: signRecord(bob.wsk, NOTIFICATION_TAG, notificationSigned(fields)) }, 'SIGNATURE_INVALID'],
      ['for another σ', { ...notification, transaction: flip(notification.transaction) }, 'NOTIFICATION_INVALID'],
      ['for another tsn', { ...notification, tsn: flip(notification.tsn) }, 'NOTIFICATION_INVALID'],
    ];
    for (const [what, forged, code] of cases) await refusedUnchanged(alice, () => alice.se.call('confirm', { notification: forged }), code, what);
    const open = await alice.se.call('status', {});
    assert.deepEqual(open.offer, lambda.tsn);
    assert.ok(open.blocks.every((b) => b.held));
    assert.equal(open.balance, 100n, 'nothing deducted before step 7');

    // Step 9 refuses a success message for another notification.
    await refusedUnchanged(bob, () => bob.se.call('complete', { success: successBy(alice.wsk, lambda.tsn, new Uint8Array(32)) }), 'SUCCESS_INVALID');
    const success = await alice.se.call('confirm', { notification });
    await refusedUnchanged(alice, () => alice.se.call('confirm', { notification }), 'TRANSACTION_UNKNOWN', 'confirmed twice');
    await bob.se.call('complete', { success });
    assert.deepEqual([await balance(alice), await balance(bob)], [85n, 15n]);
  });

  test('step 8: a success message that wsk_P did not sign, or signed for another payment, is refused and changes nothing', async () => {
    const [alice, bob, carol] = await Promise.all([makeWallet('alice'), makeWallet('bob'), makeWallet('carol')]);
    await issueBlock(alice, 100n);
    // An earlier payment alice → bob, whose genuine success message the payee's app keeps.
    const earlier = await transfer(alice, bob, 5n);
    // Alice pays again, bob accepts (step 5), and alice withdraws her offer: no notification reached her.
    const lambda = await request(bob, 20n);
    const sigma = await pay(alice, lambda);
    const notification = await bob.se.call('accept', { transaction: sigma, now: NOW });
    await alice.se.call('abandon', {});
    const digest = notificationDigest(notification);
    const unsigned = { tsn: lambda.tsn, notification: digest };
    const cases: [string, SuccessNotice, string][] = [
      // What the payee's untrusted app could always make from its own notification.
      ['made by the payee app, with a copied signature', { ...unsigned, signature: earlier.success.signature }, 'SIGNATURE_INVALID'],
      ['made by the payee app, with random bytes', { ...unsigned, signature: new Uint8Array(64).fill(7) }, 'SIGNATURE_INVALID'],
      ['signed by the payee wallet key', successBy(bob.wsk, lambda.tsn, digest), 'SIGNATURE_INVALID'],
      ['signed by the payee user key', successBy(bob.usk, lambda.tsn, digest), 'SIGNATURE_INVALID'],
      ['signed by the payer user key, not wsk_P', successBy(alice.usk, lambda.tsn, digest), 'SIGNATURE_INVALID'],
      ['signed by a third wallet', successBy(carol.wsk, lambda.tsn, digest), 'SIGNATURE_INVALID'],
      ['the genuine signature, altered', { ...successBy(alice.wsk, lambda.tsn, digest), signature: flip(successBy(alice.wsk, lambda.tsn, digest).signature) }, 'SIGNATURE_INVALID'],
      ['replayed from the earlier payment', earlier.success, 'SUCCESS_INVALID'],
      ['signed by wsk_P for another notification', successBy(alice.wsk, lambda.tsn, earlier.success.notification), 'SUCCESS_INVALID'],
      ['signed by wsk_P for another tsn', successBy(alice.wsk, earlier.lambda.tsn, digest), 'SUCCESS_INVALID'],
    ];
    for (const [what, forged, code] of cases) await refusedUnchanged(bob, () => bob.se.call('complete', { success: forged }), code, what);
    assert.deepEqual((await bob.se.call('status', {})).receiving, lambda.tsn, 'the payment stays open');
    // Step 9 without a success: the withdrawn payment is rolled back; neither side moved value.
    await bob.se.call('rollback', {});
    assert.deepEqual([await balance(alice), await balance(bob)], [95n, 5n]);
  });

  test('abandon releases the held blocks; rollback removes the received copies', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    await issueBlock(alice, 100n);
    const lambda = await request(bob, 40n);
    const sigma = await pay(alice, lambda);
    assert.deepEqual((await alice.se.call('status', {})).blocks.map((b) => b.held), [true]);
    await bob.se.call('accept', { transaction: sigma, now: NOW });
    const receiving = await bob.se.call('status', {});
    assert.deepEqual(receiving.receiving, lambda.tsn);
    assert.equal(receiving.balance, 40n);

    assert.deepEqual(await alice.se.call('abandon', {}), { tsn: lambda.tsn, amount: 40n, seq: 1 });
    const released = await alice.se.call('status', {});
    assert.equal(released.offer, undefined);
    assert.deepEqual(released.blocks.map((b) => [b.remaining, b.held]), [[100n, false]]);
    const abandoned = await lastEvent(alice);
    assert.equal(abandoned.body.kind, 'abandoned');
    assert.equal(abandoned.body.notification, undefined);
    await refused(alice.se.call('abandon', {}), 'TRANSACTION_UNKNOWN');

    assert.deepEqual(await bob.se.call('rollback', {}), { tsn: lambda.tsn, amount: 40n, seq: 1 });
    const rolled = await bob.se.call('status', {});
    assert.deepEqual([rolled.balance, rolled.blocks, rolled.receiving], [0n, [], undefined]);
    const event = await lastEvent(bob);
    assert.equal(event.body.kind, 'rolled-back');
    assert.deepEqual(event.body.tsn, lambda.tsn);
    await refused(bob.se.call('rollback', {}), 'TRANSACTION_UNKNOWN');
    await refused(bob.se.call('complete', { success: successBy(alice.wsk, lambda.tsn, new Uint8Array(32)) }), 'TRANSACTION_UNKNOWN');
    // Alice's blocks pay again.
    await transfer(alice, bob, 40n);
    assert.deepEqual([await balance(alice), await balance(bob)], [60n, 40n]);
  });

  test('WALLET_BUSY while an offer or a received transaction is open', async () => {
    const [alice, bob, carol] = await Promise.all([makeWallet('alice'), makeWallet('bob'), makeWallet('carol')]);
    await issueBlock(alice, 100n);
    await issueBlock(bob, 100n);
    const lambda = await request(bob, 10n);
    const sigma = await pay(alice, lambda);
    const carols = await request(carol, 10n);
    await refusedUnchanged(alice, () => request(alice, 5n), 'WALLET_BUSY', 'request with an offer open');
    await refusedUnchanged(alice, () => alice.se.call('pay', { request: carols, password: PASSWORD, expect: { v: 10n }, now: NOW }), 'WALLET_BUSY', 'pay with an offer open');
    await refusedUnchanged(alice, () => alice.se.call('redeem', { amount: 5n, password: PASSWORD, now: NOW }), 'WALLET_BUSY', 'redeem with an offer open');
    await bob.se.call('accept', { transaction: sigma, now: NOW });
    await refusedUnchanged(bob, () => request(bob, 5n), 'WALLET_BUSY', 'request while receiving');
    await refusedUnchanged(bob, () => bob.se.call('pay', { request: carols, password: PASSWORD, expect: { v: 10n }, now: NOW }), 'WALLET_BUSY', 'pay while receiving');
    await refusedUnchanged(bob, () => bob.se.call('redeem', { amount: 5n, password: PASSWORD, now: NOW }), 'WALLET_BUSY', 'redeem while receiving');
  });
});

describe('DOT-M trusted app: load, redeem, events and ack', () => {
  test('load refuses a block of another user, one not signed by the central bank, and the same block twice', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    const block = await issueBlock(alice, 100n);
    await refusedUnchanged(alice, () => alice.se.call('load', { blocks: [mintBlock(bob.userId, 10n)], now: NOW }), 'BLOCK_INVALID', "Bob's block");
    await refusedUnchanged(alice, () => alice.se.call('load', { blocks: [mintBlock(alice.userId, 10n, signer('not the central bank'))], now: NOW }), 'SIGNATURE_INVALID', 'counterfeit');
    await refusedUnchanged(alice, () => alice.se.call('load', { blocks: [block], now: NOW }), 'BLOCK_DUPLICATE');
    const pair = mintBlock(alice.userId, 5n);
    await refusedUnchanged(alice, () => alice.se.call('load', { blocks: [pair, pair], now: NOW }), 'BLOCK_DUPLICATE', 'twice in one load');
    assert.equal(await balance(alice), 100n);
  });

  test('redeem takes the largest blocks first, the last in part, and leaves the rest', async () => {
    const alice = await makeWallet('alice');
    const [twenty, fifty, thirty] = [mintBlock(alice.userId, 20n), mintBlock(alice.userId, 50n), mintBlock(alice.userId, 30n)];
    await alice.se.call('load', { blocks: [twenty, fifty, thirty], now: NOW });
    await refusedUnchanged(alice, () => alice.se.call('redeem', { amount: 101n, password: PASSWORD, now: NOW }), 'INSUFFICIENT_FUNDS');
    const out = await alice.se.call('redeem', { amount: 60n, password: PASSWORD, now: NOW });
    assert.equal(out.amount, 60n);
    const event = await lastEvent(alice);
    assert.equal(event.body.kind, 'redeemed');
    assert.deepEqual(event.body.parts.map((p) => [p.block.presentation.serial, p.block.remaining, p.current]), [
      [fifty.presentation.serial, 50n, undefined],
      [thirty.presentation.serial, 10n, undefined],
    ]);
    const left = await alice.se.call('status', {});
    assert.equal(left.balance, 40n);
    assert.deepEqual(left.blocks.map((b) => [b.serial, b.remaining]), [[twenty.presentation.serial, 20n], [thirty.presentation.serial, 20n]]);
  });

  test('the node ack clears the events it took; a forged ack, one for another wallet or beyond the last event is refused', async () => {
    const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
    await issueBlock(alice, 100n);
    await transfer(alice, bob, 10n);
    await alice.se.call('redeem', { amount: 5n, password: PASSWORD, now: NOW });
    assert.deepEqual((await alice.se.call('events', {})).events.map((e) => [e.body.seq, e.body.kind]), [[1, 'sent'], [2, 'redeemed']]);
    await refusedUnchanged(alice, () => alice.se.call('ack', { ack: ack(alice, 2, signer('not the issuer node')) }), 'ACK_INVALID', 'forged');
    const genuine = ack(alice, 1);
    await refusedUnchanged(alice, () => alice.se.call('ack', { ack: { ...genuine, body: { ...genuine.body, upTo: 2 } } }), 'ACK_INVALID', 'altered');
    await refusedUnchanged(alice, () => alice.se.call('ack', { ack: ack(bob, 1) }), 'ACK_INVALID', 'for another wallet');
    await refusedUnchanged(alice, () => alice.se.call('ack', { ack: ack(alice, 3) }), 'ACK_INVALID', 'beyond the last event');
    assert.deepEqual(await alice.se.call('ack', { ack: genuine }), { cleared: 1 });
    assert.deepEqual((await alice.se.call('events', {})).events.map((e) => e.body.seq), [2]);
    assert.deepEqual(await alice.se.call('ack', { ack: ack(alice, 2) }), { cleared: 1 });
    const status = await alice.se.call('status', {});
    assert.equal(status.unsyncedEvents, 0);
    // The numbering goes on after the ack.
    await alice.se.call('redeem', { amount: 5n, password: PASSWORD, now: NOW });
    assert.deepEqual((await alice.se.call('events', {})).events.map((e) => e.body.seq), [3]);
  });
});
