/**
 * OPS across two banks, offline: a payee with a secure element at bank B takes in a payment from a
 * device of bank A. Its trusted app holds the other banks' intermediary certificates, the root's
 * list of revoked intermediaries and each bank's own list of revoked devices, each verified inside
 * the TA (forged, foreign-rooted and rolled-back inputs are refused there); B's sync of the collect
 * presents it to A and credits B's offline float once settled; a cloned device of A caught at A is
 * refused offline at B once B's payee holds A's newer list. A central bank and banks A, B and C, each
 * a node on loopback with its own PGlite database; every audit and the system's audit balance.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fromBase64url, fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret, type Signer } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { balance, claimState, customer, minor, send, signed, Tiers, type Answer, type Json, type TierBank, type TierNode } from '../../issuer/tier/test-tiers.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { decodeCertificate, encodeCertificate, issueCertificate } from '../../pki/certificate.ts';
import { verifyPublication } from '../../pki/publication.ts';
import { decodeRevocationList, encodeRevocationList, issueRevocationList } from '../../pki/revocation.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { FileCounter } from '../../secure-element/counter-file.ts';
import { InProcessHost } from '../../secure-element/host.ts';
import { FileStorage } from '../../secure-element/storage-file.ts';
import { ops } from './index.ts';
import { depositConfirmationCodec, encodePayment, syncAckCodec, syncReportBodyWire, type Payment } from './messages.ts';
import { opsTrustedApp } from './trusted-app.ts';
import { TEST_MEASUREMENT } from './test-fixtures.ts';

let tiers: Tiers;
let cb: TierNode;
let bankA: TierBank;
let bankB: TierBank;
let bankC: TierBank;
let root: string;
let seeds = 80;

/** The balance of a bank's `float:ops`, from its audit's exposure check. */
async function opsFloat(bank: TierBank): Promise<string> {
  const a = await bank.ok('GET', '/v1/audit');
  return ((a['exposure'] as Json[]).find((e) => e['scheme'] === 'ops') as Json)['float'] as string;
}

/** A bank's own signed list of revoked users and devices, as it publishes it. */
async function deviceList(bank: TierBank): Promise<Uint8Array> {
  const a = await send(bank.url, 'GET', '/v1/revocations');
  assert.equal(a.status, 200);
  return fromBase64url(a.body['list'] as string);
}

type Se = InProcessHost<unknown, typeof opsTrustedApp.commands>;

function openSe(dir: string, provision: boolean): Promise<Se> {
  const options = { app: opsTrustedApp, storage: new FileStorage(join(dir, 'se')), counter: new FileCounter(join(dir, 'counter')), provider: nodeProvider };
  return (provision ? InProcessHost.provision(options) : InProcessHost.open(options)) as Promise<Se>;
}

interface Holder {
  readonly bank: TierBank;
  readonly user: Signer;
  readonly keyId: string;
  readonly account: string;
  readonly se: Se;
  readonly dir: string;
  readonly device: string;
  readonly certificate: Uint8Array;
}

/** A customer of `bank` with an OPS device holding `offline` (nothing when undefined). */
async function holder(bank: TierBank, offline?: string): Promise<Holder> {
  const user = signerFromSecret(nobleEd25519, new Uint8Array(32).fill(++seeds));
  const u = await signed(bank.url, user, 'POST', '/v1/users', { publicKey: { suite: 'ed25519', key: toBase64url(user.publicKey.key) } });
  assert.equal(u.status, 201, JSON.stringify(u.body));
  const dir = await mkdtemp(join(root, 'se-'));
  const se = await openSe(dir, true);
  const init = await se.call('init', { root: bank.certificates.root, owner: fromHex(u.body['keyId'] as string) });
  const attestation = attestDevice(bank.oem, { sePublicKey: init.publicKey, model: 'Test SE', taMeasurement: TEST_MEASUREMENT });
  const reg = await signed(bank.url, user, 'POST', '/v1/devices', {
    publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) },
    scheme: 'ops',
    oem: bank.oemKeyId,
    attestation: toBase64url(encodeAttestation(attestation)),
    proof: toBase64url(init.proof),
  });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  const certificate = fromBase64url(reg.body['certificate'] as string);
  await se.call('certInit', { certificate, intermediary: bank.certificates.intermediary, issuerNode: bank.certificates.issuerNode });
  const h: Holder = { bank, user, keyId: u.body['keyId'] as string, account: u.body['account'] as string, se, dir, device: reg.body['keyId'] as string, certificate };
  if (offline !== undefined) {
    await bank.ok('POST', '/v1/operator/mint', { account: h.account, amount: offline });
    const dep = await signed(bank.url, user, 'POST', '/v1/ops/deposits', { device: h.device, amount: offline });
    assert.equal(dep.status, 200, JSON.stringify(dep.body));
    await se.call('deposit', { confirmation: depositConfirmationCodec.decode(decodeCbor(fromBase64url(dep.body['confirmation'] as string))) });
  }
  return h;
}

