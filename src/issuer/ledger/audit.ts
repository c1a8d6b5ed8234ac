/**
 * The audit: recomputes every balance from the journal alone and proves conservation per
 * currency, issued = online + settlement + offline float + reserves + clearing, and that every
 * materialized balance equals its journal sum and no account but issuance and clearing is below zero.
 * Clearing is zero on a node whose ledger lives in one database; over a node's shards it sums to
 * what is in flight between them (shards/audit.ts).
 */
import { assert } from '../../core/assert.ts';
import { bigintColumn, type Queryable } from '../db/database.ts';
import type { AccountKind } from './account.ts';

/** The most problem accounts an audit lists (it counts them all). */
export const AUDIT_PROBLEMS_MAX = 100;

/** What is outstanding offline through one float account (one per scheme and currency). */
export interface FloatBalance {
  readonly account: string;
  readonly amount: bigint;
}

/** Conservation in one currency, from the journal. */
export interface CurrencyAudit {
  readonly currency: string;
  /** Minus the balance of the issuance account: all money ever issued and not returned. */
  readonly totalIssued: bigint;
  /** The sum of user accounts. */
  readonly totalOnline: bigint;
  /** The sum of settlement accounts: money in transit while payments settle. */
  readonly totalSettlement: bigint;
  /**
   * The sum of reserve accounts: at a central bank, what each intermediary holds there; at an
   * intermediary, what it holds at the central bank and has not put into its customers' accounts.
   */
  readonly totalReserves: bigint;
  readonly offlineFloat: readonly FloatBalance[];
  readonly totalOfflineFloat: bigint;
  /** The sum of clearing accounts: this database's net position with the node's other databases. */
  readonly totalClearing: bigint;
  /** totalIssued = totalOnline + totalSettlement + totalReserves + totalOfflineFloat + totalClearing. */
  readonly balanced: boolean;
}

/** An account that breaks an invariant. */
export interface AuditProblem {
  readonly account: string;
  readonly kind: AccountKind;
  readonly problem: 'BALANCE_MISMATCH' | 'NEGATIVE_BALANCE';
  readonly materialized: bigint;
  readonly journal: bigint;
}

/** The whole audit. */
export interface LedgerAudit {
  /** Every currency balanced, and no problem account. */
  readonly balanced: boolean;
  /** By currency code. */
  readonly currencies: readonly CurrencyAudit[];
  /** The first AUDIT_PROBLEMS_MAX problem accounts, by id. */
  readonly problems: readonly AuditProblem[];
  readonly problemCount: bigint;
  readonly accountCount: bigint;
  readonly transferCount: bigint;
}

// Every account with its journal sum (credits minus debits, as exact numeric) and its
// materialized balance; one statement, so one snapshot.
const PER_ACCOUNT = `
WITH movements AS (
  SELECT credit_account AS account, amount::numeric AS delta FROM transfers
  UNION ALL
  SELECT debit_account, -(amount::numeric) FROM transfers
), journal AS (
  SELECT account, sum(delta) AS total FROM movements GROUP BY account
), per_account AS (
  SELECT a.id, a.kind, a.currency, a.balance::numeric AS materialized, coalesce(j.total, 0) AS journal
  FROM accounts a LEFT JOIN journal j ON j.account = a.id
)`;

interface GroupRow {
  currency: string;
  kind: string;
  float_account: string | null;
  journal: bigint;
  problems: bigint;
  accounts: bigint;
  transfers: bigint;
}

interface ProblemRow {
  id: string;
  kind: AccountKind;
  materialized: bigint;
  journal: bigint;
}

const PROBLEM = `(journal <> materialized OR (kind NOT IN ('issuance', 'clearing') AND (journal < 0 OR materialized < 0)))`;

function currencyAudit(currency: string, groups: readonly GroupRow[]): CurrencyAudit {
  let totalIssued = 0n;
  let totalOnline = 0n;
  let totalSettlement = 0n;
  let totalReserves = 0n;
  let totalClearing = 0n;
  const offlineFloat: FloatBalance[] = [];
  for (const g of groups) {
    const journal = bigintColumn(g, 'journal');
    if (g.kind === 'issuance') totalIssued -= journal;
    else if (g.kind === 'user') totalOnline += journal;
    else if (g.kind === 'settlement') totalSettlement += journal;
    else if (g.kind === 'reserve') totalReserves += journal;
    else if (g.kind === 'clearing') totalClearing += journal;
    else {
      assert(g.kind === 'offline-float' && g.float_account !== null, `audit: unexpected group ${g.kind}`);
      offlineFloat.push({ account: g.float_account, amount: journal });
    }
  }
  const totalOfflineFloat = offlineFloat.reduce((sum, f) => sum + f.amount, 0n);
  const balanced = totalIssued === totalOnline + totalSettlement + totalReserves + totalOfflineFloat + totalClearing;
  return { currency, totalIssued, totalOnline, totalSettlement, totalReserves, offlineFloat, totalOfflineFloat, totalClearing, balanced };
}

/**
 * Audits the whole ledger. Run it in a serializable transaction (as `Ledger.audit` does) so that
 * its two statements see one snapshot; the totals come from one statement in any case.
 */
export async function audit(q: Queryable): Promise<LedgerAudit> {
  const grouped = await q.query<GroupRow>(
    `${PER_ACCOUNT}
     SELECT currency, kind, CASE WHEN kind = 'offline-float' THEN id END AS float_account,
            sum(journal) AS journal, count(*) FILTER (WHERE ${PROBLEM}) AS problems, count(*) AS accounts,
            (SELECT count(*) FROM transfers) AS transfers
     FROM per_account GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
  );
  const byCurrency = new Map<string, GroupRow[]>();
  for (const row of grouped.rows) byCurrency.set(row.currency, [...(byCurrency.get(row.currency) ?? []), row]);
  const currencies = [...byCurrency].map(([currency, groups]) => currencyAudit(currency, groups));
  const problemCount = grouped.rows.reduce((sum, g) => sum + bigintColumn(g, 'problems'), 0n);
  const accountCount = grouped.rows.reduce((sum, g) => sum + bigintColumn(g, 'accounts'), 0n);
  // Without any account the journal is empty too: every transfer references two accounts.
  const transferCount = grouped.rows[0] === undefined ? 0n : bigintColumn(grouped.rows[0], 'transfers');
  let problems: AuditProblem[] = [];
  if (problemCount > 0n) {
    const listed = await q.query<ProblemRow>(
      `${PER_ACCOUNT} SELECT id, kind, materialized, journal FROM per_account WHERE ${PROBLEM} ORDER BY id LIMIT ${AUDIT_PROBLEMS_MAX}`,
    );
    problems = listed.rows.map((row) => {
      const materialized = bigintColumn(row, 'materialized');
      const journal = bigintColumn(row, 'journal');
      return { account: row.id, kind: row.kind, problem: journal === materialized ? 'NEGATIVE_BALANCE' : 'BALANCE_MISMATCH', materialized, journal };
    });
  }
  const balanced = problemCount === 0n && currencies.every((c) => c.balanced);
  return { balanced, currencies, problems, problemCount, accountCount, transferCount };
}
