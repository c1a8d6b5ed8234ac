/**
 * The properties OPS claims (Christodorescu et al., §2.1 "Problem Definition"), one named test
 * each on a real node with in-process TAs: offline verifiability, absolute finality, online
 * redeemability, offline transitivity, and the three security properties (no double spending,
 * wallet security, supply conservation); then the attacks the paper's threat model (§2.2) allows
 * that ops.test.ts does not already try. Each test names the property and the section whose
 * mechanism gives it, and ends with the audit balanced and conservation.
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
import { decodeRevocationList, RevocationStore } from '../../pki/revocation.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { depositSigned, DEPOSIT_TAG, paymentSigned, PAYMENT_TAG, type Payment, type WithdrawConfirmation } from './messages.ts';
import { opsNode, type AnyOpsSe, type OpsNode, type OpsSe } from './test-fixtures.ts';

after(() => closeTestTemplates());

/** Asserts that the TA refused with `code`. */
async function refused(call: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(call, (e: unknown) => {
    assert.ok(isTallyError(e, 'SE_REJECTED'), String(e));
    assert.equal(e.details.reason, code, e.message);
    return true;
  });
}

/** Asserts that a wallet's PayVerify refused with `code`. */
function invalid(run: () => unknown, code: 'PAYMENT_INVALID' | 'CERT_REVOKED' = 'PAYMENT_INVALID'): void {
  assert.throws(run, (e: unknown) => isTallyError(e, code));
}

async function balanceOf(se: AnyOpsSe): Promise<bigint> {
  return (await se.call('status', {})).balance;
}

/** How many payments the node has heard of (from reports, collects or claims). */
async function paymentsKnown(n: OpsNode): Promise<number> {
  const { rows } = await n.h.node.services.db.query<{ n: string }>('SELECT count(*)::text AS n FROM ops_payments');
  return Number(rows[0]?.n);
}

function sendWithdrawal(n: OpsNode, caller: { user: Parameters<OpsNode['h']['signed']>[0] }, device: string, confirmation: WithdrawConfirmation) {
  return n.h.signed(caller.user, 'POST', '/v1/ops/withdrawals', { device, confirmation: toBase64url(encodeCbor({ ...confirmation })) }, n.key());
}

