import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { isTallyError } from '../../core/errors.ts';
import { closeTestTemplates, testBackends } from '../db/test-databases.ts';
import type { IdempotentResult, StoredResponse } from './idempotency.ts';
import type { Ledger } from './ledger.ts';
import { assertBalanced, openAccounts, openTestLedger, snapshot, type TestLedger } from './test-fixtures.ts';
import { transfer } from './transfer.ts';

after(closeTestTemplates);

function hash(text: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(text).digest());
}

function response(result: IdempotentResult): StoredResponse {
  assert.ok(result.ok, result.ok ? '' : `${result.code}: ${result.message}`);
  return result.response;
}

for (const backend of testBackends()) {
  describe(`idempotency store on ${backend.kind}`, { skip: backend.skip }, () => {
    let t: TestLedger;
    let ledger: Ledger;
    before(async () => {
      t = await openTestLedger(backend);
      ledger = t.ledger;
      await openAccounts(ledger, 'EUR', { 'cb:issuance': 'issuance', 'user:alice': 'user', 'user:bob': 'user' });
      assert.ok((await ledger.mint({ idempotencyKey: 'setup', account: 'user:alice', amount: 1_000n })).ok);
    });
    after(() => t.dispose());

    /** A payment request whose effect is a ledger transfer in the same transaction as its record. */
    function pay(key: string, amount: bigint, calls: { n: number }): Promise<IdempotentResult> {
      return ledger.withIdempotency('payments', key, hash(`alice->bob:${amount}`), async (tx) => {
        calls.n++;
        const result = await transfer(tx, { idempotencyKey: `payments/${key}`, debit: 'user:alice', credit: 'user:bob', amount, kind: 'transfer' });
        return result.ok
          ? { status: 201, body: { transfer: result.transfer.id.toString(), amount: amount.toString(), nested: { b: 1, a: [true, null] } } }
          : { status: 409, body: { code: result.code } };
      });
    }

    test('the first request runs and stores its answer; a replay gets the stored answer without running', async () => {
      const calls = { n: 0 };
      const first = await pay('k1', 10n, calls);
      assert.ok(first.ok && !first.replayed);
      assert.equal(first.response.status, 201);
      const replay = await pay('k1', 10n, calls);
      assert.ok(replay.ok && replay.replayed);
      assert.deepEqual(replay.response, first.response);
      assert.equal(calls.n, 1);
      assert.equal(await ledger.balance('user:bob'), 10n);
      await assertBalanced(ledger);
    });

    test('another request under the same key is a conflict and changes nothing', async () => {
      const calls = { n: 0 };
      response(await pay('k2', 20n, calls));
      const before = await snapshot(ledger);
      const other = await pay('k2', 21n, calls);
      assert.equal(other.ok ? 'ok' : other.code, 'IDEMPOTENCY_CONFLICT');
      assert.equal(calls.n, 1);
      assert.deepEqual(await snapshot(ledger), before);
      const elsewhere = await ledger.withIdempotency('refunds', 'k2', hash('other'), async () => ({ status: 200, body: 'scopes are apart' }));
      assert.deepEqual(response(elsewhere), { status: 200, body: 'scopes are apart' });
      await assertBalanced(ledger);
    });

    test('a refusal is stored and replayed too; a new attempt takes a new key', async () => {
      const calls = { n: 0 };
      const refused = response(await pay('k3', 1_000_000n, calls));
      assert.deepEqual(refused, { status: 409, body: { code: 'INSUFFICIENT_FUNDS' } });
      assert.deepEqual(response(await pay('k3', 1_000_000n, calls)), refused);
      assert.equal(calls.n, 1);
      await assertBalanced(ledger);
    });

    test('when the work throws, its effects roll back with the record and the key stays free', async () => {
      const before = await snapshot(ledger);
      await assert.rejects(
        ledger.withIdempotency('payments', 'k4', hash('boom'), async (tx) => {
          assert.ok((await transfer(tx, { idempotencyKey: 'payments/k4', debit: 'user:alice', credit: 'user:bob', amount: 1n, kind: 'transfer' })).ok);
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.deepEqual(await snapshot(ledger), before);
      const calls = { n: 0 };
      assert.equal(response(await pay('k4', 1n, calls)).status, 201);
      await assertBalanced(ledger);
    });

    test('50 concurrent identical requests run once and all get the same answer', async () => {
      const calls = { n: 0 };
      const bob = (await ledger.balance('user:bob')) ?? 0n;
      const results = await Promise.all(Array.from({ length: 50 }, () => pay('k5', 7n, calls)));
      assert.equal(calls.n, 1);
      assert.equal(results.filter((r) => r.ok && !r.replayed).length, 1);
      const answers = results.map(response);
      for (const answer of answers) assert.deepEqual(answer, answers[0]);
      assert.equal(await ledger.balance('user:bob'), bob + 7n);
      await assertBalanced(ledger);
    });

    test('malformed scope or key is refused as data; a wrong hash or an unstorable answer is a bug', async () => {
      const before = await snapshot(ledger);
      const work = async (): Promise<StoredResponse> => ({ status: 200, body: null });
      for (const [scope, key] of [['Payments', 'k'], ['payments', ''], ['payments', 'has space']] as const) {
        const result = await ledger.withIdempotency(scope, key, hash('x'), work);
        assert.equal(result.ok ? 'ok' : result.code, 'REQUEST_INVALID');
      }
      await assert.rejects(ledger.withIdempotency('payments', 'k6', new Uint8Array(31), work), RangeError);
      await assert.rejects(
        ledger.withIdempotency('payments', 'k6', hash('x'), async () => ({ status: 42, body: null })),
        (e: unknown) => isTallyError(e, 'ASSERTION_FAILED'),
      );
      assert.deepEqual(await snapshot(ledger), before);
      assert.deepEqual(response(await ledger.withIdempotency('payments', 'k6', hash('x'), work)), { status: 200, body: null });
      const replay = await ledger.withIdempotency('payments', 'k6', hash('x'), work);
      assert.ok(replay.ok && replay.replayed);
      assert.deepEqual(replay.response, { status: 200, body: null });
      await assertBalanced(ledger);
    });
  });
}
