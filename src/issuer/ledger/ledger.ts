/**
 * The ledger's face: each call runs in its own transaction. Code that must combine ledger
 * operations with its own writes (a scheme's settlement, an idempotent HTTP request) calls the
 * operations of account.ts, transfer.ts, mint.ts with the handle of its own transaction instead.
 */
import type { Database, TransactionHandle } from '../db/database.ts';
import { ensureAccount, findAccount, type Account, type AccountSpec, type EnsureAccountResult } from './account.ts';
import { audit, type LedgerAudit } from './audit.ts';
import { history, type HistoryEntry, type HistoryOptions } from './history.ts';
import { withIdempotency, type IdempotentResult, type StoredResponse } from './idempotency.ts';
import { mint, type MintRequest } from './mint.ts';
import { transfer, type TransferRequest, type TransferResult } from './transfer.ts';

/** A double-entry ledger on a migrated database (see db/migrate.ts). */
export class Ledger {
  readonly db: Database;

  constructor(db: Database) {
    this.db = db;
  }

  /** Opens an account, or answers the existing one opened with the same spec. */
  ensureAccount(spec: AccountSpec): Promise<EnsureAccountResult> {
    return this.db.transaction((tx) => ensureAccount(tx, spec));
  }

  /** The account with its materialized balance, or undefined. */
  account(id: string): Promise<Account | undefined> {
    return findAccount(this.db, id);
  }

  /** The account's balance in minor units, or undefined when it does not exist. */
  async balance(id: string): Promise<bigint | undefined> {
    return (await this.account(id))?.balance;
  }

  /** Moves money from `debit` to `credit`; a replay answers the original transfer. */
  transfer(request: TransferRequest): Promise<TransferResult> {
    return this.db.transaction((tx) => transfer(tx, request));
  }

  /** Issues money into an account from the issuance account of its currency. */
  mint(request: MintRequest): Promise<TransferResult> {
    return this.db.transaction((tx) => mint(tx, request));
  }

  /**
   * The account's transfers, newest first; undefined for an unknown account.
   * @throws RangeError for a limit outside 1..HISTORY_LIMIT_MAX
   */
  history(accountId: string, options: HistoryOptions): Promise<HistoryEntry[] | undefined> {
    return history(this.db, accountId, options);
  }

  /** Recomputes every balance from the journal, on one snapshot, and checks conservation. */
  audit(): Promise<LedgerAudit> {
    return this.db.transaction((tx) => audit(tx), { isolation: 'serializable' });
  }

  /**
   * Runs `work` at most once per (scope, key), in one transaction with its effects, and stores its answer.
   * @throws as `withIdempotency` in idempotency.ts
   */
  withIdempotency(scope: string, key: string, requestHash: Uint8Array, work: (tx: TransactionHandle) => Promise<StoredResponse>): Promise<IdempotentResult> {
    return withIdempotency(this.db, { scope, key, requestHash }, work);
  }
}
