/**
 * DOT-M across two banks (docs/dotm.md, "Several operators"): a central bank and two
 * intermediaries, each a node over HTTP on loopback with its own PGlite database, and DOT-M trusted
 * apps in in-process secure elements. Bank A issues blocks signed by its intermediary key; a wallet
 * of bank B takes them offline, verified to the common root; B's customer redeems, B presents the
 * copy to A through the central bank, A judges it with its serial's tree, the reserves move, B
 * credits. Also: a clone of A's wallet spending one block at A and at B (refused and named), A
 * stopped while B's claim waits, and claims A must refuse (malformed, forged, another amount, a copy
 * its own customer holds, a copy already paid). Every audit and the system's balance at the end.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fromBase64url, fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { isTallyError } from '../../core/errors.ts';
import { claimIdOf } from '../../issuer/tier/interbank.ts';
import { balance, claimState, customer, minor, send, signed, Tiers, type Answer, type Json, type TierBank, type TierCustomer } from '../../issuer/tier/test-tiers.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { hierarchy } from '../../pki/test-fixtures.ts';
import { decodeCertificate, encodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { FileCounter } from '../../secure-element/counter-file.ts';
import { InProcessHost } from '../../secure-element/host.ts';
import { FileStorage } from '../../secure-element/storage-file.ts';
import { verifyBlock } from './block.ts';
import { encodeClaimEvidence } from './node-interbank.ts';
import { dotm } from './index.ts';
import { decodeBlock, type CurrencyBlock } from './messages.ts';
import { eventAckCodec, walletEventWire } from './online.ts';
import { dotmTrustedApp, type DotmState } from './trusted-app.ts';
import { PASSWORD, TEST_MEASUREMENT } from './test-fixtures.ts';

type Se = InProcessHost<DotmState, typeof dotmTrustedApp.commands>;

/** A customer with a DOT-M wallet. */
interface Holder extends TierCustomer {
  readonly se: Se;
  readonly dir: string;
  readonly wallet: string;
  readonly userKeyId: string;
  readonly wcert: Uint8Array;
}

let tiers: Tiers;
let bankA: TierBank;
let bankB: TierBank;
const open: Se[] = [];

function openSe(dir: string, provision: boolean): Promise<Se> {
  const options = { app: dotmTrustedApp, storage: new FileStorage(join(dir, 'se')), counter: new FileCounter(join(dir, 'counter')), provider: nodeProvider };
  return ((provision ? InProcessHost.provision(options) : InProcessHost.open(options)) as Promise<Se>).then((se) => {
    open.push(se);
    return se;
  });
}

/** A customer of `bank` with a registered DOT-M wallet, `minted` in its account (out of the bank's reserve) and, unless told otherwise, the other banks' intermediaries in its TA. */
async function holder(bank: TierBank, minted = '0.00', peers = true): Promise<Holder> {
  const c = await customer(bank);
  const dir = await mkdtemp(join(tiers.root, 'se-'));
  const se = await openSe(dir, true);
  const init = await se.call('init', { root: bank.certificates.root, intermediary: bank.certificates.intermediary, issuerNode: bank.certificates.issuerNode, account: fromHex(c.keyId) });
  const attestation = attestDevice(bank.oem, { sePublicKey: init.walletKey, model: 'Test SE', taMeasurement: TEST_MEASUREMENT });
  const reg = await signed(bank.url, c.user, 'POST', '/v1/dotm/wallets', {
    userKey: { suite: init.userKey.suite, key: toBase64url(init.userKey.key) },
    userProof: toBase64url(init.userProof),
    walletKey: { suite: init.walletKey.suite, key: toBase64url(init.walletKey.key) },
    walletProof: toBase64url(init.walletProof),
    oem: bank.oemKeyId,
    attestation: toBase64url(encodeAttestation(attestation)),
  });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  await se.call('certify', { ucert: fromBase64url(reg.body['ucert'] as string), wcert: fromBase64url(reg.body['wcert'] as string) });
  await se.call('setPassword', { password: PASSWORD });
  if (minted !== '0.00') await bank.ok('POST', '/v1/operator/mint', { account: c.account, amount: minted });
  if (peers) await takePeers({ bank, se });
  return { ...c, se, dir, wallet: reg.body['wallet'] as string, userKeyId: reg.body['user'] as string, wcert: fromBase64url(reg.body['wcert'] as string) };
}