/** The device's sync at its bank, with the payments it collected from other banks' devices; the ack goes into the TA. */
async function syncTa(h: Holder, payments: readonly Payment[] = []): Promise<Answer> {
  const report = await h.se.call('report', {});
  const a = await signed(h.bank.url, h.user, 'POST', '/v1/ops/sync', {
    device: h.device,
    report: toBase64url(encodeCbor({ body: syncReportBodyWire(report.body), signature: report.signature })),
    ...(payments.length === 0 ? {} : { payments: payments.map((p) => toBase64url(encodePayment(p))) }),
  });
  if (a.status === 200) await h.se.call('syncAck', { ack: syncAckCodec.decode(decodeCbor(fromBase64url(a.body['ack'] as string))), crl: fromBase64url(a.body['crl'] as string) });
  return a;
}

/** What a wallet at any bank gathers for its TA: the directory's certificates, the root's list, and `lists` (other banks' device lists). */
async function peerInput(lists: readonly Uint8Array[]): Promise<{ intermediaries: Uint8Array[]; rootCrl: Uint8Array; crls: Uint8Array[] }> {
  const directory = await send(cb.url, 'GET', '/v1/cb/directory');
  const revocations = await send(cb.url, 'GET', '/v1/cb/revocations');
  return {
    intermediaries: (directory.body['intermediaries'] as Json[]).map((i) => fromBase64url(i['certificate'] as string)),
    rootCrl: fromBase64url(revocations.body['list'] as string),
    crls: [...lists],
  };
}

/** Bank A's list of revoked devices as bank B serves it (A's OPS publication, carried by the central bank's directory), checked under A's certificate. */
async function listOfAViaB(): Promise<Uint8Array> {
  const a = await send(bankB.url, 'GET', '/v1/interbank/peers');
  const peer = (a.body['peers'] as Json[]).find((p) => p['keyId'] === bankA.keyId) as Json;
  const record = (peer['publications'] as Record<string, string>)['ops'] as string;
  const published = verifyPublication(nodeProvider, fromBase64url(record), decodeCertificate(bankA.certificates.intermediary));
  assert.equal(published.scheme, 'ops');
  return published.body;
}

async function rejected(run: Promise<unknown>, reason: string): Promise<void> {
  await assert.rejects(run, (e) => isTallyError(e, 'SE_REJECTED') && e.details.reason === reason, `expected the TA to refuse with ${reason}`);
}

before(async () => {
  tiers = await Tiers.start({ schemes: [ops], tag: 'ops-offline' });
  cb = tiers.cb;
  root = tiers.root;
  const measurements = [{ scheme: 'ops', measurement: toHex(TEST_MEASUREMENT) }];
  bankA = await tiers.bank('bank-a', { measurements });
  bankB = await tiers.bank('bank-b', { measurements });
  bankC = await tiers.bank('bank-c', { measurements });
  await tiers.syncAll();
});

after(async () => {
  await tiers?.stop();
});

