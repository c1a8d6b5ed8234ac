/**
 * OPS across two banks: a central bank and two intermediaries, each its own node over HTTP on
 * loopback with its own PGlite database. A device certified by bank A pays a customer of bank B
 * offline; B presents the claim through the central bank, A judges it with OPS's checks, the
 * central bank moves the reserves, B credits its customer; every ledger and the system's audit
 * balance. Also: A stopped while B's claim waits; a cloned device of A paying customers of A and
 * of B; and the central bank's claim routes refusing what they must.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fromBase64url, fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { decodeCbor } from '../../core/cbor.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret } from '../../core/crypto/suite.ts';
import { claimIdOf } from '../../issuer/tier/interbank.ts';
import { balance, claimState, customer, minor, money, send, signed, signedHeaders, Tiers, type Answer, type Json, type TierBank, type TierCustomer, type TierNode } from '../../issuer/tier/test-tiers.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { FileCounter } from '../../secure-element/counter-file.ts';
import { InProcessHost } from '../../secure-element/host.ts';
import { FileStorage } from '../../secure-element/storage-file.ts';
import { ops } from './index.ts';
import { depositConfirmationCodec, encodePayment, type Payment } from './messages.ts';
import { verifyPayment } from './pay-verify.ts';
import { opsTrustedApp } from './trusted-app.ts';
import { TEST_MEASUREMENT } from './test-fixtures.ts';

let tiers: Tiers;
let cb: TierNode;
let bankA: TierBank;
let bankB: TierBank;
let root: string;
let calls = 0;
const measurements = [{ scheme: 'ops', measurement: toHex(TEST_MEASUREMENT) }];
type Se = InProcessHost<unknown, typeof opsTrustedApp.commands>;

function openSe(dir: string, provision: boolean): Promise<Se> {
  const options = { app: opsTrustedApp, storage: new FileStorage(join(dir, 'se')), counter: new FileCounter(join(dir, 'counter')), provider: nodeProvider };
  return (provision ? InProcessHost.provision(options) : InProcessHost.open(options)) as Promise<Se>;
}

/** A customer of `bank` with an OPS device, holding `offline` on it out of `minted` in its account. */
async function deviceCustomer(bank: TierBank, minted: string, offline: string): Promise<TierCustomer & { se: Se; dir: string; device: string }> {
  const c = await customer(bank);
  const dir = await mkdtemp(join(root, 'se-'));
  const se = await openSe(dir, true);
  const init = await se.call('init', { root: bank.certificates.root, owner: fromHex(c.keyId) });
  const attestation = attestDevice(bank.oem, { sePublicKey: init.publicKey, model: 'Test SE', taMeasurement: TEST_MEASUREMENT });
  const reg = await signed(bank.url, c.user, 'POST', '/v1/devices', {
    publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) },
    scheme: 'ops',
    oem: bank.oemKeyId,
    attestation: toBase64url(encodeAttestation(attestation)),
    proof: toBase64url(init.proof),
  });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  await se.call('certInit', { certificate: fromBase64url(reg.body['certificate'] as string), intermediary: bank.certificates.intermediary, issuerNode: bank.certificates.issuerNode });
  await bank.ok('POST', '/v1/operator/mint', { account: c.account, amount: minted });
  const dep = await signed(bank.url, c.user, 'POST', '/v1/ops/deposits', { device: reg.body['keyId'], amount: offline });
  assert.equal(dep.status, 200, JSON.stringify(dep.body));
  await se.call('deposit', { confirmation: depositConfirmationCodec.decode(decodeCbor(fromBase64url(dep.body['confirmation'] as string))) });
  return { ...c, se, dir, device: reg.body['keyId'] as string };
}

function claim(c: TierCustomer, payment: Payment): Promise<Answer> {
  return signed(c.bank.url, c.user, 'POST', '/v1/ops/claims', { payment: toBase64url(encodePayment(payment)) });
}

