import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { p256 } from '@noble/curves/nist.js';
import { concatBytes, fromHex, toHex, utf8 } from '../core/bytes.ts';
import { sha256 } from '../core/crypto/hash.ts';
import { isTallyError } from '../core/errors.ts';
import {
  expectedPcrValue,
  parseAttest,
  parseSignature,
  pcrDigest,
  verifyQuote,
  TPM_ALG_SHA256,
  TPM_ATTEST_BYTES_MAX,
  type VerifyQuoteOptions,
} from './tpm-quote.ts';

/** One quote captured from swtpm by scripts/capture-tpm-quote.ts. */
const vector = JSON.parse(readFileSync(new URL('../../test-vectors/tpm/swtpm-quote.json', import.meta.url), 'utf8')) as Record<string, string>;
const hex = (name: string): Uint8Array => fromHex(vector[name] as string);
const captured: VerifyQuoteOptions = {
  attest: hex('attest'),
  signature: hex('signature'),
  akPublicKey: hex('akPublicKey'),
  nonce: hex('nonce'),
  pcrs: [23],
  expectedPcrValues: [expectedPcrValue([hex('measurement')])],
};

/** A TPM_QUOTE_INVALID refusal of this field, with a message that names it. */
function refused(field: string) {
  return (e: unknown): boolean => {
    assert.ok(isTallyError(e, 'TPM_QUOTE_INVALID'), String(e));
    assert.equal(e.details.field, field, e.message);
    assert.ok(e.message.startsWith(`TPM quote: ${field}: `), e.message);
    return true;
  };
}

