import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { isTallyError } from '../../core/errors.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { signer } from '../../pki/test-fixtures.ts';
import { attribute, openTag } from './escrow.ts';
import { exchangeKeyId, issueExchangeKey } from './exchange-key.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { openCoin, sealCoin, type SealedCoin } from './transfer.ts';
import { COINS_PER_MESSAGE_MAX, settledBodyCodec, signed, SETTLED_TAG } from './messages.ts';
import { bankSigner, depositKeys, escrow, giveKeys, idsOf, makeClass, makeWallet, NOW, paramsFor, receiptFor, withdraw, type BankClass, type Wallet } from './ta-fixtures.ts';
import { programDigest } from './coin.ts';
import { buildProgram } from './program.ts';

const rejected = (code: string) => (e: unknown) => isTallyError(e, 'SE_REJECTED') && (e.details as { reason?: string }).reason === code;

let one: BankClass;
let two: BankClass;
let five: BankClass;
let grocery: BankClass;
let all: BankClass[];

before(() => {
  one = makeClass(100n);
  two = makeClass(200n);
  five = makeClass(500n);
  grocery = makeClass(1000n, [{ kind: 'checkPayeeCategory', categories: ['grocery'] }]);
  all = [one, two, five, grocery];
});

async function balance(w: Wallet): Promise<bigint> {
  return (await w.se.call('status', {})).balance;
}

/** Pays one coin of each class from payer to payee: keys, pay, receive, acknowledge. */
async function pay(payer: Wallet, payee: Wallet, classes: readonly BankClass[]): Promise<SealedCoin[]> {
  const { keys } = await payee.se.call('offerKeys', { count: classes.length });
  const { sealed } = await payer.se.call('pay', { items: classes.map((c, i) => ({ classId: c.entry.coinClass.classId, key: keys[i]! })) });
  const { acks } = await payee.se.call('receive', { sealed });
  await payer.se.call('acknowledge', { acks });
  return sealed;
}

async function stateBytes(w: Wallet): Promise<string> {
  return JSON.stringify(await w.se.call('status', {}), (_k, v) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));
}

test('withdraw, pay, re-spend to a third wallet: each coin moves whole, value is conserved', async () => {
  const [alice, bob, carol] = await Promise.all([makeWallet('alice', all), makeWallet('bob', all), makeWallet('carol', all)]);
  assert.equal(await withdraw(alice, [one, two, five, five]), 1300n);
  await giveKeys(alice, 2);
  await giveKeys(bob, 4);
  await giveKeys(carol, 4);
  await pay(alice, bob, [five, two]);
  assert.equal(await balance(alice), 600n);
  assert.equal(await balance(bob), 700n);
  assert.equal((await alice.se.call('status', {})).inFlight.count, 0, 'acknowledged coins are forgotten');
  // Transitivity: what bob received he pays on offline, with a second escrow tag.
  await pay(bob, carol, [five]);
  assert.equal(await balance(bob), 200n);
  assert.equal(await balance(carol), 500n);
  // Carol deposits it: the bank sees three tags (alice, bob, carol's deposit), chained.
  const { sealed } = await carol.se.call('prepareDeposit', { requestId: randomBytes(16), classIds: idsOf([five]) });
  assert.equal(openCoin(sealed[0]!, depositKeys.privateKey, depositKeys.publicKey).carried.tags.length, 3);
});

test('a box replayed to the same payee is refused and changes nothing; the ACK is given again on request', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice', all), makeWallet('bob', all)]);
  await withdraw(alice, [five]);
  await giveKeys(alice, 1);
  await giveKeys(bob, 2);
  const { keys } = await bob.se.call('offerKeys', { count: 1 });
  const { sealed } = await alice.se.call('pay', { items: [{ classId: five.entry.coinClass.classId, key: keys[0]! }] });
  const first = await bob.se.call('receive', { sealed });
  const before = await stateBytes(bob);
  await assert.rejects(bob.se.call('receive', { sealed }), rejected('OTP_REPLAYED'));
  assert.equal(await stateBytes(bob), before);
  assert.deepEqual((await bob.se.call('ackAgain', { sealed })).acks, first.acks);
  assert.equal((await alice.se.call('acknowledge', { acks: first.acks })).acknowledged, 1);
});

