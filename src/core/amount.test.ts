import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Amount, amountCodec, AMOUNT_MINOR_MAX, CURRENCY_DECIMALS_MAX, currency } from './amount.ts';
import { decodeCbor, encodeCbor } from './cbor.ts';
import { isTallyError, type ErrorCode } from './errors.ts';

const EUR = currency('EUR', 2);
const USD = currency('USD', 2);
const JPY = currency('JPY', 0);
const ETH = currency('ETH', 18);

function code(run: () => unknown): ErrorCode {
  try {
    run();
  } catch (e) {
    if (isTallyError(e)) return e.code;
    throw e;
  }
  assert.fail('should have thrown a TallyError');
}

describe('currency', () => {
  it('accepts 3 to 12 capitals or digits and 0 to 18 decimals, frozen', () => {
    const c = currency('EURT2', 18);
    assert.deepEqual({ ...c }, { code: 'EURT2', decimals: 18 });
    assert.ok(Object.isFrozen(c));
    assert.equal(CURRENCY_DECIMALS_MAX, 18);
  });

  it('refuses malformed codes and decimals with RangeError', () => {
    for (const bad of ['eur', 'EU', '1EU', 'EUR-', 'ABCDEFGHIJKLM', '']) assert.throws(() => currency(bad, 2), RangeError, bad);
    for (const bad of [-1, 19, 1.5, NaN]) assert.throws(() => currency('EUR', bad), RangeError, String(bad));
  });
});

describe('Amount.parse and toString', () => {
  it('round-trips the usual forms', () => {
    const cases: [string, typeof EUR, bigint, string][] = [
      ['12.50', EUR, 1250n, '12.50'],
      ['12.5', EUR, 1250n, '12.50'],
      ['0.05', EUR, 5n, '0.05'],
      ['7', EUR, 700n, '7.00'],
      ['0', EUR, 0n, '0.00'],
      ['7', JPY, 7n, '7'],
      ['0', JPY, 0n, '0'],
      ['1', ETH, 10n ** 18n, '1.000000000000000000'],
      ['0.000000000000000001', ETH, 1n, '0.000000000000000001'],
      ['9.223372036854775807', ETH, AMOUNT_MINOR_MAX, '9.223372036854775807'],
      ['9223372036854775807', JPY, AMOUNT_MINOR_MAX, '9223372036854775807'],
      ['92233720368547758.07', EUR, AMOUNT_MINOR_MAX, '92233720368547758.07'],
    ];
    for (const [text, cur, minor, printed] of cases) {
      const amount = Amount.parse(text, cur);
      assert.equal(amount.minor, minor, text);
      assert.equal(amount.toString(), printed, text);
      assert.equal(Amount.parse(amount.toString(), cur).minor, minor, text);
    }
    assert.equal(Amount.parse('12.50', EUR).format(), '12.50 EUR');
  });

  it('refuses signs, exponents, spaces, leading zeros and other forms with AMOUNT_INVALID', () => {
    for (const bad of ['-1', '+1', '1e5', '1E5', ' 1', '1 ', '01', '00', '00.5', '.5', '1.', '1,00', '1_000', '', '0x10', 'NaN', 'Infinity', '١', '1.2.3']) {
      assert.equal(code(() => Amount.parse(bad, EUR)), 'AMOUNT_INVALID', JSON.stringify(bad));
    }
  });

  it('refuses more decimals than the currency has', () => {
    assert.equal(code(() => Amount.parse('1.234', EUR)), 'AMOUNT_INVALID');
    assert.equal(code(() => Amount.parse('1.0', JPY)), 'AMOUNT_INVALID');
    assert.equal(code(() => Amount.parse('1.500', EUR)), 'AMOUNT_INVALID');
    assert.equal(code(() => Amount.parse('0.0000000000000000001', ETH)), 'AMOUNT_INVALID');
  });

  it('refuses amounts beyond 2^63 - 1 minor units with AMOUNT_OVERFLOW', () => {
    assert.equal(code(() => Amount.parse('9223372036854775808', JPY)), 'AMOUNT_OVERFLOW');
    assert.equal(code(() => Amount.parse('92233720368547758.08', EUR)), 'AMOUNT_OVERFLOW');
    assert.equal(code(() => Amount.parse('9.223372036854775808', ETH)), 'AMOUNT_OVERFLOW');
    assert.equal(code(() => Amount.parse('10', ETH)), 'AMOUNT_OVERFLOW');
    // Well-formed but far too long: still an overflow, not "malformed".
    assert.equal(code(() => Amount.parse('1' + '0'.repeat(30), JPY)), 'AMOUNT_OVERFLOW');
    assert.equal(code(() => Amount.parse('9'.repeat(100_000), EUR)), 'AMOUNT_OVERFLOW');
  });

  it('keeps error messages and details short for long input', () => {
    for (const input of ['1.' + '0'.repeat(100_000), 'x'.repeat(100_000), '9'.repeat(100_000)]) {
      try {
        Amount.parse(input, EUR);
        assert.fail('should have thrown');
      } catch (e) {
        assert.ok(isTallyError(e));
        assert.ok(e.message.length < 200, e.message.slice(0, 300));
        assert.ok(JSON.stringify(e.details).length < 200);
      }
    }
  });

  it('round-trips toString → parse for every amount and decimals', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: CURRENCY_DECIMALS_MAX }), fc.bigInt({ min: 0n, max: AMOUNT_MINOR_MAX }), (decimals, minor) => {
        const cur = currency('TST', decimals);
        const amount = Amount.of(cur, minor);
        const text = amount.toString();
        assert.match(text, decimals === 0 ? /^(0|[1-9][0-9]*)$/ : new RegExp(`^(0|[1-9][0-9]*)\\.[0-9]{${decimals}}$`));
        assert.equal(Amount.parse(text, cur).minor, minor);
      }),
      { numRuns: 500 },
    );
  });
});

