/**
 * What the node knows of the value out in OTP coins, for the audit's exposure check. The bank cannot
 * know who holds a coin (that is the point of blind signatures), but it knows per class how many coins
 * it signed and how many serials it paid out for (deposited or refunded). The float must cover every
 * class's coins signed and not yet spent; a class with more spent than signed is value made outside
 * the bank (a class key that leaked, or refunds claimed for coins that never were), shown as an
 * exposed holder named by its class.
 */
import { toHex } from '../../core/bytes.ts';
import { bigintColumn, type ExposedHolder, type Queryable, type SchemeHoldings } from '../../issuer/plugin.ts';
import { OTP_SCHEME } from './messages.ts';

/** What the OTP float must cover, and the classes spent beyond what was signed. */
export async function otpHoldings(q: Queryable, floatAccount: string): Promise<SchemeHoldings> {
  const { rows } = await q.query<{ class_id: Uint8Array; denomination: bigint; issued: bigint; spent: bigint }>(
    `SELECT c.class_id, c.denomination, c.issued, coalesce(s.n, 0)::bigint AS spent
     FROM otp_classes c LEFT JOIN (SELECT class_id, count(*) AS n FROM otp_spent GROUP BY class_id) s ON s.class_id = c.class_id`,
  );
  let expected = 0n;
  const exposed: ExposedHolder[] = [];
  for (const row of rows) {
    const outstanding = (bigintColumn(row, 'issued') - bigintColumn(row, 'spent')) * bigintColumn(row, 'denomination');
    if (outstanding >= 0n) expected += outstanding;
    else exposed.push({ device: `otp-class:${toHex(new Uint8Array(row.class_id))}`, amount: -outstanding, fraud: false });
  }
  exposed.sort((a, b) => (a.amount === b.amount ? a.device.localeCompare(b.device) : a.amount > b.amount ? -1 : 1));
  return { scheme: OTP_SCHEME, floatAccount, expected, exposed };
}
