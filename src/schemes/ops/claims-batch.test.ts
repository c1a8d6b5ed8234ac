/**
 * `POST /v1/ops/claims/batch` on both backends: each payment of a batch is judged as a single claim
 * is (same codes), one bad payment does not sink the others, a re-sent batch changes nothing, and
 * oversized batches are refused whole. Every test ends with a balanced audit.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { toBase64url } from '../../core/bytes.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { BODY_BYTES_MAX } from '../../issuer/http/context.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { CLAIMS_BATCH_PAYMENTS_MAX } from './node.ts';
import { encodePayment, paymentSigned, PAYMENT_TAG, type Payment } from './messages.ts';
import { opsNode, type OpsNode, type OpsSe } from './test-fixtures.ts';

after(() => closeTestTemplates());

type Result = { status: 'credited'; sender: string; index: string; amount: string } | { status: 'refused'; code: string; message: string };

type Claimer = Parameters<OpsNode['claim']>[0];

/** Sends a batch of payments (or raw texts) as `who`, under `key` or a fresh idempotency key. */
async function sendBatch(n: OpsNode, who: Claimer, payments: readonly (Payment | string)[], key?: string): Promise<Response> {
  const texts = payments.map((p) => (typeof p === 'string' ? p : toBase64url(encodePayment(p))));
  return n.h.signed(who.user, 'POST', '/v1/ops/claims/batch', { payments: texts }, key === undefined ? n.key() : { 'idempotency-key': key });
}

/** The per-payment results of a batch answer that must be a 200. */
async function resultsOf(res: Response): Promise<Result[]> {
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return (JSON.parse(text) as { results: Result[] }).results;
}

/** The status of each result, with the code of each refusal: `credited` or `refused:CODE`. */
function outcomes(results: readonly Result[]): string[] {
  return results.map((r) => (r.status === 'credited' ? 'credited' : `refused:${r.code}`));
}

async function payMany(se: OpsSe, receiver: Uint8Array, amounts: readonly bigint[]): Promise<Payment[]> {
  const made: Payment[] = [];
  for (const amount of amounts) made.push(await se.call('pay', { amount, receiver }));
  return made;
}

async function assertBalanced(n: OpsNode): Promise<void> {
  assert.equal((await n.h.audit()).balanced, true, 'the ledger audit must be balanced');
}

