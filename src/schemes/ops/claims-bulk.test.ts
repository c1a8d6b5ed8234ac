/**
 * `POST /v1/ops/claims/bulk` on both backends: each payment is judged as a single claim is (same
 * codes), whether its chains are checked in full or answered from the node's cache and its
 * signature checked in the worker threads; a payment is credited at most once, under duplicates
 * in one request, re-sent requests, single claims racing it and a thousand concurrent copies; a
 * clone is named and revoked; senders revoked, retired or past their limit are judged one by one.
 * Every test ends with a balanced audit.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { toBase64url } from '../../core/bytes.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { CLAIMS_BULK_BODY_BYTES_MAX, CLAIMS_BULK_PAYMENTS_MAX } from './node.ts';
import { encodePayment, paymentSigned, PAYMENT_TAG, type Payment } from './messages.ts';
import { storedPayment } from './node-evidence.ts';
import { opsNode as opsNodeOf, type OpsNode, type OpsSe } from './test-fixtures.ts';
import { testNatsUrl } from '../../issuer/queue/test-nats.ts';

after(() => closeTestTemplates());

interface BulkAnswer {
  payments: number;
  credited: number;
  amount: string;
  transfer: { id: string; amount: string } | null;
  refused: Array<{ item: number; code: string }>;
  reasons: Record<string, string>;
  presented: Array<{ item: number; claimId: string }>;
}

type Claimer = Parameters<OpsNode['claim']>[0];

/** Sends payments (or raw texts) in one bulk claim as `who`, under `key` or a fresh idempotency key. */
async function sendBulk(n: OpsNode, who: Claimer, payments: readonly (Payment | string)[], key?: string): Promise<Response> {
  const texts = payments.map((p) => (typeof p === 'string' ? p : toBase64url(encodePayment(p))));
  return n.h.signed(who.user, 'POST', '/v1/ops/claims/bulk', { payments: texts }, key === undefined ? n.key() : { 'idempotency-key': key });
}

async function answerOf(res: Response): Promise<BulkAnswer> {
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text) as BulkAnswer;
}

/** Each payment's outcome, in request order: `credited` or `refused:CODE`. */
function outcomes(answer: BulkAnswer): string[] {
  const refused = new Map(answer.refused.map((r) => [r.item, r.code]));
  return Array.from({ length: answer.payments }, (_unused, k) => (refused.has(k) ? `refused:${refused.get(k)}` : 'credited'));
}

async function payMany(se: OpsSe, receiver: Uint8Array, amounts: readonly bigint[]): Promise<Payment[]> {
  const made: Payment[] = [];
  for (const amount of amounts) made.push(await se.call('pay', { amount, receiver }));
  return made;
}

async function assertBalanced(n: OpsNode): Promise<void> {
  assert.equal((await n.h.audit()).balanced, true, 'the ledger audit must be balanced');
}

// Inline on each backend; and through NATS JetStream in three shards, on PostgreSQL when the suite
// has it: the same requests, the same answers (a merged answer also lists `transfers` and `parts`).
const ready = testBackends().filter((b) => !b.skip);
const variants = [
  ...testBackends().map((backend) => ({ backend, name: backend.kind, settle: undefined })),
  ...[ready.find((b) => b.kind === 'postgres') ?? ready[0]]
    .filter((b) => b !== undefined)
    .map((backend) => ({ backend, name: `${backend.kind}, settled through NATS JetStream in 3 shards`, settle: { natsUrl: testNatsUrl(), shards: 3 } })),
];

