/**
 * Minting: the central bank issues money by a transfer from the issuance account of the
 * account's currency, the one account allowed to go below zero.
 */
import type { TransactionHandle } from '../db/database.ts';
import { accountFromRow, ACCOUNT_COLUMNS, findAccount, type AccountRow } from './account.ts';
import type { JsonValue } from './json.ts';
import { failure } from './result.ts';
import { accountIdProblem } from './rules.ts';
import { checkCommon, transfer, type TransferResult } from './transfer.ts';

/** The transfer kind of every mint. */
export const MINT_KIND = 'mint';

/** A request to issue `amount` minor units into `account`. */
export interface MintRequest {
  readonly idempotencyKey: string;
  readonly account: string;
  readonly amount: bigint;
  readonly reference?: JsonValue | undefined;
  /**
   * The account the money comes from instead of the issuance account: an intermediary below a
   * central bank mints from its reserve (`cb:reserve`), and no further than it holds.
   */
  readonly source?: string | undefined;
}

/**
 * Issues money into an account inside the caller's transaction: a transfer of kind 'mint' from
 * the issuance account of its currency. Replays and refusals are as for `transfer`.
 */
export async function mint(tx: TransactionHandle, request: MintRequest): Promise<TransferResult> {
  const idProblem = accountIdProblem(request.account);
  if (idProblem !== undefined) return failure('REQUEST_INVALID', idProblem);
  const common = checkCommon(request);
  if ('ok' in common) return common;
  const target = await findAccount(tx, request.account);
  if (target === undefined) return failure('ACCOUNT_UNKNOWN', `account ${request.account} does not exist: open it first`);
  if (target.kind === 'issuance') return failure('SAME_ACCOUNT', `account ${target.id} is the issuance account: mint into another account`);
  // Money enters offline floats and settlement accounts only through deposits and settlement, which the audit can follow.
  if (target.kind !== 'user') return failure('ACCOUNT_RESTRICTED', `account ${target.id} is a ${target.kind} account: mint into an account holder's account`);
  const issuance =
    request.source === undefined
      ? await tx.query<AccountRow>(`SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE kind = 'issuance' AND currency = $1`, [target.currency])
      : await tx.query<AccountRow>(`SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE id = $1 AND kind = 'reserve' AND currency = $2`, [request.source, target.currency]);
  const source = issuance.rows[0];
  if (source === undefined) return failure('ACCOUNT_UNKNOWN', `currency ${target.currency} has no ${request.source === undefined ? 'issuance' : `reserve account ${request.source}`}: open one first`);
  const asTransfer = {
    idempotencyKey: request.idempotencyKey,
    debit: accountFromRow(source).id,
    credit: target.id,
    amount: request.amount,
    kind: MINT_KIND,
    ...(request.reference === undefined ? {} : { reference: request.reference }),
  };
  return transfer(tx, asTransfer);
}
