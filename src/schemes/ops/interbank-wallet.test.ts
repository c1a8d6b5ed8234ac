/**
 * OPS wallets across two banks: a wallet at bank B takes other banks' certificates and lists
 * (verified in the wallet, and again in its trusted app), accepts a payment from a wallet of bank A
 * offline, and either claims it (without a secure element: the node presents it to A and the wallet
 * shows it waiting, then credited once settled) or collects it (with one: the sync presents the
 * collect and B's offline float is credited once settled). Real nodes over loopback, real isolated
 * secure elements; every audit and the system's audit balance.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fromBase64url } from '../../core/bytes.ts';
import { isTallyError } from '../../core/errors.ts';
import { send, Tiers, type Json, type TierBank } from '../../issuer/tier/test-tiers.ts';
import { decodeCertificate, encodeCertificate } from '../../pki/certificate.ts';
import { decodeRevocationList } from '../../pki/revocation.ts';
import { enrollOem } from '../../wallet/factory.ts';
import { NodeClient } from '../../wallet/node-client.ts';
import type { PeerSet } from '../../wallet/plugin.ts';
import { signerFromSecret } from '../../core/crypto/suite.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { ops } from './index.ts';
import { Wallet } from './wallet.ts';

let tiers: Tiers;
let bankA: TierBank;
let bankB: TierBank;
let homeA: string;
let homeB: string;
const opened: Wallet[] = [];

/** What bank B serves its wallets about the other banks: the directory's certificates, the root's list, A's own list. */
async function peerSet(): Promise<PeerSet> {
  const directory = await send(tiers.cb.url, 'GET', '/v1/cb/directory');
  const revocations = await send(tiers.cb.url, 'GET', '/v1/cb/revocations');
  const listA = await send(bankA.url, 'GET', '/v1/revocations');
  const listB = await send(bankB.url, 'GET', '/v1/revocations');
  return {
    intermediaries: (directory.body['intermediaries'] as Json[]).map((i) => fromBase64url(i['certificate'] as string)),
    rootCrl: fromBase64url(revocations.body['list'] as string),
    crls: [fromBase64url(listA.body['list'] as string), fromBase64url(listB.body['list'] as string)],
  };
}

async function wallet(home: string, bank: TierBank, name: string, secureElement: boolean): Promise<Wallet> {
  const w = await Wallet.create({ home, name, node: bank.url, secureElement });
  opened.push(w);
  return w;
}

async function mintDeposit(w: Wallet, bank: TierBank, amount: string): Promise<void> {
  await bank.ok('POST', '/v1/operator/mint', { account: w.snapshot().user.account, amount });
  await w.deposit(amount);
}

async function opsFloat(bank: TierBank): Promise<string> {
  const a = await bank.ok('GET', '/v1/audit');
  return ((a['exposure'] as Json[]).find((e) => e['scheme'] === 'ops') as Json)['float'] as string;
}

before(async () => {
  process.env['TALLY_WALLET_PASSPHRASE'] = 'interbank wallet test';
  tiers = await Tiers.start({ schemes: [ops], tag: 'ops-wallets' });
  bankA = await tiers.bank('bank-a');
  bankB = await tiers.bank('bank-b');
  homeA = join(tiers.root, 'home-a');
  homeB = join(tiers.root, 'home-b');
  await enrollOem(homeA, new NodeClient(bankA.url), bankA.running.operatorToken, ops.wallet.trustedApps);
  await enrollOem(homeB, new NodeClient(bankB.url), bankB.running.operatorToken, ops.wallet.trustedApps);
  // Each bank publishes its list of revoked devices at its sync; the other takes it at its next.
  await tiers.syncAll();
  await tiers.syncAll();
});

after(async () => {
  for (const w of opened) await w.close().catch(() => undefined);
  await tiers?.stop();
});