test('a copy sent to another payee opens for no one but the key it was sealed to', async () => {
  const [alice, bob, carol] = await Promise.all([makeWallet('alice', all), makeWallet('bob', all), makeWallet('carol', all)]);
  await withdraw(alice, [five]);
  await giveKeys(alice, 1);
  await giveKeys(bob, 1);
  await giveKeys(carol, 1);
  const { keys } = await bob.se.call('offerKeys', { count: 1 });
  const { sealed } = await alice.se.call('pay', { items: [{ classId: five.entry.coinClass.classId, key: keys[0]! }] });
  const before = await stateBytes(carol);
  await assert.rejects(carol.se.call('receive', { sealed }), rejected('OTP_EXCHANGE_KEY_UNKNOWN'));
  // Relabelled to carol's own key, the box still does not open: it was sealed to bob's.
  const carolKey = (await carol.se.call('offerKeys', { count: 1 })).keys[0]!;
  const relabelled = [{ ...sealed[0]!, keyId: exchangeKeyId(carolKey.body.publicKey) }];
  const offered = await stateBytes(carol);
  await assert.rejects(carol.se.call('receive', { sealed: relabelled }), rejected('AEAD_FAILED'));
  assert.equal(await stateBytes(carol), offered);
  assert.notEqual(before, offered);
  assert.equal(await balance(carol), 0n);
});

test('an ACK not made by the payee is refused; the coin stays in flight, neither spendable nor lost', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice', all), makeWallet('bob', all)]);
  await withdraw(alice, [five, one]);
  await giveKeys(alice, 1);
  await giveKeys(bob, 1);
  const { keys } = await bob.se.call('offerKeys', { count: 1 });
  const { sealed } = await alice.se.call('pay', { items: [{ classId: five.entry.coinClass.classId, key: keys[0]! }] });
  await assert.rejects(alice.se.call('acknowledge', { acks: [{ digest: randomBytes(32), mac: randomBytes(32) }] }), rejected('OTP_ACK_INVALID'));
  const status = await alice.se.call('status', {});
  assert.deepEqual([status.balance, status.inFlight.count, status.inFlight.amount], [100n, 1, 500n]);
  assert.deepEqual((await alice.se.call('inFlight', {})).sealed, sealed, 'the box can be sent again');
});

test('a program condition that forbids the payment refuses it before anything leaves the TA', async () => {
  const [alice, bob, shop] = await Promise.all([makeWallet('alice', all), makeWallet('bob', all), makeWallet('shop', all)]);
  await withdraw(alice, [grocery]);
  await giveKeys(alice, 1);
  await giveKeys(bob, 1);
  await giveKeys(shop, 1, { category: 'grocery' });
  const { keys } = await bob.se.call('offerKeys', { count: 1 });
  const before = await stateBytes(alice);
  await assert.rejects(alice.se.call('pay', { items: [{ classId: grocery.entry.coinClass.classId, key: keys[0]! }] }), rejected('OTP_CONDITION'));
  assert.equal(await stateBytes(alice), before);
  await pay(alice, shop, [grocery]);
  assert.equal(await balance(shop), 1000n);
});

test('the hop limit: a coin past its transfers is refused by the payer', async () => {
  const wallets = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((n) => makeWallet(n, all)));
  await withdraw(wallets[0]!, [one]);
  for (const w of wallets) await giveKeys(w, 2);
  for (let i = 0; i < 3; i++) await pay(wallets[i]!, wallets[i + 1]!, [one]);
  const { keys } = await wallets[4]!.se.call('offerKeys', { count: 1 });
  await assert.rejects(wallets[3]!.se.call('pay', { items: [{ classId: one.entry.coinClass.classId, key: keys[0]! }] }), rejected('OTP_CONDITION'));
});

