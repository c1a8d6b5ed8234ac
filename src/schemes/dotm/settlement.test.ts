/**
 * DOT-M online data updating (§3.3.4), exception handling (§3.3.5) and double-spending detection
 * (§3.4.4) on a real node, PGlite and PostgreSQL, with in-process trusted apps: payments made
 * offline through the nine steps, uploaded by both sides in either order, redeemed, replayed,
 * forged and double spent from a cloned wallet. Every test ends with the audit and
 * float:dotm = Σ balances of the genuine trusted apps.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { fromBase64url, toHex } from '../../core/bytes.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { isTallyError } from '../../core/errors.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { notificationDigest, type CurrencyBlock, SUCCESS_TAG, successSigned } from './messages.ts';
import { EVENTS_BODY_BYTES_MAX } from './node.ts';
import { EVENT_TAG, eventBodyWire, partsDigest, type EventBody, type WalletEvent } from './online.ts';
import { dotmNode, PASSWORD, type DotmNode, type DotmParty, type EventsAnswer } from './test-fixtures.ts';

after(() => closeTestTemplates());

/** Asserts that the trusted app refused with `code`. */
async function refused(call: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(call, (e: unknown) => {
    assert.ok(isTallyError(e, 'SE_REJECTED'), String(e));
    assert.equal(e.details.reason, code, e.message);
    return true;
  });
}

async function lastSeq(n: DotmNode, p: DotmParty): Promise<number> {
  const res = await n.h.signed(p.user, 'GET', `/v1/dotm/wallets/${p.wallet}`);
  return ((await res.json()) as { lastSeq: number }).lastSeq;
}

/** Minor units as the node shows them in major units. */
function major(minor: bigint): string {
  return (Number(minor) / 100).toFixed(2);
}

function statuses(answer: EventsAnswer): string[] {
  return answer.results.map((r) => `${r.seq}:${r.status}${r.code === undefined ? '' : `:${r.code}`}`);
}

