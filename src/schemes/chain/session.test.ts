/**
 * The chain-tee payment session between two trusted apps over an in-memory link: the payment, the
 * payee's binding to the session (a relay is caught), and a link cut after each message: nothing
 * is lost, nothing is credited twice, and what was held comes through at the next session.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { memoryPair } from '../../channel/memory.ts';
import { openLink, type Link } from '../../channel/link.ts';
import { isTallyError } from '../../core/errors.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { runPayee, runPayer, type PayeeRole, type PayerRole } from './session.ts';
import { fund, makeWallet, NOW, pki, statement, type Wallet } from './ta-fixtures.ts';
import { payeeRole, payerRole } from './wallet-link.ts';

const SESSION = new Uint8Array(64).fill(5);
const STEP = { stepTimeoutMs: 3_000 };

function links(): [Link, Link] {
  const [a, b] = memoryPair();
  return [openLink(a), openLink(b)];
}

function trust(options: { session?: Uint8Array; revoked?: Uint8Array[] } = {}) {
  return { provider: nodeProvider, root: pki.rootCert, intermediary: pki.intermediaryCert, revoked: () => options.revoked ?? [], session: options.session ?? SESSION, now: () => NOW };
}

const payer = (w: Wallet, options?: Parameters<typeof trust>[0]): PayerRole => payerRole(w.se, trust(options));
const payee = (w: Wallet, session = SESSION): PayeeRole => payeeRole(w.se, { session, now: () => NOW });
const status = (w: Wallet) => w.se.call('status', {});

async function session(from: PayerRole, to: PayeeRole, amount: bigint, expect: bigint | null = null) {
  const [p, q] = links();
  return Promise.allSettled([runPayer(p, expect, from, STEP), runPayee(q, amount, to, STEP)]);
}

test('a payment: the payee credits, the payer settles on the ack; value is conserved', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
  await fund(alice, 10_000n);
  const [paid, got] = await session(payer(alice), payee(bob), 2_500n);
  assert.equal(paid.status, 'fulfilled');
  assert.equal(got.status === 'fulfilled' && got.value.credited, true);
  const [a, b] = [await status(alice), await status(bob)];
  assert.deepEqual([a.balance, a.pending, b.balance], [7_500n, 0n, 2_500n]);
});

test('the payer refuses an amount other than the one it expects, and a payee bound to another session (a relay)', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
  await fund(alice, 10_000n);
  const [wrongAmount] = await session(payer(alice), payee(bob), 2_500n, 2_000n);
  assert.ok(wrongAmount.status === 'rejected' && isTallyError(wrongAmount.reason, 'PAYMENT_INVALID'));
  // The relay holds two secure sessions: the payee binds its account to the relay's, not to the payer's.
  const [relayed] = await session(payer(alice), payee(bob, new Uint8Array(64).fill(6)), 2_500n);
  assert.ok(relayed.status === 'rejected' && isTallyError(relayed.reason, 'PAYEE_INVALID'), String(relayed.status === 'rejected' && relayed.reason));
  const [revoked] = await session(payer(alice, { revoked: [bob.enclave] }), payee(bob), 2_500n);
  assert.ok(revoked.status === 'rejected' && isTallyError(revoked.reason, 'PAYEE_INVALID'));
  assert.deepEqual([(await status(alice)).balance, (await status(bob)).balance], [10_000n, 0n]);
});

test('a payee asked one amount and paid another declines it with ack_fail; the payer gets the amount back', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
  await fund(alice, 10_000n);
  const cheating: PayerRole = { ...payer(alice), transfer: (account) => payer(alice).transfer(account, 1n) };
  const [paid, got] = await session(cheating, payee(bob), 2_500n);
  assert.ok(paid.status === 'fulfilled' && !paid.value.credited);
  assert.ok(got.status === 'fulfilled' && !got.value.credited);
  assert.deepEqual([(await status(alice)).balance, (await status(alice)).pending, (await status(bob)).balance], [10_000n, 0n, 0n]);
});

test('a link cut after the payer signed, before the payee got tx_off: held, then paid at the next session', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
  await fund(alice, 10_000n);
  const [p, q] = links();
  const cut: PayerRole = {
    ...payer(alice),
    async transfer(account, amount) {
      const txOff = await payer(alice).transfer(account, amount);
      p.close();
      return txOff;
    },
  };
  const outcomes = await Promise.allSettled([runPayer(p, null, cut, STEP), runPayee(q, 2_500n, payee(bob), STEP)]);
  assert.ok(outcomes.every((o) => o.status === 'rejected'));
  assert.deepEqual([(await status(alice)).balance, (await status(alice)).pending, (await status(bob)).balance], [7_500n, 2_500n, 0n]);
  // The next session sends the held payment again with the new one; Bob credits both, once each.
  const [again, got] = await session(payer(alice), payee(bob), 1_000n);
  assert.ok(again.status === 'fulfilled' && again.value.resent === 1);
  assert.ok(got.status === 'fulfilled' && got.value.credited);
  assert.deepEqual([(await status(alice)).balance, (await status(alice)).pending, (await status(bob)).balance], [6_500n, 0n, 3_500n]);
});

test('a link cut after the payee credited, before its ack_win arrived: no money made, the ack comes at the next session', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
  await fund(alice, 10_000n);
  const [p, q] = links();
  const cut: PayeeRole = {
    ...payee(bob),
    async receive(txOff, expect) {
      const answer = await payee(bob).receive(txOff, expect);
      q.close();
      return answer;
    },
  };
  const outcomes = await Promise.allSettled([runPayer(p, null, payer(alice), STEP), runPayee(q, 2_500n, cut, STEP)]);
  assert.ok(outcomes.every((o) => o.status === 'rejected'));
  // Bob holds the 2,500; Alice holds it too, as pending: she cannot spend it again.
  assert.deepEqual([(await status(alice)).balance, (await status(alice)).pending, (await status(bob)).balance], [7_500n, 2_500n, 2_500n]);
  await assert.rejects(alice.se.call('transfer', { payee: bob.account, amount: 7_501n, now: NOW }));
  const [again] = await session(payer(alice), payee(bob), 500n);
  assert.ok(again.status === 'fulfilled' && again.value.resent === 1);
  assert.deepEqual([(await status(alice)).balance, (await status(alice)).pending, (await status(bob)).balance], [7_000n, 0n, 3_000n]);
});

test('a held payment the payee settled on chain and forgot gets no ack: the next payment goes through, the chain frees the held one', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
  await fund(alice, 10_000n);
  const [p, q] = links();
  let settled: Uint8Array = new Uint8Array();
  const cut: PayeeRole = {
    ...payee(bob),
    async receive(txOff, expect) {
      const answer = await payee(bob).receive(txOff, expect);
      settled = answer.ack.payment;
      q.close();
      return answer;
    },
  };
  await Promise.allSettled([runPayer(p, null, payer(alice), STEP), runPayee(q, 2_500n, cut, STEP)]);
  // Bob uploads it first: the chain applies it, his TEE frees it and keeps only Alice's counter.
  await bob.se.call('finalize', { statement: statement(bob.account, [{ payment: settled, state: 'applied' }]) });
  const [again, got] = await session(payer(alice), payee(bob), 500n);
  assert.ok(again.status === 'fulfilled' && again.value.resent === 0, String(again.status === 'rejected' && again.reason));
  assert.ok(got.status === 'fulfilled' && got.value.credited);
  assert.deepEqual([(await status(alice)).balance, (await status(alice)).pending, (await status(bob)).balance], [7_000n, 2_500n, 3_000n]);
  // Alice's statement frees it: applied, so nothing comes back.
  await alice.se.call('finalize', { statement: statement(alice.account, [{ payment: settled, state: 'applied' }]) });
  assert.deepEqual([(await status(alice)).balance, (await status(alice)).pending], [7_000n, 0n]);
});

test('a link cut before anything was signed moves nothing', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice'), makeWallet('bob')]);
  await fund(alice, 10_000n);
  const [p, q] = links();
  const cut: PayeeRole = {
    ...payee(bob),
    async show() {
      const shown = await payee(bob).show();
      q.close();
      return shown;
    },
  };
  const outcomes = await Promise.allSettled([runPayer(p, null, payer(alice), STEP), runPayee(q, 2_500n, cut, STEP)]);
  assert.ok(outcomes.every((o) => o.status === 'rejected'));
  assert.deepEqual([(await status(alice)).balance, (await status(alice)).pending, (await status(bob)).balance], [10_000n, 0n, 0n]);
});