describe('Amount.of and zero', () => {
  it('holds minor units from 0 to 2^63 - 1, immutably', () => {
    const a = Amount.of(EUR, 5n);
    assert.equal(a.minor, 5n);
    assert.equal(a.currency, EUR);
    assert.ok(Object.isFrozen(a));
    assert.equal(Amount.of(EUR, AMOUNT_MINOR_MAX).minor, 2n ** 63n - 1n);
    assert.ok(Amount.zero(EUR).isZero());
    assert.equal(Amount.of(EUR, 1n).isZero(), false);
  });

  it('refuses negative and too large values', () => {
    assert.equal(code(() => Amount.of(EUR, -1n)), 'AMOUNT_UNDERFLOW');
    assert.equal(code(() => Amount.of(EUR, AMOUNT_MINOR_MAX + 1n)), 'AMOUNT_OVERFLOW');
  });
});

describe('arithmetic', () => {
  it('adds and subtracts, checked', () => {
    const a = Amount.parse('12.50', EUR);
    const b = Amount.parse('0.75', EUR);
    assert.equal(a.add(b).toString(), '13.25');
    assert.equal(a.sub(b).toString(), '11.75');
    assert.ok(a.sub(a).isZero());
    assert.equal(code(() => Amount.of(EUR, AMOUNT_MINOR_MAX).add(Amount.of(EUR, 1n))), 'AMOUNT_OVERFLOW');
    assert.equal(Amount.of(EUR, AMOUNT_MINOR_MAX - 1n).add(Amount.of(EUR, 1n)).minor, AMOUNT_MINOR_MAX);
    assert.equal(code(() => b.sub(a)), 'AMOUNT_UNDERFLOW');
    assert.equal(code(() => Amount.zero(EUR).sub(Amount.of(EUR, 1n))), 'AMOUNT_UNDERFLOW');
  });

  it('compares and tests equality', () => {
    const one = Amount.of(EUR, 100n);
    const two = Amount.of(EUR, 200n);
    assert.equal(one.compare(two), -1);
    assert.equal(two.compare(one), 1);
    assert.equal(one.compare(Amount.of(EUR, 100n)), 0);
    assert.ok(one.equals(Amount.parse('1', EUR)));
    assert.equal(one.equals(two), false);
  });

  it('refuses to combine currencies, also with the same code and other decimals', () => {
    const eur = Amount.of(EUR, 1n);
    const usd = Amount.of(USD, 1n);
    for (const op of [() => eur.add(usd), () => eur.sub(usd), () => eur.compare(usd), () => eur.equals(usd)]) {
      assert.equal(code(op), 'CURRENCY_MISMATCH');
    }
    try {
      eur.add(usd);
    } catch (e) {
      assert.ok(isTallyError(e, 'CURRENCY_MISMATCH'));
      assert.deepEqual(e.details, { left: 'EUR', right: 'USD' });
    }
    assert.equal(code(() => eur.add(Amount.of(currency('EUR', 3), 1n))), 'CURRENCY_MISMATCH');
  });

  it('keeps a + b - b = a and never leaves the range (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: AMOUNT_MINOR_MAX }), fc.bigInt({ min: 0n, max: AMOUNT_MINOR_MAX }), (x, y) => {
        const a = Amount.of(EUR, x);
        const b = Amount.of(EUR, y);
        if (x + y > AMOUNT_MINOR_MAX) assert.equal(code(() => a.add(b)), 'AMOUNT_OVERFLOW');
        else assert.equal(a.add(b).sub(b).minor, x);
        if (x < y) assert.equal(code(() => a.sub(b)), 'AMOUNT_UNDERFLOW');
        else assert.equal(a.sub(b).add(b).minor, x);
      }),
      { numRuns: 300 },
    );
  });
});