for (const backend of testBackends()) {
  describe(`DOT-M settlement on ${backend.kind}`, { skip: backend.skip }, () => {
    test('payments P → R → Q, all upload: nothing moves online, acks clear the logs; redemptions credit the holders', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const r = await n.party('payee', '0');
        const q = await n.party('third', '0');
        await n.withdraw(p, '10.00', 2);
        await n.pay(p, r, 700n);
        await n.pay(r, q, 250n);
        assert.deepEqual([(await p.se.call('status', {})).balance, (await r.se.call('status', {})).balance, (await q.se.call('status', {})).balance], [300n, 450n, 250n]);
        await n.conservation([p.se, r.se, q.se]);

        for (const who of [q, r, p]) {
          const synced = await n.sync(who);
          assert.ok(synced.results.every((x) => x.status === 'taken'), JSON.stringify(synced.results));
          assert.deepEqual(synced.findings, []);
          assert.equal((await who.se.call('status', {})).unsyncedEvents, 0);
        }
        assert.deepEqual([await n.balanceMinor(p), await n.balanceMinor(r), await n.balanceMinor(q)], [9000n, 0n, 0n]);
        await n.conservation([p.se, r.se, q.se]);

        // Online redeemability: each holder gives its copies up and is credited.
        for (const [who, amount] of [[q, 250n], [r, 450n], [p, 300n]] as const) {
          const redeemed = await n.redeem(who, amount);
          assert.deepEqual(statuses(redeemed), [`${await lastSeq(n, who)}:taken`]);
          assert.equal(redeemed.results[0]?.credited, (Number(amount) / 100).toFixed(2));
        }
        assert.deepEqual([await n.balanceMinor(p), await n.balanceMinor(r), await n.balanceMinor(q)], [9300n, 450n, 250n]);
        const fraud = (await (await n.h.send('GET', '/v1/dotm/fraud', { headers: n.h.operator })).json()) as { findings: unknown[] };
        assert.deepEqual(fraud.findings, []);
        assert.equal((await n.conservation([p.se, r.se, q.se])).float, 0n);
      } finally {
        await n.close();
      }
    });

    test('exceptional situations 3 and 5: P deducted, R rolled back; whichever side uploads first, P is refunded exactly once', async () => {
      const n = await dotmNode(backend);
      try {
        const p1 = await n.party('payer-1');
        const r1 = await n.party('payee-1', '0');
        const p2 = await n.party('payer-2');
        const r2 = await n.party('payee-2', '0');
        for (const p of [p1, p2]) await n.withdraw(p, '10.00');
        await n.pay(p1, r1, 400n, 'confirmed-rolled-back');
        await n.pay(p2, r2, 400n, 'confirmed-rolled-back');
        // Until the node settles them, the float holds the 4.00 each payer gave and no payee kept.
        assert.deepEqual([(await p1.se.call('status', {})).balance, (await r1.se.call('status', {})).balance], [600n, 0n]);
        const logs = { p1: (await p1.se.call('events', {})).events, r2: (await r2.se.call('events', {})).events };

        // P1 first, then R1: the payee's report completes the picture (§3.3.4 gives it priority).
        assert.equal((await n.sync(p1)).results[0]?.refund, undefined);
        assert.equal(await n.balanceMinor(p1), 9000n);
        assert.equal((await n.sync(r1)).results[0]?.refund, 'credited');
        assert.equal(await n.balanceMinor(p1), 9400n);
        // R2 first, then P2.
        assert.equal((await n.sync(r2)).results[0]?.refund, undefined);
        assert.equal((await n.sync(p2)).results[0]?.refund, 'credited');
        assert.equal(await n.balanceMinor(p2), 9400n);

        // Replays change nothing: the same events again are duplicates, and nobody is refunded twice.
        const again = await n.upload(p1, { events: logs.p1 });
        assert.deepEqual(statuses((await again.json()) as EventsAnswer), ['1:duplicate']);
        const replayKey = n.key();
        const first = await n.upload(r2, { events: logs.r2, key: replayKey });
        const second = await n.upload(r2, { events: logs.r2, key: replayKey });
        assert.equal(second.headers.get('idempotent-replayed'), 'true');
        assert.deepEqual(await second.json(), await first.json());
        assert.deepEqual([await n.balanceMinor(p1), await n.balanceMinor(p2), await n.balanceMinor(r1), await n.balanceMinor(r2)], [9400n, 9400n, 0n, 0n]);
        await n.conservation([p1.se, r1.se, p2.se, r2.se]);
      } finally {
        await n.close();
      }
    });

    test('exceptional situations 2 and 4: P withdrew its offer and R rolled back: no refund, and P may pay again with the same block', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const r = await n.party('payee', '0');
        await n.withdraw(p, '10.00');
        await n.pay(p, r, 1000n, 'abandoned-rolled-back');
        assert.deepEqual([(await p.se.call('status', {})).balance, (await r.se.call('status', {})).balance], [1000n, 0n]);
        for (const who of [r, p]) {
          const synced = await n.sync(who);
          assert.deepEqual(statuses(synced), ['1:taken']);
          assert.equal(synced.results[0]?.refund, undefined);
        }
        assert.equal(await n.balanceMinor(p), 9000n);
        await n.conservation([p.se, r.se]);

        // The withdrawn record does not count: the same copy pays R in full, and that is no double spend.
        await n.pay(p, r, 1000n);
        for (const who of [p, r]) assert.deepEqual((await n.sync(who)).findings, []);
        const redeemed = await n.redeem(r, 1000n);
        assert.equal(redeemed.results[0]?.credited, '10.00');
        assert.equal(await n.balanceMinor(r), 1000n);
        await n.conservation([p.se, r.se]);
      } finally {
        await n.close();
      }
    });

    test('a cloned wallet double spends: the payees\' uploads name P, revoke its ucert and wcert, and a payee with the new list refuses P', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const r1 = await n.party('payee-1', '0');
        const r2 = await n.party('payee-2', '0');
        await n.withdraw(p, '10.00');
        const clone = await n.cloneSe(p);
        await n.pay(p, r1, 600n);
        await n.pay({ se: clone }, r2, 600n);

        assert.deepEqual((await n.sync(r1)).findings, []);
        // First come: R1's redemption fits what P received, so it is credited.
        assert.equal((await n.redeem(r1, 600n)).results[0]?.credited, '6.00');
        const caught = await n.sync(r2);
        assert.deepEqual(
          caught.findings.map((f) => [f.kind, f.culprit, f.wallet, f.received, f.spent, f.records.length]),
          [['overspent', p.userKeyId, p.wallet, '10.00', '12.00', 2]],
        );
        const wallet = (await (await n.h.signed(p.user, 'GET', `/v1/dotm/wallets/${p.wallet}`)).json()) as { revoked: boolean; ucert: string; wcert: string };
        assert.equal(wallet.revoked, true);
        await expectError(await n.issue(p, '1.00'), 403, 'CERT_REVOKED');
        const list = (await (await n.h.send('GET', '/v1/revocations')).json()) as { revoked: string[] };
        for (const cert of [wallet.ucert, wallet.wcert]) assert.ok(list.revoked.includes(toHex(decodeCertificate(fromBase64url(cert)).body.serial)));
        // R2's copy now passes through an over-spent node whose value R1 already took.
        const late = await n.redeem(r2, 600n);
        assert.deepEqual([late.results[0]?.status, late.results[0]?.code, late.results[0]?.credited], ['refused', 'DOUBLE_SPEND', '0.00']);
        assert.equal(await n.balanceMinor(r2), 0n);

        // A payee that synced the new list refuses P as a payer, and as a payee.
        await n.sync(r1);
        await n.mint(r1, '5.00');
        await n.withdraw(r1, '5.00');
        const request = await r1.se.call('request', { v: 100n, now: n.h.now() });
        const paid = await p.se.call('pay', { request, password: PASSWORD, expect: { v: 100n }, now: n.h.now() });
        assert.ok(paid.transaction !== undefined);
        await refused(r1.se.call('accept', { transaction: paid.transaction, now: n.h.now() }), 'CERT_REVOKED');
        await p.se.call('abandon', {});
        const asked = await p.se.call('request', { v: 100n, now: n.h.now() });
        await refused(r1.se.call('pay', { request: asked, password: PASSWORD, expect: { v: 100n }, now: n.h.now() }), 'CERT_REVOKED');

        // P's log (sent to R1, then the withdrawn offer) and the clone's (sent to R2) both start at event 1: two logs of one wallet.
        const own = await n.sync(p);
        assert.deepEqual(statuses(own), ['1:taken', '2:taken']);
        const copy = await n.upload(p, { se: clone });
        const copied = (await copy.json()) as EventsAnswer;
        assert.deepEqual(statuses(copied), ['1:refused:EVENT_CONFLICT']);
        assert.deepEqual(copied.findings.map((f) => [f.kind, f.culprit]), [['clone', p.userKeyId]]);
        const fraud = (await (await n.h.send('GET', '/v1/dotm/fraud', { headers: n.h.operator })).json()) as { findings: { kind: string }[] };
        assert.deepEqual(fraud.findings.map((f) => f.kind), ['overspent', 'clone']);
        // The float still backs every genuine copy: P's change and R1's new block (the clone's is not backed).
        await n.conservation([p.se, r1.se, r2.se]);
      } finally {
        await n.close();
      }
    });

    test("a cloned payee's own log, refused as conflicting, does not count a payment it rolled back: its payer is not named", async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const r = await n.party('payee', '0');
        const q = await n.party('third', '0');
        const x = await n.party('other');
        const clone = await n.cloneSe(r);
        await n.withdraw(p, '10.00');
        await n.withdraw(x, '5.00');
        // P offers 6.00 to R, which rolls back; P withdraws the offer and later pays Q 8.00 from the same block.
        await n.pay(p, r, 600n, 'abandoned-rolled-back');
        await n.pay(p, q, 800n);
        // R's clone takes a payment of its own and uploads first: the node takes its event 1 as R's.
        await n.pay(x, { se: clone }, 100n);
        assert.deepEqual(statuses((await (await n.upload(r, { se: clone })).json()) as EventsAnswer), ['1:taken']);
        // R's own event 1 (the rollback) conflicts: R is named for the two logs, and only R.
        const own = (await (await n.upload(r)).json()) as EventsAnswer;
        assert.deepEqual(statuses(own), ['1:refused:EVENT_CONFLICT']);
        assert.deepEqual(own.findings.map((f) => [f.kind, f.culprit]), [['clone', r.userKeyId]]);
        // Q's upload puts P's 8.00 under the block: P spent 8.00 of 10.00, no double spend.
        assert.deepEqual((await n.sync(q)).findings, []);
        assert.deepEqual((await n.sync(p)).findings, []);
        const fraud = (await (await n.h.send('GET', '/v1/dotm/fraud', { headers: n.h.operator })).json()) as { findings: { kind: string; culprit: string }[] };
        assert.deepEqual(fraud.findings.map((f) => [f.kind, f.culprit]), [['clone', r.userKeyId]]);
        const payer = (await (await n.h.signed(p.user, 'GET', `/v1/dotm/wallets/${p.wallet}`)).json()) as { revoked: boolean };
        assert.equal(payer.revoked, false);
        assert.equal((await n.redeem(q, 800n)).results[0]?.credited, '8.00');
        // The clone holds what X paid it: that copy is backed like any other.
        await n.conservation([p.se, r.se, q.se, x.se, clone]);
      } finally {
        await n.close();
      }
    });

    test('two payees of one double-spent block upload and redeem at the same time: exactly one is credited', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const r1 = await n.party('payee-1', '0');
        const r2 = await n.party('payee-2', '0');
        await n.withdraw(p, '10.00');
        const clone = await n.cloneSe(p);
        await n.pay(p, r1, 1000n);
        await n.pay({ se: clone }, r2, 1000n);
        for (const r of [r1, r2]) await r.se.call('redeem', { amount: 1000n, password: PASSWORD, now: n.h.now() });
        const answers = await Promise.all([n.sync(r1), n.sync(r2)]);
        const credited = answers.map((a) => a.results[1]?.credited);
        assert.deepEqual([...credited].sort(), ['0.00', '10.00']);
        assert.deepEqual(answers.flatMap((a) => a.findings.map((f) => [f.kind, f.culprit])), [['overspent', p.userKeyId]]);
        assert.equal((await n.balanceMinor(r1)) + (await n.balanceMinor(r2)), 1000n);
        await n.conservation([p.se, r1.se, r2.se]);
      } finally {
        await n.close();
      }
    });

    test('a payee that completes without the payer\'s success message keeps nothing: when it spends the withdrawn payment, it is named, not the payer', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const r = await n.party('payee', '0');
        const q = await n.party('third', '0');
        await n.withdraw(p, '10.00');
        const request = await r.se.call('request', { v: 1000n, now: n.h.now() });
        const paid = await p.se.call('pay', { request, password: PASSWORD, expect: { v: 1000n }, now: n.h.now() });
        assert.ok(paid.transaction !== undefined);
        const notification = await r.se.call('accept', { transaction: paid.transaction, now: n.h.now() });
        // The notification never reaches P, which withdraws its offer. R's app makes step 8's message
        // itself: R's TA refuses it (only wsk_P signs step 8) and stays as it was.
        await p.se.call('abandon', {});
        const made = { tsn: notification.tsn, notification: notificationDigest(notification) };
        const before = await r.se.call('status', {});
        for (const signature of [new Uint8Array(64), signRecord(await n.extractWalletKey(r.dir), SUCCESS_TAG, successSigned(made))]) {
          await assert.rejects(r.se.call('complete', { success: { ...made, signature } }), (e: unknown) => isTallyError(e, 'SE_REJECTED') && e.details.reason === 'SIGNATURE_INVALID');
        }
        assert.deepEqual(await r.se.call('status', {}), before);
        // What the node sees if R's TA completes it anyway: played with wsk_P taken out of P's SE
        // folder (only a broken SE could get past the check).
        await r.se.call('complete', { success: { ...made, signature: signRecord(await n.extractWalletKey(p.dir), SUCCESS_TAG, successSigned(made)) } });
        await n.pay(r, q, 1000n);
        assert.deepEqual((await n.sync(p)).findings, []);
        // Q's upload shows a record paid by R from the payment P withdrew.
        const caught = await n.sync(q);
        assert.deepEqual(caught.findings.map((f) => [f.kind, f.culprit, f.received, f.spent]), [['overspent', r.userKeyId, '0.00', '10.00']]);
        assert.deepEqual((await n.sync(r)).findings, []);
        const wallets = await Promise.all([p, r].map(async (who) => ((await (await n.h.signed(who.user, 'GET', `/v1/dotm/wallets/${who.wallet}`)).json()) as { revoked: boolean }).revoked));
        assert.deepEqual(wallets, [false, true]);
        // The payer still holds the value and redeems it; the copy R passed on is worth nothing.
        assert.equal((await n.redeem(p, 1000n)).results[0]?.credited, '10.00');
        const refusedCopy = await n.redeem(q, 1000n);
        assert.deepEqual([refusedCopy.results[0]?.code, refusedCopy.results[0]?.credited], ['DOUBLE_SPEND', '0.00']);
        await n.conservation([p.se, r.se, q.se]);
      } finally {
        await n.close();
      }
    });

    test('a payee that keeps a payment it rolled back (a cloned state completes it) is named; the payer is refunded once and nothing is credited twice', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const r = await n.party('payee', '0');
        const q = await n.party('third', '0');
        await n.withdraw(p, '10.00');
        const request = await r.se.call('request', { v: 400n, now: n.h.now() });
        const paid = await p.se.call('pay', { request, password: PASSWORD, expect: { v: 400n }, now: n.h.now() });
        assert.ok(paid.transaction !== undefined);
        const notification = await r.se.call('accept', { transaction: paid.transaction, now: n.h.now() });
        const rClone = await n.cloneSe(r);
        const success = await p.se.call('confirm', { notification });
        await r.se.call('rollback', {});
        await rClone.call('complete', { success });
        await n.pay({ se: rClone }, q, 400n);

        assert.equal((await n.sync(p)).results[0]?.refund, undefined);
        assert.equal((await n.sync(r)).results[0]?.refund, 'credited');
        assert.equal(await n.balanceMinor(p), 9400n);
        const caught = await n.sync(q);
        assert.deepEqual(caught.findings.map((f) => [f.kind, f.culprit, f.received, f.spent]), [['overspent', r.userKeyId, '0.00', '4.00']]);
        const copy = (await (await n.upload(r, { se: rClone })).json()) as EventsAnswer;
        // The clone's first event contradicts R's; its second continues the wallet's log as far as the node can tell.
        assert.deepEqual(statuses(copy), ['1:refused:EVENT_CONFLICT', '2:taken']);
        assert.deepEqual(copy.findings.map((f) => [f.kind, f.culprit]), [['clone', r.userKeyId]]);
        const refusedCopy = await n.redeem(q, 400n);
        assert.deepEqual([refusedCopy.results[0]?.code, refusedCopy.results[0]?.credited], ['DOUBLE_SPEND', '0.00']);
        assert.equal((await n.redeem(p, 600n)).results[0]?.credited, '6.00');
        assert.deepEqual([await n.balanceMinor(p), await n.balanceMinor(r), await n.balanceMinor(q)], [10_000n, 0n, 0n]);
        await n.conservation([p.se, r.se, q.se]);
      } finally {
        await n.close();
      }
    });

    test('uploads: a forged signature, a gap, a disordered or malformed or oversized upload are refused and change nothing; a replay is a duplicate', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const r = await n.party('payee', '0');
        await n.withdraw(p, '10.00');
        await n.pay(p, r, 500n);
        await r.se.call('redeem', { amount: 200n, password: PASSWORD, now: n.h.now() });
        const [e1, e2] = (await r.se.call('events', {})).events as [WalletEvent, WalletEvent];

        const flipped = new Uint8Array(e1.signature);
        flipped[0] = (flipped[0] as number) ^ 1;
        await expectError(await n.upload(r, { events: [{ ...e1, signature: flipped }, e2] }), 401, 'SIGNATURE_INVALID');
        // Signed by another wallet's key, or sent for another wallet.
        const pKey = await n.extractWalletKey(p.dir);
        await expectError(await n.upload(r, { events: [{ ...e1, signature: signRecord(pKey, EVENT_TAG, eventBodyWire(e1.body)) }] }), 401, 'SIGNATURE_INVALID');
        await expectError(await n.upload(p, { events: [e1] }), 401, 'SIGNATURE_INVALID');
        await expectError(await n.upload(r, { events: [e2] }), 409, 'SEQUENCE_GAP');
        await expectError(await n.upload(r, { events: [e2, e1] }), 400, 'BODY_INVALID');
        await expectError(await n.upload(r, { raw: ['AAAA'] }), 400, 'BODY_INVALID');
        await expectError(await n.upload(r, { raw: ['not base64!'] }), 400, 'BODY_INVALID');
        await expectError(await n.upload(r, { raw: ['A'.repeat(EVENTS_BODY_BYTES_MAX)] }), 413, 'BODY_TOO_LARGE');
        await expectError(await n.upload(r, { raw: [...n.wire([e1]), ...Array.from({ length: 16 }, () => 'AAAA')] }), 400, 'BODY_INVALID');
        // Not the caller's wallet.
        await expectError(await n.h.signed(p.user, 'POST', '/v1/dotm/events', { wallet: r.wallet, events: n.wire([e1]) }, n.key()), 404, 'DEVICE_UNKNOWN');
        assert.equal(await lastSeq(n, r), 0);
        assert.equal(await n.balanceMinor(r), 0n);

        // With no events the node just acknowledges what it has (a wallet back from a crash asks so).
        const empty = (await (await n.upload(r, { events: [] })).json()) as EventsAnswer;
        assert.deepEqual(empty.results, []);
        const taken = (await (await n.upload(r, { events: [e1, e2] })).json()) as EventsAnswer;
        assert.deepEqual(statuses(taken), ['1:taken', '2:taken']);
        assert.equal(taken.results[1]?.credited, '2.00');
        const replayed = (await (await n.upload(r, { events: [e1, e2] })).json()) as EventsAnswer;
        assert.deepEqual(statuses(replayed), ['1:duplicate', '2:duplicate']);
        assert.equal(await n.balanceMinor(r), 200n);
        assert.equal((await n.applyAck(r.se, replayed)).cleared, 2);
        assert.equal(await lastSeq(n, r), 2);
        await n.sync(p);
        await n.conservation([p.se, r.se]);
      } finally {
        await n.close();
      }
    });

    test('a side that names another transaction under a tsn the other side reported is refused TRANSACTION_MISMATCH; nothing moves and nothing is named', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const r = await n.party('payee', '0');
        await n.withdraw(p, '10.00');
        await n.pay(p, r, 400n);
        assert.deepEqual(statuses(await n.sync(r)), ['1:taken']);
        // P's wallet key extracted: its `sent` turned into an `abandoned` under the same tsn that names another σ.
        const [sent] = (await p.se.call('events', {})).events;
        assert.ok(sent !== undefined && sent.body.kind === 'sent');
        const wsk = await n.extractWalletKey(p.dir);
        const { notification: _dropped, ...rest } = sent.body;
        const body: EventBody = { ...rest, kind: 'abandoned', transaction: new Uint8Array(32).fill(7) };
        const before = await n.balanceMinor(p);
        const answer = (await (await n.upload(p, { events: [{ body, signature: signRecord(wsk, EVENT_TAG, eventBodyWire(body)) }] })).json()) as EventsAnswer;
        assert.deepEqual(statuses(answer), ['1:refused:TRANSACTION_MISMATCH']);
        assert.deepEqual(answer.findings, []);
        assert.equal(await n.balanceMinor(p), before);
        assert.equal(await lastSeq(n, p), 1, 'the refused event is taken into the log as refused');
        // The payment stands: R redeems what it received.
        assert.equal((await n.redeem(r, 400n)).results[0]?.credited, '4.00');
        await n.conservation([p.se, r.se]);
      } finally {
        await n.close();
      }
    });

    test('a redemption of more than the copy received is refused and names its holder', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const [block] = await n.withdraw(p, '10.00');
        assert.ok(block !== undefined);
        assert.equal((await n.redeem(p, 1000n)).results[0]?.credited, '10.00');
        // With the extracted wallet key, the same copy is given up a second time under the next seq.
        const wsk = await n.extractWalletKey(p.dir);
        const parts = [{ block }];
        const body: EventBody = { wallet: keyId(wsk.publicKey), seq: 2, kind: 'redeemed', tsn: new Uint8Array(16).fill(9), transaction: partsDigest(parts), amount: 1000n, time: n.h.now(), parts };
        const forged: WalletEvent = { body, signature: signRecord(wsk, EVENT_TAG, eventBodyWire(body)) };
        const answer = (await (await n.upload(p, { events: [forged] })).json()) as EventsAnswer;
        assert.deepEqual([answer.results[0]?.status, answer.results[0]?.code, answer.results[0]?.credited], ['refused', 'DOUBLE_SPEND', '0.00']);
        assert.deepEqual(answer.findings.map((f) => [f.kind, f.culprit, f.received, f.spent]), [['overspent', p.userKeyId, '10.00', '20.00']]);
        assert.equal(await n.balanceMinor(p), 10_000n);
        // A redemption of a copy someone else holds is refused outright.
        const r = await n.party('other', '0');
        const rKey = await n.extractWalletKey(r.dir);
        const theirs: EventBody = { ...body, wallet: keyId(rKey.publicKey), seq: 1 };
        const stolen = (await (await n.upload(r, { events: [{ body: theirs, signature: signRecord(rKey, EVENT_TAG, eventBodyWire(theirs)) }] })).json()) as EventsAnswer;
        assert.deepEqual(statuses(stolen), ['1:refused:EVENT_INVALID']);
        assert.equal(await n.balanceMinor(r), 0n);
        await n.conservation([p.se, r.se]);
      } finally {
        await n.close();
      }
    });

    test('one redemption naming a copy twice among others: both parts of that copy are refused and its holder named, the other copies credited once', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const blocks = await n.withdraw(p, '10.00', 3);
        assert.equal(blocks.length, 3);
        const [a, b, c] = blocks as [CurrencyBlock, CurrencyBlock, CurrencyBlock];
        const before = await n.balanceMinor(p);
        // The extracted wallet key signs what the trusted app never would: copy b given up twice in one event.
        const wsk = await n.extractWalletKey(p.dir);
        const parts = [{ block: a }, { block: b }, { block: c }, { block: b }];
        const amount = parts.reduce((sum, part) => sum + part.block.remaining, 0n);
        const body: EventBody = { wallet: keyId(wsk.publicKey), seq: (await lastSeq(n, p)) + 1, kind: 'redeemed', tsn: new Uint8Array(16).fill(7), transaction: partsDigest(parts), amount, time: n.h.now(), parts };
        const answer = (await (await n.upload(p, { events: [{ body, signature: signRecord(wsk, EVENT_TAG, eventBodyWire(body)) }] })).json()) as EventsAnswer;
        const credited = a.remaining + c.remaining;
        assert.deepEqual([answer.results[0]?.status, answer.results[0]?.code, answer.results[0]?.credited], ['refused', 'DOUBLE_SPEND', major(credited)]);
        assert.match(answer.results[0]?.message ?? '', /^2 of 4 copies/);
        assert.deepEqual(
          answer.findings.map((f) => [f.kind, f.culprit, f.received, f.spent]),
          [['overspent', p.userKeyId, major(b.remaining), major(2n * b.remaining)]],
        );
        assert.equal(await n.balanceMinor(p), before + credited);
        // The same event again is a duplicate: nothing more is credited.
        const again = (await (await n.upload(p, { events: [{ body, signature: signRecord(wsk, EVENT_TAG, eventBodyWire(body)) }] })).json()) as EventsAnswer;
        assert.deepEqual(statuses(again), [`${body.seq}:duplicate`]);
        assert.equal(await n.balanceMinor(p), before + credited);
        // The trusted app still counts the three copies (its key signed behind its back); the
        // float backs only the one not credited.
        const audit = await n.h.node.services.ledger.audit();
        assert.equal(audit.balanced, true);
        const eur = audit.currencies.find((x) => x.currency === 'EUR');
        assert.equal(eur?.offlineFloat.find((f) => f.account === 'float:dotm')?.amount, b.remaining);
        assert.equal(eur?.totalSettlement, 0n);
      } finally {
        await n.close();
      }
    });
  });
}
