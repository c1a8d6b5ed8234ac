/**
 * Money as integer minor units over bigint, never floats. An Amount is non-negative and at most
 * AMOUNT_MINOR_MAX (what a signed 64-bit SQL column holds); arithmetic is checked.
 */
import { bigint as bigintCodec, decodeFailure, record, text, type Codec } from './codec.ts';
import { TallyError } from './errors.ts';

/** The largest amount in minor units: 2^63 - 1, a PostgreSQL bigint. */
export const AMOUNT_MINOR_MAX = 2n ** 63n - 1n;
/** The most decimal places a currency may have. */
export const CURRENCY_DECIMALS_MAX = 18;

/** A currency: its code and how many minor units make a major unit (10^decimals). */
export interface Currency {
  readonly code: string;
  readonly decimals: number;
}

// AMOUNT_MINOR_MAX has 19 digits, so no valid amount has more whole digits in any currency.
const WHOLE_DIGITS_MAX = 19;

const CODE_PATTERN = /^[A-Z][A-Z0-9]{2,11}$/;

/**
 * Checks and returns a currency definition.
 * @throws RangeError for a malformed code or decimals outside [0, 18]
 */
export function currency(code: string, decimals: number): Currency {
  if (!CODE_PATTERN.test(code)) throw new RangeError(`currency code: expected 3 to 12 capitals or digits, got ${JSON.stringify(code)}`);
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > CURRENCY_DECIMALS_MAX) {
    throw new RangeError(`currency decimals: expected 0 to ${CURRENCY_DECIMALS_MAX}, got ${decimals}`);
  }
  return Object.freeze({ code, decimals });
}

/** Any integer number of minor units as decimal major units ("-0.05"), for messages. */
function majorUnits(currency: Currency, minor: bigint): string {
  const digits = (minor < 0n ? -minor : minor).toString().padStart(currency.decimals + 1, '0');
  const cut = digits.length - currency.decimals;
  return `${minor < 0n ? '-' : ''}${digits.slice(0, cut)}${currency.decimals === 0 ? '' : `.${digits.slice(cut)}`}`;
}

/** An immutable, non-negative amount of one currency. */
export class Amount {
  readonly currency: Currency;
  readonly minor: bigint;

  private constructor(currency: Currency, minor: bigint) {
    this.currency = currency;
    this.minor = minor;
    Object.freeze(this);
  }

  /**
   * An amount of `minor` units.
   * @throws TallyError AMOUNT_UNDERFLOW below zero, AMOUNT_OVERFLOW above AMOUNT_MINOR_MAX
   */
  static of(currency: Currency, minor: bigint): Amount {
    if (minor < 0n) throw new TallyError('AMOUNT_UNDERFLOW', `amount would be negative: ${majorUnits(currency, minor)} ${currency.code}`, {});
    if (minor > AMOUNT_MINOR_MAX) {
      throw new TallyError('AMOUNT_OVERFLOW', `amount of ${majorUnits(currency, minor)} ${currency.code} is over the maximum of ${majorUnits(currency, AMOUNT_MINOR_MAX)} ${currency.code}`, { max: AMOUNT_MINOR_MAX.toString() });
    }
    return new Amount(currency, minor);
  }

  /** Zero of a currency. */
  static zero(currency: Currency): Amount {
    return new Amount(currency, 0n);
  }

  /**
   * Parses decimal major units, such as "12.50" or "7" (no sign, no exponent, no grouping).
   * @throws TallyError AMOUNT_INVALID for malformed text or too many decimals, AMOUNT_OVERFLOW
   */
  static parse(input: string, currency: Currency): Amount {
    const shown = JSON.stringify(input.slice(0, 40));
    const match = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/.exec(input);
    if (match === null) {
      throw new TallyError('AMOUNT_INVALID', `amount: expected decimal major units like "12.50", got ${shown}`, {
        input: input.slice(0, 40),
      });
    }
    const whole = match[1] as string;
    const fraction = match[2] ?? '';
    if (fraction.length > currency.decimals) {
      throw new TallyError('AMOUNT_INVALID', `amount: ${currency.code} has ${currency.decimals} decimal places, got ${shown}`, {
        input: input.slice(0, 40),
      });
    }
    // 20 whole digits are at least 10^19 > AMOUNT_MINOR_MAX: refuse before building a huge bigint.
    if (whole.length > WHOLE_DIGITS_MAX) {
      throw new TallyError('AMOUNT_OVERFLOW', `amount ${shown} is over the maximum`, { max: AMOUNT_MINOR_MAX.toString() });
    }
    const minor = BigInt(whole) * 10n ** BigInt(currency.decimals) + BigInt(fraction.padEnd(currency.decimals, '0') || '0');
    return Amount.of(currency, minor);
  }

  /** Major units with all decimal places, such as "12.50". */
  toString(): string {
    if (this.currency.decimals === 0) return this.minor.toString();
    const digits = this.minor.toString().padStart(this.currency.decimals + 1, '0');
    const cut = digits.length - this.currency.decimals;
    return `${digits.slice(0, cut)}.${digits.slice(cut)}`;
  }

  /** "12.50 EUR". */
  format(): string {
    return `${this.toString()} ${this.currency.code}`;
  }

  /** The wire form: `{ currency, minor }`. */
  toCbor(): { currency: string; minor: bigint } {
    return { currency: this.currency.code, minor: this.minor };
  }

  /** @throws TallyError CURRENCY_MISMATCH, AMOUNT_OVERFLOW */
  add(other: Amount): Amount {
    this.sameCurrency(other);
    return Amount.of(this.currency, this.minor + other.minor);
  }

  /** @throws TallyError CURRENCY_MISMATCH, AMOUNT_UNDERFLOW */
  sub(other: Amount): Amount {
    this.sameCurrency(other);
    return Amount.of(this.currency, this.minor - other.minor);
  }

  /** -1, 0 or 1. @throws TallyError CURRENCY_MISMATCH */
  compare(other: Amount): -1 | 0 | 1 {
    this.sameCurrency(other);
    return this.minor < other.minor ? -1 : this.minor > other.minor ? 1 : 0;
  }

  /** @throws TallyError CURRENCY_MISMATCH */
  equals(other: Amount): boolean {
    return this.compare(other) === 0;
  }

  isZero(): boolean {
    return this.minor === 0n;
  }

  private sameCurrency(other: Amount): void {
    if (other.currency.code !== this.currency.code || other.currency.decimals !== this.currency.decimals) {
      throw new TallyError('CURRENCY_MISMATCH', `cannot combine ${this.currency.code} with ${other.currency.code}`, {
        left: this.currency.code,
        right: other.currency.code,
      });
    }
  }
}

/** Decodes the wire form `{ currency, minor }` of an amount that must be in `expected`. */
export function amountCodec(expected: Currency): Codec<Amount> {
  const wire = record({ currency: text({ max: 12 }), minor: bigintCodec({ min: 0n, max: AMOUNT_MINOR_MAX }) });
  return {
    expected: `an amount in ${expected.code}`,
    decode(input, path = 'value') {
      const value = wire.decode(input, path);
      if (value.currency !== expected.code) decodeFailure(`${path}.currency`, JSON.stringify(expected.code), JSON.stringify(value.currency));
      return Amount.of(expected, value.minor);
    },
  };
}
