import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fromHex, toHex } from '../../core/bytes.ts';
import { array, record, text, type Infer } from '../../core/codec.ts';
import { isTallyError } from '../../core/errors.ts';
import {
  blind,
  bytesToInt,
  decodePublicKey,
  encodeMessage,
  encodePublicKey,
  finalize,
  intToBytes,
  modInverse,
  modPow,
  modulusLength,
  prepare,
  verify,
  type BlindRsaVariant,
  type RandomBytes,
  type RsaPublicKey,
} from './blind-rsa.ts';
import { blindSign, generateRsaKey, importRsaPrivateKey, rsaPublicKeyOf } from './node-rsa.ts';

/** A random source that hands out the given values in order, checking each requested length. */
function scripted(...values: Uint8Array[]): RandomBytes & { left: () => number } {
  const queue = [...values];
  const source = (length: number): Uint8Array => {
    const next = queue.shift();
    assert.ok(next !== undefined, `random source exhausted (asked for ${length} bytes)`);
    assert.equal(next.length, length, 'random source asked for an unexpected length');
    return next;
  };
  return Object.assign(source, { left: () => queue.length });
}

/** Hex of at most 4096 bits (the RFC's key size), as the vector file holds it. */
const hex = text({ max: 1024, pattern: /^([0-9a-f]{2})*$/, describe: 'lowercase hex' });
/** One vector: the key, the message and every intermediate value of the protocol, under the RFC's names. */
const blindRsaVectorCodec = record({
  name: text({ min: 1, max: 64 }),
  p: hex, q: hex, n: hex, e: hex, d: hex,
  msg: hex, msg_prefix: hex, prepared_msg: hex, salt: hex, encoded_msg: hex,
  inv: hex, blinded_msg: hex, blind_sig: hex, sig: hex,
});
type BlindRsaVector = Infer<typeof blindRsaVectorCodec>;

/** RFC 9474 Appendix A, from test-vectors/ (docs/test-vectors.md). */
const BLIND_RSA_VECTORS = record({ source: text({ min: 1, max: 256 }), vectors: array(blindRsaVectorCodec, { min: 2, max: 2 }) }).decode(
  JSON.parse(readFileSync(new URL('../../../test-vectors/otp/rfc9474-blind-rsa.json', import.meta.url), 'utf8')),
  'rfc9474-blind-rsa.json',
).vectors;

const nodeRandom: RandomBytes = (length) => new Uint8Array(randomBytes(length));

function vectorKey(vector: BlindRsaVector): RsaPublicKey {
  return decodePublicKey(fromHex(vector.n), fromHex(vector.e));
}

function refusedWith(code: string) {
  return (error: unknown) => isTallyError(error) && error.code === code;
}

function variantOf(vector: BlindRsaVector): BlindRsaVariant {
  return vector.msg_prefix === '' ? 'deterministic' : 'randomized';
}

describe('RSA blind signatures: RFC 9474 Appendix A vectors', () => {
  for (const vector of BLIND_RSA_VECTORS) {
    describe(vector.name, () => {
      const key = vectorKey(vector);
      const n = key.n;
      const r = modInverse(bytesToInt(fromHex(vector.inv)), n);
      assert.ok(r !== undefined);
      const rBytes = intToBytes(r, modulusLength(key));
      const variant = variantOf(vector);

      it('prepares the message with the vector prefix', () => {
        const random = scripted(...(variant === 'randomized' ? [fromHex(vector.msg_prefix)] : []));
        assert.equal(toHex(prepare(fromHex(vector.msg), variant, random)), vector.prepared_msg);
        assert.equal(random.left(), 0);
      });

      it('encodes the prepared message (EMSA-PSS, SHA-384, salt 48)', () => {
        assert.equal(toHex(encodeMessage(key, fromHex(vector.prepared_msg), fromHex(vector.salt))), vector.encoded_msg);
      });

      it('blinds to blinded_msg with r = inv^-1, and gives back inv', () => {
        const random = scripted(fromHex(vector.salt), rBytes);
        const blinded = blind(key, fromHex(vector.prepared_msg), random);
        assert.equal(toHex(blinded.blindedMessage), vector.blinded_msg);
        assert.equal(blinded.inverse, bytesToInt(fromHex(vector.inv)));
        assert.equal(random.left(), 0);
      });

      it('the bank signs blinded_msg to blind_sig through node:crypto', () => {
        const privateKey = importRsaPrivateKey({
          n,
          e: key.e,
          d: bytesToInt(fromHex(vector.d)),
          p: bytesToInt(fromHex(vector.p)),
          q: bytesToInt(fromHex(vector.q)),
        });
        assert.equal(rsaPublicKeyOf(privateKey).n, n);
        assert.equal(toHex(blindSign(privateKey, fromHex(vector.blinded_msg))), vector.blind_sig);
      });

      it('finalizes blind_sig to sig, which verifies', () => {
        const sig = finalize(key, fromHex(vector.prepared_msg), fromHex(vector.blind_sig), bytesToInt(fromHex(vector.inv)));
        assert.equal(toHex(sig), vector.sig);
        assert.equal(verify(key, fromHex(vector.prepared_msg), fromHex(vector.sig)), true);
      });

      it('the signature fails on another message, on the bare message and when flipped', () => {
        const prepared = fromHex(vector.prepared_msg);
        const sig = fromHex(vector.sig);
        const other = Uint8Array.from(prepared);
        other[other.length - 1] = (other[other.length - 1] as number) ^ 1;
        assert.equal(verify(key, other, sig), false);
        if (variant === 'randomized') assert.equal(verify(key, fromHex(vector.msg), sig), false);
        const flipped = Uint8Array.from(sig);
        flipped[100] = (flipped[100] as number) ^ 0x40;
        assert.equal(verify(key, prepared, flipped), false);
      });
    });
  }
});

