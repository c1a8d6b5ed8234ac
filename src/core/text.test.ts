import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fromBase64url, toBase64url } from './bytes.ts';
import { encodeCbor } from './cbor.ts';
import * as c from './codec.ts';
import { sha256 } from './crypto/hash.ts';
import { isTallyError, type ErrorCode } from './errors.ts';
import { decodeText, encodeText, TEXT_CHARS_MAX, TEXT_PREFIX } from './text.ts';

const tokenCodec = c.record({
  kind: c.literal('note'),
  serial: c.bytes({ length: 16 }),
  value: c.bigint({ min: 0n, max: 2n ** 63n - 1n }),
  memo: c.optional(c.text({ max: 64 })),
});
const sample = { kind: 'note' as const, serial: new Uint8Array(16).map((_, i) => i * 7), value: 1250n, memo: 'lunch' };
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function code(run: () => unknown): ErrorCode {
  try {
    run();
  } catch (e) {
    if (isTallyError(e)) return e.code;
    throw e;
  }
  assert.fail('should have thrown a TallyError');
}

describe('encodeText / decodeText', () => {
  it('round-trips a value', () => {
    const token = encodeText(sample);
    assert.ok(token.startsWith(TEXT_PREFIX));
    assert.equal(TEXT_PREFIX, 'tally1');
    assert.match(token.slice(TEXT_PREFIX.length), /^[A-Za-z0-9_-]+$/);
    assert.deepEqual(decodeText(token, tokenCodec), sample);
  });

  it('is base64url of the CBOR and 4 bytes of SHA-256("tally1" ‖ CBOR)', () => {
    const cbor = encodeCbor(sample);
    const raw = fromBase64url(encodeText(sample).slice(TEXT_PREFIX.length));
    assert.deepEqual(raw.subarray(0, cbor.length), cbor);
    const check = sha256(new Uint8Array([...new TextEncoder().encode('tally1'), ...cbor])).subarray(0, 4);
    assert.deepEqual(raw.subarray(cbor.length), check);
  });

  it('ignores surrounding white space', () => {
    assert.deepEqual(decodeText(`  \n${encodeText(sample)}\t `, tokenCodec), sample);
  });

  it('round-trips random values (property)', () => {
    const arb = fc.record({
      kind: fc.constant('note' as const),
      serial: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      value: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
      memo: fc.option(
        fc.string({ unit: fc.integer({ min: 0x20, max: 0x10ffff }).filter((cp) => cp < 0xd800 || cp > 0xdfff).map((cp) => String.fromCodePoint(cp)), maxLength: 32 }),
        { nil: undefined },
      ),
    });
    fc.assert(
      fc.property(arb, (value) => {
        const decoded = decodeText(encodeText(value), tokenCodec);
        assert.deepEqual(decoded.serial, value.serial);
        assert.equal(decoded.value, value.value);
        assert.equal(decoded.memo, value.memo);
      }),
      { numRuns: 200 },
    );
  });

  it('runs the codec on the content, naming the path "token"', () => {
    const token = encodeText({ ...sample, serial: new Uint8Array(15) });
    assert.throws(() => decodeText(token, tokenCodec), { code: 'DECODE_FAILED', message: 'token.serial: expected 16 bytes, got 15 bytes' });
    assert.throws(() => decodeText(token, tokenCodec, 'qr'), { message: 'qr.serial: expected 16 bytes, got 15 bytes' });
  });
});

