import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { sqlState } from '../db/database.ts';
import { closeTestTemplates, testBackends } from '../db/test-databases.ts';
import type { Ledger } from './ledger.ts';
import type { LedgerResultCode } from './result.ts';
import { HISTORY_LIMIT_MAX, REFERENCE_BYTES_MAX } from './rules.ts';
import { assertBalanced, currencyOf, openAccounts, openTestLedger, snapshot, type TestLedger } from './test-fixtures.ts';
import type { TransferResult } from './transfer.ts';

after(closeTestTemplates);

const OWNER = 'ab'.repeat(32);

function okTransfer(result: TransferResult): Extract<TransferResult, { ok: true }>['transfer'] {
  assert.ok(result.ok, result.ok ? '' : `${result.code}: ${result.message}`);
  return result.transfer;
}

for (const backend of testBackends()) {
  describe(`ledger on ${backend.kind}`, { skip: backend.skip }, () => {
    let t: TestLedger;
    let ledger: Ledger;
    before(async () => {
      t = await openTestLedger(backend);
      ledger = t.ledger;
      await openAccounts(ledger, 'EUR', { 'cb:issuance:EUR': 'issuance', 'user:alice': 'user', 'user:bob': 'user', 'float:ops': 'offline-float', 'settle:ops': 'settlement' });
      await openAccounts(ledger, 'CHF', { 'cb:issuance:CHF': 'issuance', 'user:carol': 'user' });
      await openAccounts(ledger, 'BIG', { 'cb:issuance:BIG': 'issuance', 'user:whale': 'user' });
      okTransfer(await ledger.mint({ idempotencyKey: 'setup-alice', account: 'user:alice', amount: 1_000n }));
      okTransfer(await ledger.mint({ idempotencyKey: 'setup-carol', account: 'user:carol', amount: 500n }));
      okTransfer(await ledger.mint({ idempotencyKey: 'setup-whale', account: 'user:whale', amount: AMOUNT_MINOR_MAX }));
    });
    after(() => t.dispose());

    test('ensureAccount opens once, answers the same account again, and refuses another spec under the id', async () => {
      const first = await ledger.ensureAccount({ id: `user:${OWNER}`, kind: 'user', currency: 'EUR', owner: OWNER });
      assert.ok(first.ok);
      assert.equal(first.account.balance, 0n);
      assert.equal(first.account.allowNegative, false);
      assert.equal(first.account.owner, OWNER);
      const again = await ledger.ensureAccount({ id: `user:${OWNER}`, kind: 'user', currency: 'EUR', owner: OWNER });
      assert.deepEqual(again, first);
      for (const spec of [
        { id: `user:${OWNER}`, kind: 'settlement', currency: 'EUR', owner: OWNER },
        { id: `user:${OWNER}`, kind: 'user', currency: 'CHF', owner: OWNER },
        { id: `user:${OWNER}`, kind: 'user', currency: 'EUR' },
        { id: 'cb:second-issuance', kind: 'issuance', currency: 'EUR' },
      ] as const) {
        const result = await ledger.ensureAccount(spec);
        assert.equal(result.ok ? 'ok' : result.code, 'ACCOUNT_CONFLICT', JSON.stringify(spec));
      }
      const issuance = await ledger.account('cb:issuance:EUR');
      assert.equal(issuance?.allowNegative, true);
      await assertBalanced(ledger);
    });

    test('ensureAccount refuses malformed ids, kinds, currencies and owners', async () => {
      const before = await snapshot(ledger);
      for (const spec of [
        { id: 'no-namespace', kind: 'user', currency: 'EUR' },
        { id: `user:${'x'.repeat(130)}`, kind: 'user', currency: 'EUR' },
        { id: 'user:dave', kind: 'wallet', currency: 'EUR' },
        { id: 'user:dave', kind: 'user', currency: 'eur' },
        { id: 'user:dave', kind: 'user', currency: 'EUR', owner: 'ABC' },
      ]) {
        // A kind outside the union arrives from untyped callers (an HTTP body): checked at run time too.
        const result = await ledger.ensureAccount(spec as Parameters<Ledger['ensureAccount']>[0]);
        assert.equal(result.ok ? 'ok' : result.code, 'REQUEST_INVALID', JSON.stringify(spec));
      }
      assert.deepEqual(await snapshot(ledger), before);
    });

    test('mint and transfer move money; a replay answers the original transfer', async () => {
      const minted = okTransfer(await ledger.mint({ idempotencyKey: 'mint-bob', account: 'user:bob', amount: 250n, reference: { order: 'm-1' } }));
      assert.equal(minted.debit, 'cb:issuance:EUR');
      assert.equal(minted.kind, 'mint');
      assert.deepEqual(minted.reference, { order: 'm-1' });
      const paid = okTransfer(await ledger.transfer({ idempotencyKey: 'pay-1', debit: 'user:bob', credit: 'user:alice', amount: 100n, kind: 'transfer' }));
      assert.equal(typeof paid.id, 'bigint');
      assert.ok(paid.id > minted.id);
      assert.equal(paid.currency, 'EUR');
      assert.equal(paid.reference, null);
      assert.deepEqual(await ledger.transfer({ idempotencyKey: 'pay-1', debit: 'user:bob', credit: 'user:alice', amount: 100n, kind: 'transfer' }), { ok: true, transfer: paid });
      assert.deepEqual(await ledger.mint({ idempotencyKey: 'mint-bob', account: 'user:bob', amount: 250n, reference: { order: 'm-1' } }), { ok: true, transfer: minted });
      assert.equal(await ledger.balance('user:bob'), 150n);
      assert.equal(await ledger.balance('user:alice'), 1_100n);
      assert.equal(await ledger.balance('user:nobody'), undefined);
      await assertBalanced(ledger);
    });

    test('offline float and settlement accounts count in the audit', async () => {
      const before = currencyOf(await ledger.audit(), 'EUR');
      okTransfer(await ledger.transfer({ idempotencyKey: 'withdraw-1', debit: 'user:alice', credit: 'float:ops', amount: 300n, kind: 'offline-withdraw' }));
      okTransfer(await ledger.transfer({ idempotencyKey: 'deposit-1', debit: 'float:ops', credit: 'settle:ops', amount: 120n, kind: 'offline-deposit' }));
      const audit = await assertBalanced(ledger);
      const eur = currencyOf(audit, 'EUR');
      assert.equal(eur.totalIssued, before.totalIssued);
      assert.equal(eur.totalOnline, before.totalOnline - 300n);
      assert.equal(eur.totalSettlement, before.totalSettlement + 120n);
      assert.deepEqual(eur.offlineFloat, [{ account: 'float:ops', amount: before.totalOfflineFloat + 180n }]);
      assert.equal(eur.totalIssued, eur.totalOnline + eur.totalSettlement + eur.totalOfflineFloat);
      assert.equal(currencyOf(audit, 'CHF').totalIssued, 500n);
      assert.equal(currencyOf(audit, 'BIG').totalIssued, AMOUNT_MINOR_MAX);
      assert.ok(audit.transferCount >= 5n);
    });

    test('history pages newest first, with the sign of each movement', async () => {
      await openAccounts(ledger, 'EUR', { 'user:erin': 'user' });
      okTransfer(await ledger.mint({ idempotencyKey: 'h-0', account: 'user:erin', amount: 50n }));
      for (let i = 1; i <= 4; i++) {
        okTransfer(await ledger.transfer({ idempotencyKey: `h-${i}`, debit: i % 2 === 0 ? 'user:erin' : 'user:alice', credit: i % 2 === 0 ? 'user:alice' : 'user:erin', amount: BigInt(i), kind: 'transfer' }));
      }
      const page1 = await ledger.history('user:erin', { limit: 3 });
      assert.ok(page1 !== undefined);
      assert.deepEqual(page1.map((e) => [e.transfer.idempotencyKey, e.delta]), [['h-4', -4n], ['h-3', 3n], ['h-2', -2n]]);
      const page2 = await ledger.history('user:erin', { limit: 3, before: page1.at(-1)?.transfer.id });
      assert.deepEqual(page2?.map((e) => [e.transfer.idempotencyKey, e.delta]), [['h-1', 1n], ['h-0', 50n]]);
      assert.equal(await ledger.history('user:nobody', { limit: 1 }), undefined);
      assert.deepEqual(await ledger.history('user:erin', { limit: 5, before: 1n }), []);
      for (const limit of [0, HISTORY_LIMIT_MAX + 1, 1.5]) await assert.rejects(ledger.history('user:erin', { limit }), RangeError);
      await assertBalanced(ledger);
    });

    test('every refusal answers its code and changes nothing', async () => {
      okTransfer(await ledger.transfer({ idempotencyKey: 'taken', debit: 'user:alice', credit: 'user:bob', amount: 5n, kind: 'transfer', reference: { n: 1 } }));
      const base = { idempotencyKey: 'fresh', debit: 'user:alice', credit: 'user:bob', amount: 5n, kind: 'transfer' };
      const alice = (await ledger.balance('user:alice')) ?? 0n;
      const cases: [string, () => Promise<TransferResult>, LedgerResultCode][] = [
        ['zero amount', () => ledger.transfer({ ...base, amount: 0n }), 'AMOUNT_INVALID'],
        ['negative amount', () => ledger.transfer({ ...base, amount: -5n }), 'AMOUNT_INVALID'],
        ['amount over the maximum', () => ledger.transfer({ ...base, amount: AMOUNT_MINOR_MAX + 1n }), 'AMOUNT_INVALID'],
        ['same account', () => ledger.transfer({ ...base, credit: 'user:alice' }), 'SAME_ACCOUNT'],
        ['unknown debit', () => ledger.transfer({ ...base, debit: 'user:ghost' }), 'ACCOUNT_UNKNOWN'],
        ['unknown credit', () => ledger.transfer({ ...base, credit: 'user:ghost' }), 'ACCOUNT_UNKNOWN'],
        ['other currency', () => ledger.transfer({ ...base, credit: 'user:carol' }), 'CURRENCY_MISMATCH'],
        ['overdraft', () => ledger.transfer({ ...base, amount: alice + 1n }), 'INSUFFICIENT_FUNDS'],
        ['float overdraft', () => ledger.transfer({ ...base, debit: 'float:ops', amount: 1_000_000n }), 'INSUFFICIENT_FUNDS'],
        ['issuance past the maximum', () => ledger.mint({ idempotencyKey: 'fresh', account: 'user:whale', amount: 1n }), 'BALANCE_OVERFLOW'],
        ['key reused, other amount', () => ledger.transfer({ ...base, idempotencyKey: 'taken', amount: 6n, reference: { n: 1 } }), 'IDEMPOTENCY_CONFLICT'],
        ['key reused, other reference', () => ledger.transfer({ ...base, idempotencyKey: 'taken', reference: { n: 2 } }), 'IDEMPOTENCY_CONFLICT'],
        ['key reused, no reference', () => ledger.transfer({ ...base, idempotencyKey: 'taken' }), 'IDEMPOTENCY_CONFLICT'],
        ['key reused, other kind', () => ledger.transfer({ ...base, idempotencyKey: 'taken', kind: 'refund', reference: { n: 1 } }), 'IDEMPOTENCY_CONFLICT'],
        ['key reused by a mint', () => ledger.mint({ idempotencyKey: 'taken', account: 'user:bob', amount: 5n }), 'IDEMPOTENCY_CONFLICT'],
        ['empty key', () => ledger.transfer({ ...base, idempotencyKey: '' }), 'REQUEST_INVALID'],
        ['key with a space', () => ledger.transfer({ ...base, idempotencyKey: 'a b' }), 'REQUEST_INVALID'],
        ['malformed kind', () => ledger.transfer({ ...base, kind: 'Transfer!' }), 'REQUEST_INVALID'],
        ['malformed account', () => ledger.transfer({ ...base, credit: 'bob' }), 'REQUEST_INVALID'],
        ['reference too large', () => ledger.transfer({ ...base, reference: 'x'.repeat(REFERENCE_BYTES_MAX) }), 'REQUEST_INVALID'],
        ['mint into nobody', () => ledger.mint({ idempotencyKey: 'fresh', account: 'user:ghost', amount: 5n }), 'ACCOUNT_UNKNOWN'],
        ['mint into issuance', () => ledger.mint({ idempotencyKey: 'fresh', account: 'cb:issuance:EUR', amount: 5n }), 'SAME_ACCOUNT'],
        ['mint zero', () => ledger.mint({ idempotencyKey: 'fresh', account: 'user:bob', amount: 0n }), 'AMOUNT_INVALID'],
      ];
      await openAccounts(ledger, 'XTS', { 'user:orphan': 'user' });
      cases.push(['mint without issuance', () => ledger.mint({ idempotencyKey: 'fresh', account: 'user:orphan', amount: 5n }), 'ACCOUNT_UNKNOWN']);
      const before = await snapshot(ledger);
      for (const [name, run, code] of cases) {
        const result = await run();
        assert.equal(result.ok ? 'ok' : result.code, code, name);
        assert.ok(!result.ok && result.message.length > 0);
      }
      assert.deepEqual(await snapshot(ledger), before, 'no refusal changed anything');
      okTransfer(await ledger.transfer(base));
      await assertBalanced(ledger);
    });

    test('the schema itself refuses what the code never does', async () => {
      const refusedBy = (state: string) => (e: unknown) => sqlState(e) === state;
      const before = await snapshot(ledger);
      await assert.rejects(t.db.query('UPDATE transfers SET amount = amount + 1'), refusedBy('23001'));
      await assert.rejects(t.db.query('DELETE FROM transfers'), refusedBy('23001'));
      await assert.rejects(t.db.query('TRUNCATE transfers'), refusedBy('23001'));
      await assert.rejects(t.db.query("UPDATE accounts SET kind = 'settlement' WHERE id = 'user:bob'"), refusedBy('23001'));
      await assert.rejects(t.db.query("DELETE FROM accounts WHERE id = 'user:orphan'"), refusedBy('23001'));
      await assert.rejects(t.db.query("UPDATE accounts SET balance = -1 WHERE id = 'user:bob'"), refusedBy('23514'));
      await assert.rejects(t.db.query("INSERT INTO accounts (id, kind, currency, allow_negative) VALUES ('user:neg', 'user', 'EUR', true)"), refusedBy('23514'));
      await assert.rejects(
        t.db.query("INSERT INTO transfers (idempotency_key, debit_account, credit_account, currency, amount, kind) VALUES ('x', 'user:alice', 'user:carol', 'EUR', 1, 'transfer')"),
        refusedBy('23503'),
      );
      await assert.rejects(
        t.db.query("INSERT INTO transfers (idempotency_key, debit_account, credit_account, currency, amount, kind) VALUES ('x', 'user:alice', 'user:bob', 'EUR', 0, 'transfer')"),
        refusedBy('23514'),
      );
      assert.deepEqual(await snapshot(ledger), before);
      await assertBalanced(ledger);
    });

    test('the audit catches a materialized balance that left its journal', async () => {
      await t.db.query("UPDATE accounts SET balance = balance + 7 WHERE id = 'user:bob'");
      const broken = await ledger.audit();
      assert.equal(broken.balanced, false);
      assert.equal(broken.problemCount, 1n);
      assert.equal(broken.problems[0]?.account, 'user:bob');
      assert.equal(broken.problems[0]?.problem, 'BALANCE_MISMATCH');
      assert.equal((broken.problems[0]?.materialized ?? 0n) - (broken.problems[0]?.journal ?? 0n), 7n);
      assert.ok(currencyOf(broken, 'EUR').balanced, 'the journal itself still conserves');
      await t.db.query("UPDATE accounts SET balance = balance - 7 WHERE id = 'user:bob'");
      await assertBalanced(ledger);
    });
  });
}