for (const { backend, name, settle } of variants) {
  const opsNode = (b: typeof backend) => opsNodeOf(b, { settle });
  /** Runs `body` on a fresh node with alice, a device holding 10.00 offline, and carol, an account holder without a TA. */
  const withAliceAndCarol = async (body: (n: OpsNode, alice: Awaited<ReturnType<OpsNode['deviceClient']>>, carol: Awaited<ReturnType<OpsNode['plainClient']>>) => Promise<void>) => {
    const n = await opsNode(backend);
    const alice = await n.deviceClient();
    try {
      const carol = await n.plainClient();
      await n.mint(alice, '10.00');
      await n.deposit(alice, '10.00');
      await body(n, alice, carol);
    } finally {
      await n.close([alice]);
    }
  };
  describe(`OPS bulk claims on ${name}`, { skip: backend.skip }, () => {
    test('good payments are credited once with one transfer; the second request is answered from the known chains and the worker threads', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '50.00');
        await n.deposit(alice, '50.00');
        const first = await payMany(alice.se, carol.certificate, [100n, 200n, 300n]);
        const one = await answerOf(await sendBulk(n, carol, first));
        assert.deepEqual(outcomes(one), ['credited', 'credited', 'credited']);
        assert.equal(one.amount, '6.00');
        assert.equal(one.transfer?.amount, '6.00');
        // Through the intake: one device's payments are one shard's, so one part settled them.
        assert.equal((one as { parts?: number }).parts, settle === undefined ? undefined : 1);
        const info = (await (await n.h.send('GET', '/v1/info')).json()) as { settle?: { stream: string; shards: number } };
        assert.equal(info.settle?.shards, settle?.shards, 'the operator sees the intake in /v1/info');
        // Chains known now: these go through the cache and the signature pool, with forgeries among them.
        const second = await payMany(alice.se, carol.certificate, Array.from({ length: 40 }, () => 10n));
        const altered: Payment = { ...(second[3] as Payment), amount: 9_000n };
        const wrongKey: Payment = { ...(second[4] as Payment), signature: signRecord(carol.user, PAYMENT_TAG, paymentSigned(second[4] as Payment)) };
        const flipped: Payment = { ...(second[5] as Payment), signature: (second[5] as Payment).signature.map((b, k) => (k === 10 ? b ^ 1 : b)) };
        const sent = [altered, wrongKey, flipped, ...second];
        const two = await answerOf(await sendBulk(n, carol, sent));
        assert.deepEqual(outcomes(two), ['refused:PAYMENT_INVALID', 'refused:PAYMENT_INVALID', 'refused:PAYMENT_INVALID', ...second.map(() => 'credited')]);
        assert.equal(two.amount, '4.00');
        assert.match(two.reasons['PAYMENT_INVALID'] ?? '', /signature does not verify/);
        assert.equal(await n.h.balance(carol), '10.00');
        // Each was credited once: claimed again one by one, every payment is a replay.
        for (const payment of [...first, second[0] as Payment]) await expectError(await n.claim(carol, payment), 409, 'PAYMENT_REPLAYED');
        // Kept by signature alone (the payments carry the registered certificates), each is rebuilt whole.
        const { db } = n.h.node.services;
        // (The four claimed again one by one above also keep their bytes: the single route records what it is sent.)
        const kept = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ops_payments WHERE payment IS NULL AND signature IS NOT NULL AND settled = 'claimed'`);
        assert.equal(Number(kept.rows[0]?.n), first.length + second.length - 4);
        for (const payment of [...first, ...second]) assert.deepEqual(await storedPayment(db, alice.device, payment.index), payment);
        // A signature altered in the database no longer rebuilds the recorded payment: refused, not answered.
        const tampered = second[9] as Payment;
        await db.query('UPDATE ops_payments SET signature = $3 WHERE sender_key_id = $1 AND index = $2', [alice.device, tampered.index, new Uint8Array(64)]);
        await assert.rejects(storedPayment(db, alice.device, tampered.index), /digest is not the recorded one/);
        await db.query('UPDATE ops_payments SET signature = $3 WHERE sender_key_id = $1 AND index = $2', [alice.device, tampered.index, tampered.signature]);
        await assertBalanced(n);
      } finally {
        await n.close([alice]);
      }
    });

    test('payments the payer reported at its sync are credited; replayed, misdirected and malformed ones are refused with the single route\'s codes', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        const dave = await n.plainClient();
        await n.mint(alice, '50.00');
        await n.deposit(alice, '50.00');
        const [good1, claimedBefore, good2] = (await payMany(alice.se, carol.certificate, [100n, 200n, 300n])) as [Payment, Payment, Payment];
        const toBob = await alice.se.call('pay', { amount: 500n, receiver: bob.certificate });
        const toDave = await alice.se.call('pay', { amount: 600n, receiver: dave.certificate });
        // The payer reports them all before they are claimed: the node knows them, unsettled.
        await n.sync(alice);
        assert.equal((await n.claim(carol, claimedBefore)).status, 200);
        const notCbor = toBase64url(new Uint8Array([0xff, 0x00, 0x01]));
        const batch: Array<[Payment | string, string]> = [
          [good1, 'credited'],
          [claimedBefore, 'refused:PAYMENT_REPLAYED'],
          [toBob, 'refused:PAYMENT_INVALID'],
          [good2, 'credited'],
          [toDave, 'refused:PAYMENT_INVALID'],
          [notCbor, 'refused:BODY_INVALID'],
          [good1, 'refused:PAYMENT_REPLAYED'],
        ];
        const answer = await answerOf(await sendBulk(n, carol, batch.map(([p]) => p)));
        assert.deepEqual(outcomes(answer), batch.map(([, expected]) => expected));
        assert.equal(await n.h.balance(carol), '6.00');
        // Refused for Carol, Dave's payment is still his to claim.
        assert.deepEqual(outcomes(await answerOf(await sendBulk(n, dave, [toDave]))), ['credited']);
        assert.equal(await n.h.balance(dave), '6.00');
        await assertBalanced(n);
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('a clone\'s payment under a known index is DOUBLE_SPEND, the device revoked; its later payments are judged one by one and refused', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      let clone: OpsSe | undefined;
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        clone = await n.openSe(await n.copySe(alice), false);
        const original = await alice.se.call('pay', { amount: 700n, receiver: carol.certificate });
        const copy = await clone.call('pay', { amount: 900n, receiver: carol.certificate });
        assert.equal(original.index, copy.index);
        const answer = await answerOf(await sendBulk(n, carol, [original, copy]));
        assert.deepEqual(outcomes(answer), ['credited', 'refused:DOUBLE_SPEND']);
        const cases = (await (await n.h.send('GET', '/v1/ops/fraud', { headers: n.h.operator })).json()) as { cases: { device: string; kind: string }[] };
        assert.deepEqual(cases.cases.map((c) => [c.device, c.kind]), [[alice.device, 'clone']]);
        // Revoked now: the device's next payment takes the one-by-one path and is refused there.
        const later = await alice.se.call('pay', { amount: 100n, receiver: carol.certificate });
        assert.deepEqual(outcomes(await answerOf(await sendBulk(n, carol, [later]))), ['refused:CERT_REVOKED']);
        assert.equal(await n.h.balance(carol), '7.00');
        await assertBalanced(n);
      } finally {
        await clone?.close();
        await n.close([alice]);
      }
    });

    test('a payment past its sender\'s offline limit (an extracted key) is refused and the device revoked, as a single claim is', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        const limit = BigInt((await alice.se.call('status', {})).offlinePaymentsMax);
        const within = await payMany(alice.se, carol.certificate, [1n, 1n]);
        // A genuine TA stops at its limit; the key taken out of it does not.
        const stolen = await n.extractKey(alice.dir);
        const body = { amount: 300n, sender: (within[0] as Payment).sender, receiver: carol.certificate, index: limit + 5n };
        const beyond: Payment = { ...body, signature: signRecord(stolen, PAYMENT_TAG, paymentSigned(body)) };
        const answer = await answerOf(await sendBulk(n, carol, [...within, beyond]));
        // Judged one by one in request order, as single claims sent in that order would be: the two
        // within the limit are credited before the forged one shows the device broken.
        assert.deepEqual(outcomes(answer), ['credited', 'credited', 'refused:FRAUD_DETECTED']);
        const cases = (await (await n.h.send('GET', '/v1/ops/fraud', { headers: n.h.operator })).json()) as { cases: { device: string; kind: string }[] };
        assert.deepEqual(cases.cases.map((c) => [c.device, c.kind]), [[alice.device, 'offline-limit']]);
        assert.equal(await n.h.balance(carol), '0.02');
        // Revoked: its honest payments made after its last report are refused too.
        const after = await alice.se.call('pay', { amount: 1n, receiver: carol.certificate });
        assert.deepEqual(outcomes(await answerOf(await sendBulk(n, carol, [after]))), ['refused:CERT_REVOKED']);
        await assertBalanced(n);
      } finally {
        await n.close([alice]);
      }
    });

    test('a re-sent request answers the stored answer and credits nothing twice; a new key finds replays', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        for (const who of [alice, bob]) {
          await n.mint(who, '50.00');
          await n.deposit(who, '50.00');
        }
        const payments = await payMany(alice.se, carol.certificate, [250n, 250n, 500n]);
        const fromBob = await payMany(bob.se, carol.certificate, Array.from({ length: 12 }, () => 100n));
        const first = await answerOf(await sendBulk(n, carol, payments, 'bulk-resend-0001'));
        assert.deepEqual(outcomes(first), ['credited', 'credited', 'credited']);
        const transfersBefore = (await n.h.audit()).transferCount;
        assert.deepEqual(await answerOf(await sendBulk(n, carol, payments, 'bulk-resend-0001')), first);
        assert.equal((await n.h.audit()).transferCount, transfersBefore);
        const again = await answerOf(await sendBulk(n, carol, payments));
        assert.deepEqual(outcomes(again), ['refused:PAYMENT_REPLAYED', 'refused:PAYMENT_REPLAYED', 'refused:PAYMENT_REPLAYED']);
        assert.equal(again.transfer, null);
        await expectError(await sendBulk(n, carol, payments.slice(0, 2), 'bulk-resend-0001'), 409, 'IDEMPOTENCY_CONFLICT');
        // Another request under the key with payments of other devices too (through shards: more
        // parts than the first request had) is refused whole, and none of its payments is credited.
        await expectError(await sendBulk(n, carol, [...fromBob, ...payments], 'bulk-resend-0001'), 409, 'IDEMPOTENCY_CONFLICT');
        assert.equal(await n.h.balance(carol), '10.00');
        assert.deepEqual(outcomes(await answerOf(await sendBulk(n, carol, fromBob))), fromBob.map(() => 'credited'));
        await assertBalanced(n);
      } finally {
        await n.close([alice, bob]);
      }
    });

    // Only where the node settles through NATS: the restart turns its intake off and on.
    if (settle !== undefined) test('a request re-sent across a restart that turned the intake on or off gets its first answer, and credits nothing twice', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        for (const who of [alice, bob]) {
          await n.mint(who, '50.00');
          await n.deposit(who, '50.00');
        }
        const inline = n.h.withoutIntake();
        const texts = (payments: readonly Payment[]) => ({ payments: payments.map((p) => toBase64url(encodePayment(p))) });
        const sendTo = (to: typeof inline | undefined, payments: readonly Payment[], key: string) => n.h.signed(carol.user, 'POST', '/v1/ops/claims/bulk', texts(payments), { 'idempotency-key': key }, undefined, to);
        // Settled by the node without its intake, sent again once it settles through NATS.
        const first = [...(await payMany(alice.se, carol.certificate, [100n, 200n])), ...(await payMany(bob.se, carol.certificate, [300n]))];
        const inlineAnswer = await answerOf(await sendTo(inline, first, 'bulk-mode-0001'));
        assert.deepEqual(outcomes(inlineAnswer), ['credited', 'credited', 'credited']);
        const transfers = (await n.h.audit()).transferCount;
        const again = await sendTo(undefined, first, 'bulk-mode-0001');
        assert.equal(again.headers.get('idempotent-replayed'), 'true');
        assert.deepEqual(await answerOf(again), inlineAnswer);
        assert.equal((await n.h.audit()).transferCount, transfers, 'nothing moved again');
        await expectError(await sendTo(undefined, first.slice(0, 1), 'bulk-mode-0001'), 409, 'IDEMPOTENCY_CONFLICT');
        // Settled through NATS in parts, sent again to the node without its intake: the parts' answers, merged as before.
        const second = [...(await payMany(alice.se, carol.certificate, [400n])), ...(await payMany(bob.se, carol.certificate, [500n]))];
        const sharded = await answerOf(await sendTo(undefined, second, 'bulk-mode-0002'));
        assert.deepEqual(outcomes(sharded), ['credited', 'credited']);
        const after = (await n.h.audit()).transferCount;
        assert.deepEqual(await answerOf(await sendTo(inline, second, 'bulk-mode-0002')), sharded);
        assert.equal((await n.h.audit()).transferCount, after, 'nothing moved again');
        await expectError(await sendTo(inline, first, 'bulk-mode-0002'), 409, 'IDEMPOTENCY_CONFLICT');
        assert.equal(await n.h.balance(carol), '15.00');
        // The operator's view of held parts: none here; refused to others; absent without an intake.
        const held = await n.h.send('GET', '/v1/settle/held', { headers: n.h.operator });
        assert.equal(held.status, 200, await held.clone().text());
        assert.deepEqual(((await held.json()) as { held: unknown[] }).held, []);
        await expectError(await n.h.send('GET', '/v1/settle/held'), 401, 'UNAUTHENTICATED');
        await expectError(await n.h.signed(carol.user, 'GET', '/v1/settle/held'), 403, 'FORBIDDEN');
        await expectError(await n.h.send('GET', '/v1/settle/held', { headers: n.h.operator, to: inline }), 404, 'NOT_FOUND');
        await assertBalanced(n);
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('a thousand concurrent submissions of the same payment, with bulk claims and single claims among them, credit it once', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        for (const who of [alice, bob]) {
          await n.mint(who, '10.00');
          await n.deposit(who, '10.00');
        }
        const payment = await alice.se.call('pay', { amount: 125n, receiver: carol.certificate });
        const others = await payMany(bob.se, carol.certificate, [100n, 100n]);
        // Each submission under its own key; an answer of 500 or more (a connection not free within
        // the pool's timeout under this load) is retried under the same key, as a client would.
        const retried = async (send: (key: string) => Promise<Response>, key: string): Promise<Response> => {
          for (let attempt = 1; ; attempt++) {
            const res = await send(key);
            if (res.status < 500 || attempt === 5) return res;
            await res.arrayBuffer();
          }
        };
        const sends = Array.from({ length: 1000 }, (_unused, k) => {
          const key = `thousand-${k}-${Date.now()}`;
          if (k % 10 === 9) {
            const single = (idem: string) => Promise.resolve(n.h.signed(carol.user, 'POST', '/v1/ops/claims', { payment: toBase64url(encodePayment(payment)) }, { 'idempotency-key': idem }));
            return retried(single, key).then((res) => (res.status === 200 ? 1 : 0));
          }
          const batch = k % 2 === 0 ? [payment] : [...others, payment];
          return retried((idem) => sendBulk(n, carol, batch, idem), key)
            .then(answerOf)
            .then((a) => (outcomes(a)[batch.length - 1] === 'credited' ? 1 : 0));
        });
        const credited = (await Promise.all(sends)).reduce((a: number, b: number) => a + b, 0);
        assert.equal(credited, 1, 'the payment is credited by exactly one submission');
        assert.equal(await n.h.balance(carol), '3.25');
        await assertBalanced(n);
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('oversized, empty and unsigned requests are refused whole and change nothing', () =>
      withAliceAndCarol(async (n, alice, carol) => {
        const payment = await alice.se.call('pay', { amount: 300n, receiver: carol.certificate });
        const text = toBase64url(encodePayment(payment));
        await expectError(await sendBulk(n, carol, [payment, ...Array.from({ length: CLAIMS_BULK_PAYMENTS_MAX }, () => 'AAAA')]), 400, 'BODY_INVALID');
        await expectError(await sendBulk(n, carol, []), 400, 'BODY_INVALID');
        const copies = Math.ceil(CLAIMS_BULK_BODY_BYTES_MAX / text.length) + 1;
        await expectError(await sendBulk(n, carol, Array.from({ length: copies }, () => text)), 413, 'BODY_TOO_LARGE');
        await expectError(await n.h.asOperator('POST', '/v1/ops/claims/bulk', { payments: [text] }), 403, 'FORBIDDEN');
        await expectError(await n.h.send('POST', '/v1/ops/claims/bulk', { body: { payments: [text] }, headers: { 'idempotency-key': 'anonymous-bulk-1' } }), 401, 'UNAUTHENTICATED');
        assert.equal(await n.h.balance(carol), '0.00');
        assert.deepEqual(outcomes(await answerOf(await sendBulk(n, carol, [payment, payment]))), ['credited', 'refused:PAYMENT_REPLAYED']);
        assert.equal(await n.h.balance(carol), '3.00');
        await assertBalanced(n);
      }));

    test('a payment in another encoding than its one canonical form (CBOR or base64url) is refused, and the canonical form is credited once', () =>
      withAliceAndCarol(async (n, alice, carol) => {
        // An amount whose payment is not a whole number of 3-byte groups, so that its base64url has trailing bits.
        let payment = await alice.se.call('pay', { amount: 1n, receiver: carol.certificate });
        while (encodePayment(payment).length % 3 === 0) payment = await alice.se.call('pay', { amount: 1n, receiver: carol.certificate });
        const bytes = encodePayment(payment);
        assert.equal(bytes[0], 0xa5, 'a map of five fields');
        // The same map with its length in a longer form, and as an indefinite-length map.
        const longHead = Uint8Array.from([0xb8, 0x05, ...bytes.subarray(1)]);
        const indefinite = Uint8Array.from([0xbf, ...bytes.subarray(1), 0xff]);
        const text = toBase64url(bytes);
        const last = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.indexOf(text.at(-1) ?? '');
        const trailingBits = `${text.slice(0, -1)}${'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[last | 1]}`;
        assert.notEqual(trailingBits, text);
        const refusedForms = [toBase64url(longHead), toBase64url(indefinite), trailingBits];
        const first = await answerOf(await sendBulk(n, carol, [...refusedForms, text]));
        assert.deepEqual(outcomes(first), ['refused:BODY_INVALID', 'refused:BODY_INVALID', 'refused:BODY_INVALID', 'credited']);
        assert.equal(await n.h.balance(carol), '0.01');
        // The other forms again, now that the payment is settled: still refused, nothing credited twice.
        const again = await answerOf(await sendBulk(n, carol, [text, ...refusedForms]));
        assert.deepEqual(outcomes(again), ['refused:PAYMENT_REPLAYED', 'refused:BODY_INVALID', 'refused:BODY_INVALID', 'refused:BODY_INVALID']);
        assert.equal(await n.h.balance(carol), '0.01');
        await assertBalanced(n);
      }));

    test('the largest request the route takes is settled whole, and its answer fits the idempotency record even with every payment refused', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        const dave = await n.plainClient();
        await n.mint(alice, '100.00');
        await n.deposit(alice, '100.00');
        const limit = (await alice.se.call('status', {})).offlinePaymentsMax;
        const payments: Payment[] = [];
        while (payments.length < CLAIMS_BULK_PAYMENTS_MAX) {
          if (payments.length > 0 && payments.length % limit === 0) await n.sync(alice);
          payments.push(await alice.se.call('pay', { amount: 1n, receiver: carol.certificate }));
        }
        // Claimed by the wrong holder first: every payment refused, the longest answer of all.
        const wrong = await answerOf(await sendBulk(n, dave, payments));
        assert.equal(wrong.refused.length, CLAIMS_BULK_PAYMENTS_MAX);
        const answer = await answerOf(await sendBulk(n, carol, payments));
        assert.equal(answer.credited, CLAIMS_BULK_PAYMENTS_MAX);
        assert.equal(await n.h.balance(carol), (CLAIMS_BULK_PAYMENTS_MAX / 100).toFixed(2));
        await assertBalanced(n);
      } finally {
        await n.close([alice]);
      }
    });
  });
}
