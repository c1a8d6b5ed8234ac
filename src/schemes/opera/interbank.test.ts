/**
 * OPERA across two banks: a central bank and two intermediaries, each its own node over HTTP on
 * loopback with its own PGlite database, and ODWs (the trusted app in in-process secure elements)
 * provisioned at each. Bank A issues tokens from its reserve into its customer's ODW; the ODW pays
 * them offline, by the three-stage exchange, to the ODW of a customer of bank B, which took A's
 * parameters from B's directory of peers and checked them to its root; B's customer deposits at B;
 * B presents one claim per token to A; A judges with the double-deposit check of its own deposits;
 * the central bank moves the reserves; B credits its customer. Also: a token deposited at A and at
 * B, and at B twice (a cloned ODW paid it twice), forged and malformed evidence, A stopped while a
 * claim waits, A revoked. Every test ends with each bank's audit and the system's balanced.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { randomBytes, sha256 } from '../../core/crypto/hash.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret, type Signer } from '../../core/crypto/suite.ts';
import { claimIdOf } from '../../issuer/tier/interbank.ts';
import { balance, claimState, customer, minor, money, send, signed, Tiers, type Answer, type Json, type TierBank, type TierCustomer } from '../../issuer/tier/test-tiers.ts';
import { credentialKeys, issueCredential, sealCredential, type CredentialKeys } from '../../pki/anonymous-credential.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { keyId } from '../../pki/key-id.ts';
import { signRegistrationProof } from '../../pki/registration.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { InProcessHost } from '../../secure-element/host.ts';
import { MemoryCounter, MemoryStorage } from '../../secure-element/memory-fixtures.ts';
import { opera } from './index.ts';
import * as m from './messages.ts';
import { assertPaid, pay } from './ta-fixtures.ts';
import { signToken, TOKEN_SERIAL_BYTES, type Token } from './token.ts';
import { operaTrustedApp, type OperaState } from './trusted-app.ts';
import { peerBanksOf } from './wallet-base.ts';

const MEASUREMENT = sha256(utf8('tally opera odw, interbank test build'));
const measurements = [{ scheme: 'opera', measurement: toHex(MEASUREMENT) }];
const REFERENCE = new Uint8Array(32).fill(0x3c);

let tiers: Tiers;
let bankA: TierBank;
let bankB: TierBank;
/** Each bank's ODWs come from a maker of its own, listed only at that bank. */
const makers = new Map<string, CredentialKeys>();

type Commands = typeof operaTrustedApp.commands;
type Host = InProcessHost<OperaState, Commands>;

/** A customer of a bank with an ODW registered there, provisioned, credentialed, with the other banks' parameters. */
interface OdwCustomer extends TierCustomer {
  se: Host;
  readonly device: string;
  readonly storage: MemoryStorage;
  readonly counter: MemoryCounter;
}

const hostOptions = (storage: MemoryStorage, counter: MemoryCounter) => ({ app: operaTrustedApp, storage, counter, provider: nodeProvider });

/** The other banks' OPERA parameters, as B's directory gives them, into the ODW (what `tally sync` does). */
async function refreshPeers(bank: TierBank, se: Host): Promise<number> {
  const a = await send(bank.url, 'GET', '/v1/interbank/peers');
  assert.equal(a.status, 200, JSON.stringify(a.body));
  const peers = peerBanksOf(nodeProvider, a.body);
  return (await se.call('setPeers', { peers, now: Date.now() })).peers;
}