const u16 = (n: number) => Uint8Array.of(n >> 8, n & 0xff);
const u32 = (n: number) => Uint8Array.of(n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
const u64 = (n: bigint) => concatBytes(u32(Number(n >> 32n)), u32(Number(n & 0xffffffffn)));
const sized = (b: Uint8Array) => concatBytes(u16(b.length), b);

/** A copy of bytes with the bits of mask flipped in byte at. */
function flipped(bytes: Uint8Array, at: number, mask: number): Uint8Array {
  const out = bytes.slice();
  out[at] = (out[at] as number) ^ mask;
  return out;
}

interface AttestParts {
  magic?: number;
  type?: number;
  signer?: Uint8Array;
  extraData?: Uint8Array;
  safe?: number;
  selections?: { hash: number; select: Uint8Array }[];
  selectionCount?: number;
  digest?: Uint8Array;
}

/** A TPMS_ATTEST marshalled by hand, field by field, as TPM 2.0 Part 2 lays it out. */
function buildAttest(parts: AttestParts = {}): Uint8Array {
  const selections = parts.selections ?? [{ hash: TPM_ALG_SHA256, select: Uint8Array.of(0, 0, 0x80) }];
  return concatBytes(
    u32(parts.magic ?? 0xff544347),
    u16(parts.type ?? 0x8018),
    sized(parts.signer ?? concatBytes(u16(TPM_ALG_SHA256), new Uint8Array(32).fill(0x5a))),
    sized(parts.extraData ?? utf8('nonce')),
    u64(123_456n), u32(7), u32(2), Uint8Array.of(parts.safe ?? 1),
    u64(0x2019102300163636n),
    u32(parts.selectionCount ?? selections.length),
    ...selections.map((s) => concatBytes(u16(s.hash), Uint8Array.of(s.select.length), s.select)),
    sized(parts.digest ?? pcrDigest([expectedPcrValue([sha256(utf8('build'))])])),
  );
}

describe('a quote captured from swtpm', () => {
  it('verifies, and decodes to the nonce, PCR 23 of the SHA-256 bank and the digest of its value', () => {
    const quote = verifyQuote(captured);
    assert.deepEqual(quote.extraData, captured.nonce);
    assert.deepEqual(quote.pcrSelect, [{ hashAlg: TPM_ALG_SHA256, pcrs: [23] }]);
    assert.deepEqual(quote.pcrDigest, pcrDigest([hex('pcrValue')]));
    assert.equal(toHex(quote.qualifiedSigner.subarray(0, 2)), '000b', 'the signer is named by a SHA-256 name');
    assert.equal(quote.qualifiedSigner.length, 34);
    assert.equal(typeof quote.clockInfo.clock, 'bigint');
    assert.deepEqual(hex('pcrValue'), expectedPcrValue([hex('measurement')]), 'the PCR holds exactly one extension by the measurement');
  });

  it('accepts the AK as a raw point, uncompressed or compressed, as well as SPKI DER', () => {
    const point = captured.akPublicKey.subarray(captured.akPublicKey.length - 65);
    verifyQuote({ ...captured, akPublicKey: point });
    verifyQuote({ ...captured, akPublicKey: p256.Point.fromBytes(point).toBytes(true) });
  });

  it('refuses a flipped bit in every byte of the attest and in the signature', () => {
    for (let i = 0; i < captured.attest.length; i++) {
      const attest = flipped(captured.attest, i, 1 << (i % 8));
      assert.throws(() => verifyQuote({ ...captured, attest }), (e) => isTallyError(e, 'TPM_QUOTE_INVALID'), `attest byte ${i}`);
    }
    for (const at of [0, 17, 32, 63]) {
      const signature = flipped(captured.signature, at, 0x01);
      assert.throws(() => verifyQuote({ ...captured, signature }), refused('signature'));
    }
  });

  it('refuses a changed byte in the signed part with the reason signature', () => {
    const attest = flipped(captured.attest, captured.attest.length - 1, 0xff); // the last byte of pcrDigest: still decodes
    assert.throws(() => verifyQuote({ ...captured, attest }), refused('signature'));
  });

  it('refuses another nonce (a replayed quote)', () => {
    const nonce = flipped(captured.nonce, 0, 0x01);
    assert.throws(() => verifyQuote({ ...captured, nonce }), refused('nonce'));
    assert.throws(() => verifyQuote({ ...captured, nonce: captured.nonce.subarray(1) }), refused('nonce'));
  });

  it('refuses when another measurement, two, or none was expected in the PCR', () => {
    for (const measurements of [[sha256(utf8('another build'))], [hex('measurement'), hex('measurement')], []]) {
      assert.throws(() => verifyQuote({ ...captured, expectedPcrValues: [expectedPcrValue(measurements)] }), refused('pcrValue'));
    }
  });

  it('refuses a quote checked against another AK of the same TPM', () => {
    assert.throws(() => verifyQuote({ ...captured, akPublicKey: hex('otherAkPublicKey') }), refused('signature'));
  });

  it('refuses a selection other than the expected PCRs', () => {
    assert.throws(() => verifyQuote({ ...captured, pcrs: [16] }), refused('pcrSelection'));
    assert.throws(() => verifyQuote({ ...captured, pcrs: [16, 23], expectedPcrValues: [new Uint8Array(32), captured.expectedPcrValues[0] as Uint8Array] }), refused('pcrSelection'));
  });

  it('refuses an AK key that is not a P-256 point', () => {
    for (const key of [new Uint8Array(65), captured.akPublicKey.subarray(1), new Uint8Array(0)]) {
      assert.throws(() => verifyQuote({ ...captured, akPublicKey: key }), (e) => isTallyError(e, 'KEY_INVALID') && /P-256/.test(e.message));
    }
  });

  it('is refused when truncated anywhere, extended by a byte, or oversized', () => {
    for (let length = 0; length < captured.attest.length; length++) {
      assert.throws(() => parseAttest(captured.attest.subarray(0, length)), (e) => isTallyError(e, 'TPM_QUOTE_INVALID') && /truncated/.test(e.message), `length ${length}`);
    }
    assert.throws(() => parseAttest(concatBytes(captured.attest, Uint8Array.of(0))), refused('trailing'));
    assert.throws(() => verifyQuote({ ...captured, attest: concatBytes(captured.attest, Uint8Array.of(0)) }), refused('trailing'));
    assert.throws(() => parseAttest(new Uint8Array(TPM_ATTEST_BYTES_MAX + 1)), refused('attest'));
  });
});

describe('hand-built TPMS_ATTEST', () => {
  it('decodes field by field', () => {
    const quote = parseAttest(buildAttest({ selections: [{ hash: TPM_ALG_SHA256, select: Uint8Array.of(0x01, 0, 0x81) }] }));
    assert.deepEqual(quote.extraData, utf8('nonce'));
    assert.deepEqual(quote.clockInfo, { clock: 123_456n, resetCount: 7, restartCount: 2, safe: true });
    assert.equal(quote.firmwareVersion, 0x2019102300163636n);
    assert.deepEqual(quote.pcrSelect, [{ hashAlg: TPM_ALG_SHA256, pcrs: [0, 16, 23] }]);
  });

  it('refuses a wrong magic, a wrong type, a bad safe flag, and each oversized field', () => {
    const cases: [AttestParts, string][] = [
      [{ magic: 0xff544348 }, 'magic'],
      [{ type: 0x8017 }, 'type'], // TPM_ST_ATTEST_CERTIFY: a signed attest, but not a quote
      [{ safe: 2 }, 'clockInfo.safe'],
      [{ signer: new Uint8Array(67) }, 'qualifiedSigner'],
      [{ extraData: new Uint8Array(67) }, 'extraData'],
      [{ digest: new Uint8Array(65) }, 'pcrDigest'],
      [{ selectionCount: 17 }, 'pcrSelect.count'],
      [{ selections: [{ hash: TPM_ALG_SHA256, select: new Uint8Array(5) }] }, 'pcrSelect[0].sizeofSelect'],
      [{ selections: [{ hash: TPM_ALG_SHA256, select: new Uint8Array(0) }] }, 'pcrSelect[0].sizeofSelect'],
    ];
    for (const [parts, field] of cases) assert.throws(() => parseAttest(buildAttest(parts)), refused(field), field);
  });

  it('names the field a short read stops in', () => {
    const countsTwo = buildAttest({ selectionCount: 2 });
    assert.throws(() => parseAttest(countsTwo.subarray(0, countsTwo.length - 34)), refused('pcrSelect[1].hash'), 'the digest cut off too');
    const attest = buildAttest();
    assert.throws(() => parseAttest(attest.subarray(0, attest.length - 1)), refused('pcrDigest'));
  });

  it('signed by a key of our own: only the exact selection and digest verify', () => {
    const secret = p256.utils.randomSecretKey();
    const akPublicKey = p256.getPublicKey(secret, false);
    const value = expectedPcrValue([sha256(utf8('build'))]);
    const check = (parts: AttestParts, pcrs = [23], values = [value]) => {
      const attest = buildAttest(parts);
      const signature = p256.sign(sha256(attest), secret, { prehash: false, lowS: false });
      return verifyQuote({ attest, signature, akPublicKey, nonce: utf8('nonce'), pcrs, expectedPcrValues: values });
    };
    check({});
    const zero = new Uint8Array(32);
    // The TPM hashes the values in PCR order, whatever order the verifier lists them in.
    const both = { selections: [{ hash: TPM_ALG_SHA256, select: Uint8Array.of(0, 0, 0x81) }], digest: pcrDigest([zero, value]) };
    check(both, [23, 16], [value, zero]);
    assert.throws(() => check({ ...both, digest: pcrDigest([value, zero]) }, [23, 16], [value, zero]), refused('pcrValue'));
    assert.throws(() => check({ selections: [{ hash: 0x0004, select: Uint8Array.of(0, 0, 0x80) }] }), refused('pcrSelection'), 'the SHA-1 bank');
    const twoBanks = [{ hash: TPM_ALG_SHA256, select: Uint8Array.of(0, 0, 0x80) }, { hash: 0x0004, select: Uint8Array.of(0, 0, 0) }];
    assert.throws(() => check({ selections: twoBanks }), refused('pcrSelection'), 'a second bank, even empty');
    assert.throws(() => check({ selections: [] }), refused('pcrSelection'));
  });
});

describe('PCR arithmetic and the signature form', () => {
  it('extends as the TPM does: v = SHA-256(v ‖ m) from zero', () => {
    const [a, b] = [sha256(utf8('a')), sha256(utf8('b'))];
    assert.deepEqual(expectedPcrValue([]), new Uint8Array(32));
    assert.deepEqual(expectedPcrValue([a, b]), sha256(concatBytes(sha256(concatBytes(new Uint8Array(32), a)), b)));
    assert.deepEqual(pcrDigest([a, b]), sha256(concatBytes(a, b)));
    assert.throws(() => expectedPcrValue([new Uint8Array(31)]), RangeError);
    assert.throws(() => pcrDigest([new Uint8Array(33)]), RangeError);
  });

  it('reads a TPMT_SIGNATURE into r ‖ s, padding a short scalar, refusing anything else', () => {
    const r = new Uint8Array(32).fill(0x11);
    const s = concatBytes(new Uint8Array(1), new Uint8Array(31).fill(0x22));
    const tpmt = (alg: number, hash: number, rr: Uint8Array, ss: Uint8Array) => concatBytes(u16(alg), u16(hash), sized(rr), sized(ss));
    assert.deepEqual(parseSignature(tpmt(0x0018, 0x000b, r, s)), concatBytes(r, s));
    assert.deepEqual(parseSignature(tpmt(0x0018, 0x000b, r, s.subarray(1))), concatBytes(r, s), 'a dropped leading zero');
    assert.throws(() => parseSignature(tpmt(0x0014, 0x000b, r, s)), refused('signature.sigAlg'));
    assert.throws(() => parseSignature(tpmt(0x0018, 0x0004, r, s)), refused('signature.hash'));
    assert.throws(() => parseSignature(tpmt(0x0018, 0x000b, concatBytes(r, Uint8Array.of(0)), s)), refused('signature.signatureR'));
    assert.throws(() => parseSignature(concatBytes(tpmt(0x0018, 0x000b, r, s), Uint8Array.of(0))), refused('trailing'));
    assert.throws(() => verifyQuote({ ...captured, signature: concatBytes(captured.signature, Uint8Array.of(0)) }), refused('signature'));
  });

  it('refuses misuse: unpaired PCRs and values, a PCR out of range or repeated', () => {
    const value = captured.expectedPcrValues[0] as Uint8Array;
    assert.throws(() => verifyQuote({ ...captured, pcrs: [], expectedPcrValues: [] }), RangeError);
    assert.throws(() => verifyQuote({ ...captured, pcrs: [23, 16] }), RangeError);
    assert.throws(() => verifyQuote({ ...captured, pcrs: [24] }), RangeError);
    assert.throws(() => verifyQuote({ ...captured, pcrs: [23, 23], expectedPcrValues: [value, value] }), RangeError);
  });
});
