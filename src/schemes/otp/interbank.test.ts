/**
 * OTP across banks: a central bank and three intermediaries, each its own node over HTTP on
 * loopback with its own PGlite database. A coin withdrawn at bank A is paid offline to a wallet of
 * bank B, which checks it under A's classes as A published them (through B's
 * `GET /v1/interbank/peers`, verified to the root); B's customer deposits it at B, which presents
 * it to A; A spends its serial in its own registry and accepts; the central bank moves the
 * reserves; B credits its customer (and the payer's report of the coin in flight hears it
 * deposited). The same coin deposited at A and at B, at B twice, or at B and
 * at C is paid once; forged coins, coins of no bank or of a revoked bank, and malformed, forged or
 * oversized evidence are refused; A stopped while B's claim waits judges it when it is back. Every
 * test ends with every bank's audit and the system's balanced.
 *
 * The wallets' part is played here with the pure functions their trusted app runs (blinding,
 * escrow tags, sealing), as the node's own OTP tests do.
 */
import assert from 'node:assert/strict';
import { generateKeyPair as generateNodeKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { randomBytes, sha256 } from '../../core/crypto/hash.ts';
import { generateKeyPair } from '../../core/crypto/hpke.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret, type PublicKey, type Signer } from '../../core/crypto/suite.ts';
import { claimIdOf } from '../../issuer/tier/interbank.ts';
import { balance, claimState, customer, minor, money, send, signed, Tiers, type Json, type TierBank, type TierCustomer } from '../../issuer/tier/test-tiers.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import { verifyPublication } from '../../pki/publication.ts';
import { signRegistrationProof } from '../../pki/registration.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { blind, finalize } from './blind-rsa.ts';
import { checkCoin, classKey, preparedCoinMessage, SERIAL_BYTES, type Coin } from './coin.ts';
import { appendTag } from './escrow.ts';
import { exchangeKeyId } from './exchange-key.ts';
import { otp } from './index.ts';
import { checkSigned, IN_FLIGHT_TAG, inFlightBodyCodec, NONCE_BYTES, paramsBodyCodec, paramsCodec, PARAMS_TAG, settledBodyCodec, settledCodec, SETTLED_TAG, signed as signedRecord, type CarriedCoin, type ClassEntry, type ParamsBody } from './messages.ts';
import { OTP_TEST_MEASUREMENT } from './node-fixtures.ts';
import { DENOMINATIONS, otpNodePartWith } from './node.ts';
import { decodeOtpPublication, publishedEntries, type OtpPublication } from './publication.ts';
import { sealCoin } from './transfer.ts';

const generateRsa = promisify(generateNodeKeyPair);
/**
 * Class keys: generating 45 RSA keys would be most of the file's time, so each bank's fifteen
 * classes share five keys of their own (a bank makes its fifteen in one go, the banks one after the
 * other). No key is shared between banks: a key of A under a class of B would let A sign B's coins.
 */
const KEYS_PER_BANK = 5;
let poolKeys: KeyObject[] = [];
let classesMade = 0;
function classKeyOfPool(): Promise<KeyObject> {
  const n = classesMade++;
  const bank = Math.floor(n / DENOMINATIONS.length) % 3;
  return Promise.resolve(poolKeys[bank * KEYS_PER_BANK + (n % KEYS_PER_BANK)] as KeyObject);
}

const otpTiers = { ...otp, node: async () => otpNodePartWith({ classKey: classKeyOfPool }) };
const measurements = [{ scheme: 'otp', measurement: toHex(OTP_TEST_MEASUREMENT) }];

let tiers: Tiers;
let bankA: TierBank;
let bankB: TierBank;
let bankC: TierBank;
let seed = 0;

/** A customer with a registered OTP device (its key held here as its trusted app holds it). */
interface OtpCustomer extends TierCustomer {
  readonly device: Signer;
  readonly deviceId: string;
}

async function otpCustomer(bank: TierBank): Promise<OtpCustomer> {
  const c = await customer(bank);
  const device = signerFromSecret(nobleEd25519, sha256(utf8(`otp interbank device ${++seed} ${process.pid}`)));
  const reg = await signed(bank.url, c.user, 'POST', '/v1/devices', {
    publicKey: { suite: 'ed25519', key: toBase64url(device.publicKey.key) },
    scheme: 'otp',
    oem: bank.oemKeyId,
    attestation: toBase64url(encodeAttestation(attestDevice(bank.oem, { sePublicKey: device.publicKey, model: 'Test SE', taMeasurement: OTP_TEST_MEASUREMENT }))),
    proof: toBase64url(signRegistrationProof(device, { owner: fromHex(c.keyId), scheme: 'otp' })),
  });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  return { ...c, device, deviceId: toHex(keyId(device.publicKey)) };
}

/** The bank's issuer-node key, from its certificate (as a wallet pins it). */
function issuerNodeKey(bank: TierBank): PublicKey {
  return decodeCertificate(bank.certificates.issuerNode).body.subject;
}

/** A bank's own parameters, checked under its issuer-node key. */
async function paramsOf(bank: TierBank): Promise<ParamsBody> {
  const a = await send(bank.url, 'GET', '/v1/otp/params');
  assert.equal(a.status, 200, JSON.stringify(a.body));
  return checkSigned(nodeProvider, issuerNodeKey(bank), paramsBodyCodec, PARAMS_TAG, paramsCodec.decode(decodeCbor(fromBase64url(a.body['params'] as string))));
}

function classOf(params: ParamsBody, denomination: bigint): ClassEntry {
  const latest = Math.max(...params.classes.map((e) => e.until));
  const entry = params.classes.find((e) => e.until === latest && e.coinClass.denomination === denomination.toString());
  assert.ok(entry !== undefined, `no class of ${denomination}`);
  return entry;
}

/** A blind withdrawal of one coin of each class at the customer's bank. */
async function withdraw(who: OtpCustomer, entries: readonly ClassEntry[]): Promise<Coin[]> {
  const pending = entries.map((entry) => {
    const coin = { serial: randomBytes(SERIAL_BYTES), classId: entry.coinClass.classId, prefix: randomBytes(32) };
    const prepared = preparedCoinMessage(coin);
    return { entry, coin, prepared, blinded: blind(classKey(entry.coinClass), prepared, randomBytes) };
  });
  const a = await signed(who.bank.url, who.user, 'POST', '/v1/otp/withdrawals', {
    device: who.deviceId,
    items: pending.map((p) => ({ classId: toBase64url(p.coin.classId), blinded: toBase64url(p.blinded.blindedMessage) })),
  });
  assert.equal(a.status, 200, JSON.stringify(a.body));
  const signatures = a.body['signatures'] as string[];
  return pending.map((p, i) => ({ ...p.coin, signature: finalize(classKey(p.entry.coinClass), p.prepared, fromBase64url(signatures[i] as string), p.blinded.inverse), program: p.entry.program }));
}

/**
 * What a wallet of `bank` knows of the other banks' OTP coins: each peer's certificate checked
 * under the root the wallet pinned, its publication checked under that certificate.
 */
async function peerOtp(bank: TierBank): Promise<Map<string, { publication: OtpPublication; revoked: boolean }>> {
  const a = await send(bank.url, 'GET', '/v1/interbank/peers');
  assert.equal(a.status, 200, JSON.stringify(a.body));
  const root = decodeCertificate(bank.certificates.root);
  const out = new Map<string, { publication: OtpPublication; revoked: boolean }>();
  for (const peer of a.body['peers'] as Json[]) {
    const certificate = decodeCertificate(fromBase64url(peer['certificate'] as string));
    verifyChain({ provider: nodeProvider, trustAnchors: [root], chain: [certificate], now: Date.now() });
    const record = (peer['publications'] as Record<string, string>)['otp'];
    if (record === undefined) continue;
    const verified = verifyPublication(nodeProvider, fromBase64url(record), certificate);
    assert.equal(verified.scheme, 'otp');
    out.set(peer['keyId'] as string, { publication: decodeOtpPublication(verified.body), revoked: peer['revoked'] === true });
  }
  return out;
}

/** B's wallet takes a coin of another bank offline: checked under the class that bank published. */
async function checkOffline(wallet: TierBank, issuer: TierBank, coin: Coin): Promise<ClassEntry> {
  const peer = (await peerOtp(wallet)).get(issuer.keyId);
  assert.ok(peer !== undefined, `${wallet.name}'s peers carry ${issuer.name}'s OTP publication`);
  assert.equal(peer.revoked, false);
  const entries = publishedEntries(peer.publication);
  const checked = checkCoin(coin, (id) => entries.find((e) => toHex(e.coinClass.classId) === toHex(id))?.coinClass);
  return entries.find((e) => e.coinClass.classId === checked.coinClass.classId) as ClassEntry;
}

/** One offline transfer: the payer's device appends its tag (sealed to the coin's bank's escrow key) for a fresh exchange key. */
function pay(carried: CarriedCoin, payer: Signer, escrowKey: Uint8Array): CarriedCoin {
  const payee = exchangeKeyId(generateKeyPair().publicKey);
  return { coin: carried.coin, tags: appendTag({ serial: carried.coin.serial, tags: carried.tags, payee, device: payer, escrowPublicKey: escrowKey }) };
}

/** The depositor's last tag (naming the bank deposited at) and the coin sealed to that bank's deposit key. */
async function sealForDeposit(who: OtpCustomer, carried: CarriedCoin, escrowKey: Uint8Array): Promise<Uint8Array> {
  const { depositKey } = await paramsOf(who.bank);
  const tags = appendTag({ serial: carried.coin.serial, tags: carried.tags, payee: exchangeKeyId(depositKey), device: who.device, escrowPublicKey: escrowKey });
  return encodeCbor(sealCoin({ coin: carried.coin, tags }, depositKey).sealed);
}

async function deposit(who: OtpCustomer, boxes: readonly Uint8Array[]): Promise<{ credited: string; outcomes: string[]; claims: Json[] }> {
  const a = await signed(who.bank.url, who.user, 'POST', '/v1/otp/deposits', { device: who.deviceId, coins: boxes.map((b) => toBase64url(b)) });
  assert.equal(a.status, 200, JSON.stringify(a.body));
  const receipt = decodeCbor(fromBase64url(a.body['receipt'] as string)) as { body: { coins: { outcome: string }[] } };
  return { credited: a.body['credited'] as string, outcomes: receipt.body.coins.map((c) => c.outcome), claims: a.body['claims'] as Json[] };
}

/** A POST signed by the customer at its own bank. */
function signedBy(who: OtpCustomer, path: string, body: unknown) {
  return signed(who.bank.url, who.user, 'POST', path, body);
}

/** A's escrow key as A published it (what the payers' tags are sealed to). */
async function escrowOf(bank: TierBank): Promise<Uint8Array> {
  return (await paramsOf(bank)).escrowKey;
}

/** A withdrawn coin of `denomination` held by a customer of `bank` with money minted for it. */
async function coinAt(bank: TierBank, denomination: bigint): Promise<{ alice: OtpCustomer; coin: Coin }> {
  const alice = await otpCustomer(bank);
  await bank.ok('POST', '/v1/operator/mint', { account: alice.account, amount: '20.00' });
  const [coin] = await withdraw(alice, [classOf(await paramsOf(bank), denomination)]);
  return { alice, coin: coin as Coin };
}

before(async () => {
  poolKeys = await Promise.all(Array.from({ length: 3 * KEYS_PER_BANK }, async () => (await generateRsa('rsa', { modulusLength: 2048, publicExponent: 65537 })).privateKey));
  tiers = await Tiers.start({ schemes: [otpTiers], tag: 'otp' });
  bankA = await tiers.bank('bank-a', { measurements });
  bankB = await tiers.bank('bank-b', { measurements });
  bankC = await tiers.bank('bank-c', { measurements });
  // Each bank makes its classes (its first read of the parameters) and publishes them at its next sync.
  for (const b of [bankA, bankB, bankC]) await paramsOf(b);
  await tiers.syncAll();
  await tiers.syncAll();
});

after(async () => {
  await tiers?.stop();
});

describe('OTP across banks', { timeout: 240_000 }, () => {
  test('a coin of A paid offline to a wallet of B, deposited at B: presented to A, accepted, reserves moved, B credits; the same copy again is the same claim', async () => {
    const { alice, coin } = await coinAt(bankA, 500n);
    const bob = await otpCustomer(bankB);
    // Offline: Bob's wallet checks the coin under A's classes as A published them.
    const entry = await checkOffline(bankB, bankA, coin);
    assert.equal(entry.coinClass.denomination, '500');
    const escrowA = await escrowOf(bankA);
    const paid = pay({ coin, tags: [] }, alice.device, escrowA);

    const reserveA0 = await tiers.reserveOf(bankA);
    const reserveB0 = await tiers.reserveOf(bankB);
    const box = await sealForDeposit(bob, paid, escrowA);
    const first = await deposit(bob, [box]);
    assert.deepEqual(first.outcomes, ['presented']);
    assert.equal(first.credited, '0.00');
    const claimId = first.claims[0]?.['claimId'] as string;
    assert.equal(first.claims[0]?.['coin'], 0);
    assert.equal(await balance(bob), '0.00', 'not credited before settlement');
    assert.equal((await claimState(bob, claimId))['status'], 'pending');
    // The same box again (a retried deposit) is the same claim.
    const again = await deposit(bob, [box]);
    assert.deepEqual(again.outcomes, ['presented']);
    assert.equal(again.claims[0]?.['claimId'], claimId);

    await tiers.settleAndAudit();
    const state = await claimState(bob, claimId);
    assert.equal(state['status'], 'settled', JSON.stringify(state));
    assert.equal(await balance(bob), '5.00');
    assert.equal(await tiers.reserveOf(bankA), money(minor(reserveA0) - 500n));
    assert.equal(await tiers.reserveOf(bankB), money(minor(reserveB0) + 500n));
    // Alice's device reports the coin in flight (as if Bob's ACK was lost): A answers that it was
    // deposited (by B's claim) and refunds nothing.
    const nonce = randomBytes(NONCE_BYTES);
    const report = signedRecord(inFlightBodyCodec, alice.device, IN_FLIGHT_TAG, { coins: [{ serial: coin.serial, classId: coin.classId, prefix: coin.prefix, signature: coin.signature, tags: paid.tags }], nonce });
    const reported = await signedBy(alice, '/v1/otp/in-flight', { device: alice.deviceId, report: toBase64url(encodeCbor(report)) });
    assert.equal(reported.status, 200, JSON.stringify(reported.body));
    assert.equal(reported.body['refunded'], '0.00');
    const settled = checkSigned(nodeProvider, issuerNodeKey(bankA), settledBodyCodec, SETTLED_TAG, settledCodec.decode(decodeCbor(fromBase64url(reported.body['settled'] as string))));
    assert.deepEqual(settled.coins.map((c) => [toHex(c.serial), c.outcome]), [[toHex(coin.serial), 'deposited']]);
    // Once more after settlement: still one claim, nothing credited twice.
    const late = await deposit(bob, [box]);
    assert.equal(late.claims[0]?.['claimId'], claimId);
    assert.equal(late.claims[0]?.['status'], 'settled');
    await tiers.settleAndAudit();
    assert.equal(await balance(bob), '5.00');
  });

  test('the same coin deposited at A and then at B: B\'s claim is refused as a double spend, its customer told, nothing credited; A names the payer', async () => {
    const { alice, coin } = await coinAt(bankA, 200n);
    const carol = await otpCustomer(bankA);
    const bob = await otpCustomer(bankB);
    const escrowA = await escrowOf(bankA);
    // Alice's device (cloned) pays the coin to Carol at A and to Bob at B.
    const toCarol = pay({ coin, tags: [] }, alice.device, escrowA);
    const toBob = pay({ coin, tags: [] }, alice.device, escrowA);
    await checkOffline(bankB, bankA, coin);
    const atA = await deposit(carol, [await sealForDeposit(carol, toCarol, escrowA)]);
    assert.deepEqual(atA.outcomes, ['credited']);
    const reserveA0 = await tiers.reserveOf(bankA);
    const atB = await deposit(bob, [await sealForDeposit(bob, toBob, escrowA)]);
    assert.deepEqual(atB.outcomes, ['presented']);
    const claimId = atB.claims[0]?.['claimId'] as string;

    await tiers.settleAndAudit();
    const state = await claimState(bob, claimId);
    assert.equal(state['status'], 'refused', JSON.stringify(state));
    assert.equal(state['code'], 'DOUBLE_SPEND');
    assert.equal(await balance(bob), '0.00');
    assert.equal(await balance(carol), '2.00');
    assert.equal(await tiers.reserveOf(bankA), reserveA0, 'no reserve moved');
    // A opened the two copies' tags: Alice's device paid twice, and is revoked.
    const findings = (await bankA.ok('GET', '/v1/otp/operator/findings'))['findings'] as Json[];
    assert.ok(findings.some((f) => f['device'] === alice.deviceId && f['revocationVersion'] !== null), JSON.stringify(findings));
  });

  test('a coin paid twice to customers of B and of C: one claim is paid, the other refused; the same copy by two customers of B is one claim', async () => {
    const { alice, coin } = await coinAt(bankA, 100n);
    const bob = await otpCustomer(bankB);
    const dave = await otpCustomer(bankC);
    const escrowA = await escrowOf(bankA);
    const toBob = pay({ coin, tags: [] }, alice.device, escrowA);
    const toDave = pay({ coin, tags: [] }, alice.device, escrowA);
    const atB = await deposit(bob, [await sealForDeposit(bob, toBob, escrowA)]);
    const atC = await deposit(dave, [await sealForDeposit(dave, toDave, escrowA)]);
    assert.deepEqual([atB.outcomes, atC.outcomes], [['presented'], ['presented']]);
    await tiers.settleAndAudit();
    const states = [await claimState(bob, atB.claims[0]?.['claimId'] as string), await claimState(dave, atC.claims[0]?.['claimId'] as string)];
    assert.deepEqual(states.map((s) => s['status']).sort(), ['refused', 'settled'], JSON.stringify(states));
    assert.equal(states.find((s) => s['status'] === 'refused')?.['code'], 'DOUBLE_SPEND');
    const credited = [await balance(bob), await balance(dave)].sort();
    assert.deepEqual(credited, ['0.00', '1.00']);

    // One copy deposited at B by two customers (a wallet folder copied): the second is told it is spent.
    const { alice: erin, coin: other } = await coinAt(bankA, 50n);
    const frank = await otpCustomer(bankB);
    const gina = await otpCustomer(bankB);
    const copy = pay({ coin: other, tags: [] }, erin.device, escrowA);
    // The same sealed box, deposited by both (the depositor's last tag is left out to make it the same evidence).
    const { depositKey } = await paramsOf(bankB);
    const box = encodeCbor(sealCoin(copy, depositKey).sealed);
    const byFrank = await deposit(frank, [box]);
    const byGina = await deposit(gina, [box]);
    assert.deepEqual(byFrank.outcomes, ['presented']);
    assert.deepEqual(byGina.outcomes, ['double-spend']);
    assert.deepEqual(byGina.claims, []);
    await tiers.settleAndAudit();
    assert.equal(await balance(frank), '0.50');
    assert.equal(await balance(gina), '0.00');
  });

  test('coins B cannot check are refused at the deposit, and no claim is made: forged, of no bank, past their hops; a coin at its last hop is presented', async () => {
    const { alice, coin } = await coinAt(bankA, 100n);
    const [second] = await withdraw(alice, [classOf(await paramsOf(bankA), 100n)]);
    const bob = await otpCustomer(bankB);
    const escrowA = await escrowOf(bankA);
    const forged = { ...coin, serial: randomBytes(SERIAL_BYTES) };
    const nobody = { ...coin, classId: randomBytes(16) };
    let tooFar: CarriedCoin = { coin, tags: [] };
    for (let hop = 0; hop < 9; hop++) tooFar = pay(tooFar, alice.device, escrowA);
    // Eight transfers (the class's hops) and the deposit's tag: the largest evidence a genuine coin makes.
    let atLimit: CarriedCoin = { coin: second as Coin, tags: [] };
    for (let hop = 0; hop < 8; hop++) atLimit = pay(atLimit, alice.device, escrowA);
    const boxes = [{ coin: forged, tags: [] }, { coin: nobody, tags: [] }, tooFar, atLimit];
    const out = await deposit(bob, await Promise.all(boxes.map((b) => sealForDeposit(bob, b, escrowA))));
    assert.deepEqual(out.outcomes, ['refused', 'refused', 'refused', 'presented']);
    assert.equal(out.claims.length, 1);
    assert.equal(out.claims[0]?.['coin'], 3);
    await tiers.settleAndAudit();
    assert.equal((await claimState(bob, out.claims[0]?.['claimId'] as string))['status'], 'settled');
    assert.equal(await balance(bob), '1.00');
  });

  test('evidence A cannot accept, presented to the central bank directly: malformed, forged, of another amount, oversized', async () => {
    const { coin } = await coinAt(bankA, 100n);
    const present = (evidence: Uint8Array, amount = '1.00') =>
      signed(tiers.cb.url, bankB.signer, 'POST', '/v1/cb/claims', { claimId: claimIdOf('otp', evidence), payerBank: bankA.keyId, scheme: 'otp', amount, evidence: toBase64url(evidence) });
    const malformed = utf8('not a coin at all');
    const forged = encodeCbor({ coin: { ...coin, signature: coin.signature.map((b, i) => (i === 9 ? b ^ 1 : b)) }, tags: [] });
    const otherAmount = encodeCbor({ coin, tags: [] });
    for (const [evidence, amount] of [[malformed, '1.00'], [forged, '1.00'], [otherAmount, '9.00']] as const) {
      const a = await present(evidence, amount);
      assert.ok(a.status === 200 || a.status === 201 || a.status === 202, JSON.stringify(a.body));
    }
    const oversized = await present(new Uint8Array(8193).fill(7));
    assert.ok(oversized.status >= 400, JSON.stringify(oversized.body));
    await tiers.settleAndAudit();
    const codes: string[] = [];
    for (const evidence of [malformed, forged, otherAmount]) {
      const a = await signed(tiers.cb.url, bankB.signer, 'GET', `/v1/cb/claims/${claimIdOf('otp', evidence)}`);
      assert.equal(a.body['status'], 'refused', JSON.stringify(a.body));
      codes.push(a.body['code'] as string);
    }
    assert.deepEqual(codes, ['CLAIM_INVALID', 'OTP_COIN_INVALID', 'CLAIM_INVALID']);
    // The coin itself is still good: its serial was not spent by the refused claims.
    const carol = await otpCustomer(bankA);
    const atA = await deposit(carol, [await sealForDeposit(carol, { coin, tags: [] }, await escrowOf(bankA))]);
    assert.deepEqual(atA.outcomes, ['credited']);
    await tiers.settleAndAudit();
  });

  test('A stopped while B\'s claim waits: the claim stays presented, and is settled once A is back', async () => {
    const { alice, coin } = await coinAt(bankA, 1000n);
    const bob = await otpCustomer(bankB);
    const escrowA = await escrowOf(bankA);
    await checkOffline(bankB, bankA, coin);
    await bankA.stop();
    const out = await deposit(bob, [await sealForDeposit(bob, pay({ coin, tags: [] }, alice.device, escrowA), escrowA)]);
    assert.deepEqual(out.outcomes, ['presented']);
    const claimId = out.claims[0]?.['claimId'] as string;
    await tiers.syncAll();
    await tiers.syncAll();
    assert.equal((await claimState(bob, claimId))['status'], 'presented');
    assert.equal(await balance(bob), '0.00');
    await bankA.restart();
    await tiers.settleAndAudit();
    assert.equal((await claimState(bob, claimId))['status'], 'settled');
    assert.equal(await balance(bob), '10.00');
  });

  test('a coin of a bank the central bank revoked is refused at B\'s deposit', async () => {
    const { alice, coin } = await coinAt(bankC, 100n);
    const bob = await otpCustomer(bankB);
    const escrowC = await escrowOf(bankC);
    await checkOffline(bankB, bankC, coin);
    await tiers.cb.ok('POST', '/v1/cb/operator/revoke', { intermediary: bankC.keyId, reason: 'test: wound down' });
    await tiers.syncAll();
    assert.equal((await peerOtp(bankB)).get(bankC.keyId)?.revoked, true);
    const out = await deposit(bob, [await sealForDeposit(bob, pay({ coin, tags: [] }, alice.device, escrowC), escrowC)]);
    assert.deepEqual(out.outcomes, ['refused']);
    assert.deepEqual(out.claims, []);
    await tiers.settleAndAudit();
    assert.equal(await balance(bob), '0.00');
  });
});
