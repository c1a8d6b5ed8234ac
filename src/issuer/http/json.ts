/** JSON forms of ledger values: amounts as decimal major-unit strings, binary as base64url. */
import { Amount, type Currency } from '../../core/amount.ts';
import type { JsonValue } from '../ledger/json.ts';
import type { Transfer } from '../ledger/transfer.ts';

/** "12.50" for 1250 minor units of a two-decimal currency. */
export function formatMinor(currency: Currency, minor: bigint): string {
  return minor < 0n ? `-${Amount.of(currency, -minor).toString()}` : Amount.of(currency, minor).toString();
}

/** A transfer as the API shows it. */
export function transferJson(currency: Currency, transfer: Transfer): { [key: string]: JsonValue } {
  return {
    id: transfer.id.toString(),
    from: transfer.debit,
    to: transfer.credit,
    amount: formatMinor(currency, transfer.amount),
    currency: transfer.currency,
    kind: transfer.kind,
    reference: transfer.reference,
    createdAt: transfer.createdAt.toISOString(),
  };
}