test('an exchange key not signed by the bank, expired, or given twice is refused', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice', all), makeWallet('bob', all)]);
  await withdraw(alice, [one, two]);
  await giveKeys(alice, 1, { at: NOW + 60 * 86_400_000 });
  await giveKeys(bob, 2);
  const forged = issueExchangeKey(signer('otp-ta/not-the-bank'), { publicKey: randomBytes(32), category: null, notBefore: NOW, notAfter: NOW + 86_400_000 });
  const before = await stateBytes(alice);
  await assert.rejects(alice.se.call('pay', { items: [{ classId: one.entry.coinClass.classId, key: forged }] }), rejected('SIGNATURE_INVALID'));
  const { keys } = await bob.se.call('offerKeys', { count: 1 });
  // alice's clock is 60 days on: bob's 30-day key has ended.
  await assert.rejects(alice.se.call('pay', { items: [{ classId: one.entry.coinClass.classId, key: keys[0]! }] }), rejected('OTP_EXCHANGE_KEY_INVALID'));
  assert.equal(await stateBytes(alice), before);
  const fresh = await makeWallet('alice2', all);
  await withdraw(fresh, [one, two]);
  await giveKeys(fresh, 1);
  const twice = (await bob.se.call('offerKeys', { count: 1 })).keys[0]!;
  const untouched = await stateBytes(fresh);
  await assert.rejects(fresh.se.call('pay', { items: [{ classId: one.entry.coinClass.classId, key: twice }, { classId: two.entry.coinClass.classId, key: twice }] }), rejected('OTP_EXCHANGE_KEY_INVALID'));
  assert.equal(await stateBytes(fresh), untouched);
});

test('a coin the bank did not sign is refused by the payee', async () => {
  const [bob] = await Promise.all([makeWallet('bob', all)]);
  await giveKeys(bob, 1);
  const { keys } = await bob.se.call('offerKeys', { count: 1 });
  const coin = { serial: randomBytes(32), classId: five.entry.coinClass.classId, prefix: randomBytes(32), signature: randomBytes(256), program: five.entry.program };
  const { sealed } = sealCoin({ coin, tags: [] }, keys[0]!.body.publicKey);
  await assert.rejects(bob.se.call('receive', { sealed: [sealed] }), rejected('OTP_COIN_INVALID'));
  assert.equal(await balance(bob), 0n);
});

test('a coin whose program was altered, or whose class the payee does not know, is refused by the payee', async () => {
  const [bob] = await Promise.all([makeWallet('bob', all)]);
  const alice = await makeWallet('alice', all);
  await withdraw(alice, [five]);
  const coin = await (async () => {
    // The coin as alice's TA holds it: taken out through a deposit box opened with the bank's key.
    const { sealed } = await alice.se.call('prepareDeposit', { requestId: randomBytes(16), classIds: idsOf([five]) });
    return openCoin(sealed[0]!, depositKeys.privateKey, depositKeys.publicKey).carried.coin;
  })();
  await giveKeys(bob, 2);
  const { keys } = await bob.se.call('offerKeys', { count: 2 });
  const longer = { ...coin, program: { ...coin.program, instructions: coin.program.instructions.filter((i) => i.op !== 'checkMaxHops') } };
  await assert.rejects(bob.se.call('receive', { sealed: [sealCoin({ coin: longer, tags: [] }, keys[0]!.body.publicKey).sealed] }), rejected('OTP_COIN_INVALID'));
  const stranger = makeClass(500n);
  await assert.rejects(bob.se.call('receive', { sealed: [sealCoin({ coin: { ...coin, classId: stranger.entry.coinClass.classId }, tags: [] }, keys[1]!.body.publicKey).sealed] }), rejected('OTP_COIN_INVALID'));
  assert.equal(await balance(bob), 0n);
});