before(async () => {
  tiers = await Tiers.start({ schemes: [ops], tag: 'ops' });
  cb = tiers.cb;
  root = tiers.root;
  bankA = await tiers.bank('bank-a', { measurements });
  bankB = await tiers.bank('bank-b', { measurements });
});

after(async () => {
  await tiers?.stop();
});

const settleAndAudit = () => tiers.settleAndAudit();
const reserveAt = (bank: TierBank) => tiers.reserveOf(bank);

describe('OPS across two banks', () => {
  test('a device of A pays a customer of B offline: B presents, A accepts, the reserves move, B credits, every audit balances', { timeout: 120_000 }, async () => {
    const alice = await deviceCustomer(bankA, '100.00', '50.00');
    const bob = await customer(bankB);
    const payment = await alice.se.call('pay', { amount: 2000n, receiver: bob.certificate });
    // Offline, Bob's wallet checks the payment with both banks' certificates, to the common root.
    const offline = verifyPayment({
      provider: nodeProvider,
      payment,
      trustAnchors: [decodeCertificate(bankB.certificates.root)],
      intermediaries: [decodeCertificate(bankB.certificates.intermediary), decodeCertificate(bankA.certificates.intermediary)],
      now: Date.now(),
      currency: 'EUR',
      receiver: bob.certificate,
    });
    assert.equal(toHex(offline.sender.subjectKeyId), alice.device);

    const reserveA0 = await reserveAt(bankA);
    const reserveB0 = await reserveAt(bankB);
    const claimed = await claim(bob, payment);
    assert.equal(claimed.status, 202, JSON.stringify(claimed.body));
    const claimId = (claimed.body['claim'] as Json)['claimId'] as string;
    assert.equal(claimId, claimIdOf('ops', encodePayment(payment)));
    assert.equal((await claimState(bob, claimId))['status'], 'pending');
    assert.equal(await balance(bob), '0.00', 'not credited before settlement');
    // The same claim again is the same claim.
    const again = await claim(bob, payment);
    assert.equal(again.status, 202);
    assert.equal((again.body['claim'] as Json)['claimId'], claimId);

    await settleAndAudit();
    const state = await claimState(bob, claimId);
    assert.equal(state['status'], 'settled', JSON.stringify(state));
    assert.equal(await balance(bob), '20.00');
    assert.equal(await reserveAt(bankA), money(minor(reserveA0) - 2000n));
    assert.equal(await reserveAt(bankB), money(minor(reserveB0) + 2000n));
    // Bob claims once more: still one claim, credited once.
    assert.equal((await claim(bob, payment)).status, 202);
    await settleAndAudit();
    assert.equal(await balance(bob), '20.00');
    await alice.se.close();
  });

  test('bank A stopped while B presents: the claim waits, and completes when A is back', { timeout: 120_000 }, async () => {
    const alice = await deviceCustomer(bankA, '30.00', '20.00');
    const bob = await customer(bankB);
    const payment = await alice.se.call('pay', { amount: 500n, receiver: bob.certificate });
    await bankA.stop();
    try {
      const claimed = await claim(bob, payment);
      assert.equal(claimed.status, 202, JSON.stringify(claimed.body));
      const claimId = (claimed.body['claim'] as Json)['claimId'] as string;
      await bankB.sync();
      await bankB.sync();
      assert.equal((await claimState(bob, claimId))['status'], 'presented');
      assert.equal(await balance(bob), '0.00');
      await bankA.restart();
      await settleAndAudit();
      assert.equal((await claimState(bob, claimId))['status'], 'settled');
      assert.equal(await balance(bob), '5.00');
    } finally {
      await alice.se.close();
    }
  });

  test("a cloned device of A pays a customer of A and one of B: A catches it, names it, refuses B's claim; B's customer is told and not credited", { timeout: 120_000 }, async () => {
    const alice = await deviceCustomer(bankA, '40.00', '30.00');
    const carol = await customer(bankA);
    const bob = await customer(bankB);
    const cloneDir = await mkdtemp(join(root, 'clone-'));
    await cp(alice.dir, cloneDir, { recursive: true });
    const clone = await openSe(cloneDir, false);
    try {
      const toCarol = await alice.se.call('pay', { amount: 1000n, receiver: carol.certificate });
      const toBob = await clone.call('pay', { amount: 1000n, receiver: bob.certificate });
      assert.equal(toCarol.index, toBob.index, 'the clone signs the same index again');
      const local = await claim(carol, toCarol);
      assert.equal(local.status, 200, JSON.stringify(local.body));
      const before = await settleAndAudit();
      const reserveA = await reserveAt(bankA);

      const claimed = await claim(bob, toBob);
      assert.equal(claimed.status, 202, JSON.stringify(claimed.body));
      const claimId = (claimed.body['claim'] as Json)['claimId'] as string;
      const after = await settleAndAudit();
      const state = await claimState(bob, claimId);
      assert.equal(state['status'], 'refused');
      assert.equal(state['code'], 'DOUBLE_SPEND');
      assert.match(state['reason'] as string, new RegExp(alice.device));
      assert.equal(await balance(bob), '0.00', 'nothing credited');
      assert.equal(await balance(carol), '10.00');
      assert.equal(await reserveAt(bankA), reserveA, 'no reserve moved');
      assert.equal(after['reserves'], before['reserves']);
      // A named the device in a fraud case and revoked it.
      const fraud = (await bankA.ok('GET', '/v1/ops/fraud'))['cases'] as Json[];
      assert.ok(fraud.some((f) => f['device'] === alice.device && f['kind'] === 'clone'), JSON.stringify(fraud));
      // A later payment of the revoked device to a customer of B is refused at A for revocation.
      const later = await clone.call('pay', { amount: 500n, receiver: bob.certificate });
      const again = await claim(bob, later);
      assert.equal(again.status, 202);
      await settleAndAudit();
      const laterState = await claimState(bob, (again.body['claim'] as Json)['claimId'] as string);
      assert.equal(laterState['status'], 'refused');
      assert.equal(laterState['code'], 'CERT_REVOKED');
      assert.equal(await balance(bob), '0.00');
    } finally {
      await clone.close();
      await alice.se.close();
    }
  });
});