describe('RSA blind signatures: round trips with a fresh 2048-bit key', () => {
  const privateKey = generateRsaKey();
  const key = rsaPublicKeyOf(privateKey);

  it('exports a 2048-bit public key with e = 65537 that survives encoding', () => {
    assert.equal(key.n.toString(2).length, 2048);
    assert.equal(key.e, 65537n);
    const { modulus, exponent } = encodePublicKey(key);
    assert.equal(modulus.length, 256);
    assert.deepEqual(decodePublicKey(modulus, exponent), key);
  });

  for (const variant of ['randomized', 'deterministic'] as const) {
    it(`${variant}: prepare, blind, blind-sign, finalize, verify`, () => {
      const message = new TextEncoder().encode(`a coin serial, ${variant}`);
      const prepared = prepare(message, variant, nodeRandom);
      assert.equal(prepared.length, message.length + (variant === 'randomized' ? 32 : 0));
      const { blindedMessage, inverse } = blind(key, prepared, nodeRandom);
      assert.equal(blindedMessage.length, 256);
      const blindSignature = blindSign(privateKey, blindedMessage, key);
      const signature = finalize(key, prepared, blindSignature, inverse);
      assert.equal(signature.length, 256);
      assert.equal(verify(key, prepared, signature), true);
      assert.equal(verify(key, prepare(message, variant, nodeRandom), signature), variant === 'deterministic');
    });
  }

  it('two blindings of the same message differ (the bank sees unrelated values)', () => {
    const prepared = prepare(new Uint8Array([1, 2, 3]), 'deterministic', nodeRandom);
    const first = blind(key, prepared, nodeRandom);
    const second = blind(key, prepared, nodeRandom);
    assert.notEqual(toHex(first.blindedMessage), toHex(second.blindedMessage));
  });

  it('the raw private operation is m^d: blind_sig^e mod n is the blinded message', () => {
    const { blindedMessage } = blind(key, new Uint8Array([7]), nodeRandom);
    const s = bytesToInt(blindSign(privateKey, blindedMessage));
    assert.equal(modPow(s, key.e, key.n), bytesToInt(blindedMessage));
  });
});