/** §3.3.2 at an intermediary: its node issues blocks out of the account, the TA loads them. */
async function withdraw(h: Holder, amount: string, blocks = 1): Promise<CurrencyBlock[]> {
  const a = await signed(h.bank.url, h.user, 'POST', '/v1/dotm/issue', { wallet: h.wallet, amount, blocks });
  assert.equal(a.status, 201, JSON.stringify(a.body));
  const issued = (a.body['blocks'] as string[]).map((b) => decodeBlock(fromBase64url(b)));
  await h.se.call('load', { blocks: issued, now: Date.now() });
  return issued;
}

/** The other banks' intermediaries the holder's node lists, into its TA. */
async function takePeers(h: Pick<Holder, 'bank' | 'se'>): Promise<number> {
  const a = await send(h.bank.url, 'GET', '/v1/interbank/peers');
  assert.equal(a.status, 200, JSON.stringify(a.body));
  const intermediaries = (a.body['peers'] as Json[]).filter((p) => p['revoked'] !== true).map((p) => fromBase64url(p['certificate'] as string));
  const out = await h.se.call('peers', { intermediaries, now: Date.now() });
  return out.peers;
}

interface EventsAnswer {
  ack: string;
  crl: string;
  results: { seq: number; status: string; code?: string; credited?: string; claims?: string[] }[];
  findings: { kind: string; culprit: string }[];
}

/** §3.3.4: the wallet's events to its own bank, the ack back into the TA. */
async function sync(h: Holder, se: Se = h.se): Promise<EventsAnswer> {
  const { events } = await se.call('events', {});
  const a = await signed(h.bank.url, h.user, 'POST', '/v1/dotm/events', { wallet: h.wallet, events: events.map((e) => toBase64url(encodeCbor(walletEventWire(e)))) });
  assert.equal(a.status, 200, JSON.stringify(a.body));
  const answer = a.body as unknown as EventsAnswer;
  await se.call('ack', { ack: eventAckCodec.decode(decodeCbor(fromBase64url(answer.ack))), crl: fromBase64url(answer.crl) });
  return answer;
}

/** §3.3.3 in memory, steps 1–9. */
async function pay(payer: Se, payee: Se, v: bigint): Promise<void> {
  const request = await payee.call('request', { v, now: Date.now() });
  const paid = await payer.call('pay', { request, password: PASSWORD, expect: { v }, now: Date.now() });
  assert.ok(paid.transaction !== undefined, paid.kind);
  const notification = await payee.call('accept', { transaction: paid.transaction, now: Date.now() });
  const success = await payer.call('confirm', { notification });
  await payee.call('complete', { success });
}

/** Gives `amount` up in the TA and syncs; answers the redemption's result. */
async function redeem(h: Holder, amount: bigint): Promise<EventsAnswer['results'][number]> {
  await h.se.call('redeem', { amount, password: PASSWORD, now: Date.now() });
  const answer = await sync(h);
  const last = answer.results[answer.results.length - 1];
  assert.ok(last !== undefined);
  return last;
}

async function floatOf(bank: TierBank): Promise<bigint> {
  const audit = await bank.ok('GET', '/v1/audit');
  const eur = (audit['currencies'] as Json[]).find((c) => c['currency'] === 'EUR') as Json;
  const float = (eur['offlineFloat'] as Json[]).find((f) => f['account'] === 'float:dotm');
  return float === undefined ? 0n : minor(float['amount'] as string);
}

/** The TA refuses with `code` (SE_REJECTED carrying the TA's reason). */
async function rejected(call: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(call, (e: unknown) => {
    assert.ok(isTallyError(e, 'SE_REJECTED'), String(e));
    assert.equal(e.details.reason, code, e.message);
    return true;
  });
}

/** B presents at the central bank directly, signed with its key, as a bank's software would. */
function present(bank: TierBank, payerBank: string, evidence: Uint8Array, amount: string): Promise<Answer> {
  return signed(tiers.cb.url, bank.signer, 'POST', '/v1/cb/claims', { claimId: claimIdOf('dotm', evidence), payerBank, scheme: 'dotm', amount, evidence: toBase64url(evidence) });
}

async function atCentralBank(bank: TierBank, claimId: string): Promise<Json> {
  const a = await signed(tiers.cb.url, bank.signer, 'GET', `/v1/cb/claims/${claimId}`);
  assert.equal(a.status, 200, JSON.stringify(a.body));
  return a.body;
}

before(async () => {
  tiers = await Tiers.start({ schemes: [dotm], tag: 'dotm' });
  const measurements = [{ scheme: 'dotm', measurement: toHex(TEST_MEASUREMENT) }];
  bankA = await tiers.bank('bank-a', { measurements });
  bankB = await tiers.bank('bank-b', { measurements });
  await tiers.syncAll();
});