/** B presents directly at the central bank, as a bank's software would, signed with its key. */
function present(bank: TierBank, body: Json, idempotencyKey?: string): Promise<Answer> {
  return signed(cb.url, bank.signer, 'POST', '/v1/cb/claims', body, idempotencyKey);
}

function claimBody(payerBank: string, payment: Payment, amount: string): Json {
  const evidence = encodePayment(payment);
  return { claimId: claimIdOf('ops', evidence), payerBank, scheme: 'ops', amount, evidence: toBase64url(evidence) };
}

/** The outcome of a claim at the central bank, as the payee's bank reads it. */
async function atCentralBank(bank: TierBank, claimId: string): Promise<Json> {
  const a = await signed(cb.url, bank.signer, 'GET', `/v1/cb/claims/${claimId}`);
  assert.equal(a.status, 200, JSON.stringify(a.body));
  return a.body;
}

describe("the payer's bank judges what another bank presents", () => {
  test('a payment made to a customer of the payer\'s bank, or claimed for another amount, is refused with its code and moves nothing', { timeout: 120_000 }, async () => {
    const alice = await deviceCustomer(bankA, '30.00', '20.00');
    const carol = await customer(bankA);
    const bob = await customer(bankB);
    try {
      const system0 = await settleAndAudit();
      const toCarol = await alice.se.call('pay', { amount: 300n, receiver: carol.certificate });
      const stolen = await present(bankB, claimBody(bankA.keyId, toCarol, '3.00'));
      assert.equal(stolen.status, 202, JSON.stringify(stolen.body));
      const toBob = await alice.se.call('pay', { amount: 400n, receiver: bob.certificate });
      const inflated = await present(bankB, claimBody(bankA.keyId, toBob, '40.00'));
      assert.equal(inflated.status, 202, JSON.stringify(inflated.body));
      await settleAndAudit();
      const s1 = await atCentralBank(bankB, stolen.body['claimId'] as string);
      assert.equal(s1['status'], 'refused');
      assert.equal(s1['code'], 'PAYMENT_INVALID');
      const s2 = await atCentralBank(bankB, inflated.body['claimId'] as string);
      assert.equal(s2['status'], 'refused');
      assert.equal(s2['code'], 'CLAIM_INVALID');
      const system1 = await settleAndAudit();
      assert.deepEqual(system1['intermediaries'] && (system1['intermediaries'] as Json[]).map((i) => i['reserve']), (system0['intermediaries'] as Json[]).map((i) => i['reserve']), 'no reserve moved');
      // Carol's own claim at her bank still settles: the refused claim consumed nothing.
      const local = await claim(carol, toCarol);
      assert.equal(local.status, 200, JSON.stringify(local.body));
      assert.equal(await balance(carol), '3.00');
      // Bob's honest claim of the same payment is another claim (another amount, same evidence: refused as a conflict).
      const honest = await claim(bob, toBob);
      assert.equal(honest.status, 202);
      await settleAndAudit();
      const h = await claimState(bob, (honest.body['claim'] as Json)['claimId'] as string);
      assert.equal(h['status'], 'refused', JSON.stringify(h));
      assert.equal(h['code'], 'CLAIM_CONFLICT');
      assert.equal(await balance(bob), '0.00');
    } finally {
      await alice.se.close();
    }
  });

  test('a batch of claims presents the payments from another bank and judges the rest as before', { timeout: 120_000 }, async () => {
    const alice = await deviceCustomer(bankA, '10.00', '5.00');
    const bob = await customer(bankB);
    try {
      const first = await alice.se.call('pay', { amount: 150n, receiver: bob.certificate });
      const second = await alice.se.call('pay', { amount: 250n, receiver: bob.certificate });
      const forged = { ...second, amount: 2500n };
      const a = await signed(bankB.url, bob.user, 'POST', '/v1/ops/claims/batch', { payments: [first, second, forged].map((p) => toBase64url(encodePayment(p))) });
      assert.equal(a.status, 200, JSON.stringify(a.body));
      const results = a.body['results'] as Json[];
      assert.deepEqual(results.map((r) => r['status']), ['presented', 'presented', 'refused']);
      assert.equal(results[2]?.['code'], 'PAYMENT_INVALID');
      await settleAndAudit();
      for (const r of results.slice(0, 2)) assert.equal((await claimState(bob, (r['claim'] as Json)['claimId'] as string))['status'], 'settled');
      assert.equal(await balance(bob), '4.00');
    } finally {
      await alice.se.close();
    }
  });

  test("another customer cannot read a customer's claim", async () => {
    const alice = await deviceCustomer(bankA, '10.00', '5.00');
    const bob = await customer(bankB);
    const eve = await customer(bankB);
    try {
      const claimed = await claim(bob, await alice.se.call('pay', { amount: 100n, receiver: bob.certificate }));
      const claimId = (claimed.body['claim'] as Json)['claimId'] as string;
      const peek = await signed(bankB.url, eve.user, 'GET', `/v1/interbank/claims/${claimId}`);
      assert.equal(peek.status, 404);
      assert.equal((peek.body['error'] as Json)['code'], 'NOT_FOUND');
      await settleAndAudit();
    } finally {
      await alice.se.close();
    }
  });
});