describe('RSA blind signatures: refusals', () => {
  const privateKey = generateRsaKey();
  const key = rsaPublicKeyOf(privateKey);
  const message = new TextEncoder().encode('refusals');

  function signed() {
    const prepared = prepare(message, 'randomized', nodeRandom);
    const { blindedMessage, inverse } = blind(key, prepared, nodeRandom);
    return { prepared, inverse, blindSignature: blindSign(privateKey, blindedMessage, key) };
  }

  it('a signature on another message does not verify, and finalize refuses it', () => {
    const { prepared, inverse, blindSignature } = signed();
    const signature = finalize(key, prepared, blindSignature, inverse);
    const other = prepare(new TextEncoder().encode('another coin'), 'randomized', nodeRandom);
    assert.equal(verify(key, other, signature), false);
    assert.throws(() => finalize(key, other, blindSignature, inverse), refusedWith('SIGNATURE_INVALID'));
  });

  it('finalize refuses a tampered blind signature and a wrong inverse', () => {
    const { prepared, inverse, blindSignature } = signed();
    const tampered = Uint8Array.from(blindSignature);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 1;
    assert.throws(() => finalize(key, prepared, tampered, inverse), refusedWith('SIGNATURE_INVALID'));
    assert.throws(() => finalize(key, prepared, blindSignature, inverse + 1n), refusedWith('SIGNATURE_INVALID'));
  });

  it('finalize refuses a blind signature of the wrong length or not below n', () => {
    const { prepared, inverse, blindSignature } = signed();
    assert.throws(() => finalize(key, prepared, blindSignature.subarray(1), inverse), refusedWith('DECODE_FAILED'));
    assert.throws(() => finalize(key, prepared, new Uint8Array(256).fill(0xff), inverse), refusedWith('DECODE_FAILED'));
  });

  it('verify rejects a truncated, an extended, an all-zero and an out-of-range signature', () => {
    const { prepared, inverse, blindSignature } = signed();
    const signature = finalize(key, prepared, blindSignature, inverse);
    assert.equal(verify(key, prepared, signature), true);
    assert.equal(verify(key, prepared, signature.subarray(0, 255)), false);
    assert.equal(verify(key, prepared, new Uint8Array([0, ...signature])), false);
    assert.equal(verify(key, prepared, new Uint8Array(256)), false);
    assert.equal(verify(key, prepared, intToBytes(key.n, 256)), false);
  });

  it('blindSign refuses a blinded message not below n, and one of the wrong length', () => {
    assert.throws(() => blindSign(privateKey, intToBytes(key.n, 256)), refusedWith('DECODE_FAILED'));
    assert.throws(() => blindSign(privateKey, new Uint8Array(256).fill(0xff)), refusedWith('DECODE_FAILED'));
    assert.throws(() => blindSign(privateKey, new Uint8Array(255).fill(1)), refusedWith('DECODE_FAILED'));
    assert.throws(() => blindSign(privateKey, new Uint8Array(257).fill(1)), refusedWith('DECODE_FAILED'));
  });

  it('blindSign refuses when its result does not match the public key given (the fault check)', () => {
    const otherKey = rsaPublicKeyOf(generateRsaKey());
    const { blindedMessage } = blind(key, new Uint8Array([9]), nodeRandom);
    const below = bytesToInt(blindedMessage) < otherKey.n ? blindedMessage : intToBytes(1234567n, 256);
    assert.throws(() => blindSign(privateKey, below, otherKey), refusedWith('SIGNATURE_INVALID'));
  });

  it('refuses keys of the wrong size: 1024 and 4104 bits, and an even modulus', () => {
    const small = generateRsaKey(1024);
    assert.throws(() => rsaPublicKeyOf(small), refusedWith('KEY_INVALID'));
    assert.throws(() => blindSign(small, new Uint8Array(128).fill(1)), refusedWith('KEY_INVALID'));
    const smallKey = { n: key.n >> 1024n | 1n, e: 65537n };
    assert.throws(() => blind(smallKey, message, nodeRandom), refusedWith('KEY_INVALID'));
    assert.throws(() => verify(smallKey, message, new Uint8Array(128)), refusedWith('KEY_INVALID'));
    const large = new Uint8Array(513).fill(0xff);
    assert.throws(() => decodePublicKey(large, Uint8Array.of(1, 0, 1)), refusedWith('KEY_INVALID'));
    assert.throws(() => decodePublicKey(intToBytes(key.n + 1n, 256), Uint8Array.of(1, 0, 1)), refusedWith('KEY_INVALID'));
  });

  it('decodePublicKey refuses malformed bytes and bad exponents', () => {
    const { modulus } = encodePublicKey(key);
    assert.throws(() => decodePublicKey(new Uint8Array([0, ...modulus]), Uint8Array.of(1, 0, 1)), refusedWith('DECODE_FAILED'));
    assert.throws(() => decodePublicKey(new Uint8Array(0), Uint8Array.of(3)), refusedWith('DECODE_FAILED'));
    assert.throws(() => decodePublicKey(modulus, new Uint8Array(0)), refusedWith('DECODE_FAILED'));
    assert.throws(() => decodePublicKey(modulus, new Uint8Array(9).fill(1)), refusedWith('DECODE_FAILED'));
    assert.throws(() => decodePublicKey(modulus, Uint8Array.of(2)), refusedWith('KEY_INVALID'));
    assert.throws(() => decodePublicKey(modulus, Uint8Array.of(1)), refusedWith('KEY_INVALID'));
  });

  it('importRsaPrivateKey refuses components that do not agree', () => {
    const vector = BLIND_RSA_VECTORS[0];
    assert.ok(vector !== undefined);
    const parts = {
      n: bytesToInt(fromHex(vector.n)),
      e: 65537n,
      d: bytesToInt(fromHex(vector.d)),
      p: bytesToInt(fromHex(vector.p)),
      q: bytesToInt(fromHex(vector.q)),
    };
    assert.throws(() => importRsaPrivateKey({ ...parts, d: parts.d + 2n }), refusedWith('KEY_INVALID'));
    assert.throws(() => importRsaPrivateKey({ ...parts, p: parts.p + 2n }), refusedWith('KEY_INVALID'));
  });

  it('a random source that returns the wrong length is refused', () => {
    assert.throws(() => prepare(message, 'randomized', () => new Uint8Array(31)), RangeError);
    assert.throws(() => blind(key, message, () => new Uint8Array(47)), RangeError);
  });
});
