/**
 * Fixtures for the ledger tests (not exported from index.ts): a migrated ledger per backend,
 * snapshots for "a refusal changes nothing", and the conservation check every scenario ends with.
 */
import assert from 'node:assert/strict';
import type { Database } from '../db/database.ts';
import { migrateIssuer } from '../db/migrate.ts';
import type { TestBackend } from '../db/test-databases.ts';
import { ACCOUNT_COLUMNS, accountFromRow, type Account, type AccountKind, type AccountRow } from './account.ts';
import type { LedgerAudit } from './audit.ts';
import { Ledger } from './ledger.ts';

/** A migrated ledger and how to throw it away. */
export interface TestLedger {
  readonly ledger: Ledger;
  readonly db: Database;
  dispose(): Promise<void>;
}

/** Opens a fresh database on the backend and migrates it. */
export async function openTestLedger(backend: TestBackend, options: { poolSize?: number } = {}): Promise<TestLedger> {
  const t = await backend.open(options);
  try {
    await migrateIssuer(t.db);
  } catch (e) {
    await t.dispose();
    throw e;
  }
  return { ledger: new Ledger(t.db), db: t.db, dispose: () => t.dispose() };
}

/** Everything a refusal must leave as it was. */
export interface LedgerSnapshot {
  readonly audit: LedgerAudit;
  readonly accounts: readonly Account[];
  readonly transfers: bigint;
  readonly idempotency: bigint;
}

/** The whole ledger's state. */
export async function snapshot(ledger: Ledger): Promise<LedgerSnapshot> {
  const accounts = (await ledger.db.query<AccountRow>(`SELECT ${ACCOUNT_COLUMNS} FROM accounts ORDER BY id`)).rows.map(accountFromRow);
  const counts = await ledger.db.query<{ transfers: bigint; idempotency: bigint }>(
    'SELECT (SELECT count(*) FROM transfers) AS transfers, (SELECT count(*) FROM idempotency) AS idempotency',
  );
  const row = counts.rows[0];
  assert.ok(row !== undefined);
  return { audit: await ledger.audit(), accounts, transfers: row.transfers, idempotency: row.idempotency };
}

/** Asserts conservation and every account invariant; returns the audit. */
export async function assertBalanced(ledger: Ledger): Promise<LedgerAudit> {
  const audit = await ledger.audit();
  assert.deepEqual(audit.problems, [], 'no account breaks an invariant');
  assert.equal(audit.problemCount, 0n);
  for (const c of audit.currencies) assert.ok(c.balanced, `${c.currency}: issued ${c.totalIssued} = online ${c.totalOnline} + settlement ${c.totalSettlement} + float ${c.totalOfflineFloat}`);
  assert.equal(audit.balanced, true);
  return audit;
}

/** Opens accounts that must not exist yet (or exist with the same spec). */
export async function openAccounts(ledger: Ledger, currency: string, accounts: Readonly<Record<string, AccountKind>>): Promise<void> {
  for (const [id, kind] of Object.entries(accounts)) {
    const result = await ledger.ensureAccount({ id, kind, currency });
    assert.ok(result.ok, `open ${id}: ${result.ok ? '' : result.message}`);
  }
}

/** The audit of one currency. */
export function currencyOf(audit: LedgerAudit, currency: string): LedgerAudit['currencies'][number] {
  const found = audit.currencies.find((c) => c.currency === currency);
  assert.ok(found !== undefined, `the audit has no ${currency}`);
  return found;
}
