/**
 * OPS end to end on a real node (PGlite and PostgreSQL) with in-process secure elements: the
 * paper's flows (Figures 5-9) and properties, and settlement catching a cloned device.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { fromBase64url, toBase64url, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { isTallyError } from '../../core/errors.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { decodeRevocationList, RevocationStore } from '../../pki/revocation.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import {
  depositSigned,
  DEPOSIT_TAG,
  paymentDigest,
  paymentSigned,
  PAYMENT_TAG,
  syncReportBodyWire,
  SYNC_REPORT_TAG,
  type Payment,
  type SyncReportBody,
  type WithdrawConfirmation,
} from './messages.ts';
import { verifyPayment } from './pay-verify.ts';
import { RETIREMENT_HOLD_MS } from './node.ts';
import { opsNode, type OpsSe } from './test-fixtures.ts';

after(() => closeTestTemplates());

/** Asserts that the TA refused with `code` (an SE_REJECTED whose reason names it). */
async function refused(call: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(call, (e: unknown) => {
    assert.ok(isTallyError(e, 'SE_REJECTED'), String(e));
    assert.equal(e.details.reason, code, e.message);
    return true;
  });
}

async function balanceOf(se: OpsSe): Promise<bigint> {
  return (await se.call('status', {})).balance;
}

