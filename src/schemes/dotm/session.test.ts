/**
 * The DOT-M session (§3.3.3 over a live link, session.ts) between wallets whose roles are their
 * trusted apps' commands: in memory and over TCP + Noise. Refusals on either side, the link cut
 * after each message, and each side's step timeout; afterwards either both sides completed, or
 * nothing changed on either, or exactly the shape of exceptional situations 3 and 5 (§3.3.5): the
 * payer paid, the payee rolled back, both logs hold the evidence. Value is conserved throughout.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isTallyError, type ErrorCode } from '../../core/errors.ts';
import { framed } from '../../channel/frame.ts';
import { injectFaults } from '../../channel/faults.ts';
import { openLink, type Link } from '../../channel/link.ts';
import { memoryPair as memoryStreams } from '../../channel/memory.ts';
import { openSecureLink } from '../../channel/secure-link.ts';
import { connectTcp, listenTcp } from '../../channel/tcp.ts';
import { notificationDigest, type TransactionMessage } from './messages.ts';
import { DOTM_LINK_PROLOGUE, runPayee, runPayer, type PayeeRole, type PayerRole } from './session.ts';
import { issueBlock, makeWallet, memoryPair, NOW, PASSWORD, type Wallet } from './ta-fixtures.ts';

/** Short waits: every step here answers at once unless it is meant to time out. */
const STEP_MS = 2_000;
const SHORT_MS = 80;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The payer's TA as the session uses it; `tamper` changes σ after the TA built it. */
function payerRole(w: Wallet, options: { tamper?: (t: TransactionMessage) => TransactionMessage; confirmDelayMs?: number } = {}): PayerRole {
  return {
    async pay(request) {
      const out = await w.se.call('pay', { request, password: PASSWORD, expect: { v: request.v }, now: NOW });
      assert.equal(out.kind, 'transaction');
      assert.ok(out.transaction !== undefined);
      return options.tamper?.(out.transaction) ?? out.transaction;
    },
    async confirm(notification) {
      if (options.confirmDelayMs !== undefined) await sleep(options.confirmDelayMs);
      return w.se.call('confirm', { notification });
    },
    async abandon() {
      await w.se.call('abandon', {});
    },
  };
}

/** The payee's TA as the session uses it, asking for `v`. */
function payeeRole(w: Wallet, v: bigint, options: { acceptDelayMs?: number } = {}): PayeeRole {
  return {
    request: () => w.se.call('request', { v, now: NOW }),
    async accept(transaction) {
      if (options.acceptDelayMs !== undefined) await sleep(options.acceptDelayMs);
      return w.se.call('accept', { transaction, now: NOW });
    },
    async complete(success) {
      await w.se.call('complete', { success });
    },
    async rollback() {
      await w.se.call('rollback', {});
    },
  };
}

/** Runs both sides over the two links to the end, then closes them. */
async function session(links: [Link, Link], payer: PayerRole, payee: PayeeRole, stepTimeoutMs = STEP_MS) {
  const [payerLink, payeeLink] = links;
  const [p, r] = await Promise.allSettled([runPayer(payerLink, payer, { stepTimeoutMs }), runPayee(payeeLink, payee, { stepTimeoutMs })]);
  payerLink.close();
  payeeLink.close();
  return { payer: p, payee: r };
}

function rejectedWith(result: PromiseSettledResult<unknown>, code: ErrorCode, what: string = code): unknown {
  assert.equal(result.status, 'rejected', `${what}: expected ${code}, got a result`);
  const reason: unknown = (result as PromiseRejectedResult).reason;
  assert.ok(isTallyError(reason, code), `${what}: expected ${code}, got ${String(reason)}`);
  return reason;
}

function fulfilled<T>(result: PromiseSettledResult<T>, what = 'result'): T {
  if (result.status === 'rejected') assert.fail(`${what}: expected a result, got ${String(result.reason)}`);
  return result.value;
}

/** What a wallet holds: unchanged when nothing happened (the log may have grown). */
async function holdings(w: Wallet) {
  const s = await w.se.call('status', {});
  return { balance: s.balance, blocks: s.blocks, offer: s.offer, receiving: s.receiving };
}

const eventsOf = async (w: Wallet) => (await w.se.call('events', {})).events;

/** Alice holds 100 in one block; Bob nothing. */
async function parties() {
  const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
  await issueBlock(alice, 100n);
  return { alice, bob };
}

type Shape = 'nothing' | 'situation-5' | 'completed';

