import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { sm2 } from 'sm-crypto-v2';
import { concatBytes, fromHex, toHex, utf8 } from '../bytes.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { nobleProvider, SM2_DEFAULT_USER_ID, SM2_ORDER, sm2Suite, sm3, SUITE_SIZES } from './index.ts';

// The generic suite tests (sizes, bit flips, lengths, seeds, argument checks, cross-provider) run
// for sm2 in suite.test.ts, which loops over SUITE_NAMES; this file adds what is particular to SM2.

const n = SM2_ORDER;
const p = 0xfffffffeffffffffffffffffffffffffffffffff00000000ffffffffffffffffn;
const CURVE_HEX = {
  a: 'fffffffeffffffffffffffffffffffffffffffff00000000fffffffffffffffc',
  b: '28e9fa9e9d9f5e344d5a9e4bcf6509a7f39789f515ab8f92ddbcbd414d940e93',
  gx: '32c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7',
  gy: 'bc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0',
};

/** The signature example of GM/T 0003.5-2012 annex A.2 on the recommended curve. */
const STANDARD = {
  d: '3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8',
  px: '09f9df311e5421a150dd7d161e4bc5c672179fad1833fc076bb08ff356f35020',
  py: 'ccea490ce26775a52dc6ea718cc1aa600aed05fbf35e084a6632f6072da9ad13',
  message: utf8('message digest'),
  za: 'b2e14c5c79c6df5b85f4fe7ed8db7a262b9da7e07ccb0ea9f4747b8ccda8a4f3',
  e: 'f0b43e94ba45accaace692ed534382eb17e6ab5a19ce7b31f4486fdfc0d28640',
  k: '59276e27d506861a16680f3ad9c02dccef3cc1fa3cdbe4ce6d54b80deac1bc21',
  kgx: '04ebfc718e8d1798620432268e77feb6415e2ede0e073c0f4f640ecd2e149a73',
  r: 'f5a03b0648d2c4630eeac513e1bb81a15944da3827d5b74143ac7eaceee720b3',
  s: 'b1b6aa29df212fd8763182bc0d421ca1bb9038fd1f7f42d4840b69c485bbc1aa',
};

const SEED = new Uint8Array(48).map((_, i) => 200 - i);
const MESSAGE = utf8('tally sm2 message');
const secretKey = sm2Suite.secretKeyFromSeed(SEED);
const publicKey = sm2Suite.publicKey(secretKey);
const signature = sm2Suite.sign(secretKey, MESSAGE);

const scalar = (value: bigint, bytes = 32): Uint8Array => fromHex(value.toString(16).padStart(2 * bytes, '0'));
const numberOf = (bytes: Uint8Array): bigint => BigInt(`0x${toHex(bytes)}`);
const withRS = (r: bigint, s: bigint): Uint8Array => concatBytes(scalar(r), scalar(s));

function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n;
  let b = base % modulus;
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % modulus;
    b = (b * b) % modulus;
  }
  return result;
}

/** Whether some point of the curve has this x (Euler's criterion on x³ + ax + b). */
function xOnCurve(x: bigint): boolean {
  const rhs = (x * x * x + BigInt(`0x${CURVE_HEX.a}`) * x + BigInt(`0x${CURVE_HEX.b}`)) % p;
  return rhs === 0n || modPow(rhs, (p - 1n) / 2n, p) === 1n;
}

/** verify must answer false, never throw. */
function refuses(run: () => boolean, what: string): void {
  let result: boolean;
  try {
    result = run();
  } catch (e) {
    assert.fail(`${what}: verify threw ${String(e)}`);
  }
  assert.equal(result, false, what);
}

describe('sm3', () => {
  it('matches the GB/T 32905 examples', () => {
    assert.equal(toHex(sm3(utf8('abc'))), '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0');
    assert.equal(toHex(sm3(utf8('abcd'.repeat(16)))), 'debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732');
  });

  it("agrees with OpenSSL's SM3 on any input, the empty one included (property)", () => {
    const openssl = (data: Uint8Array) => toHex(createHash('sm3').update(data).digest());
    assert.equal(toHex(sm3(new Uint8Array(0))), openssl(new Uint8Array(0)));
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (data) => toHex(sm3(data)) === openssl(data)), { numRuns: 200 });
  });

  it('takes bytes only', () => {
    assert.throws(() => Reflect.apply(sm3, undefined, ['abc']), TypeError);
  });
});

