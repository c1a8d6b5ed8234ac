/**
 * An intermediary's report of its own books to its central bank: the last movement of its reserve
 * it recorded, what it mirrors of that reserve, and where the money is now. The central bank sets
 * it beside the reserve it holds: the system's audit.
 */
import { z } from '@hono/zod-openapi';

const money = z.string().regex(/^-?(0|[1-9][0-9]{0,18})(\.[0-9]{1,18})?$/, 'decimal major units such as "12.50"');

/** The report, as the intermediary posts it. */
export const positionBody = z.strictObject({
  /** The last movement of its reserve recorded in its books. */
  cursor: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** Its books' mirror of its reserve at the central bank: all central-bank money it received, net. */
  reserve: money,
  /** Of that, what no customer holds yet (`cb:reserve`). */
  unallocated: money,
  online: money,
  settlement: money,
  offlineFloat: money,
  /** Its own ledger adds up and no scheme has an unexplained shortfall. */
  ledgerBalanced: z.boolean(),
  /** When it took the figures, ISO 8601. */
  asOf: z.string().max(40),
});

/** An intermediary's report of its books. */
export type PositionReport = z.infer<typeof positionBody>;