for (const backend of testBackends()) {
  describe(`OPS properties (paper §2.1) on ${backend.kind}`, { skip: backend.skip }, () => {
    test('offline verifiability (§2.1; PayVerify, §3.5 Figures 7-8): the payee verifies with certificates alone and collects before the node hears of the payment', async () => {
      // The receiver checks the sender's certificate chain and the TA signature over
      // [amount, sender, receiver, index] with nothing but the root and intermediary certificates.
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        const payment = await alice.se.call('pay', { amount: 500n, receiver: bob.certificate });
        const verified = n.verifyOffline(payment, { receiver: bob.certificate });
        assert.equal(toHex(verified.sender.subjectKeyId), alice.device);
        assert.equal(toHex(verified.receiver.subjectKeyId), bob.device);
        assert.equal(verified.sender.extensions.currency, 'EUR');
        assert.equal(verified.payment.amount, 500n);
        // Collect runs the same PayVerify inside Bob's TA: the funds are there, and the node knows nothing yet.
        assert.deepEqual(await bob.se.call('collect', { payment }), { balance: 500n });
        assert.equal(await paymentsKnown(n), 0);
        // What is not a TA payment does not verify: a payment signed by Alice's user key under her user certificate.
        const userCertificate = alice.userCertificate;
        const unsigned = { ...payment, sender: userCertificate, index: 2n };
        invalid(() => n.verifyOffline({ ...unsigned, signature: signRecord(alice.user, PAYMENT_TAG, paymentSigned(unsigned)) }));
        // The node learns of it only when a device syncs, and agrees.
        assert.deepEqual((await n.sync(bob)).fraud, []);
        assert.equal(await paymentsKnown(n), 1);
        assert.deepEqual(await n.conservation([alice, bob]), { issued: 2000n, online: 0n, float: 2000n, held: 2000n, unsettled: 0n });
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('absolute finality (§2.1; Collect, §3.5-3.6): once collected the funds are the payee\'s; the payer cannot take them back and the payee spends and redeems them at once', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        const payment = await alice.se.call('pay', { amount: 800n, receiver: bob.certificate });
        await bob.se.call('collect', { payment });
        // Whatever the payer does next, online or offline, Bob's balance stands.
        assert.equal((await n.withdraw(alice, 1200n)).status, 200);
        assert.deepEqual((await n.sync(alice)).fraud, []);
        await refused(alice.se.call('pay', { amount: 1n, receiver: bob.certificate }), 'INSUFFICIENT_FUNDS');
        assert.equal(await balanceOf(bob.se), 800n);
        // Bob uses the funds without asking anyone: spends 3.00 offline, withdraws 5.00 online.
        const toCarol = await bob.se.call('pay', { amount: 300n, receiver: carol.certificate });
        assert.equal((await n.withdraw(bob, 500n)).status, 200);
        assert.equal((await n.claim(carol, toCarol)).status, 200);
        assert.deepEqual((await n.sync(bob)).fraud, []);
        assert.equal(await n.h.balance(bob), '5.00');
        assert.equal(await n.h.balance(carol), '3.00');
        assert.equal(await n.h.balance(alice), '12.00');
        assert.deepEqual(await n.conservation([alice, bob]), { issued: 2000n, online: 2000n, float: 0n, held: 0n, unsettled: 0n });
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('online redeemability (§2.1; Deposit and Withdraw, §3.4 Figures 5-6; Claim, §3.6 Figure 9): any y ≤ offBal moves online and back, atomically', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '50.00');
        await n.deposit(alice, '30.00');
        // Online + offline stays 50.00 through every move, and each move is exactly y.
        let offline = 3000n;
        let online = 2000n;
        for (const y of [1n, 999n, 1000n]) {
          assert.equal((await n.withdraw(alice, y)).status, 200);
          offline -= y;
          online += y;
          assert.equal(await balanceOf(alice.se), offline);
          assert.equal(await n.h.balance(alice), `${online / 100n}.${(online % 100n).toString().padStart(2, '0')}`);
        }
        // More than offBal: the TA refuses and nothing moves on either side.
        await refused(alice.se.call('withdraw', { amount: offline + 1n }), 'INSUFFICIENT_FUNDS');
        const device = async () => ((await (await n.h.signed(alice.user, 'GET', `/v1/ops/devices/${alice.device}`)).json()) as { i: string }).i;
        assert.equal(await device(), '4');
        // Vice versa: online to offline again.
        await n.deposit(alice, '10.00');
        offline += 1000n;
        online -= 1000n;
        assert.deepEqual([await balanceOf(alice.se), await n.h.balance(alice)], [offline, '30.00']);
        // What was received offline is redeemable too: collected (then withdrawn) or claimed.
        const toBob = await alice.se.call('pay', { amount: 600n, receiver: bob.certificate });
        const toCarol = await alice.se.call('pay', { amount: 400n, receiver: carol.certificate });
        await bob.se.call('collect', { payment: toBob });
        assert.equal((await n.withdraw(bob, 600n)).status, 200);
        assert.equal((await n.claim(carol, toCarol)).status, 200);
        assert.deepEqual([await n.h.balance(bob), await n.h.balance(carol), await balanceOf(bob.se)], ['6.00', '4.00', 0n]);
        assert.deepEqual(await n.conservation([alice, bob]), { issued: 5000n, online: 4000n, float: 1000n, held: 1000n, unsettled: 0n });
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('offline transitivity (§2.1; Collect then Pay, §3.5-3.6): received funds are spent on, through a chain of TAs, without going online', async () => {
      const n = await opsNode(backend);
      const [a, b, c, d] = [await n.deviceClient(), await n.deviceClient(), await n.deviceClient(), await n.deviceClient()];
      try {
        const erin = await n.plainClient();
        await n.mint(a, '30.00');
        await n.deposit(a, '30.00');
        // A → B → C → D → Erin: each spends what it just collected, in the same offline session.
        let payment = await a.se.call('pay', { amount: 1000n, receiver: b.certificate });
        await b.se.call('collect', { payment });
        payment = await b.se.call('pay', { amount: 700n, receiver: c.certificate });
        await c.se.call('collect', { payment });
        payment = await c.se.call('pay', { amount: 400n, receiver: d.certificate });
        await d.se.call('collect', { payment });
        const toErin = await d.se.call('pay', { amount: 100n, receiver: erin.certificate });
        // None of B, C, D ever deposited, and the node has heard of none of these payments.
        for (const who of [b, c, d]) assert.equal((await who.se.call('status', {})).i, 0n);
        assert.equal(await paymentsKnown(n), 0);
        assert.deepEqual(await Promise.all([a, b, c, d].map((w) => balanceOf(w.se))), [2000n, 300n, 300n, 300n]);
        await n.conservation([a, b, c, d], [toErin]);
        // Settled later: Erin claims, every device syncs, nothing is out of place.
        assert.equal((await n.claim(erin, toErin)).status, 200);
        for (const who of [a, b, c, d]) assert.deepEqual((await n.sync(who)).fraud, []);
        assert.equal(await paymentsKnown(n), 4);
        assert.deepEqual(await n.conservation([a, b, c, d]), { issued: 3000n, online: 100n, float: 2900n, held: 2900n, unsettled: 0n });
      } finally {
        await n.close([a, b, c, d]);
      }
    });

    test('no double spending (§2.1 Security; T.bal and T.inPaymentLog, §3.3 Figure 4; the node\'s log, §3.6 Figure 9): money is spent once, and a payment counts once everywhere', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '10.00');
        await n.deposit(alice, '10.00');
        // The TA pays only from its balance: 10.00 is spent once, never 10.01.
        const toBob = await alice.se.call('pay', { amount: 600n, receiver: bob.certificate });
        const toCarol = await alice.se.call('pay', { amount: 400n, receiver: carol.certificate });
        await refused(alice.se.call('pay', { amount: 1n, receiver: bob.certificate }), 'INSUFFICIENT_FUNDS');
        assert.deepEqual([toBob.index, toCarol.index], [1n, 2n]);
        // Each payment counts once: at the TA, and at the node.
        await bob.se.call('collect', { payment: toBob });
        await refused(bob.se.call('collect', { payment: toBob }), 'PAYMENT_REPLAYED');
        assert.equal((await n.claim(carol, toCarol)).status, 200);
        await expectError(await n.claim(carol, toCarol), 409, 'PAYMENT_REPLAYED');
        // Bob's sync (the collect reaches the node) does not let the node count it a second time elsewhere.
        assert.deepEqual((await n.sync(bob)).fraud, []);
        assert.deepEqual((await n.sync(alice)).fraud, []);
        await refused(bob.se.call('collect', { payment: toBob }), 'PAYMENT_REPLAYED');
        assert.deepEqual([await balanceOf(alice.se), await balanceOf(bob.se), await n.h.balance(carol)], [0n, 600n, '4.00']);
        assert.deepEqual(await n.conservation([alice, bob]), { issued: 1000n, online: 400n, float: 600n, held: 600n, unsettled: 0n });
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('wallet security (§2.1 Security; confirmations bound to T.vk and the receiver signed into P, §3.4-3.6): nobody but the owner moves a wallet\'s money', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      const mallory = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '20.00');
        await n.mint(mallory, '5.00');
        const deposit = await n.deposit(alice, '20.00');
        // Mallory cannot use Alice's device at the node, nor apply Alice's deposit on her own TA.
        await expectError(await n.h.signed(mallory.user, 'POST', '/v1/ops/deposits', { device: alice.device, amount: '1.00' }, n.key()), 404, 'DEVICE_UNKNOWN');
        await refused(mallory.se.call('deposit', { confirmation: { ...deposit, i: 1n } }), 'SIGNATURE_INVALID');
        // Alice's withdraw confirmation in Mallory's hands: not for Mallory's device, and not through Alice's.
        const confirmation = await alice.se.call('withdraw', { amount: 700n });
        await expectError(await sendWithdrawal(n, mallory, mallory.device, confirmation), 401, 'SIGNATURE_INVALID');
        await expectError(await sendWithdrawal(n, mallory, alice.device, confirmation), 404, 'DEVICE_UNKNOWN');
        assert.equal((await sendWithdrawal(n, alice, alice.device, confirmation)).status, 200);
        assert.deepEqual([await n.h.balance(alice), await n.h.balance(mallory)], ['7.00', '5.00']);
        // Alice's payments to Bob and to Carol: only they can take them.
        const toBob = await alice.se.call('pay', { amount: 500n, receiver: bob.certificate });
        const toCarol = await alice.se.call('pay', { amount: 300n, receiver: carol.certificate });
        await n.conservation([alice, bob, mallory], [toBob, toCarol]);
        assert.equal(await balanceOf(alice.se), 500n);
        assert.equal((await n.withdraw(alice, 500n)).status, 200);
        assert.deepEqual([await balanceOf(alice.se), await balanceOf(bob.se), await balanceOf(mallory.se), await n.h.balance(mallory)], [0n, 0n, 0n, '5.00']);
        await bob.se.call('collect', { payment: toBob });
        assert.equal((await n.claim(carol, toCarol)).status, 200);
        assert.deepEqual([await balanceOf(bob.se), await n.h.balance(carol), await n.h.balance(alice)], [500n, '3.00', '12.00']);
        assert.deepEqual(await n.conservation([alice, bob, mallory]), { issued: 2500n, online: 2000n, float: 500n, held: 500n, unsettled: 0n });
      } finally {
        await n.close([alice, bob, mallory]);
      }
    });

    test('supply conservation (§2.1 Security; σ_S over [T.vk, x, i] and σ over [x, i], §3.4): money enters and leaves the offline tier only by deposit, withdraw and claim', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '40.00');
        const expectTotals = async (online: bigint, held: bigint, unsettled: Payment[] = []) => {
          const totals = await n.conservation([alice, bob], unsettled);
          assert.deepEqual([totals.issued, totals.online, totals.held], [4000n, online, held]);
        };
        const first = await n.deposit(alice, '25.00');
        await expectTotals(1500n, 2500n);
        // Attempts to create offline money: a confirmation signed by another key, one altered, one replayed.
        const forged = { ...first, i: 2n, signature: signRecord(n.oem, DEPOSIT_TAG, depositSigned({ ...first, i: 2n })) };
        await refused(alice.se.call('deposit', { confirmation: forged }), 'SIGNATURE_INVALID');
        await refused(alice.se.call('deposit', { confirmation: { ...first, amount: 2_600n } }), 'COUNTER_MISMATCH');
        await refused(alice.se.call('deposit', { confirmation: { ...first, i: 2n, amount: 2_600n } }), 'SIGNATURE_INVALID');
        await refused(alice.se.call('deposit', { confirmation: first }), 'COUNTER_MISMATCH');
        await expectTotals(1500n, 2500n);
        // Paying moves value between holders and leaves the total alone.
        const toBob = await alice.se.call('pay', { amount: 1000n, receiver: bob.certificate });
        const toCarol = await alice.se.call('pay', { amount: 500n, receiver: carol.certificate });
        await expectTotals(1500n, 1000n, [toBob, toCarol]);
        await bob.se.call('collect', { payment: toBob });
        // Attempts to create online money: a claim of a raised amount, a withdraw confirmation altered or replayed.
        await expectError(await n.claim(carol, { ...toCarol, amount: 5_000n }), 422, 'PAYMENT_INVALID');
        assert.equal((await n.claim(carol, toCarol)).status, 200);
        const out = await bob.se.call('withdraw', { amount: 300n });
        await expectError(await sendWithdrawal(n, bob, bob.device, { ...out, amount: 3_000n }), 401, 'SIGNATURE_INVALID');
        assert.equal((await sendWithdrawal(n, bob, bob.device, out)).status, 200);
        await expectError(await sendWithdrawal(n, bob, bob.device, out), 409, 'COUNTER_MISMATCH');
        await expectTotals(1500n + 500n + 300n, 1000n + 700n);
        assert.deepEqual([await n.h.balance(alice), await n.h.balance(bob), await n.h.balance(carol)], ['15.00', '3.00', '5.00']);
        for (const who of [alice, bob]) assert.deepEqual((await n.sync(who)).fraud, []);
        assert.deepEqual(await n.conservation([alice, bob]), { issued: 4000n, online: 2300n, float: 1700n, held: 1700n, unsettled: 0n });
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('attack on no double spending (§2.1; the wallet\'s own log, §3.5): a payment replayed to a payee wallet without a TA is refused by its accept log', async () => {
      // A wallet without a TA keeps its own log of (sender, index) before the payment is claimed;
      // a replay there is refused offline, and the node's log refuses it again at claim.
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '10.00');
        await n.deposit(alice, '10.00');
        const log = new Set<string>();
        const kept: Payment[] = [];
        const accept = (payment: Payment): 'accepted' | 'replayed' => {
          const verified = n.verifyOffline(payment, { receiver: carol.certificate });
          const entry = `${toHex(verified.sender.subjectKeyId)}:${payment.index}`;
          if (log.has(entry)) return 'replayed';
          log.add(entry);
          kept.push(payment);
          return 'accepted';
        };
        const first = await alice.se.call('pay', { amount: 200n, receiver: carol.certificate });
        const second = await alice.se.call('pay', { amount: 200n, receiver: carol.certificate });
        assert.equal(accept(first), 'accepted');
        assert.equal(accept(first), 'replayed');
        // A copy re-encoded from its fields is the same payment.
        assert.equal(accept({ ...first, signature: first.signature.slice() }), 'replayed');
        assert.equal(accept(second), 'accepted');
        assert.equal(accept(second), 'replayed');
        assert.deepEqual(kept, [first, second]);
        await n.conservation([alice], kept);
        for (const payment of kept) assert.equal((await n.claim(carol, payment)).status, 200);
        await expectError(await n.claim(carol, first), 409, 'PAYMENT_REPLAYED');
        assert.equal(await n.h.balance(carol), '4.00');
        assert.deepEqual(await n.conservation([alice]), { issued: 1000n, online: 400n, float: 600n, held: 600n, unsettled: 0n });
      } finally {
        await n.close([alice]);
      }
    });

    test('attack on offline verifiability (§3.5: "not possible to modify the particulars ... without an invalid signature"): a forged or altered payment is refused by PayVerify, Collect and Claim', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '10.00');
        await n.deposit(alice, '10.00');
        const toBob = await alice.se.call('pay', { amount: 300n, receiver: bob.certificate });
        const toCarol = await alice.se.call('pay', { amount: 300n, receiver: carol.certificate });
        // Each altered so that it names the party who tries it: only the signature can catch it.
        const forBob: Record<string, Payment> = {
          amount: { ...toBob, amount: 3_000n },
          index: { ...toBob, index: 9n },
          receiver: { ...toCarol, receiver: bob.certificate },
          'forged signature': { ...toBob, signature: signRecord(bob.user, PAYMENT_TAG, paymentSigned(toBob)) },
        };
        const forCarol: Record<string, Payment> = {
          amount: { ...toCarol, amount: 3_000n },
          index: { ...toCarol, index: 9n },
          receiver: { ...toBob, receiver: carol.certificate },
          'forged signature': { ...toCarol, signature: signRecord(carol.user, PAYMENT_TAG, paymentSigned(toCarol)) },
        };
        for (const [what, payment] of Object.entries(forBob)) {
          assert.throws(() => n.verifyOffline(payment, { receiver: bob.certificate }), (e: unknown) => isTallyError(e, 'PAYMENT_INVALID') && /signature/.test(e.details.reason), what);
          await refused(bob.se.call('collect', { payment }), 'PAYMENT_INVALID');
        }
        for (const [what, payment] of Object.entries(forCarol)) {
          invalid(() => n.verifyOffline(payment, { receiver: carol.certificate }));
          const res = await n.claim(carol, payment);
          assert.equal(res.status, 422, what);
          await expectError(res, 422, 'PAYMENT_INVALID');
        }
        assert.deepEqual([await balanceOf(bob.se), await n.h.balance(carol)], [0n, '0.00']);
        await n.conservation([alice, bob], [toBob, toCarol]);
        // The genuine ones still settle.
        await bob.se.call('collect', { payment: toBob });
        assert.equal((await n.claim(carol, toCarol)).status, 200);
        assert.deepEqual(await n.conservation([alice, bob]), { issued: 1000n, online: 300n, float: 700n, held: 700n, unsettled: 0n });
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('attack on wallet security (§2.1; P.receiver signed, §3.5-3.6): a payment made out to someone else is refused at Collect and at Claim', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      const dave = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        const erin = await n.plainClient();
        await n.mint(alice, '10.00');
        await n.deposit(alice, '10.00');
        const toBob = await alice.se.call('pay', { amount: 250n, receiver: bob.certificate });
        const toCarol = await alice.se.call('pay', { amount: 150n, receiver: carol.certificate });
        // Another TA, and the right person's other side (a TA payment claimed online, a client payment collected), all refused.
        await refused(dave.se.call('collect', { payment: toBob }), 'PAYMENT_INVALID');
        await expectError(await n.claim(erin, toBob), 422, 'PAYMENT_INVALID');
        await expectError(await n.claim(bob, toBob), 422, 'PAYMENT_INVALID');
        await refused(bob.se.call('collect', { payment: toCarol }), 'PAYMENT_INVALID');
        await refused(dave.se.call('collect', { payment: toCarol }), 'PAYMENT_INVALID');
        await expectError(await n.claim(erin, toCarol), 422, 'PAYMENT_INVALID');
        invalid(() => n.verifyOffline(toCarol, { receiver: erin.certificate }));
        assert.deepEqual([await balanceOf(bob.se), await balanceOf(dave.se), await n.h.balance(erin), await n.h.balance(bob)], [0n, 0n, '0.00', '0.00']);
        await n.conservation([alice, bob, dave], [toBob, toCarol]);
        await bob.se.call('collect', { payment: toBob });
        assert.equal((await n.claim(carol, toCarol)).status, 200);
        assert.deepEqual(await n.conservation([alice, bob, dave]), { issued: 1000n, online: 150n, float: 850n, held: 850n, unsettled: 0n });
      } finally {
        await n.close([alice, bob, dave]);
      }
    });

    test('attack on no double spending (§2.2: a corrupted client copies its TA): a clone pays two payee TAs with one index; sync names and revokes the device; payees refuse it afterwards', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      const dave = await n.deviceClient();
      let clone: OpsSe | undefined;
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        clone = await n.openSe(await n.copySe(alice), false);
        const original = await alice.se.call('pay', { amount: 1500n, receiver: bob.certificate });
        const copy = await clone.call('pay', { amount: 1500n, receiver: dave.certificate });
        assert.equal(original.index, copy.index);
        // Offline, each payee sees a valid payment: both collect.
        await bob.se.call('collect', { payment: original });
        await dave.se.call('collect', { payment: copy });
        // Bob's sync records (Alice, 1); Dave's brings a second payment under it: the clone is named.
        assert.deepEqual((await n.sync(bob)).fraud, []);
        const found = await n.sync(dave);
        assert.deepEqual(found.fraud.map((f) => [f.device, f.kind]), [[alice.device, 'clone']]);
        const cases = (await (await n.h.send('GET', '/v1/ops/fraud', { headers: n.h.operator })).json()) as { cases: { device: string; kind: string }[] };
        assert.deepEqual(cases.cases.map((c) => [c.device, c.kind]), [[alice.device, 'clone']]);
        const state = (await (await n.h.signed(alice.user, 'GET', `/v1/ops/devices/${alice.device}`)).json()) as { revoked: boolean };
        assert.equal(state.revoked, true);
        const list = (await (await n.h.send('GET', '/v1/revocations')).json()) as { revoked: string[]; list: string };
        assert.ok(list.revoked.includes(toHex(decodeCertificate(alice.certificate).body.serial)));

        // Bob syncs again (he takes the new revocation list): the device's next payment is refused offline.
        await n.sync(bob);
        const next = await clone.call('pay', { amount: 100n, receiver: bob.certificate });
        await refused(bob.se.call('collect', { payment: next }), 'CERT_REVOKED');
        const fromOriginal = await alice.se.call('pay', { amount: 100n, receiver: bob.certificate });
        await refused(bob.se.call('collect', { payment: fromOriginal }), 'CERT_REVOKED');
        // A wallet without a TA that fetched the list refuses it too, and so does the node.
        const store = new RevocationStore({ provider: nodeProvider });
        assert.equal(store.accept(decodeRevocationList(fromBase64url(list.list)), n.h.node.services.identity.intermediary.certificate.body.subject), 'accepted');
        const toCarol = await clone.call('pay', { amount: 100n, receiver: carol.certificate });
        invalid(() => n.verifyOffline(toCarol, { receiver: carol.certificate, revocations: store }), 'CERT_REVOKED');
        await expectError(await n.claim(carol, toCarol), 403, 'CERT_REVOKED');
        await expectError(await n.h.signed(alice.user, 'POST', '/v1/ops/deposits', { device: alice.device, amount: '1.00' }, n.key()), 403, 'CERT_REVOKED');

        // The audit balances; the float is short by exactly the 15.00 the clone created, visible to the
        // operator (Alice's refused 1.00 to Bob is still hers to account for, as unsettled).
        const totals = await n.conservation([alice, bob, dave], [fromOriginal], { floatShort: true });
        assert.deepEqual([totals.issued, totals.online, totals.float], [2000n, 0n, 2000n]);
        assert.deepEqual([await balanceOf(alice.se), await balanceOf(bob.se), await balanceOf(dave.se)], [400n, 1500n, 1500n]);
        assert.equal(totals.held + totals.unsettled - totals.float, 1500n);
      } finally {
        await clone?.close();
        await n.close([alice, bob, dave]);
      }
    });
  });
}