describe('sm2: the GM/T 0003.5 annex A.2 signature example', () => {
  const keyFromStandard = fromHex(STANDARD.d);
  const compressed = fromHex(`03${STANDARD.px}`); // py is odd
  const standardSignature = fromHex(STANDARD.r + STANDARD.s);

  it('derives the example public key from its secret key', () => {
    assert.equal(BigInt(`0x${STANDARD.py}`) & 1n, 1n);
    assert.deepEqual(sm2Suite.publicKey(keyFromStandard), compressed);
  });

  it('gives the example Z_A and e with our sm3 and the default identity', () => {
    const id = utf8(SM2_DEFAULT_USER_ID);
    const entl = new Uint8Array([(id.length * 8) >> 8, (id.length * 8) & 0xff]);
    const za = sm3(concatBytes(entl, id, ...[CURVE_HEX.a, CURVE_HEX.b, CURVE_HEX.gx, CURVE_HEX.gy, STANDARD.px, STANDARD.py].map(fromHex)));
    assert.equal(toHex(za), STANDARD.za);
    assert.equal(toHex(sm3(concatBytes(za, STANDARD.message))), STANDARD.e);
    assert.equal(toHex(sm2.getZ(`04${STANDARD.px}${STANDARD.py}`)), STANDARD.za, "the library's Z_A agrees");
  });

  it('verifies the example signature, and nothing near it', () => {
    assert.equal(sm2Suite.verify(compressed, standardSignature, STANDARD.message), true);
    refuses(() => sm2Suite.verify(compressed, standardSignature, utf8('message digesT')), 'other message');
    refuses(() => sm2Suite.verify(compressed, withRS(numberOf(standardSignature.subarray(0, 32)) + 1n, numberOf(standardSignature.subarray(32))), STANDARD.message), 'r + 1');
    refuses(() => sm2Suite.verify(fromHex(`02${STANDARD.px}`), standardSignature, STANDARD.message), 'the negated key');
  });

  it('lets the library reproduce r and s from the example k (so its signing equation is the standard one)', () => {
    const made = sm2.doSignature(STANDARD.message, STANDARD.d, {
      hash: true,
      userId: SM2_DEFAULT_USER_ID,
      pointPool: [{ k: BigInt(`0x${STANDARD.k}`), x1: BigInt(`0x${STANDARD.kgx}`) }],
    });
    assert.equal(made, STANDARD.r + STANDARD.s);
  });
});