describe("the central bank's claim routes, bank A's node stopped (its key still signs)", () => {
  test('presented twice, decided twice, decided by the wrong bank, forged, unsigned, oversized: each refused or answered once', { timeout: 120_000 }, async () => {
    const alice = await deviceCustomer(bankA, '20.00', '10.00');
    const bob = await customer(bankB);
    const payment = await alice.se.call('pay', { amount: 700n, receiver: bob.certificate });
    const late = await alice.se.call('pay', { amount: 100n, receiver: bob.certificate });
    await settleAndAudit();
    await bankA.stop();
    try {
      const body = claimBody(bankA.keyId, payment, '7.00');
      const first = await present(bankB, body);
      assert.equal(first.status, 202, JSON.stringify(first.body));
      const second = await present(bankB, body);
      assert.equal(second.status, 202);
      assert.equal(second.body['seq'], first.body['seq'], 'presented twice, one claim');
      const presentations = await Promise.all(Array.from({ length: 5 }, () => present(bankB, body)));
      for (const r of presentations) assert.equal(r.body['seq'], first.body['seq'], JSON.stringify(r.body));
      const inbox = await signed(cb.url, bankA.signer, 'GET', '/v1/cb/claims/inbox?after=0');
      assert.equal((inbox.body['claims'] as Json[]).filter((c) => c['claimId'] === body['claimId']).length, 1);
      assert.equal((await signed(cb.url, bankB.signer, 'GET', '/v1/cb/claims/inbox?after=0')).body['claims'] instanceof Array, true);
      assert.ok(!((await signed(cb.url, bankB.signer, 'GET', '/v1/cb/claims/inbox?after=0')).body['claims'] as Json[]).some((c) => c['claimId'] === body['claimId']), "not in the payee's inbox");

      // The same id for another amount, a wrong id, a claim on itself, an unknown payer bank, oversized evidence.
      const conflict = await present(bankB, { ...body, amount: '70.00' });
      assert.equal(conflict.status, 409);
      assert.equal((conflict.body['error'] as Json)['code'], 'CLAIM_CONFLICT');
      const wrongId = await present(bankB, { ...body, claimId: 'ab'.repeat(32) });
      assert.equal(wrongId.status, 422);
      assert.equal((wrongId.body['error'] as Json)['code'], 'CLAIM_INVALID');
      const onItself = await present(bankB, { ...body, payerBank: bankB.keyId });
      assert.equal((onItself.body['error'] as Json)['code'], 'CLAIM_INVALID');
      const unknown = await present(bankB, { ...body, payerBank: 'cd'.repeat(32) });
      assert.equal(unknown.status, 404);
      assert.equal((unknown.body['error'] as Json)['code'], 'BANK_UNKNOWN');
      const big = new Uint8Array(9000).fill(7);
      const oversized = await present(bankB, { claimId: claimIdOf('ops', big), payerBank: bankA.keyId, scheme: 'ops', amount: '1.00', evidence: toBase64url(big) });
      assert.equal(oversized.status, 400);
      assert.equal((oversized.body['error'] as Json)['code'], 'BODY_INVALID');

      // Unsigned, signed by a key no intermediary holds, tampered after signing, replayed.
      const unsigned = await send(cb.url, 'POST', '/v1/cb/claims', { body, headers: { 'idempotency-key': `u-${++calls}-x` } });
      assert.equal(unsigned.status, 401);
      assert.equal((unsigned.body['error'] as Json)['code'], 'UNAUTHENTICATED');
      const stranger = signerFromSecret(nobleEd25519, new Uint8Array(32).fill(250));
      const forged = await signed(cb.url, stranger, 'POST', '/v1/cb/claims', body);
      assert.equal(forged.status, 401);
      assert.equal((forged.body['error'] as Json)['code'], 'KEY_UNKNOWN');
      const raw = JSON.stringify(body);
      const headers = signedHeaders(bankB.signer, 'POST', '/v1/cb/claims', raw);
      const tampered = await send(cb.url, 'POST', '/v1/cb/claims', { raw: JSON.stringify({ ...body, amount: '0.01' }), headers });
      assert.equal(tampered.status, 401);
      assert.equal((tampered.body['error'] as Json)['code'], 'SIGNATURE_INVALID');
      const once = await send(cb.url, 'POST', '/v1/cb/claims', { raw, headers: signedHeaders(bankB.signer, 'POST', '/v1/cb/claims', raw) });
      assert.equal(once.status, 202);
      const replayHeaders = signedHeaders(bankB.signer, 'POST', '/v1/cb/claims', raw);
      assert.equal((await send(cb.url, 'POST', '/v1/cb/claims', { raw, headers: replayHeaders })).status, 202);
      const replayed = await send(cb.url, 'POST', '/v1/cb/claims', { raw, headers: { ...replayHeaders, 'idempotency-key': `r-${++calls}-x` } });
      assert.equal(replayed.status, 401);
      assert.equal((replayed.body['error'] as Json)['code'], 'NONCE_REPLAYED');

      // Only the payer's bank decides: B may not accept a claim on A.
      const claimId = body['claimId'] as string;
      const byPayee = await signed(cb.url, bankB.signer, 'POST', `/v1/cb/claims/${claimId}/decision`, { decision: 'accept' });
      assert.equal(byPayee.status, 403);
      assert.equal((byPayee.body['error'] as Json)['code'], 'FORBIDDEN');
      assert.equal((await atCentralBank(bankB, claimId))['status'], 'presented');
      const malformed = await signed(cb.url, bankA.signer, 'POST', `/v1/cb/claims/${claimId}/decision`, { decision: 'refuse', code: 'lower case', reason: 'x' });
      assert.equal(malformed.status, 400);

      // A accepts, five times at once and then again under another key: one movement of the reserves.
      const reserveA = minor(await reserveAt(bankA));
      const reserveB = minor(await reserveAt(bankB));
      const racing = await Promise.all(Array.from({ length: 5 }, () => signed(cb.url, bankA.signer, 'POST', `/v1/cb/claims/${claimId}/decision`, { decision: 'accept' })));
      for (const r of racing) assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(new Set(racing.map((r) => r.body['transfer'])).size, 1, 'one transfer');
      const accepted = racing[0] as Answer;
      assert.equal(accepted.body['status'], 'settled');
      const replay = await signed(cb.url, bankA.signer, 'POST', `/v1/cb/claims/${claimId}/decision`, { decision: 'accept' });
      assert.equal(replay.status, 200);
      assert.equal(replay.body['transfer'], accepted.body['transfer']);
      assert.equal(minor(await reserveAt(bankA)), reserveA - 700n);
      assert.equal(minor(await reserveAt(bankB)), reserveB + 700n);
      const turned = await signed(cb.url, bankA.signer, 'POST', `/v1/cb/claims/${claimId}/decision`, { decision: 'refuse', code: 'DOUBLE_SPEND', reason: 'changed its mind' });
      assert.equal(turned.status, 409);
      assert.equal((turned.body['error'] as Json)['code'], 'CLAIM_DECIDED');
      const outbox = await signed(cb.url, bankB.signer, 'GET', '/v1/cb/claims/outbox?after=0');
      assert.equal((outbox.body['claims'] as Json[]).filter((c) => c['claimId'] === claimId).length, 1);
      assert.equal((outbox.body['claims'] as Json[]).find((c) => c['claimId'] === claimId)?.['evidence'], undefined, 'the outbox carries no evidence');

      // The central bank revokes A: after a sync, B refuses payments from A's devices.
      await cb.ok('POST', '/v1/cb/operator/revoke', { intermediary: bankA.keyId, reason: 'licence withdrawn' });
      await bankB.sync();
      const refused = await claim(bob, late);
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      assert.equal((refused.body['error'] as Json)['code'], 'CERT_REVOKED');
      const onRevoked = await present(bankB, claimBody(bankA.keyId, late, '1.00'));
      assert.equal((onRevoked.body['error'] as Json)['code'], 'CERT_REVOKED');
      await bankB.audit();
    } finally {
      await alice.se.close();
    }
  });
});