describe('a payee TA at B takes in a payment from a device of A offline', () => {
  test("with A's certificate (verified in the TA) it collects; B presents the collect to A and credits its offline float once settled", { timeout: 120_000 }, async () => {
    const alice = await holder(bankA, '30.00');
    const dave = await holder(bankB);
    try {
      await syncTa(dave); // the TA's trusted time passes the start of Alice's certificate
      const payment = await alice.se.call('pay', { amount: 1200n, receiver: dave.certificate });
      // Pinned to its own bank, Dave's TA does not know A's intermediary.
      await rejected(dave.se.call('collect', { payment }), 'PAYMENT_INVALID');
      const taken = await dave.se.call('peers', await peerInput([await deviceList(bankA)]));
      assert.equal(taken.peers, 2, "A's and C's certificates (B's own is not a peer)");
      assert.equal(taken.crls, 1);
      assert.equal((await dave.se.call('collect', { payment })).balance, 1200n);
      await rejected(dave.se.call('collect', { payment }), 'PAYMENT_REPLAYED');

      const floatB0 = minor(await opsFloat(bankB));
      const reserveA0 = minor(await tiers.reserveOf(bankA));
      const reserveB0 = minor(await tiers.reserveOf(bankB));
      // Without the payment itself B cannot present the collect: the sync is refused, nothing recorded.
      const bare = await syncTa(dave);
      assert.equal(bare.status, 422, JSON.stringify(bare.body));
      assert.equal((bare.body['error'] as Json)['code'], 'PAYMENT_INVALID');
      const synced = await syncTa(dave, [payment]);
      assert.equal(synced.status, 200, JSON.stringify(synced.body));
      const foreign = synced.body['foreign'] as Json[];
      assert.equal(foreign.length, 1, JSON.stringify(synced.body));
      const claim = (foreign[0] as Json)['claim'] as Json;
      assert.equal(claim['status'], 'pending');
      assert.equal(claim['amount'], '12.00');
      // Before settlement: B's float has not received it, and B's audit balances (the claim covers it).
      await bankB.audit();
      assert.equal(minor(await opsFloat(bankB)), floatB0);
      await tiers.settleAndAudit();
      assert.equal((await claimState(dave, claim['claimId'] as string))['status'], 'settled');
      assert.equal(minor(await opsFloat(bankB)), floatB0 + 1200n, "B's offline float received it");
      assert.equal(await balance(dave), '0.00', 'the money is on the device, not in the account');
      assert.equal(minor(await tiers.reserveOf(bankA)), reserveA0 - 1200n);
      assert.equal(minor(await tiers.reserveOf(bankB)), reserveB0 + 1200n);
      // Alice's own report reaches A later: the payment is known and paid once.
      assert.equal((await syncTa(alice)).status, 200);
      // Dave withdraws what he took in: B's float pays it, the books still balance.
      const out = await dave.se.call('withdraw', { amount: 1200n });
      const w = await signed(bankB.url, dave.user, 'POST', '/v1/ops/withdrawals', { device: dave.device, confirmation: toBase64url(encodeCbor({ ...out })) });
      assert.equal(w.status, 200, JSON.stringify(w.body));
      assert.equal(await balance(dave), '12.00');
      await tiers.settleAndAudit();
    } finally {
      await alice.se.close();
      await dave.se.close();
    }
  });

  test('the TA refuses a forged peer certificate, one under another root, a list not signed by its issuer, older lists, a revoked device of A and a device of a revoked bank', { timeout: 120_000 }, async () => {
    const dave = await holder(bankB);
    try {
      const good = await peerInput([await deviceList(bankA)]);
      assert.equal((await dave.se.call('peers', good)).peers, 2);
      const a = decodeCertificate(bankA.certificates.intermediary);
      // Forged: A's certificate with another key, still naming the root as issuer (the root did not sign it).
      const thief = signerFromSecret(nobleEd25519, new Uint8Array(32).fill(201));
      const forged = encodeCertificate({ body: { ...a.body, subject: thief.publicKey }, signature: a.signature });
      await rejected(dave.se.call('peers', { intermediaries: [forged], crls: [] }), 'CERT_SIGNATURE_INVALID');
      // An intermediary certified by another root (a central bank the TA was not initialised with).
      const otherRoot = signerFromSecret(nobleEd25519, new Uint8Array(32).fill(202));
      const now = Date.now();
      const foreignBank = issueCertificate({ issuer: otherRoot, issuerRole: 'root', subject: thief.publicKey, role: 'intermediary', serial: new Uint8Array(16).fill(2), notBefore: now - 60_000, notAfter: now + 3_600_000, extensions: { currency: 'EUR', name: 'Elsewhere' } });
      await rejected(dave.se.call('peers', { intermediaries: [encodeCertificate(foreignBank)], crls: [] }), 'CERT_UNKNOWN_ISSUER');
      // B's own list offered as a peer's changes nothing: the TA takes its own bank's list from the ack only.
      const byB = await deviceList(bankB);
      const bList = decodeRevocationList(byB);
      assert.equal(toHex(bList.body.issuer), bankB.keyId);
      assert.equal((await dave.se.call('peers', { intermediaries: [], crls: [byB] })).crls, 1);
      // A list with A's issuer id but not A's signature (B's bank trying to un-revoke A's devices).
      const fakeA = encodeRevocationList({ body: { ...decodeRevocationList(good.crls[0] as Uint8Array).body, version: 99 }, signature: bList.signature });
      await rejected(dave.se.call('peers', { intermediaries: [], crls: [fakeA] }), 'CRL_INVALID');
      // A root list signed by someone else than the root.
      const notRoot = encodeRevocationList(issueRevocationList({ issuer: thief, version: 50, issuedAt: now, revoked: [] }));
      await rejected(dave.se.call('peers', { intermediaries: [], rootCrl: notRoot, crls: [] }), 'CRL_INVALID');
      // Older lists than those held: the root's and A's, once newer ones are in the TA. The newer
      // ones revoke a device of A (its owner lost it) and bank C (the central bank withdrew its licence).
      const oldRoot = good.rootCrl;
      const oldA = good.crls[0] as Uint8Array;
      const victim = await holder(bankA, '1.00');
      const charlie = await holder(bankC, '1.00');
      try {
        await syncTa(dave);
        const fromVictim = await victim.se.call('pay', { amount: 100n, receiver: dave.certificate });
        const fromCharlie = await charlie.se.call('pay', { amount: 100n, receiver: dave.certificate });
        await bankA.ok('POST', '/v1/operator/revoke', { keyId: victim.device, reason: 'lost' });
        await cb.ok('POST', '/v1/cb/operator/revoke', { intermediary: bankC.keyId, reason: 'licence withdrawn' });
        const newer = await peerInput([await deviceList(bankA)]);
        assert.ok(decodeRevocationList(newer.rootCrl).body.version > decodeRevocationList(oldRoot).body.version);
        assert.ok(decodeRevocationList(newer.crls[0] as Uint8Array).body.version > decodeRevocationList(oldA).body.version);
        await dave.se.call('peers', newer);
        await rejected(dave.se.call('peers', { intermediaries: [], rootCrl: oldRoot, crls: [] }), 'CRL_ROLLBACK');
        await rejected(dave.se.call('peers', { intermediaries: [], crls: [oldA] }), 'CRL_ROLLBACK');
        // A revoked device of A, and a device of the revoked bank C, are refused offline.
        await rejected(dave.se.call('collect', { payment: fromVictim }), 'CERT_REVOKED');
        await rejected(dave.se.call('collect', { payment: fromCharlie }), 'CERT_REVOKED');
      } finally {
        await victim.se.close();
        await charlie.se.close();
      }
      // Leaving a list out changes nothing: the newer ones stay.
      assert.equal((await dave.se.call('peers', { intermediaries: [], crls: [] })).crls, 1);
      await tiers.settleAndAudit();
    } finally {
      await dave.se.close();
    }
  });
});