/** Which shape the two wallets are in after a session for `v`, given what they held and logged before. */
async function shapeOf(alice: Wallet, bob: Wallet, v: bigint, before: { alice: Awaited<ReturnType<typeof holdings>>; bob: Awaited<ReturnType<typeof holdings>>; aliceEvents: number; bobEvents: number }): Promise<Shape> {
  const [a, b] = [await holdings(alice), await holdings(bob)];
  assert.equal(a.offer, undefined, 'no offer left open');
  assert.equal(b.receiving, undefined, 'no received transaction left open');
  const newA = (await eventsOf(alice)).slice(before.aliceEvents);
  const newB = (await eventsOf(bob)).slice(before.bobEvents);
  const kinds = [newA.map((e) => e.body.kind).join(','), newB.map((e) => e.body.kind).join(',')];
  if (a.balance === before.alice.balance) {
    assert.deepEqual(a, before.alice, 'the payer holds what it held');
    assert.deepEqual(b, before.bob, 'the payee holds what it held');
    assert.ok(['', 'abandoned'].includes(kinds[0] as string), `payer log: ${kinds[0]}`);
    assert.ok(['', 'rolled-back'].includes(kinds[1] as string), `payee log: ${kinds[1]}`);
    return 'nothing';
  }
  assert.equal(a.balance, before.alice.balance - v);
  const [sent] = newA;
  const [closed] = newB;
  assert.ok(sent !== undefined && closed !== undefined && newA.length === 1 && newB.length === 1, `logs: ${kinds.join(' / ')}`);
  assert.equal(sent.body.kind, 'sent');
  assert.deepEqual(sent.body.tsn, closed.body.tsn, 'both logs name the same tsn');
  assert.deepEqual(sent.body.transaction, closed.body.transaction, 'both logs name the same σ');
  if (closed.body.kind === 'received') {
    assert.equal(b.balance, before.bob.balance + v);
    assert.deepEqual(closed.body.notification, sent.body.notification, 'the same notification');
    return 'completed';
  }
  // Exceptional situations 3 and 5: the payer holds R's notification, R has undone step 5.
  assert.equal(closed.body.kind, 'rolled-back');
  assert.deepEqual(b, before.bob, 'the payee holds what it held');
  assert.ok(sent.body.notification !== undefined && sent.body.notification.tsn.length > 0, "the payer's log holds R's signed notification");
  return 'situation-5';
}

async function beforeOf(alice: Wallet, bob: Wallet) {
  return { alice: await holdings(alice), bob: await holdings(bob), aliceEvents: (await eventsOf(alice)).length, bobEvents: (await eventsOf(bob)).length };
}