describe('amountCodec', () => {
  const codec = amountCodec(EUR);

  it('decodes the CBOR wire form back to an equal amount', () => {
    for (const minor of [0n, 1n, 1250n, 2n ** 53n + 1n, AMOUNT_MINOR_MAX]) {
      const amount = Amount.of(EUR, minor);
      assert.deepEqual(amount.toCbor(), { currency: 'EUR', minor });
      const decoded = codec.decode(decodeCbor(encodeCbor(amount)), 'payment.amount');
      assert.ok(decoded.equals(amount));
      assert.equal(decoded.currency, EUR);
    }
  });

  it('refuses another currency, naming the path', () => {
    try {
      codec.decode({ currency: 'USD', minor: 5 }, 'payment.amount');
      assert.fail('should have thrown');
    } catch (e) {
      assert.ok(isTallyError(e, 'DECODE_FAILED'));
      assert.equal(e.message, 'payment.amount.currency: expected "EUR", got "USD"');
    }
  });

  it('refuses negative, too large, fractional and missing minor units, and extra fields', () => {
    const messages: [unknown, string][] = [
      [{ currency: 'EUR', minor: -1 }, `payment.amount.minor: expected an integer in [0, ${AMOUNT_MINOR_MAX}], got integer -1`],
      [{ currency: 'EUR', minor: AMOUNT_MINOR_MAX + 1n }, `payment.amount.minor: expected an integer in [0, ${AMOUNT_MINOR_MAX}], got integer ${AMOUNT_MINOR_MAX + 1n}`],
      [{ currency: 'EUR', minor: 1.5 }, `payment.amount.minor: expected an integer in [0, ${AMOUNT_MINOR_MAX}], got number 1.5`],
      [{ currency: 'EUR' }, `payment.amount.minor: expected an integer in [0, ${AMOUNT_MINOR_MAX}], got nothing`],
      [{ currency: 'EUR', minor: 1, memo: 'x' }, 'payment.amount.memo: expected no such field, got an unknown field'],
      [{ currency: 'EURO-LONG-CODE', minor: 1 }, 'payment.amount.currency: expected text of 0 to 12 characters, got text "EURO-LONG-CODE"'],
      ['12.50', 'payment.amount: expected a record with currency, minor, got text "12.50"'],
    ];
    for (const [input, expected] of messages) {
      try {
        codec.decode(input, 'payment.amount');
        assert.fail(`should refuse ${expected}`);
      } catch (e) {
        assert.ok(isTallyError(e, 'DECODE_FAILED'), String(e));
        assert.equal(e.message, expected);
      }
    }
  });

  it('uses "value" as the default path', () => {
    assert.throws(() => codec.decode(null), { message: 'value: expected a record with currency, minor, got null' });
  });
});