test('a cloned wallet pays two payees; the escrow tags of the two deposits name its device', async () => {
  const [alice, bob, carol] = await Promise.all([makeWallet('alice', all), makeWallet('bob', all), makeWallet('carol', all)]);
  await withdraw(alice, [five]);
  await giveKeys(alice, 1);
  await giveKeys(bob, 1);
  await giveKeys(carol, 1);
  const clone = await alice.clone('alice-clone');
  await pay(alice, bob, [five]);
  await pay(clone, carol, [five]);
  const deposits = await Promise.all([bob, carol].map(async (w) => (await w.se.call('prepareDeposit', { requestId: randomBytes(16), classIds: idsOf([five]) })).sealed[0]!));
  const [first, second] = deposits.map((box) => openCoin(box, depositKeys.privateKey, depositKeys.publicKey).carried);
  assert.deepEqual(first!.coin.serial, second!.coin.serial, 'one coin, deposited twice');
  const found = attribute(nodeProvider, escrow.privateKey, first!.coin.serial, first!.tags, second!.tags);
  assert.deepEqual(found?.device, (await alice.se.call('status', {})).device);
  assert.equal(found?.hop, 1);
});

test('deposit: the bank receipt ends it; a receipt for other boxes is refused', async () => {
  const [alice] = await Promise.all([makeWallet('alice', all)]);
  await withdraw(alice, [five, two, one]);
  const requestId = randomBytes(16);
  const { sealed, amount } = await alice.se.call('prepareDeposit', { requestId, classIds: idsOf([five, one]) });
  assert.equal(amount, 600n);
  assert.equal(await balance(alice), 200n);
  const again = await alice.se.call('prepareDeposit', { requestId, classIds: idsOf([five, one]) });
  assert.deepEqual(again.sealed, sealed, 'the same request answers the same boxes (a retry after a crash)');
  await assert.rejects(alice.se.call('finishDeposit', { requestId, receipt: receiptFor([sealed[0]!], all) }), rejected('OTP_RECEIPT_MISMATCH'));
  const out = await alice.se.call('finishDeposit', { requestId, receipt: receiptFor(sealed, all, (i) => (i === 0 ? 'credited' : 'double-spend')) });
  assert.deepEqual([out.credited, out.doubleSpent], [500n, 1]);
  assert.equal((await alice.se.call('status', {})).depositPending, 0);
});

test('a withdrawal cut after the bank signed finishes after a restart with the same answer', async () => {
  const alice = await makeWallet('alice', all);
  const requestId = randomBytes(16);
  const { blinded } = await alice.se.call('prepareWithdrawal', { requestId, classIds: idsOf([two, one]) });
  await alice.reopen();
  assert.deepEqual((await alice.se.call('prepareWithdrawal', { requestId, classIds: idsOf([two, one]) })).blinded, blinded);
  await assert.rejects(alice.se.call('prepareWithdrawal', { requestId: randomBytes(16), classIds: idsOf([one]) }), rejected('OTP_WITHDRAWAL_PENDING'));
  const { blindSign } = await import('./node-rsa.ts');
  // A signature altered on the way (its last byte: still below the modulus) does not finalize.
  const altered = blindSign(two.key, blinded[0]!);
  altered[altered.length - 1] = (altered[altered.length - 1] as number) ^ 1;
  await assert.rejects(alice.se.call('finishWithdrawal', { requestId, signatures: [altered, blindSign(one.key, blinded[1]!)] }), rejected('SIGNATURE_INVALID'));
  const out = await alice.se.call('finishWithdrawal', { requestId, signatures: [blindSign(two.key, blinded[0]!), blindSign(one.key, blinded[1]!)] });
  assert.equal(out.amount, 300n);
});

