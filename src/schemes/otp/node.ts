/**
 * OTP on the issuer node (the bank), mounted under `/v1/otp/`: the signed parameters and classes
 * (node-params.ts, node-classes.ts), withdrawals signed blindly (node-withdraw.ts), exchange keys and
 * the trusted time (node-exchange-keys.ts), deposits (node-deposit.ts), the settlement of coins in
 * flight (node-in-flight.ts) and escrow attribution of a coin paid twice (node-findings.ts). The
 * value of every coin signed and not yet deposited or refunded sits in the `float:otp` account. In
 * two tiers the bank publishes its classes to the other banks and judges their claims on its coins
 * (node-interbank.ts).
 */
import type { IssuerServices, SchemeModule } from '../../issuer/plugin.ts';
import { TAGS_MAX } from './escrow.ts';
import { OTP_SCHEME } from './messages.ts';
import { ClassBook } from './node-classes.ts';
import { OTP_FLOAT_ACCOUNT, OTP_NODE_DEFAULTS, type OtpNodeOptions } from './node-common.ts';
import { DEPOSIT_BODY_LIMIT, registerDeposit } from './node-deposit.ts';
import { registerExchangeKeys } from './node-exchange-keys.ts';
import { registerFindings } from './node-findings.ts';
import { otpHoldings } from './node-holdings.ts';
import { IN_FLIGHT_BODY_LIMIT, registerInFlight } from './node-in-flight.ts';
import { judgeOtpInterbankClaim, otpPublication } from './node-interbank.ts';
import { loadOtpBankKeys } from './node-keys.ts';
import { registerParams } from './node-params.ts';
import { registerWithdraw } from './node-withdraw.ts';

export { DEPOSIT_GRACE_MS, EPOCH_MS, EXCHANGE_KEY_VALIDITY_MS, HOPS, OTP_FLOAT_ACCOUNT, type OtpNodeOptions } from './node-common.ts';
export { DENOMINATIONS, classTerms, epochOf } from './node-classes.ts';

/**
 * The OTP node part with other periods (tests shorten the epochs to move through them).
 * @throws RangeError for periods that are not positive, a grace longer than an epoch (more live
 *   classes than the parameters carry) or hops outside 1..TAGS_MAX
 */
export function otpNodePartWith(options: Partial<OtpNodeOptions> = {}): SchemeModule {
  const periods: OtpNodeOptions = { ...OTP_NODE_DEFAULTS, ...options };
  if (!Number.isSafeInteger(periods.epochMs) || periods.epochMs <= 0) throw new RangeError(`epochMs must be a positive integer, got ${periods.epochMs}`);
  if (!Number.isSafeInteger(periods.depositGraceMs) || periods.depositGraceMs < 0 || periods.depositGraceMs > periods.epochMs) {
    throw new RangeError(`depositGraceMs must be between 0 and epochMs (${periods.epochMs}), got ${periods.depositGraceMs}`);
  }
  if (!Number.isInteger(periods.hops) || periods.hops < 1 || periods.hops > TAGS_MAX) throw new RangeError(`hops must be between 1 and ${TAGS_MAX}, got ${periods.hops}`);
  // One class book per node: the routes, the publication and the judge of claims share what it read.
  const books = new WeakMap<IssuerServices, ClassBook>();
  const bookOf = (services: IssuerServices): ClassBook => {
    let book = books.get(services);
    if (book === undefined) {
      book = new ClassBook(services, periods);
      books.set(services, book);
    }
    return book;
  };
  return {
    name: OTP_SCHEME,
    migrationsDir: new URL('./migrations/', import.meta.url),
    floatAccount: OTP_FLOAT_ACCOUNT,
    bodyLimits: [DEPOSIT_BODY_LIMIT, IN_FLIGHT_BODY_LIMIT],
    holdings: (q) => otpHoldings(q, OTP_FLOAT_ACCOUNT),
    async prepare(services) {
      await loadOtpBankKeys(services);
    },
    judgeInterbankClaim: (tx, services, claim, payTo) => judgeOtpInterbankClaim(tx, services, bookOf(services), claim, payTo),
    publication: (services) => otpPublication(services, bookOf(services)),
    register(app, services) {
      const classes = bookOf(services);
      registerParams(app, services, classes);
      registerWithdraw(app, services, classes);
      registerExchangeKeys(app, services);
      registerDeposit(app, services, classes);
      registerInFlight(app, services, classes);
      registerFindings(app, services);
    },
  };
}

/** The OTP scheme's part of the issuer node. */
export const otpNodePart: SchemeModule = otpNodePartWith();
