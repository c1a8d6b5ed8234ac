/**
 * The audit of a node whose ledger is spread over its home and shard databases. No snapshot
 * spans databases, so it reads each database once in a serializable transaction of its own, and
 * then proves what can be proved across them:
 * - every database's own audit is balanced (issued = online + settlement + reserves + offline
 *   float + clearing, journals equal balances, nothing but issuance and clearing below zero);
 * - in every database, each clearing account's balance is what it sent to that peer less what it
 *   received from it (its outbox and inbox, in the same snapshot);
 * - for every pair, the receiver has received no more than the sender sent: the senders' outboxes
 *   are read again after every database was read, so a crossing received is always seen sent,
 *   and a receipt with no send (money made on the way) is caught;
 * - what is in flight from each place to each other is that difference, and over the node the
 *   clearing accounts sum to it when nothing moves during the audit.
 * These are sums per pair: a receipt made up inside a receiver's database while as much or more
 * is in flight to it from that sender shows as less in flight, and as a problem once the real
 * crossings arrive (received then exceeds sent).
 * The node's totals are the sums of the databases'. Each scheme's exposure check (what it knows
 * is out on its devices against its float) runs in every database's snapshot, against that
 * database's float: a scheme whose devices' value lives on shards keeps it there with its records.
 */
import type { Queryable } from '../db/database.ts';
import { audit, type LedgerAudit } from '../ledger/audit.ts';
import { exposureOf, type HoldingsReader, type SchemeExposure } from '../ledger/exposure.ts';
import { clearingPositions, type ClearingPosition, type Party } from '../ledger/cross-shard.ts';
import type { ShardDatabases } from './shard-databases.ts';

/** One database's part. */
export interface PlaceAudit {
  readonly party: Party;
  readonly ledger: LedgerAudit;
  readonly positions: readonly ClearingPosition[];
  /** Each scheme's exposure check in this database. */
  readonly exposure: readonly SchemeExposure[];
}

/** Crossings sent from one place to another and not received there yet. */
export interface InFlight {
  readonly from: Party;
  readonly to: Party;
  readonly count: bigint;
  readonly amount: bigint;
}

/** The node's totals in its currency, summed over its databases. */
export interface ShardTotals {
  readonly issued: bigint;
  readonly online: bigint;
  readonly settlement: bigint;
  readonly reserves: bigint;
  readonly offlineFloat: bigint;
  readonly clearing: bigint;
}

/** The whole audit over shards. */
export interface ShardsAudit {
  readonly balanced: boolean;
  readonly places: readonly PlaceAudit[];
  readonly inFlight: readonly InFlight[];
  readonly totals: ShardTotals;
  /** Each broken rule, in words. */
  readonly problems: readonly string[];
}

async function sentTo(q: Queryable): Promise<Map<string, { count: bigint; amount: bigint }>> {
  const rows = await q.query<{ to_party: string; n: bigint; amount: bigint }>('SELECT to_party, count(*) AS n, coalesce(sum(amount::numeric), 0) AS amount FROM shard_outbox GROUP BY to_party');
  return new Map(rows.rows.map((r) => [r.to_party, { count: r.n, amount: r.amount }]));
}

/** Audits every database of the node, then the crossings between them. */
export async function auditShards(shards: ShardDatabases, holdings: readonly HoldingsReader[] = []): Promise<ShardsAudit> {
  const problems: string[] = [];
  const places: PlaceAudit[] = [];
  for (const party of shards.parties) {
    let read: { ledger: LedgerAudit; positions: ClearingPosition[]; exposure: SchemeExposure[] };
    try {
      read = await shards.db(party).transaction(
        async (tx) => {
          const ledger = await audit(tx);
          const floats = new Map(ledger.currencies.flatMap((c) => c.offlineFloat.map((f) => [f.account, f.amount] as const)));
          const exposure: SchemeExposure[] = [];
          for (const read of holdings) {
            const held = await read(tx);
            exposure.push(exposureOf(held, floats.get(held.floatAccount) ?? 0n));
          }
          return { ledger, positions: await clearingPositions(tx), exposure };
        },
        { isolation: 'serializable' },
      );
    } catch (e) {
      // One database down: the others are still audited, and the answer says it is not balanced.
      problems.push(`${party}: its database could not be read: ${e instanceof Error ? e.message.slice(0, 200) : String(e)}`);
      continue;
    }
    places.push({ party, ...read });
    if (!read.ledger.balanced) problems.push(`${party}: its own ledger does not balance (${read.ledger.problemCount} problem accounts)`);
    for (const e of read.exposure) {
      // The rule of the node's own exposure check: a shortfall nobody is named for.
      if (e.unexplained !== 0n) problems.push(`${party}: ${e.scheme}'s ${e.floatAccount} holds ${e.float}, but what is out on its devices there is ${e.expected}`);
    }
    for (const p of read.positions) {
      const expected = p.sent.amount - p.received.amount;
      if (p.balance !== expected) problems.push(`${party}: clearing:${p.peer} holds ${p.balance}, but it sent ${p.sent.amount} to ${p.peer} and received ${p.received.amount} from it`);
    }
  }
  // The outboxes once more, after every inbox was read.
  const sentLater = new Map<Party, Map<string, { count: bigint; amount: bigint }>>();
  for (const place of places) {
    try {
      sentLater.set(place.party, await sentTo(shards.db(place.party)));
    } catch (e) {
      problems.push(`${place.party}: its database could not be read again: ${e instanceof Error ? e.message.slice(0, 200) : String(e)}`);
    }
  }
  const inFlight: InFlight[] = [];
  for (const receiver of places) {
    for (const position of receiver.positions) {
      const from = position.peer;
      if (!sentLater.has(from)) continue;
      const sent = sentLater.get(from)?.get(receiver.party) ?? { count: 0n, amount: 0n };
      const count = sent.count - position.received.count;
      const amount = sent.amount - position.received.amount;
      // Crossings are positive: what is in flight has as many crossings as it has money for.
      if (count < 0n || amount < 0n || (count === 0n) !== (amount === 0n)) {
        problems.push(`${receiver.party} received ${position.received.count} crossings (${position.received.amount}) from ${from}, which sent it ${sent.count} (${sent.amount})`);
      } else if (count > 0n) inFlight.push({ from, to: receiver.party, count, amount });
    }
  }
  const sum = (pick: (l: LedgerAudit['currencies'][number]) => bigint) =>
    places.reduce((total, p) => total + p.ledger.currencies.filter((c) => c.currency === shards.currency).reduce((t, c) => t + pick(c), 0n), 0n);
  const totals: ShardTotals = {
    issued: sum((c) => c.totalIssued),
    online: sum((c) => c.totalOnline),
    settlement: sum((c) => c.totalSettlement),
    reserves: sum((c) => c.totalReserves),
    offlineFloat: sum((c) => c.totalOfflineFloat),
    clearing: sum((c) => c.totalClearing),
  };
  if (totals.issued !== totals.online + totals.settlement + totals.reserves + totals.offlineFloat + totals.clearing) problems.push('the node\'s totals do not add up');
  return { balanced: problems.length === 0, places, inFlight, totals, problems };
}
