import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { bytesToNumberBE, bytesToNumberLE, numberToBytesBE, numberToBytesLE } from '@noble/curves/utils.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { createNodeProvider, nodeProvider } from '../../providers/node-crypto.ts';
import { concatBytes, fromHex, toHex, utf8 } from '../bytes.ts';
import { isTallyError } from '../errors.ts';
import {
  aeadOpen,
  aeadSeal,
  checkBytes,
  ethereumAddress,
  formatEthereumAddress,
  hkdf,
  keccak256,
  nobleProvider,
  publicKeyCodec,
  randomBytes,
  recoverEthereumAddress,
  requireRecordSignature,
  sha256,
  signedBytes,
  signerFromSecret,
  signRecord,
  suiteFor,
  SUITE_NAMES,
  SUITE_SIZES,
  verifyRecord,
  type CryptoProvider,
  type SuiteName,
} from './index.ts';

const PROVIDERS: readonly CryptoProvider[] = [nobleProvider, nodeProvider, createNodeProvider()];
const SEED = new Uint8Array(48).map((_, i) => i + 1);
const MESSAGE = utf8('tally test message');

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = bytes.slice();
  out[bit >> 3] = (out[bit >> 3] as number) ^ (1 << (bit & 7));
  return out;
}

/** A spread of bit positions: every byte gets one flipped bit, at varying places. */
function bitsToFlip(length: number): number[] {
  const step = Math.max(1, Math.floor(length / 12));
  const bits: number[] = [];
  for (let byte = 0; byte < length; byte += step) bits.push(byte * 8 + (byte % 8));
  bits.push(length * 8 - 1);
  return bits;
}

/** verify must answer false, never throw. */
function refuses(verify: () => boolean, what: string): void {
  let result: boolean;
  try {
    result = verify();
  } catch (e) {
    assert.fail(`${what}: verify threw ${String(e)}`);
  }
  assert.equal(result, false, what);
}