describe('a cloned device of A pays a customer of A online and a payee TA at B offline', () => {
  test("A catches the double spend, names and revokes the device, refuses B's claim; B's payee refuses the device once it holds A's newer list", { timeout: 120_000 }, async () => {
    const alice = await holder(bankA, '40.00');
    const carol = await customer(bankA);
    const dave = await holder(bankB);
    const cloneDir = await mkdtemp(join(root, 'clone-'));
    await cp(alice.dir, cloneDir, { recursive: true });
    const clone = await openSe(cloneDir, false);
    try {
      await syncTa(dave);
      await dave.se.call('peers', await peerInput([await deviceList(bankA)]));
      const before = await tiers.settleAndAudit();
      const floatB0 = minor(await opsFloat(bankB));
      const toCarol = await alice.se.call('pay', { amount: 1000n, receiver: carol.certificate });
      const toDave = await clone.call('pay', { amount: 1000n, receiver: dave.certificate });
      assert.equal(toCarol.index, toDave.index, 'the clone signs the same index again');
      const local = await signed(bankA.url, carol.user, 'POST', '/v1/ops/claims', { payment: toBase64url(encodePayment(toCarol)) });
      assert.equal(local.status, 200, JSON.stringify(local.body));
      // Offline, Dave's TA cannot tell: the clone's payment verifies and goes in.
      assert.equal((await dave.se.call('collect', { payment: toDave })).balance, 1000n);
      const synced = await syncTa(dave, [toDave]);
      assert.equal(synced.status, 200, JSON.stringify(synced.body));
      const claimId = (((synced.body['foreign'] as Json[])[0] as Json)['claim'] as Json)['claimId'] as string;
      const after = await tiers.settleAndAudit();
      const state = await claimState(dave, claimId);
      assert.equal(state['status'], 'refused', JSON.stringify(state));
      assert.equal(state['code'], 'DOUBLE_SPEND');
      assert.match(state['reason'] as string, new RegExp(alice.device));
      assert.equal(minor(await opsFloat(bankB)), floatB0, "B's float got nothing for it");
      assert.deepEqual(after['intermediaries'] && (after['intermediaries'] as Json[]).map((i) => i['reserve']), (before['intermediaries'] as Json[]).map((i) => i['reserve']), 'no reserve moved');
      // B's audit balances with the loss named: the device of A that made it.
      const exposure = ((await bankB.audit())['exposure'] as Json[]).find((e) => e['scheme'] === 'ops') as Json;
      assert.deepEqual(exposure['exposed'], [{ device: alice.device, amount: '10.00', fraud: true }]);
      assert.equal(exposure['attributed'], '10.00');
      // A named the device in a fraud case and revoked it: its list says so.
      const fraud = (await bankA.ok('GET', '/v1/ops/fraud'))['cases'] as Json[];
      assert.ok(fraud.some((f) => f['device'] === alice.device && f['kind'] === 'clone'), JSON.stringify(fraud));
      const listA = decodeRevocationList(await deviceList(bankA));
      assert.ok(listA.body.revoked.some((serial) => toHex(serial) === toHex(decodeCertificate(alice.certificate).body.serial)));
      // The clone pays Dave again: refused offline once Dave's TA holds A's newer list, which B
      // learnt from A's publication through the central bank at its sync (no bank calls another).
      const later = await clone.call('pay', { amount: 500n, receiver: dave.certificate });
      const viaB = await listOfAViaB();
      assert.deepEqual(viaB, await deviceList(bankA), "B serves A's current list");
      await dave.se.call('peers', await peerInput([viaB]));
      await rejected(dave.se.call('collect', { payment: later }), 'CERT_REVOKED');
      assert.equal((await dave.se.call('balance', {})).balance, 1000n);
      await tiers.settleAndAudit();
    } finally {
      await clone.close();
      await alice.se.close();
      await dave.se.close();
    }
  });

  test("a clone of A pays two payee TAs at B under one index: A settles the first claim and refuses the second; B's audit names the loss", { timeout: 120_000 }, async () => {
    const alice = await holder(bankA, '20.00');
    const dave = await holder(bankB);
    const erin = await holder(bankB);
    const cloneDir = await mkdtemp(join(root, 'clone-'));
    await cp(alice.dir, cloneDir, { recursive: true });
    const clone = await openSe(cloneDir, false);
    try {
      for (const payee of [dave, erin]) {
        await syncTa(payee);
        await payee.se.call('peers', await peerInput([await deviceList(bankA)]));
      }
      const floatB0 = minor(await opsFloat(bankB));
      const toDave = await alice.se.call('pay', { amount: 300n, receiver: dave.certificate });
      const toErin = await clone.call('pay', { amount: 300n, receiver: erin.certificate });
      assert.equal(toDave.index, toErin.index);
      await dave.se.call('collect', { payment: toDave });
      await erin.se.call('collect', { payment: toErin });
      const first = await syncTa(dave, [toDave]);
      const second = await syncTa(erin, [toErin]);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.equal(second.status, 200, JSON.stringify(second.body));
      const claimOf = (a: Answer) => (((a.body['foreign'] as Json[])[0] as Json)['claim'] as Json)['claimId'] as string;
      await tiers.settleAndAudit();
      assert.equal((await claimState(dave, claimOf(first)))['status'], 'settled');
      const refused = await claimState(erin, claimOf(second));
      assert.equal(refused['status'], 'refused');
      assert.equal(refused['code'], 'DOUBLE_SPEND');
      assert.equal(minor(await opsFloat(bankB)), floatB0 + 300n, 'the first payment reached B\'s float, the clone\'s did not');
      const exposure = ((await bankB.audit())['exposure'] as Json[]).find((e) => e['scheme'] === 'ops') as Json;
      assert.ok((exposure['exposed'] as Json[]).some((h) => h['device'] === alice.device && h['amount'] === '3.00' && h['fraud'] === true), JSON.stringify(exposure));
      await tiers.settleAndAudit();
    } finally {
      await clone.close();
      await alice.se.close();
      await dave.se.close();
      await erin.se.close();
    }
  });
});
