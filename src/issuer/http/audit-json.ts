/**
 * The audit as the API shows it: every amount a decimal string in major units of the node's
 * currency ("12.50"), with the currency named beside it, as every other answer of the node.
 */
import type { Currency } from '../../core/amount.ts';
import type { LedgerAudit } from '../ledger/audit.ts';
import type { SchemeExposure } from '../ledger/exposure.ts';
import type { JsonValue } from '../ledger/json.ts';
import type { SchemeAudit } from './scheme-module.ts';
import type { ShardsAudit } from '../shards/audit.ts';
import { formatMinor } from './json.ts';

/** The audit with its exposure check: what GET /v1/audit answers. */
export interface AuditReport {
  readonly ledger: LedgerAudit;
  readonly exposure: readonly SchemeExposure[];
  /** Offline floats holding value whose scheme the node does not serve now: no holdings are compared with them. */
  readonly unchecked?: readonly { readonly account: string; readonly amount: bigint }[] | undefined;
  /** The schemes' own parts (money outside the ledger), each named. */
  readonly schemes?: readonly (SchemeAudit & { readonly scheme: string })[] | undefined;
  /** The node's shard databases and the credits in flight between them, when it has any. */
  readonly shards?: ShardsAudit | undefined;
}

/** Whether the ledger adds up and no scheme's float falls short of what nobody is named for. */
export function auditBalanced(report: AuditReport): boolean {
  return report.ledger.balanced && report.exposure.every((e) => e.unexplained === 0n) && (report.schemes ?? []).every((s) => s.balanced) && (report.shards?.balanced ?? true);
}

/** The JSON answer; amounts in another currency than the node's (none in practice) stay in minor units, marked so. */
export function auditJson(currency: Currency, report: AuditReport): { [key: string]: JsonValue } {
  const { ledger } = report;
  const amountIn = (code: string) => (minor: bigint) => (code === currency.code ? formatMinor(currency, minor) : `${minor} minor units`);
  const money = amountIn(currency.code);
  return {
    balanced: auditBalanced(report),
    ledgerBalanced: ledger.balanced,
    currency: currency.code,
    currencies: ledger.currencies.map((c) => {
      const fmt = amountIn(c.currency);
      return {
        currency: c.currency,
        totalIssued: fmt(c.totalIssued),
        totalOnline: fmt(c.totalOnline),
        totalSettlement: fmt(c.totalSettlement),
        totalReserves: fmt(c.totalReserves),
        offlineFloat: c.offlineFloat.map((f) => ({ account: f.account, amount: fmt(f.amount) })),
        totalOfflineFloat: fmt(c.totalOfflineFloat),
        totalClearing: fmt(c.totalClearing),
        balanced: c.balanced,
      };
    }),
    exposure: report.exposure.map((e) => ({
      scheme: e.scheme,
      floatAccount: e.floatAccount,
      float: money(e.float),
      expected: money(e.expected),
      difference: money(e.difference),
      attributed: money(e.attributed),
      unexplained: money(e.unexplained),
      balanced: e.unexplained === 0n,
      exposed: e.exposed.map((h) => ({ device: h.device, amount: money(h.amount), fraud: h.fraud })),
    })),
    floatsUnchecked: (report.unchecked ?? []).map((f) => ({ account: f.account, amount: money(f.amount) })),
    schemes: (report.schemes ?? []).map((s) => ({ scheme: s.scheme, balanced: s.balanced, lines: [...s.lines], details: s.details })),
    problems: ledger.problems.map((p) => ({ account: p.account, kind: p.kind, problem: p.problem, materialized: money(p.materialized), journal: money(p.journal) })),
    problemCount: Number(ledger.problemCount),
    accountCount: Number(ledger.accountCount),
    transferCount: Number(ledger.transferCount),
    ...(report.shards === undefined ? {} : { shards: shardsJson(money, currency.code, report.shards) }),
  };
}

/** The audit over shard databases: each database's own sums, the credits in flight, the node's totals. */
function shardsJson(money: (minor: bigint) => string, code: string, shards: ShardsAudit): { [key: string]: JsonValue } {
  const sums = (c: { totalOnline: bigint; totalOfflineFloat: bigint; totalClearing: bigint; totalIssued: bigint } | undefined) => ({
    issued: money(c?.totalIssued ?? 0n),
    online: money(c?.totalOnline ?? 0n),
    offlineFloat: money(c?.totalOfflineFloat ?? 0n),
    clearing: money(c?.totalClearing ?? 0n),
  });
  return {
    balanced: shards.balanced,
    places: shards.places.map((p) => ({
      place: p.party,
      balanced: p.ledger.balanced,
      transferCount: Number(p.ledger.transferCount),
      ...sums(p.ledger.currencies.find((c) => c.currency === code)),
      exposure: p.exposure.map((e) => ({ scheme: e.scheme, float: money(e.float), expected: money(e.expected), difference: money(e.difference) })),
    })),
    inFlight: shards.inFlight.map((f) => ({ from: f.from, to: f.to, count: Number(f.count), amount: money(f.amount) })),
    totals: {
      issued: money(shards.totals.issued),
      online: money(shards.totals.online),
      settlement: money(shards.totals.settlement),
      reserves: money(shards.totals.reserves),
      offlineFloat: money(shards.totals.offlineFloat),
      clearing: money(shards.totals.clearing),
    },
    problems: [...shards.problems],
  };
}