test('in flight: reported, then settled by the bank for the nonce of the report only', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice', all), makeWallet('bob', all)]);
  await withdraw(alice, [five, two]);
  await giveKeys(alice, 1);
  await giveKeys(bob, 2);
  const { keys } = await bob.se.call('offerKeys', { count: 2 });
  await alice.se.call('pay', { items: [{ classId: five.entry.coinClass.classId, key: keys[0]! }, { classId: two.entry.coinClass.classId, key: keys[1]! }] });
  const report = await alice.se.call('inFlightReport', {});
  assert.equal(report.body.coins.length, 2);
  // Each coin comes with the tags it was sent with: Alice's own, naming the exchange key it was paid to.
  for (const [i, coin] of report.body.coins.entries()) {
    assert.equal(coin.tags.length, 1);
    const opened = openTag(nodeProvider, escrow.privateKey, coin.serial, coin.tags, 1);
    assert.deepEqual(opened.content.payee, exchangeKeyId(keys[i]!.body.publicKey));
  }
  const [first, second] = report.body.coins.map((c) => openTag(nodeProvider, escrow.privateKey, c.serial, c.tags, 1).device);
  assert.deepEqual(first, second, 'both signed by the one device');
  const stale = signed(settledBodyCodec, bankSigner, SETTLED_TAG, { nonce: randomBytes(16), coins: [{ serial: report.body.coins[0]!.serial, outcome: 'refunded' }] });
  await assert.rejects(alice.se.call('settle', { settled: stale }), rejected('OTP_REPORT_UNKNOWN'));
  const answer = signed(settledBodyCodec, bankSigner, SETTLED_TAG, { nonce: report.body.nonce, coins: [{ serial: report.body.coins[0]!.serial, outcome: 'refunded' }] });
  const out = await alice.se.call('settle', { settled: answer });
  assert.equal(out.refunded, 500n);
  assert.equal((await alice.se.call('status', {})).inFlight.count, 1);
  await assert.rejects(alice.se.call('settle', { settled: answer }), rejected('OTP_REPORT_UNKNOWN'), 'an answer is taken once');
});

test('parameters whose class program names an unknown instruction or carries a wrong checksum are refused; nothing changes', async () => {
  const alice = await makeWallet('alice', all);
  const before = await stateBytes(alice);
  const unknown = { ...one.entry.program, instructions: [...one.entry.program.instructions.slice(0, 3), { op: 'mintMore' }, ...one.entry.program.instructions.slice(3)] };
  const wrongSum = { ...one.entry.program, checksum: new Uint8Array(32).fill(1) };
  for (const program of [unknown, wrongSum]) {
    const forged = { ...one, entry: { ...one.entry, program, coinClass: { ...one.entry.coinClass, programDigest: programDigest(program) } } };
    await assert.rejects(alice.se.call('setParams', { params: paramsFor([forged, two], NOW + 1) }), rejected('OTP_PROGRAM_INVALID'));
  }
  // A class whose digest names another program than it carries.
  await assert.rejects(alice.se.call('setParams', { params: paramsFor([{ ...one, entry: { ...one.entry, program: two.entry.program.instructions.length > 0 ? buildProgram(1) : one.entry.program } }], NOW + 1) }), rejected('OTP_PROGRAM_INVALID'));
  assert.equal(await stateBytes(alice), before);
});


test('in flight: more coins than one report takes are named by the next report first', async () => {
  const [alice, bob] = await Promise.all([makeWallet('alice', all), makeWallet('bob', all)]);
  const count = COINS_PER_MESSAGE_MAX + 6;
  for (let left = count; left > 0; left -= COINS_PER_MESSAGE_MAX) await withdraw(alice, Array.from({ length: Math.min(left, COINS_PER_MESSAGE_MAX) }, () => one));
  await giveKeys(alice, 1);
  for (let left = count; left > 0; left -= COINS_PER_MESSAGE_MAX) await giveKeys(bob, Math.min(left, COINS_PER_MESSAGE_MAX));
  for (let left = count; left > 0; left -= COINS_PER_MESSAGE_MAX) {
    const { keys } = await bob.se.call('offerKeys', { count: Math.min(left, COINS_PER_MESSAGE_MAX) });
    await alice.se.call('pay', { items: keys.map((key) => ({ classId: one.entry.coinClass.classId, key })) });
  }
  const serials = async () => (await alice.se.call('inFlightReport', {})).body.coins.map((c) => Buffer.from(c.serial).toString('hex'));
  const first = await serials();
  assert.equal(first.length, COINS_PER_MESSAGE_MAX);
  const second = await serials();
  const left = second.slice(0, count - COINS_PER_MESSAGE_MAX);
  assert.equal(new Set([...first, ...left]).size, count, 'the second report names the six the first did not, first');
  assert.equal((await alice.se.call('status', {})).inFlight.count, count, 'reporting forgets nothing');
});
