import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { closeTestTemplates, testBackends } from '../db/test-databases.ts';
import type { Ledger } from './ledger.ts';
import { assertBalanced, openAccounts, openTestLedger, type TestLedger } from './test-fixtures.ts';
import type { TransferResult } from './transfer.ts';

after(closeTestTemplates);

const RACERS = 50;

function outcome(result: TransferResult): string {
  return result.ok ? 'ok' : result.code;
}

async function transferCount(ledger: Ledger, where: string, params: string[]): Promise<bigint | undefined> {
  return (await ledger.db.query<{ n: bigint }>(`SELECT count(*) AS n FROM transfers WHERE ${where}`, params)).rows[0]?.n;
}

for (const backend of testBackends()) {
  describe(`ledger races on ${backend.kind}`, { skip: backend.skip }, () => {
    let t: TestLedger;
    let ledger: Ledger;
    before(async () => {
      t = await openTestLedger(backend, { poolSize: 20 });
      ledger = t.ledger;
      const accounts: Record<string, 'issuance' | 'user'> = { 'cb:issuance': 'issuance', 'user:payer': 'user', 'user:payee': 'user', 'user:drained': 'user' };
      for (let i = 0; i < RACERS; i++) accounts[`user:sink-${String(i).padStart(2, '0')}`] = 'user';
      await openAccounts(ledger, 'EUR', accounts);
    });
    after(() => t.dispose());

    test(`${RACERS} concurrent identical mints issue once`, async () => {
      const results = await Promise.all(Array.from({ length: RACERS }, () => ledger.mint({ idempotencyKey: 'mint-race', account: 'user:payer', amount: 1_000n })));
      for (const r of results) assert.deepEqual(r, results[0]);
      assert.equal(outcome(results[0] ?? { ok: false, code: 'REQUEST_INVALID', message: '' }), 'ok');
      assert.equal(await transferCount(ledger, 'idempotency_key = $1', ['mint-race']), 1n);
      assert.equal(await ledger.balance('user:payer'), 1_000n);
      await assertBalanced(ledger);
    });

    test(`${RACERS} concurrent identical transfers credit once and all answer the same`, async () => {
      const request = { idempotencyKey: 'pay-race', debit: 'user:payer', credit: 'user:payee', amount: 10n, kind: 'transfer', reference: { payment: 'p-1' } };
      const results = await Promise.all(Array.from({ length: RACERS }, () => ledger.transfer(request)));
      const first = results[0];
      assert.ok(first !== undefined && first.ok);
      for (const r of results) assert.deepEqual(r, first);
      assert.equal(await transferCount(ledger, 'idempotency_key = $1', ['pay-race']), 1n);
      assert.equal(await ledger.balance('user:payer'), 990n);
      assert.equal(await ledger.balance('user:payee'), 10n);
      await assertBalanced(ledger);
    });

    test(`${RACERS} concurrent identical requests racing with a conflicting one: one wins, the rest agree`, async () => {
      const base = { idempotencyKey: 'mixed-race', debit: 'user:payer', kind: 'transfer' };
      const results = await Promise.all(
        Array.from({ length: RACERS }, (_, i) => ledger.transfer(i % 10 === 0 ? { ...base, credit: 'user:drained', amount: 3n } : { ...base, credit: 'user:payee', amount: 2n })),
      );
      const winner = results.find((r) => r.ok);
      assert.ok(winner !== undefined && winner.ok);
      for (const r of results) {
        const same = r.ok && r.transfer.credit === winner.transfer.credit;
        assert.ok(same ? r.ok && r.transfer.id === winner.transfer.id : outcome(r) === 'IDEMPOTENCY_CONFLICT', outcome(r));
      }
      assert.equal(await transferCount(ledger, 'idempotency_key = $1', ['mixed-race']), 1n);
      await assertBalanced(ledger);
    });

    test(`${RACERS} concurrent different transfers draining one account never overdraw it`, async () => {
      assert.ok((await ledger.mint({ idempotencyKey: 'fund-drained', account: 'user:drained', amount: 1_000n - ((await ledger.balance('user:drained')) ?? 0n) })).ok);
      const amount = 30n;
      const results = await Promise.all(
        Array.from({ length: RACERS }, (_, i) =>
          ledger.transfer({ idempotencyKey: `drain-${i}`, debit: 'user:drained', credit: `user:sink-${String(i).padStart(2, '0')}`, amount, kind: 'transfer' }),
        ),
      );
      const succeeded = results.filter((r) => r.ok).length;
      // 1000 / 30: exactly 33 fit, whatever the order; the other 17 find too little left.
      assert.equal(succeeded, 33);
      assert.deepEqual(
        results.filter((r) => !r.ok).map(outcome),
        Array.from({ length: RACERS - 33 }, () => 'INSUFFICIENT_FUNDS'),
      );
      assert.equal(await ledger.balance('user:drained'), 1_000n - 33n * amount);
      assert.equal(await transferCount(ledger, "debit_account = $1 AND kind = 'transfer'", ['user:drained']), 33n);
      await assertBalanced(ledger);
    });

    test('transfers in both directions between the same accounts at once do not deadlock', async () => {
      const results = await Promise.all(
        Array.from({ length: RACERS }, (_, i) =>
          ledger.transfer({
            idempotencyKey: `swap-${i}`,
            debit: i % 2 === 0 ? 'user:payer' : 'user:payee',
            credit: i % 2 === 0 ? 'user:payee' : 'user:payer',
            amount: 1n,
            kind: 'transfer',
          }),
        ),
      );
      assert.deepEqual(new Set(results.map(outcome)), new Set(['ok']));
      await assertBalanced(ledger);
    });
  });
}