for (const provider of PROVIDERS) {
  describe(`provider ${provider.name}`, () => {
    it('offers every suite under its own name', () => {
      assert.deepEqual(Object.keys(provider.suites).sort(), [...SUITE_NAMES].sort());
      for (const name of SUITE_NAMES) assert.equal(suiteFor(provider, name).name, name);
    });

    for (const name of SUITE_NAMES) {
      describe(name, () => {
        const suite = provider.suites[name];
        const sizes = SUITE_SIZES[name];
        const secretKey = suite.secretKeyFromSeed(SEED);
        const publicKey = suite.publicKey(secretKey);
        const signature = suite.sign(secretKey, MESSAGE);

        it('signs and verifies, with the sizes of SUITE_SIZES', () => {
          assert.equal(secretKey.length, sizes.secretKey);
          assert.equal(publicKey.length, sizes.publicKey);
          assert.equal(signature.length, sizes.signature);
          assert.equal(suite.verify(publicKey, signature, MESSAGE), true);
          assert.equal(suite.isValidPublicKey(publicKey), true);
          const fresh = suite.generateSecretKey();
          assert.equal(fresh.length, sizes.secretKey);
          assert.notDeepEqual(fresh, suite.generateSecretKey());
          const freshKey = suite.publicKey(fresh);
          assert.equal(suite.verify(freshKey, suite.sign(fresh, new Uint8Array(0)), new Uint8Array(0)), true);
          refuses(() => suite.verify(freshKey, signature, MESSAGE), 'signature by another key');
        });

        it('refuses a flipped bit in public key, message or signature', () => {
          for (const bit of bitsToFlip(publicKey.length)) refuses(() => suite.verify(flipBit(publicKey, bit), signature, MESSAGE), `public key bit ${bit}`);
          for (const bit of bitsToFlip(MESSAGE.length)) refuses(() => suite.verify(publicKey, signature, flipBit(MESSAGE, bit)), `message bit ${bit}`);
          for (const bit of bitsToFlip(signature.length)) refuses(() => suite.verify(publicKey, flipBit(signature, bit), MESSAGE), `signature bit ${bit}`);
        });

        it('refuses inputs of the wrong length', () => {
          const cases: [string, Uint8Array, Uint8Array][] = [
            ['short key', publicKey.subarray(0, publicKey.length - 1), signature],
            ['long key', concatBytes(publicKey, new Uint8Array(1)), signature],
            ['empty key', new Uint8Array(0), signature],
            ['short signature', publicKey, signature.subarray(0, signature.length - 1)],
            ['long signature', publicKey, concatBytes(signature, new Uint8Array(1))],
            ['empty signature', publicKey, new Uint8Array(0)],
            ['all-zero signature', publicKey, new Uint8Array(signature.length)],
            ['all-zero key', new Uint8Array(publicKey.length), signature],
          ];
          for (const [what, key, sig] of cases) refuses(() => suite.verify(key, sig, MESSAGE), what);
          assert.equal(suite.isValidPublicKey(publicKey.subarray(1)), false);
          assert.equal(suite.isValidPublicKey(new Uint8Array(0)), false);
        });

        it('derives the same key from the same seed, another from another, and refuses short seeds', () => {
          assert.deepEqual(suite.secretKeyFromSeed(SEED), secretKey);
          assert.deepEqual(suite.secretKeyFromSeed(concatBytes(SEED, new Uint8Array(16))), secretKey, 'only 48 bytes count');
          assert.notDeepEqual(suite.secretKeyFromSeed(flipBit(SEED, 0)), secretKey);
          assert.deepEqual(suite.secretKeyFromSeed(SEED.slice()), nobleProvider.suites[name].secretKeyFromSeed(SEED), 'same key in every provider');
          assert.throws(() => suite.secretKeyFromSeed(SEED.subarray(0, 47)), RangeError);
          assert.throws(() => suite.secretKeyFromSeed(new Uint8Array(0)), RangeError);
        });

        it('checks argument types and lengths on entry', () => {
          assert.throws(() => suite.publicKey(secretKey.subarray(1)), RangeError);
          assert.throws(() => suite.sign(concatBytes(secretKey, new Uint8Array(1)), MESSAGE), RangeError);
          // Reflect.apply: what untyped JavaScript callers could pass.
          assert.throws(() => Reflect.apply(suite.sign, suite, [secretKey, 'text']), TypeError);
          assert.throws(() => Reflect.apply(suite.sign, suite, [[...secretKey], MESSAGE]), TypeError);
        });

        it('gives the same public key as noble and is verified by every other provider', () => {
          assert.deepEqual(publicKey, nobleProvider.suites[name].publicKey(secretKey));
          for (const other of PROVIDERS) assert.equal(other.suites[name].verify(publicKey, signature, MESSAGE), true, `${provider.name} → ${other.name}`);
        });
      });
    }
  });
}