async function odwCustomer(bank: TierBank): Promise<OdwCustomer> {
  const c = await customer(bank);
  const storage = new MemoryStorage();
  const counter = new MemoryCounter();
  const se = (await InProcessHost.provision(hostOptions(storage, counter))) as Host;
  const init = await se.call('init', { root: bank.certificates.root, owner: fromHex(c.keyId) });
  const reg = await signed(bank.url, c.user, 'POST', '/v1/devices', {
    publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) },
    scheme: 'opera',
    oem: bank.oemKeyId,
    attestation: toBase64url(encodeAttestation(attestDevice(bank.oem, { sePublicKey: init.publicKey, model: 'Test ODW', taMeasurement: MEASUREMENT }))),
    proof: toBase64url(init.proof),
  });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  await se.call('certInit', { intermediary: bank.certificates.intermediary, issuerNode: bank.certificates.issuerNode, now: Date.now() });
  const params = await send(bank.url, 'GET', '/v1/opera/params');
  await se.call('setParams', { params: m.paramsCodec.decode(decodeCbor(fromBase64url(params.body['params'] as string))) });
  const maker = makers.get(bank.name) as CredentialKeys;
  const request = await se.call('credentialRequest', { makerNonce: randomBytes(32) });
  const credential = await issueCredential(maker, { label: m.ODW_CREDENTIAL_LABEL, reference: REFERENCE }, request.holder);
  await se.call('credentialInstall', { maker: maker.publicKey, reference: REFERENCE, sealed: sealCredential(request.boxKey, credential, randomBytes(32)) });
  assert.equal(await refreshPeers(bank, se), 1, "the other bank's parameters check to the root");
  return { ...c, se, storage, counter, device: reg.body['keyId'] as string };
}

/** A second ODW with a copy of `c`'s sealed state and counter (a cloned wallet). */
async function cloneOf(c: OdwCustomer): Promise<Host> {
  return (await InProcessHost.open(hostOptions(c.storage.clone(), c.counter.clone()))) as Host;
}

/** The bank charges tokens of `values` into the ODW, debiting the customer's account. */
async function charge(c: OdwCustomer, values: readonly bigint[]): Promise<void> {
  const counts = new Map<bigint, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  const amount = values.reduce((s, v) => s + v, 0n);
  const { request } = await c.se.call('chargeRequest', { amount, tokens: [...counts].map(([value, count]) => ({ value, count })) });
  const a = await signed(c.bank.url, c.user, 'POST', '/v1/opera/charge', { device: c.device, request: toBase64url(encodeCbor(request)) });
  assert.equal(a.status, 200, JSON.stringify(a.body));
  await c.se.call('chargeTake', { charge: m.chargeCodec.decode(decodeCbor(fromBase64url(a.body['charge'] as string))) });
}

/** The ODW deposits every token it holds at its bank; the outcomes by serial and the claims presented. */
async function depositAll(c: OdwCustomer): Promise<{ credited: string; outcomes: Map<string, string>; claims: Json[]; take: { presented: number; doubleSpent: number; refused: number } }> {
  const { request } = await c.se.call('depositRequest', {});
  const a = await signed(c.bank.url, c.user, 'POST', '/v1/opera/deposit', { device: c.device, request: toBase64url(encodeCbor(request)) });
  assert.equal(a.status, 200, JSON.stringify(a.body));
  const receipt = m.depositReceiptCodec.decode(decodeCbor(fromBase64url(a.body['receipt'] as string)));
  const take = await c.se.call('depositTake', { receipt });
  return { credited: a.body['credited'] as string, outcomes: new Map(receipt.body.tokens.map((t) => [toHex(t.serial), t.outcome])), claims: (a.body['claims'] as Json[] | undefined) ?? [], take };
}

async function findings(bank: TierBank): Promise<Json[]> {
  return (await bank.ok('GET', '/v1/opera/operator/findings'))['findings'] as Json[];
}

const settleAndAudit = () => tiers.settleAndAudit();

before(async () => {
  tiers = await Tiers.start({ schemes: [opera], tag: 'opera' });
  bankA = await tiers.bank('bank-a', { measurements });
  bankB = await tiers.bank('bank-b', { measurements });
  for (const [i, bank] of [bankA, bankB].entries()) {
    const maker = await credentialKeys(new Uint8Array(32).fill(20 + i));
    makers.set(bank.name, maker);
    await bank.ok('POST', '/v1/opera/makers', { publicKey: toBase64url(maker.publicKey), reference: toHex(REFERENCE) });
  }
  // Each bank publishes its parameters at its sync; every bank reads the others' at the next.
  await tiers.syncAll();
  await tiers.syncAll();
});