describe('OPS wallets at two banks', () => {
  test('a wallet at B without a secure element accepts a payment from a device of A, claims it, sees it waiting, then credited once settled', { timeout: 120_000 }, async () => {
    const alice = await wallet(homeA, bankA, 'alice', true);
    const bob = await wallet(homeB, bankB, 'bob', false);
    await mintDeposit(alice, bankA, '20.00');
    const request = await bob.request('5.00');
    // Alice's wallet knows B's intermediary only once it holds the peers: until then Bob's request does not verify.
    await assert.rejects(alice.pay(request.token), (e) => isTallyError(e, 'PAYMENT_INVALID') || isTallyError(e, 'CERT_UNKNOWN_ISSUER'));
    await alice.refreshPeers();
    const paid = await alice.pay(request.token);
    await assert.rejects(bob.accept(paid.token), (e) => isTallyError(e, 'PAYMENT_INVALID'), 'B\'s wallet does not know A yet');
    // Bob's wallet asks its bank (GET /v1/interbank/peers): A's certificate, A's published list, the root's list.
    const taken = await bob.refreshPeers();
    assert.deepEqual(taken, { peers: 1, crls: 1 });
    const accepted = await bob.accept(paid.token);
    assert.equal(accepted.state, 'accepted');

    const first = await bob.claim();
    assert.equal(first.claimed.length, 0);
    assert.equal(first.presented.length, 1, JSON.stringify(first));
    const presented = first.presented[0];
    assert.ok(presented !== undefined);
    assert.equal(presented.claimState.status, 'pending');
    assert.equal(presented.claimState.amount, '5.00');
    assert.equal(presented.claimState.payerBank, bankA.keyId);
    assert.equal(first.online, '0.00');
    assert.equal((await bob.balance()).incoming, '5.00', 'still incoming while the claim waits');
    // Claimed again before settlement: still waiting, the same claim.
    const again = await bob.claim();
    assert.equal(again.presented[0]?.claimState.claimId, presented.claimState.claimId);

    await tiers.settleAndAudit();
    const settled = await bob.claim();
    assert.equal(settled.claimed.length, 1, JSON.stringify(settled));
    assert.equal(settled.claimed[0]?.credited, '5.00');
    assert.equal(settled.online, '5.00');
    assert.equal((await bob.claim()).claimed.length, 0, 'credited once');
    await tiers.settleAndAudit();
  });

  test('a wallet at B with a secure element collects a payment from a device of A; its sync presents it and B\'s float is credited once settled', { timeout: 120_000 }, async () => {
    const alice = await wallet(homeA, bankA, 'alice2', true);
    const dave = await wallet(homeB, bankB, 'dave', true);
    await mintDeposit(alice, bankA, '20.00');
    await alice.refreshPeers();
    // The sync takes the other banks from B (into the wallet and its TA) after the TA's ack.
    const first = await dave.sync();
    assert.equal(first.peers?.peers, 1, JSON.stringify(first));
    assert.equal(first.peers?.crls, 1, "A's published list (B's own comes with the ack)");
    const request = await dave.request('7.00');
    const paid = await alice.pay(request.token);
    await dave.accept(paid.token);
    const collected = await dave.collect();
    assert.equal(collected.collected.length, 1, JSON.stringify(collected));
    assert.equal(collected.offline, '7.00');
    const floatB = await opsFloat(bankB);
    const synced = await dave.sync();
    assert.equal(synced.foreign?.length, 1, JSON.stringify(synced));
    assert.equal(synced.foreign?.[0]?.claim?.status, 'pending');
    await tiers.settleAndAudit();
    assert.equal(Number(await opsFloat(bankB)) - Number(floatB), 7);
    await alice.sync();
    // A revokes a device of its own; once the banks have synced, Dave's sync brings A's newer list and the device is refused offline.
    const frank = await wallet(homeA, bankA, 'frank', true);
    await mintDeposit(frank, bankA, '3.00');
    await frank.refreshPeers();
    const fromFrank = await frank.pay((await dave.request('1.00')).token);
    await bankA.ok('POST', '/v1/operator/revoke', { keyId: frank.snapshot().device?.keyId, reason: 'stolen' });
    await tiers.settleAndAudit();
    await dave.sync();
    await assert.rejects(dave.accept(fromFrank.token), (e) => isTallyError(e, 'CERT_REVOKED'));
    // Its TA refuses it too, on its own lists (the wallet's check bypassed).
    await assert.rejects((await dave.se()).call('collect', { payment: fromFrank.payment }), (e) => isTallyError(e, 'SE_REJECTED') && e.details.reason === 'CERT_REVOKED');
    await tiers.settleAndAudit();
  });

  test('a wallet refuses a forged peer certificate and an older root list, and keeps what it holds across a reopen', { timeout: 120_000 }, async () => {
    const erin = await wallet(homeB, bankB, 'erin', false);
    const good = await peerSet();
    await erin.takePeers(good);
    const a = decodeCertificate(bankA.certificates.intermediary);
    const forged = encodeCertificate({ body: { ...a.body, subject: signerFromSecret(nobleEd25519, new Uint8Array(32).fill(9)).publicKey }, signature: a.signature });
    await assert.rejects(erin.takePeers({ intermediaries: [forged], crls: [] }), (e) => isTallyError(e, 'CERT_SIGNATURE_INVALID'));
    // The central bank revokes nobody here; an older root list is made by holding a newer one first.
    await tiers.cb.ok('POST', '/v1/cb/operator/revoke', { intermediary: (await tiers.bank('bank-c')).keyId, reason: 'licence withdrawn' });
    const newer = await peerSet();
    assert.ok(decodeRevocationList(newer.rootCrl as Uint8Array).body.version > decodeRevocationList(good.rootCrl as Uint8Array).body.version);
    await erin.takePeers(newer);
    await assert.rejects(erin.takePeers({ intermediaries: [], rootCrl: good.rootCrl, crls: [] }), (e) => isTallyError(e, 'CRL_ROLLBACK'));
    await erin.close();
    const reopened = await Wallet.open(homeB, 'erin');
    opened.push(reopened);
    await assert.rejects(reopened.takePeers({ intermediaries: [], rootCrl: good.rootCrl, crls: [] }), (e) => isTallyError(e, 'CRL_ROLLBACK'), 'the newer list is kept across a reopen');
    // A payment from A still verifies at the reopened wallet: it kept A's certificate.
    const alice = opened.find((w) => w.name === 'alice') as Wallet;
    const paid = await alice.pay((await reopened.request('1.00')).token);
    assert.equal((await reopened.accept(paid.token)).state, 'accepted');
    await tiers.settleAndAudit();
  });
});
