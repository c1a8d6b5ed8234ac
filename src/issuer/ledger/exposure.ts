/**
 * The exposure check of the audit: per scheme, what the node knows its devices must hold (from
 * deposits, withdrawals and the payments devices and payees reported or claimed) against the
 * scheme's offline float. The ledger alone cannot see money created offline: a restored or cloned
 * device that pays or withdraws value it no longer has takes it from the float, and the journal
 * still adds up. Here such value shows as a holder whose known outflow exceeds its known inflow.
 */
import type { Queryable } from '../db/database.ts';

/** One holder whose known outflow exceeds what the node knows it received: money from nowhere. */
export interface ExposedHolder {
  /** The device (OPS TA) or wallet key id. */
  readonly device: string;
  /** How far below zero the holder's known balance is, in minor units (positive). */
  readonly amount: bigint;
  /** Whether settlement already named the holder in a fraud case (the loss is attributed). */
  readonly fraud: boolean;
}

/** What a scheme's settlement knows of the value out on its devices. */
export interface SchemeHoldings {
  readonly scheme: string;
  /** The scheme's offline float account. */
  readonly floatAccount: string;
  /**
   * What the float must cover: the known balances of holders that are not below zero, plus value
   * on its way (payments known but not yet settled at their payee, refunds and redemptions withheld).
   */
  readonly expected: bigint;
  /** Holders whose known balance is below zero, largest first. */
  readonly exposed: readonly ExposedHolder[];
}

/** A scheme's part of the exposure check, run inside the audit's transaction. */
export type HoldingsReader = (q: Queryable) => Promise<SchemeHoldings>;

/** The exposure of one scheme in the audit. */
export interface SchemeExposure extends SchemeHoldings {
  /** The float account's balance from the journal. */
  readonly float: bigint;
  /**
   * float - expected: below zero when the float cannot cover what holders and payees may claim
   * (value created offline); above zero when it holds value nobody can claim any more (value a
   * broken device destroyed, such as a redemption refused as a double spend).
   */
  readonly difference: bigint;
  /** The part of a shortfall that comes from holders already named in fraud cases. */
  readonly attributed: bigint;
  /** The shortfall nobody is named for yet (zero or below): zero when the scheme is sound. */
  readonly unexplained: bigint;
}

/** Most exposed holders an audit lists per scheme. */
export const EXPOSED_HOLDERS_MAX = 100;

/** Sets a scheme's holdings against its float's balance. */
export function exposureOf(holdings: SchemeHoldings, float: bigint): SchemeExposure {
  const difference = float - holdings.expected;
  const attributed = holdings.exposed.filter((h) => h.fraud).reduce((sum, h) => sum + h.amount, 0n);
  // The shortfall beyond what holders already named created.
  const shortfall = difference < 0n ? -difference : 0n;
  const unexplained = shortfall > attributed ? attributed - shortfall : 0n;
  return { ...holdings, exposed: holdings.exposed.slice(0, EXPOSED_HOLDERS_MAX), float, difference, attributed, unexplained };
}