after(async () => {
  await tiers?.stop();
});

describe('OPERA across two banks', () => {
  test("tokens issued at A from its reserve, paid offline to B's wallet, deposited at B: one claim per token, A accepts, the reserves move, B credits", { timeout: 120_000 }, async () => {
    const alice = await odwCustomer(bankA);
    const bob = await odwCustomer(bankB);
    await bankA.ok('POST', '/v1/operator/mint', { account: alice.account, amount: '40.00' });
    await charge(alice, [2000n, 1000n, 500n, 200n]);
    assert.equal(await balance(alice), '3.00', 'the charge debited the account the reserve funded');
    const [payer, payee] = assertPaid(await pay(alice.se, bob.se, 3500n));
    assert.deepEqual([payer.ending, payee.ending, payer.count], ['paid', 'paid', 3]);
    assert.equal((await bob.se.call('status', {})).balance, 3500n, "B's ODW took A's tokens");

    const reserveA0 = await tiers.reserveOf(bankA);
    const reserveB0 = await tiers.reserveOf(bankB);
    const deposited = await depositAll(bob);
    assert.equal(deposited.credited, '0.00', 'nothing credited before the claims settle');
    assert.deepEqual([...deposited.outcomes.values()], ['presented', 'presented', 'presented']);
    assert.deepEqual(deposited.take, { credited: 0n, doubleSpent: 0, refused: 0, presented: 3 });
    assert.equal(deposited.claims.length, 3, 'one claim per token');
    assert.equal(await balance(bob), '0.00');
    for (const claim of deposited.claims) assert.equal((await claimState(bob, claim['claimId'] as string))['status'], 'pending');

    await settleAndAudit();
    for (const claim of deposited.claims) assert.equal((await claimState(bob, claim['claimId'] as string))['status'], 'settled');
    assert.equal(await balance(bob), '35.00');
    assert.equal(await tiers.reserveOf(bankA), money(minor(reserveA0) - 3500n));
    assert.equal(await tiers.reserveOf(bankB), money(minor(reserveB0) + 3500n));
    // A recorded each serial as deposited by Bob's ODW: its own registry is the system's.
    const a = await bankA.ok('GET', '/v1/audit');
    assert.ok(JSON.stringify(a).includes('opera'), 'the audit checks the OPERA float');
    // Alice still pays her 2.00 token at A: the float there holds it.
    const carol = await odwCustomer(bankA);
    assertPaid(await pay(alice.se, carol.se, 200n));
    const local = await depositAll(carol);
    assert.equal(local.credited, '2.00');
    await settleAndAudit();
    assert.equal(await balance(carol), '2.00');
  });

  test('a cloned ODW of A pays one token at A and at B, one twice at B, and one at B then at A: the first deposit anywhere is paid, the rest refused, nothing credited for them, the clone named at A', { timeout: 120_000 }, async () => {
    const alice = await odwCustomer(bankA);
    await bankA.ok('POST', '/v1/operator/mint', { account: alice.account, amount: '8.00' });
    await charge(alice, [500n, 200n, 100n]);
    const clone = await cloneOf(alice);
    const carol = await odwCustomer(bankA);
    const erin = await odwCustomer(bankA);
    const bob = await odwCustomer(bankB);
    const dave = await odwCustomer(bankB);
    try {
      // The 5.00 token to Carol (at A) by the ODW and to Bob (at B) by its clone; the 2.00 token to Dave and to Bob.
      assertPaid(await pay(alice.se, carol.se, 500n));
      assertPaid(await pay(clone, bob.se, 500n));
      assertPaid(await pay(alice.se, dave.se, 200n));
      assertPaid(await pay(clone, bob.se, 200n));
      // The 1.00 token to Erin (at A) and to Bob (at B), Bob depositing first.
      assertPaid(await pay(alice.se, erin.se, 100n));
      assertPaid(await pay(clone, bob.se, 100n));

      const atA = await depositAll(carol);
      assert.equal(atA.credited, '5.00');
      const five = [...atA.outcomes.keys()][0] as string;
      const atB = await depositAll(bob);
      assert.equal(atB.credited, '0.00');
      assert.deepEqual([...atB.outcomes.values()], ['presented', 'presented', 'presented']);
      const erinHolds = (await erin.se.call('depositRequest', {})).request;
      const one = toHex((erinHolds.body.tokens[0] as Token).body.serial);
      const two = [...atB.outcomes.keys()].find((s) => s !== five && s !== one) as string;
      const claimOf = (serial: string) => atB.claims.find((c) => c['serial'] === serial)?.['claimId'] as string;
      // Dave deposits the 2.00 token at B after Bob: B finds it spent on the spot, with no second claim.
      const twice = await depositAll(dave);
      assert.deepEqual([twice.credited, [...twice.outcomes.entries()], twice.claims], ['0.00', [[two, 'double-spend']], []]);
      assert.deepEqual(twice.take, { credited: 0n, doubleSpent: 1, refused: 0, presented: 0 });
      const atBFindings = await findings(bankB);
      assert.deepEqual(atBFindings.filter((f) => f['serial'] === two).map((f) => [f['kind'], f['device'], f['first']]), [['double-spend', dave.device, bob.device]]);

      await settleAndAudit();
      const refused = await claimState(bob, claimOf(five));
      assert.equal(refused['status'], 'refused', JSON.stringify(refused));
      assert.equal(refused['code'], 'DOUBLE_SPEND');
      assert.match(refused['reason'] as string, new RegExp(carol.device), 'the first depositor is named');
      assert.equal((await claimState(bob, claimOf(two)))['status'], 'settled');
      assert.equal((await claimState(bob, claimOf(one)))['status'], 'settled');
      // Erin's copy of the 1.00 token comes to A after A paid it through B's claim: a double spend at A.
      const late = await signed(bankA.url, erin.user, 'POST', '/v1/opera/deposit', { device: erin.device, request: toBase64url(encodeCbor(erinHolds)) });
      assert.equal(late.status, 200, JSON.stringify(late.body));
      const lateReceipt = m.depositReceiptCodec.decode(decodeCbor(fromBase64url(late.body['receipt'] as string)));
      assert.deepEqual([late.body['credited'], lateReceipt.body.tokens.map((t) => t.outcome)], ['0.00', ['double-spend']]);
      await erin.se.call('depositTake', { receipt: lateReceipt });
      await settleAndAudit();
      assert.deepEqual([await balance(carol), await balance(erin), await balance(bob), await balance(dave)], ['5.00', '0.00', '3.00', '0.00']);
      // At A: the copy's deposit through B is a double spend naming both ODWs, and the tags of the
      // payment where the copies part name Alice's ODW, which A revokes.
      const atAFindings = await findings(bankA);
      assert.deepEqual(atAFindings.filter((f) => f['serial'] === five && f['kind'] === 'double-spend').map((f) => [f['device'], f['first']]), [[bob.device, carol.device]]);
      const named = atAFindings.find((f) => f['serial'] === five && f['kind'] === 'paid-twice');
      assert.ok(named !== undefined, JSON.stringify(atAFindings));
      assert.equal(named['device'], alice.device);
      assert.equal(named['hop'], 1);
      assert.notEqual(named['revocationVersion'], null, "A revokes its clone's certificate");
      assert.deepEqual(atAFindings.filter((f) => f['serial'] === one && f['kind'] === 'double-spend').map((f) => [f['device'], f['first']]), [[erin.device, bob.device]], 'the first depositor through B is named at A');
    } finally {
      await clone.close();
    }
  });

  test('bank A stopped while B presents: the claim waits, and completes when A is back', { timeout: 120_000 }, async () => {
    const alice = await odwCustomer(bankA);
    const bob = await odwCustomer(bankB);
    await bankA.ok('POST', '/v1/operator/mint', { account: alice.account, amount: '1.00' });
    await charge(alice, [100n]);
    assertPaid(await pay(alice.se, bob.se, 100n));
    await bankA.stop();
    let claimId = '';
    try {
      const deposited = await depositAll(bob);
      claimId = deposited.claims[0]?.['claimId'] as string;
      await bankB.sync();
      await bankB.sync();
      assert.equal((await claimState(bob, claimId))['status'], 'presented');
      assert.equal(await balance(bob), '0.00');
    } finally {
      await bankA.restart();
    }
    await settleAndAudit();
    assert.equal((await claimState(bob, claimId))['status'], 'settled');
    assert.equal(await balance(bob), '1.00');
  });
});

