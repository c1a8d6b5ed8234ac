import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { memoryPair as memoryStreams } from '../../channel/memory.ts';
import { openLink, type Link } from '../../channel/link.ts';
import { isTallyError } from '../../core/errors.ts';
import { runPayee, runPayer } from './session.ts';
import { giveKeys, makeClass, makeWallet, withdraw, type BankClass, type Wallet } from './ta-fixtures.ts';
import { payeeRole, payerRole } from './wallet-link.ts';

function links(): [Link, Link] {
  const [a, b] = memoryStreams();
  return [openLink(a), openLink(b)];
}

let classes: BankClass[];
const by = (major: bigint) => classes.find((c) => c.entry.coinClass.denomination === (major * 100n).toString()) as BankClass;

before(() => {
  classes = [1n, 2n, 5n, 10n, 20n, 50n, 100n].map((d) => makeClass(d * 100n));
});

async function balance(w: Wallet): Promise<bigint> {
  return (await w.se.call('status', {})).balance;
}

async function session(payer: Wallet, payee: Wallet, amount: bigint, expect: bigint | null = null) {
  const [p, q] = links();
  return Promise.all([runPayer(p, expect, payerRole(payer.se, () => undefined), { stepTimeoutMs: 5_000 }), runPayee(q, amount, payeeRole(payee.se), { stepTimeoutMs: 5_000 })]);
}

test('an exact payment moves the coins that make the amount; value is conserved', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice', classes), makeWallet('bob', classes)]);
  await withdraw(alice, [by(50n), by(20n), by(10n), by(5n), by(2n), by(2n)]);
  await giveKeys(bob, 8);
  const [paid, got] = await session(alice, bob, 8700n);
  assert.deepEqual([paid.coins, paid.change, got.amount], [5, 0, 8700n]);
  assert.deepEqual([await balance(alice), await balance(bob)], [200n, 8700n]);
});

test('without exact coins the payee gives change in the same session, to the payer\'s exchange keys', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice', classes), makeWallet('bob', classes)]);
  await withdraw(alice, [by(100n)]);
  await withdraw(bob, [by(10n), by(5n), by(2n), by(1n)]);
  await giveKeys(alice, 4);
  await giveKeys(bob, 4);
  const [paid] = await session(alice, bob, 8700n);
  assert.ok(paid.change > 0);
  assert.deepEqual([await balance(alice), await balance(bob)], [1300n, 1800n + 8700n]);
});

test('the payer refuses an amount other than the one it expects; nothing moves', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice', classes), makeWallet('bob', classes)]);
  await withdraw(alice, [by(50n)]);
  await giveKeys(bob, 2);
  const outcome = await session(alice, bob, 5000n, 2000n).catch((e: unknown) => e);
  assert.ok(isTallyError(outcome), String(outcome));
  assert.deepEqual([await balance(alice), await balance(bob)], [5000n, 0n]);
});

test('a link cut after the coins left: in flight at the payer, sent again and acknowledged at the next session', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice', classes), makeWallet('bob', classes)]);
  await withdraw(alice, [by(50n), by(20n)]);
  await giveKeys(bob, 4);
  const [p, q] = links();
  // The payee takes the coins, then its ACKs are lost: the payer's link closes before they arrive.
  const role = payeeRole(bob.se);
  const payee = runPayee(q, 5000n, { ...role, receive: async (sealed) => { const acks = await role.receive(sealed); p.close(); return acks; } }, { stepTimeoutMs: 2_000 });
  const payer = runPayer(p, null, payerRole(alice.se, () => undefined), { stepTimeoutMs: 2_000 });
  await Promise.allSettled([payer, payee]);
  assert.equal(await balance(bob), 5000n);
  assert.deepEqual((await alice.se.call('status', {})).inFlight, { count: 1, amount: 5000n });
  // Next session with the same payee: the box is sent again, and its ACK ends it.
  const [paid] = await session(alice, bob, 2000n);
  assert.equal(paid.resentAcknowledged, 1);
  assert.deepEqual((await alice.se.call('status', {})).inFlight, { count: 0, amount: 0n });
  assert.deepEqual([await balance(alice), await balance(bob)], [0n, 7000n]);
});

test('a link cut before the coins arrive: in flight at the payer, taken by the payee when they are sent again', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice', classes), makeWallet('bob', classes)]);
  await withdraw(alice, [by(20n), by(10n)]);
  await giveKeys(bob, 4);
  const [p, q] = links();
  // The payer seals its coins, then its link closes before they are sent: they never reach the payee.
  const role = payerRole(alice.se, () => undefined);
  const payer = runPayer(p, null, { ...role, pay: async (items) => { const sealed = await role.pay(items); p.close(); return sealed; } }, { stepTimeoutMs: 2_000 });
  const payee = runPayee(q, 2000n, payeeRole(bob.se), { stepTimeoutMs: 2_000 });
  await Promise.allSettled([payer, payee]);
  assert.equal(await balance(bob), 0n);
  assert.deepEqual((await alice.se.call('status', {})).inFlight, { count: 1, amount: 2000n });
  // The box is sealed to a key bob gave and never used: he takes it when it comes again.
  const [paid] = await session(alice, bob, 1000n);
  assert.equal(paid.resentAcknowledged, 1);
  assert.deepEqual((await alice.se.call('status', {})).inFlight, { count: 0, amount: 0n });
  assert.deepEqual([await balance(alice), await balance(bob)], [0n, 3000n]);
});

test('a payment of more coins than one offerKeys command gives (64) takes its keys in parts, and the payee short of keys refuses before giving any', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice', classes), makeWallet('bob', classes)]);
  const unit = by(1n);
  await withdraw(alice, Array.from({ length: 64 }, () => unit));
  await withdraw(alice, Array.from({ length: 36 }, () => unit));
  await giveKeys(bob, 64);
  await giveKeys(bob, 35);
  // 99 keys for 100 coins: refused, and none of them marked given.
  const short = await session(alice, bob, 10_000n).catch((e: unknown) => e);
  assert.ok(isTallyError(short), String(short));
  assert.deepEqual((await bob.se.call('status', {})).keys, { fresh: 99, offered: 0 });
  assert.deepEqual([await balance(alice), await balance(bob)], [10_000n, 0n]);
  await giveKeys(bob, 1);
  const [paid, got] = await session(alice, bob, 10_000n);
  assert.deepEqual([paid.coins, got.coins, got.amount], [100, 100, 10_000n]);
  assert.deepEqual([await balance(alice), await balance(bob)], [0n, 10_000n]);
  assert.deepEqual((await bob.se.call('status', {})).keys, { fresh: 0, offered: 0 });
});