describe('cross-provider agreement', () => {
  for (const name of ['ed25519', 'p256'] as const) {
    it(`${name}: node signatures verify with noble and noble signatures with node`, () => {
      for (let i = 0; i < 5; i++) {
        const secretKey = nobleProvider.suites[name].generateSecretKey();
        const message = randomBytes(i * 40);
        const byNode = nodeProvider.suites[name].sign(secretKey, message);
        const byNoble = nobleProvider.suites[name].sign(secretKey, message);
        const publicKey = nodeProvider.suites[name].publicKey(secretKey);
        assert.equal(nobleProvider.suites[name].verify(publicKey, byNode, message), true);
        assert.equal(nodeProvider.suites[name].verify(publicKey, byNoble, message), true);
      }
    });

    it(`${name}: both providers give the same answer for damaged signatures (property)`, () => {
      const secretKey = nobleProvider.suites[name].secretKeyFromSeed(SEED);
      const publicKey = nobleProvider.suites[name].publicKey(secretKey);
      const signature = nobleProvider.suites[name].sign(secretKey, MESSAGE);
      fc.assert(
        fc.property(fc.nat({ max: signature.length - 1 }), fc.integer({ min: 0, max: 255 }), fc.boolean(), (at, byte, inKey) => {
          const key = publicKey.slice();
          const sig = signature.slice();
          if (inKey) key[at % key.length] = byte;
          else sig[at] = byte;
          assert.equal(nodeProvider.suites[name].verify(key, sig, MESSAGE), nobleProvider.suites[name].verify(key, sig, MESSAGE));
        }),
        { numRuns: 60 },
      );
    });
  }

  it('ed25519: a small-order public key never verifies (anyone could forge for it)', () => {
    const identity = fromHex('01' + '00'.repeat(31));
    const order8 = fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a');
    assert.ok(ed25519.Point.fromBytes(order8).isSmallOrder());
    for (const key of [identity, order8]) {
      for (const r of [identity, order8]) {
        const forged = concatBytes(r, new Uint8Array(32));
        for (const provider of PROVIDERS) refuses(() => provider.suites.ed25519.verify(key, forged, MESSAGE), `${provider.name} ${toHex(key).slice(0, 8)}`);
      }
    }
  });

  it('ed25519: signatures whose R or key has a small-order part get the same answer from node and noble', () => {
    const L = ed25519.Point.Fn.ORDER;
    const B = ed25519.Point.BASE;
    const T = ed25519.Point.fromBytes(fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a'));
    const { scalar: a, point: A } = ed25519.utils.getExtendedPublicKey(nobleProvider.suites.ed25519.secretKeyFromSeed(SEED));
    /** S = r + H(R ‖ A ‖ M)·a over chosen R and A encodings: what a signer holding the scalar can make. */
    const craft = (rPoint: typeof B, aBytes: Uint8Array, r: bigint): Uint8Array => {
      const rBytes = rPoint.toBytes();
      const k = bytesToNumberLE(sha512(concatBytes(rBytes, aBytes, MESSAGE))) % L;
      return concatBytes(rBytes, numberToBytesLE((r + k * a) % L, 32));
    };
    for (let i = 1n; i <= 8n; i++) {
      const r = (bytesToNumberLE(sha512(numberToBytesLE(i, 8))) % (L - 1n)) + 1n;
      // R with a small-order part, honest key: RFC 8032 lets a verifier check with or without the cofactor.
      const torsionR = craft(B.multiply(r).add(T), A.toBytes(), r);
      // A key with a small-order part (not itself small-order), honest R.
      const mixedKey = A.add(T).toBytes();
      const mixedSig = craft(B.multiply(r), mixedKey, r);
      for (const [what, key, sig] of [['torsion R', A.toBytes(), torsionR], ['mixed-order key', mixedKey, mixedSig]] as const) {
        const reference = nobleProvider.suites.ed25519.verify(key, sig, MESSAGE);
        for (const provider of PROVIDERS) assert.equal(provider.suites.ed25519.verify(key, sig, MESSAGE), reference, `${what} ${i}: ${provider.name}`);
      }
    }
  });

  it('p256: both providers accept the high-s twin of a signature, as documented', () => {
    const n = p256.Point.Fn.ORDER;
    const secretKey = nobleProvider.suites.p256.secretKeyFromSeed(SEED);
    const publicKey = nobleProvider.suites.p256.publicKey(secretKey);
    const signature = nodeProvider.suites.p256.sign(secretKey, MESSAGE);
    const s = bytesToNumberBE(signature.subarray(32));
    const twin = concatBytes(signature.subarray(0, 32), numberToBytesBE(n - s, 32));
    for (const provider of PROVIDERS) assert.equal(provider.suites.p256.verify(publicKey, twin, MESSAGE), true, provider.name);
  });
});

describe('secp256k1 and Ethereum', () => {
  const suite = nobleProvider.suites.secp256k1;
  const secretKey = suite.secretKeyFromSeed(SEED);
  const publicKey = { suite: 'secp256k1' as const, key: suite.publicKey(secretKey) };

  it('signs r ‖ s ‖ v with v = 27 or 28 and low s; recovers to the ethereumAddress of the key', () => {
    for (let i = 0; i < 6; i++) {
      const message = utf8(`payment ${i}`);
      const signature = suite.sign(secretKey, message);
      assert.ok(signature[64] === 27 || signature[64] === 28);
      assert.ok(bytesToNumberBE(signature.subarray(32, 64)) <= 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n);
      assert.deepEqual(recoverEthereumAddress(signature, message), ethereumAddress(publicKey));
      assert.notDeepEqual(recoverEthereumAddress(signature, utf8('other')), ethereumAddress(publicKey));
    }
  });

  it('refuses the signature with the other v, which ecrecover would read as another signer', () => {
    const signature = suite.sign(secretKey, MESSAGE);
    const otherV = signature.slice();
    otherV[64] = signature[64] === 27 ? 28 : 27;
    assert.notDeepEqual(recoverEthereumAddress(otherV, MESSAGE), ethereumAddress(publicKey));
    for (const provider of PROVIDERS) refuses(() => provider.suites.secp256k1.verify(publicKey.key, otherV, MESSAGE), provider.name);
  });

  it('refuses the high-s twin and v outside 27, 28', () => {
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    const signature = suite.sign(secretKey, MESSAGE);
    const s = bytesToNumberBE(signature.subarray(32, 64));
    const twin = concatBytes(signature.subarray(0, 32), numberToBytesBE(n - s, 32), new Uint8Array([signature[64] === 27 ? 28 : 27]));
    refuses(() => suite.verify(publicKey.key, twin, MESSAGE), 'high s');
    for (const v of [0, 1, 26, 29, 255]) {
      const bad = signature.slice();
      bad[64] = v;
      refuses(() => suite.verify(publicKey.key, bad, MESSAGE), `v = ${v}`);
      assert.equal(recoverEthereumAddress(bad, MESSAGE), null);
    }
    assert.equal(recoverEthereumAddress(signature.subarray(0, 64), MESSAGE), null);
    const zeroR = signature.slice();
    zeroR.fill(0, 0, 32);
    assert.equal(recoverEthereumAddress(zeroR, MESSAGE), null);
    refuses(() => suite.verify(publicKey.key, zeroR, MESSAGE), 'r = 0');
  });

  it('derives the well-known address of secret key 1', () => {
    const one = new Uint8Array(32);
    one[31] = 1;
    const address = ethereumAddress({ suite: 'secp256k1', key: suite.publicKey(one) });
    assert.equal(formatEthereumAddress(address), '0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf');
  });

  it('formats EIP-55 checksums (the EIP-55 test vectors)', () => {
    for (const expected of [
      '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed',
      '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359',
      '0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB',
      '0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb',
      '0x52908400098527886E0F7030069857D2E4169EE7',
      '0x8617E340B3D01FA5F11F306F4090FD50E238070D',
      '0xde709f2102306220921060314715629080e2fb77',
      '0x27b1fdb04752bbc536007a920d24acb045561c26',
    ]) {
      assert.equal(formatEthereumAddress(fromHex(expected.slice(2))), expected);
    }
    assert.throws(() => formatEthereumAddress(new Uint8Array(19)), RangeError);
  });

  it('refuses keys of other suites and points off the curve with KEY_INVALID', () => {
    const ed = nobleProvider.suites.ed25519;
    assert.throws(() => ethereumAddress({ suite: 'ed25519', key: ed.publicKey(ed.secretKeyFromSeed(SEED)) }), { code: 'KEY_INVALID' });
    assert.throws(() => ethereumAddress({ suite: 'secp256k1', key: fromHex('02' + 'ff'.repeat(32)) }), { code: 'KEY_INVALID' });
  });
});

describe('signed records', () => {
  const TAG = 'tally/test/payment/v1';
  const record = { amount: 1250n, payee: new Uint8Array(32).fill(3), memo: 'lunch' };

  for (const name of SUITE_NAMES) {
    it(`${name}: a signature covers exactly one tag and one record`, () => {
      for (const provider of [nobleProvider, nodeProvider]) {
        const signer = signerFromSecret(provider.suites[name], provider.suites[name].secretKeyFromSeed(SEED));
        assert.equal(signer.publicKey.suite, name);
        const signature = signRecord(signer, TAG, record);
        assert.equal(verifyRecord(provider, signer.publicKey, TAG, record, signature), true);
        assert.equal(verifyRecord(nobleProvider, signer.publicKey, TAG, { memo: 'lunch', payee: record.payee, amount: 1250 }, signature), true, 'key order and integer form do not matter');
        refuses(() => verifyRecord(provider, signer.publicKey, 'tally/test/payment/v2', record, signature), 'other tag');
        refuses(() => verifyRecord(provider, signer.publicKey, 'tally/test/refund/v1', record, signature), 'other kind');
        refuses(() => verifyRecord(provider, signer.publicKey, TAG, { ...record, amount: 1251n }, signature), 'changed amount');
        refuses(() => verifyRecord(provider, signer.publicKey, TAG, { ...record, extra: 0 }, signature), 'added field');
        refuses(() => verifyRecord(provider, signer.publicKey, TAG, [record], signature), 'wrapped record');
        requireRecordSignature(provider, signer.publicKey, TAG, record, signature);
        assert.throws(() => requireRecordSignature(provider, signer.publicKey, 'tally/test/other/v1', record, signature), (e: unknown) => {
          assert.ok(isTallyError(e, 'SIGNATURE_INVALID'));
          assert.deepEqual(e.details, { tag: 'tally/test/other/v1' });
          return true;
        });
      }
    });
  }

  it('signs the CBOR of [tag, record], and refuses malformed tags with RangeError', () => {
    assert.equal(toHex(signedBytes('tally/a/v1', { x: 1 })), '82' + '6a' + toHex(utf8('tally/a/v1')) + 'a1617801');
    for (const bad of ['', 'tally/v1', 'tally/Payment/v1', 'other/payment/v1', 'tally/payment', 'tally//payment/v1', 'tally/payment/v1/']) {
      assert.throws(() => signedBytes(bad, {}), RangeError, bad);
    }
  });

  it('names an unknown suite with SUITE_UNKNOWN', () => {
    assert.throws(() => suiteFor(nobleProvider, 'rsa'), { code: 'SUITE_UNKNOWN', details: { suite: 'rsa' } });
    for (const inherited of ['toString', 'constructor', '__proto__', 'hasOwnProperty']) {
      assert.throws(() => suiteFor(nobleProvider, inherited), { code: 'SUITE_UNKNOWN' }, inherited);
    }
    const key = { suite: 'sm9' as SuiteName, key: new Uint8Array(33) };
    assert.throws(() => verifyRecord(nobleProvider, key, TAG, record, new Uint8Array(64)), { code: 'SUITE_UNKNOWN' });
  });
});

describe('publicKeyCodec', () => {
  it('accepts the key length of each suite', () => {
    for (const name of SUITE_NAMES) {
      const key = new Uint8Array(SUITE_SIZES[name].publicKey).fill(2);
      assert.deepEqual(publicKeyCodec.decode({ suite: name, key }), { suite: name, key });
    }
  });

  it("refuses another suite's key length, naming the path", () => {
    const cases: [unknown, string][] = [
      [{ suite: 'ed25519', key: new Uint8Array(33) }, 'cert.key.key: expected 32 bytes, got 33 bytes'],
      [{ suite: 'p256', key: new Uint8Array(32) }, 'cert.key.key: expected 33 bytes, got 32 bytes'],
      [{ suite: 'secp256k1', key: new Uint8Array(32) }, 'cert.key.key: expected 33 bytes, got 32 bytes'],
      [{ suite: 'sm2', key: new Uint8Array(32) }, 'cert.key.key: expected 33 bytes, got 32 bytes'],
      [{ suite: 'rsa', key: new Uint8Array(32) }, 'cert.key.suite: expected one of "ed25519", "p256", "secp256k1", "sm2", got text "rsa"'],
      [{ suite: 'ed25519', key: new Uint8Array(64) }, 'cert.key.key: expected 32 to 33 bytes, got 64 bytes'],
      [{ suite: 'ed25519' }, 'cert.key.key: expected 32 to 33 bytes, got nothing'],
      [{ suite: 'ed25519', key: new Uint8Array(32), extra: 1 }, 'cert.key.extra: expected no such field, got an unknown field'],
    ];
    for (const [input, message] of cases) assert.throws(() => publicKeyCodec.decode(input, 'cert.key'), { code: 'DECODE_FAILED', message });
  });
});

describe('checkBytes', () => {
  it('throws TypeError for a wrong type and RangeError for a wrong length', () => {
    checkBytes('x', new Uint8Array(2), 2);
    checkBytes('x', new Uint8Array(5));
    assert.throws(() => Reflect.apply(checkBytes, undefined, ['x', [1, 2]]), { name: 'TypeError', message: 'x: expected a Uint8Array' });
    assert.throws(() => checkBytes('x', new Uint8Array(3), 2), { name: 'RangeError', message: 'x: expected 2 bytes, got 3' });
  });
});

describe('hashes, HKDF, randomness', () => {
  it('keccak256 and sha256 match their standard vectors', () => {
    assert.equal(toHex(keccak256(new Uint8Array(0))), 'c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470');
    assert.equal(toHex(sha256(utf8('abc'))), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('hkdf matches RFC 5869 test case 1, with info as bytes or text', () => {
    const ikm = new Uint8Array(22).fill(0x0b);
    const salt = fromHex('000102030405060708090a0b0c');
    const okm = '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865';
    assert.equal(toHex(hkdf({ ikm, salt, info: fromHex('f0f1f2f3f4f5f6f7f8f9'), length: 42 })), okm);
    assert.deepEqual(hkdf({ ikm, info: 'tally/srk/v1', length: 32 }), hkdf({ ikm, salt: undefined, info: utf8('tally/srk/v1'), length: 32 }));
    assert.notDeepEqual(hkdf({ ikm, info: 'a', length: 32 }), hkdf({ ikm, info: 'b', length: 32 }));
  });

  it('randomBytes gives fresh bytes of the asked length', () => {
    assert.equal(randomBytes(0).length, 0);
    assert.equal(randomBytes(48).length, 48);
    assert.notDeepEqual(randomBytes(32), randomBytes(32));
  });
});

describe('aeadSeal / aeadOpen', () => {
  const key = hkdf({ ikm: SEED, info: 'tally/test/aead/v1', length: 32 });
  const aad = utf8('state v7');
  const plaintext = utf8('sealed trusted-app state');

  it('round-trips, with a fresh nonce each time', () => {
    const box = aeadSeal(key, plaintext, aad);
    assert.equal(box.length, 24 + plaintext.length + 16);
    assert.deepEqual(aeadOpen(key, box, aad), plaintext);
    assert.notDeepEqual(aeadSeal(key, plaintext, aad), box);
    assert.deepEqual(aeadOpen(key, aeadSeal(key, new Uint8Array(0), aad), aad), new Uint8Array(0));
  });

  it('refuses any tampered byte, another AAD, another key or a short box with AEAD_FAILED', () => {
    const box = aeadSeal(key, plaintext, aad);
    const fails = (run: () => unknown, what: string) => assert.throws(run, (e: unknown) => isTallyError(e, 'AEAD_FAILED'), what);
    for (let i = 0; i < box.length; i++) fails(() => aeadOpen(key, flipBit(box, i * 8 + (i % 8)), aad), `byte ${i}`);
    fails(() => aeadOpen(key, box, utf8('state v8')), 'other AAD');
    fails(() => aeadOpen(key, box, new Uint8Array(0)), 'empty AAD');
    fails(() => aeadOpen(flipBit(key, 0), box, aad), 'other key');
    fails(() => aeadOpen(key, box.subarray(0, 39), aad), 'short box');
    fails(() => aeadOpen(key, box.subarray(0, box.length - 1), aad), 'cut box');
    fails(() => aeadOpen(key, concatBytes(box, new Uint8Array(1)), aad), 'longer box');
  });

  it('refuses keys that are not 32 bytes with RangeError', () => {
    assert.throws(() => aeadSeal(new Uint8Array(31), plaintext, aad), RangeError);
    assert.throws(() => aeadOpen(new Uint8Array(33), new Uint8Array(64), aad), RangeError);
  });
});