/** B presents directly at the central bank, signed with its key, as a bank's software would. */
function present(bank: TierBank, evidence: Uint8Array, amount: string, payerBank = bankA.keyId): Promise<Answer> {
  return signed(tiers.cb.url, bank.signer, 'POST', '/v1/cb/claims', { claimId: claimIdOf('opera', evidence), payerBank, scheme: 'opera', amount, evidence: toBase64url(evidence) });
}

async function atCentralBank(bank: TierBank, claimId: string): Promise<Json> {
  const a = await signed(tiers.cb.url, bank.signer, 'GET', `/v1/cb/claims/${claimId}`);
  assert.equal(a.status, 200, JSON.stringify(a.body));
  return a.body;
}

/** A device registered at `bank` whose key the test holds (to sign what no genuine ODW would). */
async function rawDevice(bank: TierBank): Promise<TierCustomer & { device: Signer; deviceId: string }> {
  const c = await customer(bank);
  const device = signerFromSecret(nobleEd25519, randomBytes(32));
  const reg = await signed(bank.url, c.user, 'POST', '/v1/devices', {
    publicKey: { suite: 'ed25519', key: toBase64url(device.publicKey.key) },
    scheme: 'opera',
    oem: bank.oemKeyId,
    attestation: toBase64url(encodeAttestation(attestDevice(bank.oem, { sePublicKey: device.publicKey, model: 'Test ODW', taMeasurement: MEASUREMENT }))),
    proof: toBase64url(signRegistrationProof(device, { owner: fromHex(c.keyId), scheme: 'opera' })),
  });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  return { ...c, device, deviceId: toHex(keyId(device.publicKey)) };
}