describe('decodeText refuses damage', () => {
  const token = encodeText(sample);

  it('a one-character change anywhere, with TEXT_CHECKSUM or TEXT_INVALID', () => {
    const alphabet = B64URL + '.=+/ ~é';
    for (let i = 0; i < token.length; i++) {
      for (const ch of alphabet) {
        if (ch === token[i]) continue;
        const changed = token.slice(0, i) + ch + token.slice(i + 1);
        const got = code(() => decodeText(changed, tokenCodec));
        assert.ok(got === 'TEXT_CHECKSUM' || got === 'TEXT_INVALID', `position ${i} → ${JSON.stringify(ch)}: ${got}`);
      }
    }
  });

  it('a one-character change in a random token (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 60 }), fc.nat(), fc.constantFrom(...B64URL), (payload, at, ch) => {
        const t = encodeText({ kind: 'note', payload });
        const i = TEXT_PREFIX.length + (at % (t.length - TEXT_PREFIX.length));
        fc.pre(t[i] !== ch);
        const changed = t.slice(0, i) + ch + t.slice(i + 1);
        const got = code(() => decodeText(changed, c.record({ kind: c.literal('note'), payload: c.bytes({ max: 60 }) })));
        assert.ok(got === 'TEXT_CHECKSUM' || got === 'TEXT_INVALID', got);
      }),
      { numRuns: 500 },
    );
  });

  it('every truncation', () => {
    for (let n = 0; n < token.length; n++) {
      const got = code(() => decodeText(token.slice(0, n), tokenCodec));
      assert.ok(got === 'TEXT_CHECKSUM' || got === 'TEXT_INVALID', `cut to ${n}: ${got}`);
    }
    assert.throws(() => decodeText(TEXT_PREFIX, tokenCodec), { code: 'TEXT_INVALID', details: { reason: 'short' } });
    assert.throws(() => decodeText(TEXT_PREFIX + 'AAAAAA', tokenCodec), { code: 'TEXT_INVALID', details: { reason: 'short' } });
  });

  it('a wrong or missing prefix', () => {
    const body = token.slice(TEXT_PREFIX.length);
    for (const wrong of ['', 'tally2', 'Tally1', 'TALLY1', 'tally', 'xtally1', 'cashu1']) {
      assert.throws(() => decodeText(wrong + body, tokenCodec), { code: 'TEXT_INVALID', details: { reason: 'prefix' } }, wrong);
    }
  });

  it('padding, other alphabets and inner white space', () => {
    for (const bad of [token + '=', token.replace(/[-_]|[A-Z]/, '+'), token.slice(0, 10) + ' ' + token.slice(10), token + '\u0000']) {
      assert.equal(code(() => decodeText(bad, tokenCodec)), 'TEXT_INVALID', JSON.stringify(bad.slice(-4)));
    }
  });

  it('a correct checksum over CBOR that is not canonical', () => {
    const cbor = new Uint8Array([0x18, 0x01]);
    const check = sha256(new Uint8Array([...new TextEncoder().encode('tally1'), ...cbor])).subarray(0, 4);
    const forged = TEXT_PREFIX + toBase64url(new Uint8Array([...cbor, ...check]));
    assert.equal(code(() => decodeText(forged, c.uint({ max: 9 }))), 'CBOR_MALFORMED');
  });
});

describe('size limits', () => {
  it('decodeText refuses an oversized token with TOO_LARGE before decoding it', () => {
    const huge = TEXT_PREFIX + 'A'.repeat(TEXT_CHARS_MAX);
    try {
      decodeText(huge, tokenCodec);
      assert.fail('should be too large');
    } catch (e) {
      assert.ok(isTallyError(e, 'TOO_LARGE'));
      assert.deepEqual(e.details, { what: 'text token', size: TEXT_CHARS_MAX + TEXT_PREFIX.length, max: TEXT_CHARS_MAX });
    }
  });

  it('accepts the largest token encodeText makes, and encodeText refuses larger ones', () => {
    const blob = c.record({ b: c.bytes({ max: 60_000 }) });
    // {b: n bytes} is n + 6 bytes of CBOR, n + 10 with the checksum: 6 + ceil((n + 10) * 4 / 3) characters.
    const fits = new Uint8Array(49_137);
    const token = encodeText({ b: fits });
    assert.equal(token.length, TEXT_CHARS_MAX);
    assert.equal(decodeText(token, blob).b.length, fits.length);
    const over = new Uint8Array(49_138);
    assert.throws(() => encodeText({ b: over }), { code: 'TOO_LARGE' });
  });

  it('encodeText throws TypeError for values CBOR cannot carry', () => {
    assert.throws(() => encodeText({ x: 1.5 }), TypeError);
  });
});