describe('sm2Suite', () => {
  it('round-trips, with a fresh k each time', () => {
    assert.equal(signature.length, SUITE_SIZES.sm2.signature);
    assert.equal(sm2Suite.verify(publicKey, signature, MESSAGE), true);
    const again = sm2Suite.sign(secretKey, MESSAGE);
    assert.notDeepEqual(again, signature);
    assert.equal(sm2Suite.verify(publicKey, again, MESSAGE), true);
    for (const length of [0, 1, 55, 56, 64, 1000]) {
      const message = new Uint8Array(length).fill(length & 0xff);
      assert.equal(sm2Suite.verify(publicKey, sm2Suite.sign(secretKey, message), message), true, `${length} bytes`);
    }
  });

  it('is the same suite in the noble and the node provider', () => {
    assert.equal(nobleProvider.suites.sm2, sm2Suite);
    // The node provider loads the same implementation on first use (sm2-suite.ts over sm-crypto-v2,
    // not OpenSSL's SM2): same name, same keys, and each side verifies what the other signs.
    const node = nodeProvider.suites.sm2;
    assert.equal(node.name, 'sm2');
    assert.deepEqual(node.publicKey(secretKey), publicKey);
    assert.deepEqual(node.secretKeyFromSeed(new Uint8Array(48).fill(7)), sm2Suite.secretKeyFromSeed(new Uint8Array(48).fill(7)));
    assert.equal(node.verify(publicKey, signature, MESSAGE), true);
    assert.equal(sm2Suite.verify(publicKey, node.sign(secretKey, MESSAGE), MESSAGE), true);
    const tampered = Uint8Array.from(signature);
    tampered[5] = (tampered[5] as number) ^ 1;
    assert.equal(node.verify(publicKey, tampered, MESSAGE), false);
    assert.equal(node.isValidPublicKey(publicKey), true);
    assert.equal(node.isValidPublicKey(new Uint8Array(33)), sm2Suite.isValidPublicKey(new Uint8Array(33)));
  });

  it("interoperates with sm-crypto-v2 called directly (hex, SM3 with Z_A, the library's default identity)", () => {
    const uncompressed = sm2.getPublicKeyFromPrivateKey(toHex(secretKey));
    for (const key of [uncompressed, toHex(publicKey)]) {
      assert.equal(sm2.doVerifySignature(MESSAGE, toHex(signature), key, { hash: true }), true, key.slice(0, 2));
    }
    // Z_A is really part of what is signed: another identity or no preprocessing refuses.
    assert.equal(sm2.doVerifySignature(MESSAGE, toHex(signature), uncompressed, { hash: true, userId: 'ALICE123@YAHOO.COM' }), false);
    assert.equal(sm2.doVerifySignature(MESSAGE, toHex(signature), uncompressed, { hash: false }), false);
    for (let i = 0; i < 5; i++) {
      const pair = sm2.generateKeyPairHex();
      const message = utf8(`from the library ${i}`);
      const theirs = fromHex(sm2.doSignature(message, pair.privateKey, { hash: true }));
      const ourKey = fromHex(sm2.compressPublicKeyHex(pair.publicKey));
      assert.deepEqual(sm2Suite.publicKey(fromHex(pair.privateKey.padStart(64, '0'))), ourKey);
      assert.equal(sm2Suite.verify(ourKey, theirs, message), true);
      refuses(() => sm2Suite.verify(ourKey, theirs, utf8('another message')), 'library signature, other message');
    }
  });

  it('refuses altered messages, altered signatures and other keys', () => {
    refuses(() => sm2Suite.verify(publicKey, signature, utf8('tally sm2 messagE')), 'altered message');
    refuses(() => sm2Suite.verify(publicKey, signature, concatBytes(MESSAGE, new Uint8Array(1))), 'extended message');
    for (let i = 0; i < signature.length; i++) {
      const altered = signature.slice();
      altered[i] = (altered[i] as number) ^ 0x80;
      refuses(() => sm2Suite.verify(publicKey, altered, MESSAGE), `signature byte ${i}`);
    }
    const otherKey = sm2Suite.publicKey(sm2Suite.generateSecretKey());
    refuses(() => sm2Suite.verify(otherKey, signature, MESSAGE), 'other key');
    const flippedParity = publicKey.slice();
    flippedParity[0] = publicKey[0] === 2 ? 3 : 2;
    refuses(() => sm2Suite.verify(flippedParity, signature, MESSAGE), 'the negated key');
  });

  it('refuses wrong lengths, points off the curve and out-of-range r or s', () => {
    let offCurveX = 1n;
    while (xOnCurve(offCurveX)) offCurveX++;
    const offCurve = concatBytes(new Uint8Array([2]), scalar(offCurveX));
    const uncompressed = fromHex(sm2.getPublicKeyFromPrivateKey(toHex(secretKey)));
    const r = numberOf(signature.subarray(0, 32));
    const s = numberOf(signature.subarray(32));
    const keys: [string, Uint8Array][] = [
      ['off-curve x', offCurve],
      ['off-curve x, odd prefix', concatBytes(new Uint8Array([3]), scalar(offCurveX))],
      ['x = p', concatBytes(new Uint8Array([2]), scalar(p))],
      ['x = 2^256 - 1', fromHex(`02${'ff'.repeat(32)}`)],
      ['prefix 04 on 33 bytes', concatBytes(new Uint8Array([4]), publicKey.subarray(1))],
      ['prefix 00', concatBytes(new Uint8Array([0]), publicKey.subarray(1))],
      ['uncompressed 65-byte point', uncompressed],
      ['32 bytes', publicKey.subarray(1)],
      ['34 bytes', concatBytes(publicKey, new Uint8Array(1))],
      ['empty', new Uint8Array(0)],
    ];
    for (const [what, key] of keys) {
      refuses(() => sm2Suite.verify(key, signature, MESSAGE), what);
      assert.equal(sm2Suite.isValidPublicKey(key), false, what);
    }
    const signatures: [string, Uint8Array][] = [
      ['r = 0', withRS(0n, s)],
      ['s = 0', withRS(r, 0n)],
      ['r = s = 0', withRS(0n, 0n)],
      ['r = n', withRS(n, s)],
      ['s = n', withRS(r, n)],
      ['r = 2^256 - 1', withRS(2n ** 256n - 1n, s)],
      ['s = 2^256 - 1', withRS(r, 2n ** 256n - 1n)],
      ['r + s = n', withRS(n - s, s)],
      ['63 bytes', signature.subarray(0, 63)],
      ['65 bytes', concatBytes(signature, new Uint8Array(1))],
      ['DER-sized 72 bytes', new Uint8Array(72).fill(0x30)],
      ['empty', new Uint8Array(0)],
    ];
    for (const [what, sig] of signatures) refuses(() => sm2Suite.verify(publicKey, sig, MESSAGE), what);
  });

  it('answers false, never throws, for garbage of any shape (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 70 }), fc.uint8Array({ minLength: 0, maxLength: 70 }), fc.uint8Array({ maxLength: 40 }), (key, sig, message) => {
        refuses(() => sm2Suite.verify(key, sig, message), 'random lengths');
      }),
      { numRuns: 100 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 33, maxLength: 33 }), fc.uint8Array({ minLength: 64, maxLength: 64 }), (key, sig) => {
        refuses(() => sm2Suite.verify(key, sig, MESSAGE), 'random bytes of the right lengths');
      }),
      { numRuns: 100 },
    );
    for (const args of [['key', signature, MESSAGE], [publicKey, 'sig', MESSAGE], [publicKey, signature, 'message'], [null, null, null], [[...publicKey], [...signature], [...MESSAGE]]]) {
      refuses(() => Reflect.apply(sm2Suite.verify, sm2Suite, args) as boolean, `untyped ${JSON.stringify(args).slice(0, 30)}`);
    }
  });

  it('derives keys deterministically inside [1, n-2], and refuses n-1 and other non-keys', () => {
    assert.deepEqual(sm2Suite.secretKeyFromSeed(SEED), secretKey);
    assert.deepEqual(sm2Suite.secretKeyFromSeed(SEED.slice()), secretKey);
    assert.equal(toHex(sm2Suite.secretKeyFromSeed(new Uint8Array(48))), '00'.repeat(31) + '01');
    assert.equal(numberOf(sm2Suite.secretKeyFromSeed(scalar(n - 3n, 48))), n - 2n, 'largest key');
    assert.equal(numberOf(sm2Suite.secretKeyFromSeed(scalar(n - 2n, 48))), 1n, 'wraps to 1');
    const fromMax = numberOf(sm2Suite.secretKeyFromSeed(new Uint8Array(48).fill(0xff)));
    assert.equal(fromMax, ((2n ** 384n - 1n) % (n - 2n)) + 1n);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 48, maxLength: 64 }), (seed) => {
        const d = numberOf(sm2Suite.secretKeyFromSeed(seed));
        return d >= 1n && d <= n - 2n && sm2Suite.secretKeyFromSeed(seed).length === 32;
      }),
      { numRuns: 100 },
    );
    // d = 1 gives the base point; d = n - 2 is the last key that can sign.
    assert.deepEqual(sm2Suite.publicKey(scalar(1n)), fromHex(`02${CURVE_HEX.gx}`));
    const last = scalar(n - 2n);
    assert.equal(sm2Suite.verify(sm2Suite.publicKey(last), sm2Suite.sign(last, MESSAGE), MESSAGE), true);
    for (const [what, bad] of [['0', 0n], ['n - 1', n - 1n], ['n', n], ['2^256 - 1', 2n ** 256n - 1n]] as const) {
      assert.throws(() => sm2Suite.publicKey(scalar(bad)), RangeError, what);
      assert.throws(() => sm2Suite.sign(scalar(bad), MESSAGE), RangeError, what);
    }
  });

  it('tells valid compressed points from the rest', () => {
    assert.equal(sm2Suite.isValidPublicKey(publicKey), true);
    assert.equal(sm2Suite.isValidPublicKey(fromHex(`02${CURVE_HEX.gx}`)), true);
    assert.equal(sm2Suite.isValidPublicKey(fromHex(`03${CURVE_HEX.gx}`)), true, '-G');
    assert.equal(sm2Suite.isValidPublicKey(fromHex(`03${STANDARD.px}`)), true);
    for (let i = 0; i < 10; i++) assert.equal(sm2Suite.isValidPublicKey(sm2Suite.publicKey(sm2Suite.generateSecretKey())), true);
    assert.equal(Reflect.apply(sm2Suite.isValidPublicKey, sm2Suite, [toHex(publicKey)]), false, 'a hex string');
  });
});