describe('what A refuses of what B presents', () => {
  test('a forged token, a token claimed for another amount, malformed and oversized evidence: refused with their codes, nothing moves', { timeout: 120_000 }, async () => {
    const system0 = await settleAndAudit();
    const depositor = randomBytes(32);
    const forger = signerFromSecret(nobleEd25519, randomBytes(32));
    const forged: Token = signToken(forger, { serial: randomBytes(TOKEN_SERIAL_BYTES), value: 1000n, currency: 'EUR', issued: Date.now() });
    const forgedClaim = await present(bankB, encodeCbor(m.interbankEvidenceCodec.decode({ token: forged, depositor })), '10.00');
    assert.equal(forgedClaim.status, 202, JSON.stringify(forgedClaim.body));
    const garbage = randomBytes(300);
    const malformed = await present(bankB, garbage, '1.00');
    assert.equal(malformed.status, 202, JSON.stringify(malformed.body));
    const oversized = await present(bankB, new Uint8Array(8193), '1.00');
    assert.equal(oversized.status, 400, JSON.stringify(oversized.body));
    assert.equal((oversized.body['error'] as Json)['code'], 'BODY_INVALID');

    // A genuine token of A, claimed for ten times its value (under another depositor: other evidence than the honest deposit's).
    const alice = await odwCustomer(bankA);
    const bob = await odwCustomer(bankB);
    await bankA.ok('POST', '/v1/operator/mint', { account: alice.account, amount: '1.00' });
    await charge(alice, [100n]);
    assertPaid(await pay(alice.se, bob.se, 100n));
    const { request } = await bob.se.call('depositRequest', {});
    const token = request.body.tokens[0] as Token;
    const inflated = await present(bankB, encodeCbor(m.interbankEvidenceCodec.decode({ token, depositor: randomBytes(32) })), '10.00');
    assert.equal(inflated.status, 202, JSON.stringify(inflated.body));

    await settleAndAudit();
    const codes = [];
    for (const c of [forgedClaim, malformed, inflated]) {
      const s = await atCentralBank(bankB, c.body['claimId'] as string);
      assert.equal(s['status'], 'refused', JSON.stringify(s));
      codes.push(s['code']);
    }
    assert.deepEqual(codes, ['OPERA_TOKEN_INVALID', 'DECODE_FAILED', 'CLAIM_INVALID']);
    // The inflated claim spent nothing: the token's honest deposit at B still settles.
    const a = await signed(bankB.url, bob.user, 'POST', '/v1/opera/deposit', { device: bob.device, request: toBase64url(encodeCbor(request)) });
    assert.equal(a.status, 200, JSON.stringify(a.body));
    await bob.se.call('depositTake', { receipt: m.depositReceiptCodec.decode(decodeCbor(fromBase64url(a.body['receipt'] as string))) });
    const system1 = await settleAndAudit();
    assert.equal((await claimState(bob, (a.body['claims'] as Json[])[0]?.['claimId'] as string))['status'], 'settled');
    assert.equal(await balance(bob), '1.00');
    const reserves = (s: Json) => (s['intermediaries'] as Json[]).map((i) => minor(i['reserve'] as string)).reduce((x, y) => x + y, 0n);
    assert.equal(reserves(system1), reserves(system0), 'reserves only moved between the banks');
  });

  test("at B, a token no bank of the directory signed is refused at deposit and presented nowhere", { timeout: 120_000 }, async () => {
    const mallory = await rawDevice(bankB);
    const forger = signerFromSecret(nobleEd25519, randomBytes(32));
    const forged: Token = signToken(forger, { serial: randomBytes(TOKEN_SERIAL_BYTES), value: 500n, currency: 'EUR', issued: Date.now() });
    const request = m.signed(m.depositRequestBodyCodec, mallory.device, m.DEPOSIT_REQUEST_TAG, { nonce: randomBytes(m.NONCE_BYTES), tokens: [forged] });
    const a = await signed(bankB.url, mallory.user, 'POST', '/v1/opera/deposit', { device: mallory.deviceId, request: toBase64url(encodeCbor(request)) });
    assert.equal(a.status, 200, JSON.stringify(a.body));
    const receipt = m.depositReceiptCodec.decode(decodeCbor(fromBase64url(a.body['receipt'] as string)));
    assert.deepEqual(receipt.body.tokens.map((t) => t.outcome), ['refused']);
    assert.equal(a.body['claims'], undefined);
    await settleAndAudit();
    assert.equal(await balance(mallory), '0.00');
  });

  test("A revoked by the central bank: B's ODWs drop its parameters at their next sync, and a claim on its tokens is refused with CERT_REVOKED, nothing credited", { timeout: 120_000 }, async () => {
    const alice = await odwCustomer(bankA);
    const bob = await odwCustomer(bankB);
    await bankA.ok('POST', '/v1/operator/mint', { account: alice.account, amount: '3.00' });
    await charge(alice, [200n]);
    assertPaid(await pay(alice.se, bob.se, 200n));
    await tiers.cb.ok('POST', '/v1/cb/operator/revoke', { intermediary: bankA.keyId, reason: 'wound down' });
    await tiers.syncAll();
    await tiers.syncAll();
    assert.equal(await refreshPeers(bankB, bob.se), 0, "a revoked bank's parameters are no longer given to ODWs");
    const deposited = await depositAll(bob);
    assert.deepEqual([...deposited.outcomes.values()], ['presented']);
    await settleAndAudit();
    const state = await claimState(bob, deposited.claims[0]?.['claimId'] as string);
    assert.equal(state['status'], 'refused', JSON.stringify(state));
    assert.equal(state['code'], 'CERT_REVOKED');
    assert.equal(await balance(bob), '0.00');
  });
});