after(async () => {
  for (const se of open) await se.close().catch(() => undefined);
  await tiers?.stop();
});

describe('DOT-M across two banks', () => {
  test('A issues blocks signed by its intermediary key out of its reserve; a wallet of B verifies them to the root', { timeout: 120_000 }, async () => {
    const reserveA = minor(await tiers.reserveOf(bankA));
    const alice = await holder(bankA, '50.00');
    const [block] = await withdraw(alice, '20.00');
    assert.ok(block !== undefined);
    assert.equal(toHex(block.presentation.issuer ?? new Uint8Array()), bankA.keyId, "the presentation names A's key");
    assert.equal(await floatOf(bankA), 2000n);
    assert.equal(await balance(alice), '30.00');
    // Any bank's verifier: the root, and A's intermediary certificate, which the root signed.
    const root = decodeCertificate(bankB.certificates.root);
    const options = { provider: nodeProvider, centralBankKey: root.body.subject, trustAnchors: [root], now: Date.now(), currency: 'EUR' };
    verifyBlock(block, { ...options, intermediaries: [decodeCertificate(bankB.certificates.intermediary), decodeCertificate(bankA.certificates.intermediary)] });
    // Without A's certificate the block is refused; with the root's key as pk_C alone it does not verify either.
    assert.throws(() => verifyBlock(block, { ...options, intermediaries: [decodeCertificate(bankB.certificates.intermediary)] }), /does not know/);
    const stripped = { ...block, presentation: { ...block.presentation, issuer: undefined } };
    assert.throws(() => verifyBlock(stripped, { ...options, intermediaries: [decodeCertificate(bankA.certificates.intermediary)] }), /pk_C/);
    // B's node lists A (and A lists B); the root is what a TA checks them against.
    const peersAtB = (await send(bankB.url, 'GET', '/v1/interbank/peers')).body['peers'] as Json[];
    assert.deepEqual(peersAtB.map((p) => toHex(keyId(decodeCertificate(fromBase64url(p['certificate'] as string)).body.subject))), [bankA.keyId]);
    // The reserve at the central bank did not move: A's customer money came out of it at minting.
    assert.equal(minor(await tiers.reserveOf(bankA)), reserveA);
    await tiers.settleAndAudit();
  });

  test("a TA takes only intermediaries the root certified in its currency: a forged one is refused, nothing changed", { timeout: 60_000 }, async () => {
    const bob = await holder(bankB, '0.00', false);
    const other = hierarchy('ed25519', 'dotm-foreign-root');
    await rejected(bob.se.call('peers', { intermediaries: [encodeCertificate(other.intermediaryCert)], now: Date.now() }), 'PEER_INVALID');
    await rejected(bob.se.call('peers', { intermediaries: [new Uint8Array([1, 2, 3])], now: Date.now() }), 'PEER_INVALID');
    assert.equal((await bob.se.call('status', {})).balance, 0n);
    assert.equal(await takePeers(bob), 1);
  });

  test("a wallet of A pays a wallet of B offline; B's customer redeems; A judges with its tree; the reserves move; B credits", { timeout: 120_000 }, async () => {
    const alice = await holder(bankA, '40.00');
    const bob = await holder(bankB);
    await withdraw(alice, '30.00', 2);
    // A wallet of B that never took the list of other banks refuses A's customer and block offline.
    const stranger = await holder(bankB, '0.00', false);
    const request = await stranger.se.call('request', { v: 500n, now: Date.now() });
    const paid = await alice.se.call('pay', { request, password: PASSWORD, expect: { v: 500n }, now: Date.now() });
    assert.ok(paid.transaction !== undefined);
    await rejected(stranger.se.call('accept', { transaction: paid.transaction, now: Date.now() }), 'TRANSACTION_INVALID');
    await alice.se.call('abandon', {});
    await stranger.se.call('rollback', {}).catch(() => undefined);

    assert.equal(await takePeers(bob), 1);
    await pay(alice.se, bob.se, 1800n);
    assert.equal((await bob.se.call('status', {})).balance, 1800n);
    assert.equal((await alice.se.call('status', {})).balance, 1200n);
    // Both upload: A takes Alice's payment into its tree; B takes Bob's receipt, keeping no tree of A's serials.
    const fromAlice = await sync(alice);
    assert.ok(fromAlice.results.every((r) => r.status === 'taken'), JSON.stringify(fromAlice));
    const fromBob = await sync(bob);
    assert.ok(fromBob.results.every((r) => r.status === 'taken'), JSON.stringify(fromBob));

    const reserveA0 = minor(await tiers.reserveOf(bankA));
    const reserveB0 = minor(await tiers.reserveOf(bankB));
    const floatA0 = await floatOf(bankA);
    const result = await redeem(bob, 1800n);
    assert.equal(result.status, 'taken', JSON.stringify(result));
    assert.equal(result.claims?.length, 2, 'one claim per copy');
    assert.equal(await balance(bob), '0.00', 'not credited before the issuing bank accepts');
    for (const id of result.claims ?? []) assert.equal((await claimState(bob, id))['status'], 'pending');
    await tiers.settleAndAudit();
    for (const id of result.claims ?? []) assert.equal((await claimState(bob, id))['status'], 'settled');
    assert.equal(await balance(bob), '18.00');
    assert.equal(minor(await tiers.reserveOf(bankA)), reserveA0 - 1800n);
    assert.equal(minor(await tiers.reserveOf(bankB)), reserveB0 + 1800n);
    assert.equal(await floatOf(bankA), floatA0 - 1800n);
    assert.equal(await floatOf(bankB), 0n);
    // Alice redeems her change at home.
    const home = await redeem(alice, 1200n);
    assert.equal(home.status, 'taken', JSON.stringify(home));
    assert.equal(await balance(alice), '22.00');
    await tiers.settleAndAudit();
  });

  test("a clone of A's wallet pays one block at A and at B: A names its holder, refuses B's claim; B's customer is told and nothing credited", { timeout: 120_000 }, async () => {
    const alice = await holder(bankA, '20.00');
    const carol = await holder(bankA);
    const bob = await holder(bankB);
    await withdraw(alice, '10.00');
    await takePeers(bob);
    const cloneDir = await mkdtemp(join(tiers.root, 'clone-'));
    await cp(alice.dir, cloneDir, { recursive: true });
    const clone = await openSe(cloneDir, false);
    await pay(alice.se, carol.se, 1000n);
    await pay(clone, bob.se, 1000n);
    await sync(alice);
    await sync(carol);
    const home = await redeem(carol, 1000n);
    assert.equal(home.status, 'taken');
    assert.equal(await balance(carol), '10.00');
    await tiers.settleAndAudit();
    const reserveA = await tiers.reserveOf(bankA);
    const reserveB = await tiers.reserveOf(bankB);

    const result = await redeem(bob, 1000n);
    assert.equal(result.claims?.length, 1, JSON.stringify(result));
    const id = (result.claims ?? [])[0] as string;
    await tiers.settleAndAudit();
    const state = await claimState(bob, id);
    assert.equal(state['status'], 'refused', JSON.stringify(state));
    assert.equal(state['code'], 'DOUBLE_SPEND');
    assert.match(state['reason'] as string, new RegExp(alice.userKeyId), 'the double spender is named');
    assert.equal(await balance(bob), '0.00');
    assert.equal(await tiers.reserveOf(bankA), reserveA);
    assert.equal(await tiers.reserveOf(bankB), reserveB);
    // A's finding names Alice, and her wallet is revoked there.
    const fraud = (await bankA.ok('GET', '/v1/dotm/fraud'))['findings'] as Json[];
    assert.ok(fraud.some((f) => f['kind'] === 'overspent' && f['culprit'] === alice.userKeyId && f['wallet'] === alice.wallet), JSON.stringify(fraud));
    const wallet = await bankA.ok('GET', `/v1/dotm/wallets/${alice.wallet}`);
    assert.equal(wallet['revoked'], true);
  });

  test("bank A stopped while B's claim waits: it is presented, then settles when A is back", { timeout: 120_000 }, async () => {
    const alice = await holder(bankA, '10.00');
    const bob = await holder(bankB);
    await withdraw(alice, '5.00');
    await takePeers(bob);
    await pay(alice.se, bob.se, 300n);
    await bankA.stop();
    try {
      const result = await redeem(bob, 300n);
      const id = (result.claims ?? [])[0] as string;
      await bankB.sync();
      await bankB.sync();
      assert.equal((await claimState(bob, id))['status'], 'presented');
      assert.equal(await balance(bob), '0.00');
    } finally {
      await bankA.restart();
    }
    await sync(alice);
    await tiers.settleAndAudit();
    assert.equal(await balance(bob), '3.00');
  });

  test("claims A refuses: not a redemption, a forged one, another wallet's, a wallet of another bank, another amount, a cloned wallet's second redemption of a copy paid already; the same evidence is one claim", { timeout: 120_000 }, async () => {
    const alice = await holder(bankA, '10.00');
    const bob = await holder(bankB);
    const carol = await holder(bankB);
    await withdraw(alice, '6.00');
    await pay(alice.se, bob.se, 400n);
    await pay(alice.se, bob.se, 100n);
    await sync(alice);
    await sync(bob);
    const cloneDir = await mkdtemp(join(tiers.root, 'clone-'));
    await cp(bob.dir, cloneDir, { recursive: true });
    const clone = await openSe(cloneDir, false);
    // Bob gives up both copies in his TA (not uploaded): two redemptions, signed by his wallet.
    const redeemed = async (se: Se, amount: bigint) => {
      await se.call('redeem', { amount, password: PASSWORD, now: Date.now() });
      const last = (await se.call('events', {})).events.at(-1);
      assert.ok(last !== undefined && last.body.kind === 'redeemed');
      return last;
    };
    const big = await redeemed(bob.se, 400n);
    const small = await redeemed(bob.se, 100n);
    const evidence = encodeClaimEvidence({ event: big, wcert: bob.wcert, part: 0 });
    const system0 = await tiers.settleAndAudit();

    const forgedEvent = { ...big, body: { ...big.body, parts: big.body.parts.map((p) => ({ ...p, block: { ...p.block, remaining: p.block.remaining + 1n } })) } };
    const cases: { evidence: Uint8Array; amount: string; code: string }[] = [
      { evidence: new Uint8Array([0xa1, 0x01, 0x02]), amount: '1.00', code: '' },
      { evidence: encodeClaimEvidence({ event: forgedEvent, wcert: bob.wcert, part: 0 }), amount: '4.01', code: 'SIGNATURE_INVALID' },
      { evidence: encodeClaimEvidence({ event: big, wcert: carol.wcert, part: 0 }), amount: '4.00', code: 'SIGNATURE_INVALID' },
      { evidence: encodeClaimEvidence({ event: big, wcert: alice.wcert, part: 0 }), amount: '4.00', code: 'PAYMENT_INVALID' },
      { evidence: encodeClaimEvidence({ event: big, wcert: bob.wcert, part: 1 }), amount: '4.00', code: 'PAYMENT_INVALID' },
      // A claim's id is its evidence's: another amount for the same redemption would be the same claim, so it is the other one.
      { evidence: encodeClaimEvidence({ event: small, wcert: bob.wcert, part: 0 }), amount: '2.00', code: 'AMOUNT_MISMATCH' },
    ];
    for (const c of cases) {
      const a = await present(bankB, bankA.keyId, c.evidence, c.amount);
      assert.equal(a.status, 202, JSON.stringify(a.body));
    }
    await tiers.settleAndAudit();
    for (const c of cases) {
      const state = await atCentralBank(bankB, claimIdOf('dotm', c.evidence));
      assert.equal(state['status'], 'refused', JSON.stringify(state));
      if (c.code !== '') assert.equal(state['code'], c.code, JSON.stringify(state));
    }
    // The honest claim, presented twice, is one claim and moves the reserve once.
    const reserveA = minor(await tiers.reserveOf(bankA));
    const first = await present(bankB, bankA.keyId, evidence, '4.00');
    const second = await present(bankB, bankA.keyId, evidence, '4.00');
    assert.equal(second.body['seq'], first.body['seq']);
    await tiers.settleAndAudit();
    assert.equal((await atCentralBank(bankB, claimIdOf('dotm', evidence)))['status'], 'settled');
    assert.equal(minor(await tiers.reserveOf(bankA)), reserveA - 400n);
    // A clone of Bob's wallet redeems the same copy again: another redemption, another claim, refused at A and Bob named.
    const again = encodeClaimEvidence({ event: await redeemed(clone, 400n), wcert: bob.wcert, part: 0 });
    assert.equal((await present(bankB, bankA.keyId, again, '4.00')).status, 202);
    await tiers.settleAndAudit();
    const replay = await atCentralBank(bankB, claimIdOf('dotm', again));
    assert.equal(replay['status'], 'refused');
    assert.equal(replay['code'], 'DOUBLE_SPEND');
    assert.match(replay['reason'] as string, new RegExp(bob.userKeyId));
    assert.equal(minor(await tiers.reserveOf(bankA)), reserveA - 400n);
    assert.ok(system0['balanced']);
  });
});