for (const backend of testBackends()) {
  describe(`OPS on ${backend.kind}`, { skip: backend.skip }, () => {
    test('deposit, pay a TA, collect, re-spend to a client, claim, withdraw, sync: balances and the audit agree', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '100.00');
        await n.deposit(alice, '50.00');
        assert.equal(await balanceOf(alice.se), 5000n);
        assert.equal(await n.h.balance(alice), '50.00');

        // Figure 7: Bob asks, Alice's TA pays, Bob verifies (offline verifiability) and collects.
        const toBob = await alice.se.call('pay', { amount: 2000n, receiver: bob.certificate });
        const { identity } = n.h.node.services;
        const verified = verifyPayment({ provider: nodeProvider, payment: toBob, trustAnchors: [identity.root.certificate], intermediaries: [identity.intermediary.certificate], now: n.h.now(), currency: 'EUR', receiver: bob.certificate });
        assert.equal(toHex(verified.sender.subjectKeyId), alice.device);
        assert.equal((await bob.se.call('collect', { payment: toBob })).balance, 2000n);

        // Offline transitivity: Bob spends part of it at once, to Carol, who has no TA and claims it.
        const toCarol = await bob.se.call('pay', { amount: 500n, receiver: carol.certificate });
        const claimed = await n.claim(carol, toCarol);
        assert.equal(claimed.status, 200, await claimed.clone().text());
        assert.equal(await n.h.balance(carol), '5.00');

        // Online redeemability: Alice withdraws 10.00.
        const withdrawn = await n.withdraw(alice, 1000n);
        assert.equal(withdrawn.status, 200, await withdrawn.clone().text());
        assert.equal(await n.h.balance(alice), '60.00');
        assert.equal(await balanceOf(alice.se), 2000n);
        assert.equal(await balanceOf(bob.se), 1500n);

        // Sync both; nothing is fraud; the TAs forget what the node acknowledged.
        for (const who of [alice, bob]) {
          const synced = await n.sync(who);
          assert.deepEqual(synced.fraud, []);
          const status = await who.se.call('status', {});
          assert.equal(status.unsyncedPayments, 0);
          assert.equal(status.unsyncedCollects, 0);
        }
        const device = (await (await n.h.signed(alice.user, 'GET', `/v1/ops/devices/${alice.device}`)).json()) as { i: string; reportedBalance: string; revoked: boolean };
        assert.deepEqual([device.i, device.reportedBalance, device.revoked], ['2', '20.00', false]);

        // Supply conservation: what the float holds is exactly what the TAs hold.
        const audit = (await (await n.h.send('GET', '/v1/audit', { headers: n.h.operator })).json()) as { balanced: boolean; currencies: { offlineFloat: { account: string; amount: string }[] }[] };
        assert.equal(audit.balanced, true);
        const float = audit.currencies[0]?.offlineFloat.find((f) => f.account === 'float:ops');
        const held = (await balanceOf(alice.se)) + (await balanceOf(bob.se));
        assert.equal(float?.amount, `${held / 100n}.${String(held % 100n).padStart(2, '0')}`, 'the audit shows decimal major units');
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('replayed, forged and misdirected confirmations and payments are refused and change nothing', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '100.00');
        const first = await n.deposit(alice, '30.00');
        // Deposit: replayed (i no longer next), forged (other key), for another TA, for more than signed.
        await refused(alice.se.call('deposit', { confirmation: first }), 'COUNTER_MISMATCH');
        const forged = { ...first, i: 2n, signature: signRecord(n.oem, DEPOSIT_TAG, depositSigned({ ...first, i: 2n })) };
        await refused(alice.se.call('deposit', { confirmation: forged }), 'SIGNATURE_INVALID');
        await refused(bob.se.call('deposit', { confirmation: { ...first, i: 1n } }), 'SIGNATURE_INVALID');
        await refused(alice.se.call('deposit', { confirmation: { ...first, i: 2n, amount: 999_999n } }), 'SIGNATURE_INVALID');
        assert.equal(await balanceOf(alice.se), 3000n);
        // Over the holding limit (300.00 by default) the node refuses before moving money.
        await expectError(await n.h.signed(alice.user, 'POST', '/v1/ops/deposits', { device: alice.device, amount: '300.01' }, n.key()), 422, 'HOLDING_LIMIT');
        // Someone else's device.
        await expectError(await n.h.signed(bob.user, 'POST', '/v1/ops/deposits', { device: alice.device, amount: '1.00' }, n.key()), 404, 'DEVICE_UNKNOWN');

        // Withdraw: replayed at the node, and one signed by another TA.
        const confirmation = await alice.se.call('withdraw', { amount: 500n });
        const send = (c: WithdrawConfirmation) => n.h.signed(alice.user, 'POST', '/v1/ops/withdrawals', { device: alice.device, confirmation: toBase64url(encodeCbor({ ...c })) }, n.key());
        assert.equal((await send(confirmation)).status, 200);
        await expectError(await send(confirmation), 409, 'COUNTER_MISMATCH');
        const bobs = await bob.se.call('withdraw', { amount: 1n }).catch((e: unknown) => e);
        assert.ok(isTallyError(bobs, 'SE_REJECTED'), 'Bob has nothing to withdraw');
        await expectError(await send({ ...confirmation, i: 3n }), 401, 'SIGNATURE_INVALID');
        assert.equal(await n.h.balance(alice), '75.00');

        // Payments: more than the balance; to Bob, collected twice; to Carol, collected by Bob; claimed twice; altered.
        await refused(alice.se.call('pay', { amount: 2501n, receiver: bob.certificate }), 'INSUFFICIENT_FUNDS');
        const toBob = await alice.se.call('pay', { amount: 700n, receiver: bob.certificate });
        await bob.se.call('collect', { payment: toBob });
        await refused(bob.se.call('collect', { payment: toBob }), 'PAYMENT_REPLAYED');
        await expectError(await n.claim(carol, toBob), 422, 'PAYMENT_INVALID');
        const toCarol = await alice.se.call('pay', { amount: 300n, receiver: carol.certificate });
        await refused(bob.se.call('collect', { payment: toCarol }), 'PAYMENT_INVALID');
        const altered: Payment = { ...toCarol, amount: 3000n };
        await expectError(await n.claim(carol, altered), 422, 'PAYMENT_INVALID');
        assert.equal((await n.claim(carol, toCarol)).status, 200);
        await expectError(await n.claim(carol, toCarol), 409, 'PAYMENT_REPLAYED');
        // A payment signed by a key that is not a certified TA (Bob's user key over Alice's certificate).
        const impostor: Payment = { ...toCarol, index: 99n, signature: signRecord(bob.user, 'tally/ops/payment/v1', paymentSigned({ ...toCarol, index: 99n })) };
        await expectError(await n.claim(carol, impostor), 422, 'PAYMENT_INVALID');
        assert.equal(await n.h.balance(carol), '3.00');
        assert.equal(await balanceOf(alice.se), 1500n);
        assert.equal(await balanceOf(bob.se), 700n);
        assert.equal((await n.h.audit()).balanced, true);
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('limits of the certificate: payments between syncs; a sync lifts it', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        await n.mint(alice, '100.00');
        await n.deposit(alice, '100.00');
        const limit = (await alice.se.call('status', {})).offlinePaymentsMax;
        assert.equal(limit, 50);
        for (let k = 0; k < limit; k++) await alice.se.call('pay', { amount: 1n, receiver: bob.certificate });
        await refused(alice.se.call('pay', { amount: 1n, receiver: bob.certificate }), 'OFFLINE_LIMIT');
        await n.sync(alice);
        await alice.se.call('pay', { amount: 1n, receiver: bob.certificate });
        assert.equal(await balanceOf(alice.se), 10_000n - BigInt(limit) - 1n);
        assert.equal((await n.h.audit()).balanced, true);
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('a cloned TA double spends: the node refuses the second claim, names and revokes the device, and synced payees refuse it', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      let clone: OpsSe | undefined;
      try {
        const carol = await n.plainClient();
        const dave = await n.plainClient();
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        // The owner copies the SE's files (the file counter cannot stop that) and spends the same money twice.
        clone = await n.openSe(await n.copySe(alice), false);
        const original = await alice.se.call('pay', { amount: 1500n, receiver: carol.certificate });
        const copy = await clone.call('pay', { amount: 1500n, receiver: dave.certificate });
        assert.equal(original.index, copy.index);
        assert.equal((await n.claim(carol, original)).status, 200);
        await expectError(await n.claim(dave, copy), 409, 'DOUBLE_SPEND');
        assert.equal(await n.h.balance(dave), '0.00');

        const cases = (await (await n.h.send('GET', '/v1/ops/fraud', { headers: n.h.operator })).json()) as { cases: { device: string; kind: string }[] };
        assert.deepEqual(cases.cases.map((c) => [c.device, c.kind]), [[alice.device, 'clone']]);
        // The revocation list names Alice's device; Bob, once synced, refuses its payments offline.
        const list = (await (await n.h.send('GET', '/v1/revocations')).json()) as { revoked: string[]; list: string };
        assert.ok(list.revoked.includes(toHex(decodeCertificate(alice.certificate).body.serial)));
        const store = new RevocationStore({ provider: nodeProvider });
        assert.equal(store.accept(decodeRevocationList(fromBase64url(list.list)), n.h.node.services.identity.intermediary.certificate.body.subject), 'accepted');
        await n.sync(bob);
        const later = await clone.call('pay', { amount: 100n, receiver: bob.certificate });
        await refused(bob.se.call('collect', { payment: later }), 'CERT_REVOKED');
        // And the node refuses Alice's device from now on.
        await expectError(await n.h.signed(alice.user, 'POST', '/v1/ops/deposits', { device: alice.device, amount: '1.00' }, n.key()), 403, 'CERT_REVOKED');
        assert.equal((await n.h.audit()).balanced, true);
      } finally {
        await clone?.close();
        await n.close([alice, bob]);
      }
    });

    test('a restored TA that withdraws what it already paid is named, revoked and refused; the money stays put', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      let old: OpsSe | undefined;
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        // The owner copies the SE with its counter (the file counter cannot stop that), pays Carol, who claims.
        const snapshot = await n.copySe(alice);
        const paid = await alice.se.call('pay', { amount: 1500n, receiver: carol.certificate });
        assert.equal((await n.claim(carol, paid)).status, 200);
        // The restored state still holds 20.00 and has never paid (j = 0): it withdraws all of it.
        await alice.se.close();
        old = await n.openSe(snapshot, false);
        assert.equal(await balanceOf(old), 2000n);
        const withdrawal = await old.call('withdraw', { amount: 2000n });
        assert.equal(withdrawal.j, 0n);
        const answer = await n.h.signed(alice.user, 'POST', '/v1/ops/withdrawals', { device: alice.device, confirmation: toBase64url(encodeCbor({ ...withdrawal })) }, n.key());
        const problem = await expectError(answer, 403, 'FRAUD_DETECTED');
        assert.match(problem.message, /below payment 1 the node already holds/);
        assert.equal(await n.h.balance(alice), '0.00', 'nothing was credited');
        const cases = (await (await n.h.send('GET', '/v1/ops/fraud', { headers: n.h.operator })).json()) as { cases: { device: string; kind: string; evidence: Record<string, string> }[] };
        assert.deepEqual(cases.cases.map((c) => [c.device, c.kind, c.evidence['statement']]), [[alice.device, 'rollback', 'withdrawal']]);
        const list = (await (await n.h.send('GET', '/v1/revocations')).json()) as { revoked: string[] };
        assert.ok(list.revoked.includes(toHex(decodeCertificate(alice.certificate).body.serial)), 'the device is revoked');
        // Sent again under another key, it is still refused (the device is revoked now).
        await expectError(await n.h.signed(alice.user, 'POST', '/v1/ops/withdrawals', { device: alice.device, confirmation: toBase64url(encodeCbor({ ...withdrawal })) }, n.key()), 403, 'CERT_REVOKED');
        assert.equal((await n.h.audit()).balanced, true);
      } finally {
        await old?.close();
        await n.close([]);
      }
    });

    test('a restored TA that reports before anything else is named: its counter is below a payment the node holds', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      let old: OpsSe | undefined;
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        const snapshot = await n.copySe(alice);
        const paid = await alice.se.call('pay', { amount: 500n, receiver: carol.certificate });
        assert.equal((await n.claim(carol, paid)).status, 200);
        await alice.se.close();
        old = await n.openSe(snapshot, false);
        // Its first report ever: j = 0 and a balance its flow explains; only the claim contradicts it.
        const sync = await n.sendReport(alice, await old.call('report', {}));
        assert.deepEqual(sync.fraud.map((f) => [f.device, f.kind]), [[alice.device, 'rollback']]);
        assert.equal(await n.h.balance(alice), '0.00');
        assert.equal((await n.h.audit()).balanced, true);
      } finally {
        await old?.close();
        await n.close([]);
      }
    });

    test('a credited withdrawal replayed after the device paid on is refused as already credited, not taken for a restored state: the device is not revoked', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const carol = await n.plainClient();
      try {
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        const send = (c: WithdrawConfirmation) => n.h.signed(alice.user, 'POST', '/v1/ops/withdrawals', { device: alice.device, confirmation: toBase64url(encodeCbor({ ...c })) }, n.key());
        const first = await alice.se.call('withdraw', { amount: 500n });
        assert.equal((await send(first)).status, 200);
        // alice pays on, and the node holds that payment (carol claims it online): the old confirmation's
        // payment counter is now below a payment the node holds.
        const paid = await alice.se.call('pay', { amount: 300n, receiver: carol.certificate });
        assert.equal((await n.claim(carol, paid)).status, 200);
        // Anyone who saw the first confirmation sends it again.
        const replay = await expectError(await send(first), 409, 'COUNTER_MISMATCH');
        assert.equal(replay.details['reason'], 'already-credited');
        assert.equal(await n.h.balance(alice), '5.00');
        const cases = (await (await n.h.send('GET', '/v1/ops/fraud', { headers: n.h.operator })).json()) as { cases: unknown[] };
        assert.deepEqual(cases.cases, [], 'no fraud case for a replay');
        // The device still works: its next withdrawal is credited.
        assert.equal((await send(await alice.se.call('withdraw', { amount: 200n }))).status, 200);
        assert.equal(await n.h.balance(alice), '7.00');
        assert.equal((await n.h.audit()).balanced, true);
      } finally {
        await n.close([]);
      }
    });

    test('a withdrawal signed twice for one number with two amounts is a restored state; the same one again credits nothing', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      let old: OpsSe | undefined;
      try {
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        const send = (c: WithdrawConfirmation) => n.h.signed(alice.user, 'POST', '/v1/ops/withdrawals', { device: alice.device, confirmation: toBase64url(encodeCbor({ ...c })) }, n.key());
        const snapshot = await n.copySe(alice);
        const first = await alice.se.call('withdraw', { amount: 500n });
        assert.equal((await send(first)).status, 200);
        // The same withdrawal signed again with the TA's current counters: already credited, nothing more.
        const again = await alice.se.call('withdrawAgain', { i: first.i });
        const replay = await expectError(await send(again), 409, 'COUNTER_MISMATCH');
        assert.equal(replay.details['reason'], 'already-credited');
        assert.equal(await n.h.balance(alice), '5.00');
        await refused(alice.se.call('withdrawAgain', { i: 7n }), 'WITHDRAW_UNKNOWN');
        // The restored state signs withdrawal number 2 again, for another amount.
        await alice.se.close();
        old = await n.openSe(snapshot, false);
        const second = await old.call('withdraw', { amount: 1500n });
        assert.equal(second.i, first.i);
        await expectError(await send(second), 403, 'FRAUD_DETECTED');
        assert.equal(await n.h.balance(alice), '5.00');
        const cases = (await (await n.h.send('GET', '/v1/ops/fraud', { headers: n.h.operator })).json()) as { cases: { device: string; kind: string }[] };
        assert.deepEqual(cases.cases.map((c) => [c.device, c.kind]), [[alice.device, 'rollback']]);
        assert.equal((await n.h.audit()).balanced, true);
      } finally {
        await old?.close();
        await n.close([]);
      }
    });

    test('a withdrawal that waited while the TA paid on is sent signed again and credited, not taken for a rollback', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        const waiting = await alice.se.call('withdraw', { amount: 500n });
        // Offline meanwhile: the TA pays Carol, who claims before the withdrawal reaches the node.
        const paid = await alice.se.call('pay', { amount: 300n, receiver: carol.certificate });
        assert.equal((await n.claim(carol, paid)).status, 200);
        const send = (c: WithdrawConfirmation) => n.h.signed(alice.user, 'POST', '/v1/ops/withdrawals', { device: alice.device, confirmation: toBase64url(encodeCbor({ ...c })) }, n.key());
        const fresh = await alice.se.call('withdrawAgain', { i: waiting.i });
        assert.equal(fresh.j, 1n);
        assert.equal(fresh.amount, 500n);
        assert.equal((await send(fresh)).status, 200);
        assert.equal(await n.h.balance(alice), '5.00');
        assert.deepEqual((await n.sync(alice)).fraud, []);
        assert.equal((await n.h.audit()).balanced, true);
      } finally {
        await n.close([alice]);
      }
    });

    test('the audit sees money created offline: a restored TA withdraws before its payment is claimed; the exposure names it until settlement does', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      let old: OpsSe | undefined;
      type Exposure = { scheme: string; float: string; expected: string; difference: string; attributed: string; unexplained: string; balanced: boolean; exposed: { device: string; amount: string; fraud: boolean }[] };
      const exposure = async () => {
        const audit = (await n.h.audit()) as unknown as { balanced: boolean; ledgerBalanced: boolean; exposure: Exposure[] };
        const ops = audit.exposure.find((e) => e.scheme === 'ops');
        assert.ok(ops !== undefined);
        return { audit, ops };
      };
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        await n.mint(bob, '50.00');
        await n.deposit(bob, '50.00');
        assert.equal((await exposure()).audit.balanced, true);
        const snapshot = await n.copySe(alice);
        const paid = await alice.se.call('pay', { amount: 1500n, receiver: carol.certificate });
        // Carol has not claimed yet: the node knows nothing of the payment when the restored state withdraws.
        await alice.se.close();
        old = await n.openSe(snapshot, false);
        assert.equal((await n.withdraw({ ...alice, se: old }, 2000n)).status, 200);
        assert.equal((await n.claim(carol, paid)).status, 200, 'the float pays it from what bob deposited');
        // The journal still adds up, but alice's device paid out 15.00 more than it ever had.
        const before = await exposure();
        assert.equal(before.audit.ledgerBalanced, true);
        assert.equal(before.audit.balanced, false);
        assert.deepEqual(before.ops.exposed, [{ device: alice.device, amount: '15.00', fraud: false }]);
        assert.equal(before.ops.float, '35.00');
        assert.equal(before.ops.expected, '50.00');
        assert.equal(before.ops.difference, '-15.00');
        assert.equal(before.ops.unexplained, '-15.00');
        // When the restored state next reports, its counter is below the claimed payment: named and revoked.
        const sync = await n.sendReport(alice, await old.call('report', {}));
        assert.deepEqual(sync.fraud.map((f) => [f.device, f.kind]), [[alice.device, 'rollback']]);
        const after = await exposure();
        assert.deepEqual(after.ops.exposed, [{ device: alice.device, amount: '15.00', fraud: true }]);
        assert.equal(after.ops.attributed, '15.00');
        assert.equal(after.ops.unexplained, '0.00');
        assert.equal(after.audit.balanced, true, 'the shortfall is attributed to the named device');
      } finally {
        await old?.close();
        await n.close([bob]);
      }
    });

    test('an owner retires a device whose SE is lost: revoked, its value held for the payments that surface, the rest given back once after the hold', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        await n.mint(bob, '10.00');
        await n.deposit(bob, '10.00');
        assert.equal((await n.claim(carol, await alice.se.call('pay', { amount: 500n, receiver: carol.certificate }))).status, 200);
        assert.deepEqual((await n.sync(alice)).fraud, []);
        // After its last report alice's TA pays carol 2.00 (nobody tells the node yet); bob pays alice's TA 3.00 and reports it.
        const unreported = await alice.se.call('pay', { amount: 200n, receiver: carol.certificate });
        await bob.se.call('pay', { amount: 300n, receiver: alice.certificate });
        assert.deepEqual((await n.sync(bob)).fraud, []);
        type Retirement = { status: string; escrow: string; releaseAt: string; refund?: { amount: string } };
        const retire = async (who = alice.user): Promise<Response> => n.h.signed(who, 'POST', `/v1/ops/devices/${alice.device}/retire`, { reason: 'the phone fell in the sea' }, n.key());
        await expectError(await retire(bob.user), 404, 'DEVICE_UNKNOWN');
        const first = await retire();
        assert.equal(first.status, 200, await first.clone().text());
        const held = (await first.json()) as Retirement;
        // 15.00 at its last report, plus the 3.00 on its way to it; nothing is credited yet.
        assert.deepEqual([held.status, held.escrow, held.refund], ['held', '18.00', undefined]);
        assert.equal(await n.h.balance(alice), '0.00');
        // Its payment made before the retirement is paid from the escrow when carol claims it.
        assert.equal((await n.claim(carol, unreported)).status, 200);
        assert.equal(await n.h.balance(carol), '7.00');
        const during = (await (await retire()).json()) as Retirement;
        assert.deepEqual([during.status, during.escrow, during.refund], ['held', '16.00', undefined], 'asked again during the hold: nothing moves');
        await expectError(await n.h.signed(alice.user, 'POST', '/v1/ops/deposits', { device: alice.device, amount: '1.00' }, n.key()), 403, 'CERT_REVOKED');
        assert.equal((await n.h.audit()).balanced, true);
        // After the hold, the rest goes to alice, once.
        n.h.tick(RETIREMENT_HOLD_MS + 1);
        const released = (await (await retire()).json()) as Retirement;
        assert.deepEqual([released.status, released.refund?.amount], ['released', '16.00']);
        assert.equal(await n.h.balance(alice), '16.00');
        const again = (await (await retire()).json()) as Retirement;
        assert.deepEqual([again.status, again.refund], ['released', undefined]);
        assert.equal(await n.h.balance(alice), '16.00', 'given back once');
        // The old SE, still able to sign, pays on: nothing is left for it.
        await expectError(await n.claim(carol, await alice.se.call('pay', { amount: 100n, receiver: carol.certificate })), 403, 'CERT_REVOKED');
        const audit = (await n.h.audit()) as unknown as { balanced: boolean; exposure: { scheme: string; exposed: unknown[] }[] };
        assert.equal(audit.balanced, true);
        assert.deepEqual(audit.exposure.find((e) => e.scheme === 'ops')?.exposed, []);
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('a retired device\'s payments are paid from its escrow, a kept copy withdraws nothing, and a revoked device is not retired with a refund', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      let clone: OpsSe | undefined;
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '10.00');
        await n.deposit(alice, '10.00');
        clone = await n.openSe(await n.copySe(alice), false);
        const retired = await n.h.signed(alice.user, 'POST', `/v1/ops/devices/${alice.device}/retire`, {}, n.key());
        assert.equal(retired.status, 200, await retired.clone().text());
        // Payments surfacing after the retirement are paid from the escrow; a copy kept by the owner withdraws nothing.
        assert.equal((await n.claim(carol, await alice.se.call('pay', { amount: 800n, receiver: carol.certificate }))).status, 200);
        const kept = await clone.call('withdraw', { amount: 100n });
        await expectError(await n.h.signed(alice.user, 'POST', '/v1/ops/withdrawals', { device: alice.device, confirmation: toBase64url(encodeCbor({ ...kept })) }, n.key()), 403, 'CERT_REVOKED');
        assert.equal((await n.claim(carol, await alice.se.call('pay', { amount: 200n, receiver: carol.certificate }))).status, 200);
        assert.equal(await n.h.balance(carol), '10.00');
        // A device caught by settlement is not retired on its owner's word.
        await n.mint(bob, '5.00');
        await n.deposit(bob, '5.00');
        const copy = await n.openSe(await n.copySe(bob), false);
        try {
          assert.equal((await n.claim(carol, await bob.se.call('pay', { amount: 100n, receiver: carol.certificate }))).status, 200);
          await expectError(await n.claim(carol, await copy.call('pay', { amount: 200n, receiver: carol.certificate })), 409, 'DOUBLE_SPEND');
        } finally {
          await copy.close();
        }
        await expectError(await n.h.signed(bob.user, 'POST', `/v1/ops/devices/${bob.device}/retire`, {}, n.key()), 403, 'CERT_REVOKED');
        assert.equal((await n.h.audit()).balanced, true);
      } finally {
        await clone?.close();
        await n.close([alice, bob]);
      }
    });

    test('nobody pays or mints into the floats or the issuance account', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      try {
        await n.mint(alice, '20.00');
        for (const to of ['float:ops', 'float:dotm', 'cb:issuance']) {
          const existing = await n.h.send('GET', `/v1/accounts/${encodeURIComponent(to)}`, { headers: n.h.operator });
          if (existing.status === 404) continue;
          await expectError(await n.h.signed(alice.user, 'POST', '/v1/transfers', { to, amount: '1.00' }, n.key()), 403, 'ACCOUNT_RESTRICTED');
          if (to !== 'cb:issuance') await expectError(await n.h.asOperator('POST', '/v1/operator/mint', { account: to, amount: '1.00' }), 403, 'ACCOUNT_RESTRICTED');
        }
        await expectError(await n.h.signed(alice.user, 'POST', '/v1/transfers', { to: 'float:ops', amount: '1.00' }, n.key()), 403, 'ACCOUNT_RESTRICTED');
        assert.equal(await n.h.balance(alice), '20.00');
        assert.equal((await n.h.audit()).balanced, true);
      } finally {
        await n.close([alice]);
      }
    });

    test('settlement names a rolled-back TA and one that paid out more than it ever had', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      let old: OpsSe | undefined;
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '10.00');
        await n.deposit(alice, '10.00');
        const snapshot = await n.copySe(alice);
        await alice.se.call('pay', { amount: 100n, receiver: bob.certificate });
        await alice.se.call('pay', { amount: 100n, receiver: bob.certificate });
        assert.deepEqual((await n.sync(alice)).fraud, []);
        // The owner restores the old state (j = 0) and syncs it: its counters went back.
        old = await n.openSe(snapshot, false);
        const report = await old.call('report', {});
        const rolledBack = await n.sendReport(alice, report);
        assert.deepEqual(rolledBack.fraud.map((f) => [f.device, f.kind]), [[alice.device, 'rollback']]);

        // Bob's TA key is extracted: the attacker signs a payment Bob's TA never made, and Carol claims it.
        const stolen = await n.extractKey(bob.dir);
        const forge = (index: bigint, amount: bigint): Payment => {
          const body = { amount, sender: bob.certificate, receiver: carol.certificate, index };
          return { ...body, signature: signRecord(stolen, PAYMENT_TAG, paymentSigned(body)) };
        };
        const forged = forge(1n, 500n);
        assert.equal((await n.claim(carol, forged)).status, 200, 'the node cannot tell yet: the signature is genuine');
        // When the device reports it, its flow shows 5.00 paid out of nothing deposited or collected.
        const body: SyncReportBody = {
          device: keyId(stolen.publicKey),
          balance: 0n,
          i: 0n,
          j: 1n,
          collectSeq: 0n,
          paid: [{ index: 1n, amount: 500n, receiver: keyId(decodeCertificate(carol.certificate).body.subject), digest: paymentDigest(forged) }],
          collected: [],
        };
        const overdraft = await n.sendReport(bob, { body, signature: signRecord(stolen, SYNC_REPORT_TAG, syncReportBodyWire(body)) });
        assert.deepEqual(overdraft.fraud.map((f) => [f.device, f.kind]), [[bob.device, 'overdraft']]);
        // Payments the device signed after its last report are no longer honoured.
        await expectError(await n.claim(carol, forge(2n, 500n)), 403, 'CERT_REVOKED');
        const cases = (await (await n.h.send('GET', '/v1/ops/fraud', { headers: n.h.operator })).json()) as { cases: { device: string; kind: string }[] };
        assert.deepEqual(cases.cases.map((c) => [c.device, c.kind]), [[alice.device, 'rollback'], [bob.device, 'overdraft']]);
        assert.equal((await n.h.audit()).balanced, true);
      } finally {
        await old?.close();
        await n.close([alice, bob]);
      }
    });
  });
}