describe('DOT-M session over a memory link', () => {
  test('the nine steps end to end: both complete, v moves, both logs hold the same notification', async () => {
    const { alice, bob } = await parties();
    const before = await beforeOf(alice, bob);
    const result = await session(memoryPair(), payerRole(alice), payeeRole(bob, 30n));
    const paid = fulfilled(result.payer, 'payer');
    const received = fulfilled(result.payee, 'payee');
    assert.equal(received.status, 'completed');
    assert.deepEqual(received.transaction, paid.transaction);
    assert.deepEqual(paid.request.tsn, paid.success.tsn);
    assert.equal(await shapeOf(alice, bob, 30n, before), 'completed');
    const [sent] = await eventsOf(alice);
    assert.deepEqual(paid.success.notification, notificationDigest(sent?.body.notification ?? assert.fail('a notification')));
    assert.deepEqual([(await holdings(alice)).balance, (await holdings(bob)).balance], [70n, 30n]);
  });

  test('the payer refuses (insufficient value): the payee gets PEER_REFUSED, nothing changed on either side', async () => {
    const { alice, bob } = await parties();
    const before = await beforeOf(alice, bob);
    const result = await session(memoryPair(), payerRole(alice), payeeRole(bob, 101n));
    const refusal = rejectedWith(result.payee, 'PEER_REFUSED');
    // The payee learns only that the payer declined: not the balance, not even that it is short.
    assert.ok(isTallyError(refusal, 'PEER_REFUSED') && refusal.details.code === 'PAYER_DECLINED', String(refusal));
    assert.equal(refusal.message, "the payer closed the transaction (payer-declined): the payer's wallet declined to make this payment [PAYER_DECLINED]");
    const own = rejectedWith(result.payer, 'SE_REJECTED');
    assert.ok(isTallyError(own, 'SE_REJECTED') && own.details.reason === 'INSUFFICIENT_FUNDS');
    // The payer keeps its own reason (the wallet words it with the amounts: src/cli/link.e2e.test.ts).
    assert.match(own.message, /holds less than the amount to pay/, 'the payer still sees why');
    assert.equal(await shapeOf(alice, bob, 101n, before), 'nothing');
    assert.deepEqual(await eventsOf(alice), [], 'no offer was ever made');
  });

  test('the payee refuses σ (γ forged on the way): the payer learns why and abandons, nothing changed', async () => {
    const { alice, bob } = await parties();
    const before = await beforeOf(alice, bob);
    const forged = (t: TransactionMessage): TransactionMessage => {
      const gamma = Uint8Array.from(t.gamma);
      gamma[3] = (gamma[3] as number) ^ 0x10;
      return { ...t, gamma };
    };
    const result = await session(memoryPair(), payerRole(alice, { tamper: forged }), payeeRole(bob, 30n));
    const refusal = rejectedWith(result.payer, 'PEER_REFUSED');
    assert.ok(isTallyError(refusal, 'PEER_REFUSED') && refusal.details.code === 'SIGNATURE_INVALID', String(refusal));
    assert.match(String(refusal), /transaction-invalid/);
    const own = rejectedWith(result.payee, 'SE_REJECTED');
    assert.ok(isTallyError(own, 'SE_REJECTED') && own.details.reason === 'SIGNATURE_INVALID');
    assert.equal(await shapeOf(alice, bob, 30n, before), 'nothing');
    assert.deepEqual((await eventsOf(alice)).map((e) => e.body.kind), ['abandoned']);
    assert.deepEqual(await eventsOf(bob), []);
    // The released block pays the next time.
    const again = await session(memoryPair(), payerRole(alice), payeeRole(bob, 30n));
    assert.equal(fulfilled(again.payee).status, 'completed');
  });

  // Messages in order: λ (the payee's outgoing unit 0), σ (incoming 0), the notification
  // (outgoing 1), the success message (incoming 1). The fault injector on the payee's end cuts the
  // link as soon as `after` units of one direction have passed (0: the first one cuts it instead),
  // so `delivered` messages arrive in all.
  type Cut = {
    delivered: number;
    direction: 'outgoing' | 'incoming';
    after: number;
    shape: Shape;
    payer: 'LINK_CLOSED' | 'paid';
    payee: 'LINK_CLOSED' | 'completed' | 'rolled-back';
    /** The events each side logged. */
    logs: [string[], string[]];
  };
  const cuts: Cut[] = [
    { delivered: 0, direction: 'outgoing', after: 0, shape: 'nothing', payer: 'LINK_CLOSED', payee: 'LINK_CLOSED', logs: [[], []] },
    { delivered: 1, direction: 'incoming', after: 0, shape: 'nothing', payer: 'LINK_CLOSED', payee: 'LINK_CLOSED', logs: [['abandoned'], []] },
    { delivered: 2, direction: 'incoming', after: 1, shape: 'nothing', payer: 'LINK_CLOSED', payee: 'rolled-back', logs: [['abandoned'], ['rolled-back']] },
    { delivered: 3, direction: 'outgoing', after: 2, shape: 'situation-5', payer: 'paid', payee: 'rolled-back', logs: [['sent'], ['rolled-back']] },
    { delivered: 4, direction: 'incoming', after: 2, shape: 'completed', payer: 'paid', payee: 'completed', logs: [['sent'], ['received']] },
  ];
  for (const cut of cuts) {
    test(`the link cut after ${cut.delivered} messages: ${cut.shape}`, async () => {
      const { alice, bob } = await parties();
      const before = await beforeOf(alice, bob);
      const [a, b] = memoryStreams();
      const payeeEnd = injectFaults(framed(b), { seed: cut.delivered, [cut.direction]: { cutAfterUnits: cut.after } });
      const result = await session([openLink(a), openLink(payeeEnd)], payerRole(alice), payeeRole(bob, 30n));
      if (cut.payer === 'paid') fulfilled(result.payer, 'payer');
      else rejectedWith(result.payer, cut.payer, 'payer');
      if (cut.payee === 'LINK_CLOSED') {
        rejectedWith(result.payee, cut.payee, 'payee');
      } else {
        const outcome = fulfilled(result.payee, 'payee');
        assert.equal(outcome.status, cut.payee);
        if (outcome.status === 'rolled-back') assert.ok(isTallyError(outcome.error, 'LINK_CLOSED'), String(outcome.error));
      }
      assert.equal(await shapeOf(alice, bob, 30n, before), cut.shape);
      assert.deepEqual([(await eventsOf(alice)).map((e) => e.body.kind), (await eventsOf(bob)).map((e) => e.body.kind)], cut.logs);
      const owed = cut.shape === 'situation-5' ? 30n : 0n;
      // Conservation: what the wallets hold, plus what the node gives back to the payer in situation 5.
      assert.equal((await holdings(alice)).balance + (await holdings(bob)).balance + owed, 100n);
    });
  }

  test('step timeouts: no λ, no σ, no notification (situation 4), no success message (situation 5)', async () => {
    const { alice, bob } = await parties();
    // The payer waits for λ that never comes; the payee waits for σ that never comes.
    let [p, r] = memoryPair();
    await assert.rejects(runPayer(p, payerRole(alice), { stepTimeoutMs: SHORT_MS }), (e) => isTallyError(e, 'TIMEOUT') && e.details.what === 'λ (step 1)' && e.details.timeoutMs === SHORT_MS);
    p.close();
    r.close();
    [p, r] = memoryPair();
    await assert.rejects(runPayee(r, payeeRole(bob, 10n), { stepTimeoutMs: SHORT_MS }), (e) => isTallyError(e, 'TIMEOUT') && e.details.what === 'σ (step 3)');
    p.close();
    r.close();
    assert.deepEqual([await eventsOf(alice), await eventsOf(bob)], [[], []]);

    // The payee is slower than the payer's wait: the payer abandons; the payee, left without step 8, rolls back.
    let before = await beforeOf(alice, bob);
    let result = await session(memoryPair(), payerRole(alice), payeeRole(bob, 30n, { acceptDelayMs: 2 * SHORT_MS }), SHORT_MS);
    assert.ok(isTallyError(rejectedWith(result.payer, 'TIMEOUT'), 'TIMEOUT'));
    const late = fulfilled(result.payee, 'payee');
    assert.equal(late.status, 'rolled-back');
    assert.equal(await shapeOf(alice, bob, 30n, before), 'nothing');

    // The payer confirms later than the payee waits: it paid, the payee rolled back (situation 5).
    before = await beforeOf(alice, bob);
    result = await session(memoryPair(), payerRole(alice, { confirmDelayMs: 2 * SHORT_MS }), payeeRole(bob, 30n), SHORT_MS);
    fulfilled(result.payer, 'payer');
    const unanswered = fulfilled(result.payee, 'payee');
    assert.equal(unanswered.status, 'rolled-back');
    assert.ok(unanswered.status === 'rolled-back' && isTallyError(unanswered.error, 'TIMEOUT') && unanswered.error.details.what === 'success message (step 8)');
    assert.equal(await shapeOf(alice, bob, 30n, before), 'situation-5');
    assert.equal((await holdings(alice)).balance + (await holdings(bob)).balance + 30n, 100n);
  });
});