for (const backend of testBackends()) {
  describe(`OPS claims in batches on ${backend.kind}`, { skip: backend.skip }, () => {
    test('a batch of good payments credits each once, in order, from the float', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '50.00');
        await n.deposit(alice, '50.00');
        const amounts = Array.from({ length: 12 }, (_unused, k) => BigInt(100 + k));
        const payments = await payMany(alice.se, carol.certificate, amounts);
        const results = await resultsOf(await sendBatch(n, carol, payments));
        assert.deepEqual(outcomes(results), amounts.map(() => 'credited'));
        results.forEach((r, k) => {
          assert.ok(r.status === 'credited');
          assert.equal(r.sender, alice.device);
          assert.equal(r.index, String(k + 1));
          assert.equal(r.amount, `1.${String(k).padStart(2, '0')}`);
        });
        const total = amounts.reduce((a, b) => a + b, 0n);
        assert.equal(await n.h.balance(carol), '12.66');
        assert.equal(total, 1266n);
        // Each was credited once: claimed again one by one, every payment is a replay.
        for (const payment of payments) await expectError(await n.claim(carol, payment), 409, 'PAYMENT_REPLAYED');
        assert.equal(await n.h.balance(carol), '12.66');
        // The float still holds exactly what the TA holds.
        const audit = (await (await n.h.send('GET', '/v1/audit', { headers: n.h.operator })).json()) as { currencies: { offlineFloat: { account: string; amount: string }[] }[] };
        const float = audit.currencies[0]?.offlineFloat.find((f) => f.account === 'float:ops');
        const held = (await alice.se.call('status', {})).balance;
        assert.equal(float?.amount, `${held / 100n}.${String(held % 100n).padStart(2, '0')}`, 'the audit shows decimal major units');
        await assertBalanced(n);
      } finally {
        await n.close([alice]);
      }
    });

    test('replayed, misdirected, forged and malformed payments are refused with the single route\'s codes; the others are credited', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        const dave = await n.plainClient();
        await n.mint(alice, '50.00');
        await n.deposit(alice, '50.00');
        const [good1, claimedBefore, good2, good3] = (await payMany(alice.se, carol.certificate, [100n, 200n, 300n, 400n])) as [Payment, Payment, Payment, Payment];
        const toBob = await alice.se.call('pay', { amount: 500n, receiver: bob.certificate });
        const toDave = await alice.se.call('pay', { amount: 600n, receiver: dave.certificate });
        assert.equal((await n.claim(carol, claimedBefore)).status, 200);
        const altered: Payment = { ...good3, amount: 40_000n };
        // A payment signed by a key that is not a certified TA (Bob's user key over Alice's certificate).
        const impostor: Payment = { ...good1, index: 99n, signature: signRecord(bob.user, PAYMENT_TAG, paymentSigned({ ...good1, index: 99n })) };
        const notCbor = toBase64url(new Uint8Array([0xff, 0x00, 0x01]));

        const batch: Array<[Payment | string, string]> = [
          [good1, 'credited'],
          [claimedBefore, 'refused:PAYMENT_REPLAYED'],
          [toBob, 'refused:PAYMENT_INVALID'],
          [good2, 'credited'],
          [toDave, 'refused:PAYMENT_INVALID'],
          [altered, 'refused:PAYMENT_INVALID'],
          [impostor, 'refused:PAYMENT_INVALID'],
          [notCbor, 'refused:BODY_INVALID'],
          [good1, 'refused:PAYMENT_REPLAYED'],
          [good3, 'credited'],
        ];
        const results = await resultsOf(await sendBatch(n, carol, batch.map(([p]) => p)));
        assert.deepEqual(outcomes(results), batch.map(([, expected]) => expected));
        assert.equal(await n.h.balance(carol), '10.00');

        // The single route answers the same codes for the same payments.
        await expectError(await n.claim(carol, toBob), 422, 'PAYMENT_INVALID');
        await expectError(await n.claim(carol, toDave), 422, 'PAYMENT_INVALID');
        await expectError(await n.claim(carol, altered), 422, 'PAYMENT_INVALID');
        await expectError(await n.claim(carol, impostor), 422, 'PAYMENT_INVALID');
        await expectError(await n.h.signed(carol.user, 'POST', '/v1/ops/claims', { payment: notCbor }, n.key()), 400, 'BODY_INVALID');
        await expectError(await n.claim(carol, good3), 409, 'PAYMENT_REPLAYED');
        // Refused for Carol, Dave's payment is still his to claim.
        assert.deepEqual(outcomes(await resultsOf(await sendBatch(n, dave, [toDave]))), ['credited']);
        assert.equal(await n.h.balance(dave), '6.00');
        assert.equal(await n.h.balance(carol), '10.00');
        await assertBalanced(n);
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('a double spend inside a batch: the clone\'s payment is refused, the device revoked, its later payments refused', async () => {
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
        const later = await alice.se.call('pay', { amount: 100n, receiver: carol.certificate });
        assert.equal(original.index, copy.index);
        const results = await resultsOf(await sendBatch(n, carol, [original, copy, later]));
        assert.deepEqual(outcomes(results), ['credited', 'refused:DOUBLE_SPEND', 'refused:CERT_REVOKED']);
        assert.equal(await n.h.balance(carol), '7.00');
        const cases = (await (await n.h.send('GET', '/v1/ops/fraud', { headers: n.h.operator })).json()) as { cases: { device: string; kind: string }[] };
        assert.deepEqual(cases.cases.map((c) => [c.device, c.kind]), [[alice.device, 'clone']]);
        await assertBalanced(n);
      } finally {
        await clone?.close();
        await n.close([alice]);
      }
    });

    test('a re-sent batch answers the stored results and credits nothing twice', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '50.00');
        await n.deposit(alice, '50.00');
        const payments = await payMany(alice.se, carol.certificate, [250n, 250n, 500n]);
        const firstResults = await resultsOf(await sendBatch(n, carol, payments, 'batch-resend-0001'));
        assert.deepEqual(outcomes(firstResults), ['credited', 'credited', 'credited']);
        // A retry after a lost answer: same key, same body (a new signature nonce): the stored
        // answer, transfer ids included, and no new transfer.
        const transfersBefore = (await n.h.audit()).transferCount;
        assert.deepEqual(await resultsOf(await sendBatch(n, carol, payments, 'batch-resend-0001')), firstResults);
        assert.equal((await n.h.audit()).transferCount, transfersBefore);
        assert.equal(await n.h.balance(carol), '10.00');
        // Under a new key the same payments are replays, one by one.
        assert.deepEqual(outcomes(await resultsOf(await sendBatch(n, carol, payments))), ['refused:PAYMENT_REPLAYED', 'refused:PAYMENT_REPLAYED', 'refused:PAYMENT_REPLAYED']);
        // The key is bound to its request.
        await expectError(await sendBatch(n, carol, payments.slice(0, 2), 'batch-resend-0001'), 409, 'IDEMPOTENCY_CONFLICT');
        assert.equal(await n.h.balance(carol), '10.00');
        await assertBalanced(n);
      } finally {
        await n.close([alice]);
      }
    });

    test('batches and single claims of the same payments, sent at once, credit each payment once', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        for (const who of [alice, bob]) {
          await n.mint(who, '10.00');
          await n.deposit(who, '10.00');
        }
        const fromAlice = await payMany(alice.se, carol.certificate, [100n, 100n, 100n]);
        const fromBob = await payMany(bob.se, carol.certificate, [100n, 100n, 100n]);
        // Two batches naming the senders in opposite orders, and single claims of some of them.
        const answers = await Promise.all([
          sendBatch(n, carol, [...fromAlice, ...fromBob]).then(resultsOf),
          sendBatch(n, carol, [...fromAlice, ...fromBob].reverse()).then(resultsOf),
          ...[fromAlice[1], fromBob[2]].map(async (p) => {
            const res = await n.claim(carol, p as Payment);
            return [res.status === 200 ? { status: 'credited' } : { status: 'refused', code: ((await res.json()) as { error: { code: string } }).error.code }] as Result[];
          }),
        ]);
        const all = answers.flat();
        assert.equal(all.filter((r) => r.status === 'credited').length, 6);
        assert.ok(all.every((r) => r.status === 'credited' || r.code === 'PAYMENT_REPLAYED'), JSON.stringify(all));
        assert.equal(await n.h.balance(carol), '6.00');
        await assertBalanced(n);
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('oversized, empty and unsigned batches are refused whole and change nothing', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '10.00');
        await n.deposit(alice, '10.00');
        const payment = await alice.se.call('pay', { amount: 300n, receiver: carol.certificate });
        const text = toBase64url(encodePayment(payment));
        // More entries than the batch takes (short ones, so the body limit is not what refuses them).
        const tooMany = await sendBatch(n, carol, [payment, ...Array.from({ length: CLAIMS_BATCH_PAYMENTS_MAX }, () => 'AAAA')]);
        await expectError(tooMany, 400, 'BODY_INVALID');
        await expectError(await sendBatch(n, carol, []), 400, 'BODY_INVALID');
        // More bytes than a request body may hold.
        const copies = Math.ceil(BODY_BYTES_MAX / text.length) + 1;
        await expectError(await sendBatch(n, carol, Array.from({ length: copies }, () => text)), 413, 'BODY_TOO_LARGE');
        // Not signed by an account holder.
        await expectError(await n.h.asOperator('POST', '/v1/ops/claims/batch', { payments: [text] }), 403, 'FORBIDDEN');
        await expectError(await n.h.send('POST', '/v1/ops/claims/batch', { body: { payments: [text] }, headers: { 'idempotency-key': 'anonymous-batch-1' } }), 401, 'UNAUTHENTICATED');
        assert.equal(await n.h.balance(carol), '0.00');
        // Nothing was recorded: the payment is still there to claim, once.
        assert.deepEqual(outcomes(await resultsOf(await sendBatch(n, carol, [payment, payment]))), ['credited', 'refused:PAYMENT_REPLAYED']);
        assert.equal(await n.h.balance(carol), '3.00');
        // The route and its limits are in the API document.
        const spec = (await (await n.h.send('GET', '/openapi.json')).json()) as { paths: Record<string, { post?: { requestBody?: unknown } }> };
        assert.match(JSON.stringify(spec.paths['/v1/ops/claims/batch']?.post?.requestBody), new RegExp(`"maxItems":${CLAIMS_BATCH_PAYMENTS_MAX}`));
        await assertBalanced(n);
      } finally {
        await n.close([alice]);
      }
    });

    test('the largest batch the body limit admits is settled whole', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '100.00');
        await n.deposit(alice, '100.00');
        const limit = (await alice.se.call('status', {})).offlinePaymentsMax;
        const payments: Payment[] = [];
        let body = JSON.stringify({ payments: [] }).length;
        // Fill the batch up to its count limit or the body limit, whichever comes first.
        while (payments.length < CLAIMS_BATCH_PAYMENTS_MAX) {
          if (payments.length > 0 && payments.length % limit === 0) await n.sync(alice);
          const next = await alice.se.call('pay', { amount: 1n, receiver: carol.certificate });
          const added = toBase64url(encodePayment(next)).length + 3;
          if (body + added > BODY_BYTES_MAX) break;
          body += added;
          payments.push(next);
        }
        assert.ok(payments.length > 1);
        const results = await resultsOf(await sendBatch(n, carol, payments));
        assert.equal(results.length, payments.length);
        assert.ok(results.every((r) => r.status === 'credited'), JSON.stringify(results.find((r) => r.status !== 'credited')));
        assert.equal(await n.h.balance(carol), (payments.length / 100).toFixed(2));
        await assertBalanced(n);
      } finally {
        await n.close([alice]);
      }
    });
  });
}