describe('DOT-M session over TCP + Noise', () => {
  test(`end to end on a Noise link with the prologue ${new TextDecoder().decode(DOTM_LINK_PROLOGUE)}`, async () => {
    const { alice, bob } = await parties();
    const server = await listenTcp(0, '127.0.0.1');
    try {
      const [payerEnd, payeeEnd] = await Promise.all([connectTcp('127.0.0.1', server.port), server.accept({ timeoutMs: STEP_MS })]);
      const [payer, payee] = await Promise.all([
        openSecureLink(payerEnd, { role: 'initiator', prologue: DOTM_LINK_PROLOGUE, handshakeTimeoutMs: STEP_MS }),
        openSecureLink(payeeEnd, { role: 'responder', prologue: DOTM_LINK_PROLOGUE, handshakeTimeoutMs: STEP_MS }),
      ]);
      const before = await beforeOf(alice, bob);
      const result = await session([payer.link, payee.link], payerRole(alice), payeeRole(bob, 45n));
      assert.equal(fulfilled(result.payee, 'payee').status, 'completed');
      fulfilled(result.payer, 'payer');
      assert.equal(await shapeOf(alice, bob, 45n, before), 'completed');
      assert.deepEqual([(await holdings(alice)).balance, (await holdings(bob)).balance], [55n, 45n]);
    } finally {
      await server.close();
    }
  });
});
