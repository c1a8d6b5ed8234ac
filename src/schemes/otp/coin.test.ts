/**
 * A coin withdrawn blindly and checked by the player: a coin the class key signed, carrying its
 * class's program, passes; an unknown class, another program (even one with a correct checksum),
 * another class's signature, an altered serial or prefix, and a forged signature are refused.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import type { KeyObject } from 'node:crypto';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { isTallyError } from '../../core/errors.ts';
import { blind, encodePublicKey, finalize, prepare, type RsaPublicKey } from './blind-rsa.ts';
import { checkCoin, coinCodec, coinMessage, programDigest, type Coin, type CoinClass } from './coin.ts';
import { blindSign, generateRsaKey, rsaPublicKeyOf } from './node-rsa.ts';
import { buildProgram, programChecksum, type Program } from './program.ts';

const program = buildProgram(2, [{ kind: 'checkMaxHops', hops: 5 }]);
let keys: { privateKey: KeyObject; publicKey: RsaPublicKey; coinClass: CoinClass }[] = [];

function classFor(privateKey: KeyObject, id: number, p: Program): { privateKey: KeyObject; publicKey: RsaPublicKey; coinClass: CoinClass } {
  const publicKey = rsaPublicKeyOf(privateKey);
  const { modulus, exponent } = encodePublicKey(publicKey);
  return { privateKey, publicKey, coinClass: { classId: new Uint8Array(16).fill(id), denomination: '500', currency: 'EUR', programDigest: programDigest(p), modulus, exponent } };
}

before(() => {
  keys = [classFor(generateRsaKey(), 1, program), classFor(generateRsaKey(), 2, program)];
});

/** The withdrawal as it runs: the wallet blinds, the bank signs blind, the wallet finalizes. */
function withdraw(k: { privateKey: KeyObject; publicKey: RsaPublicKey; coinClass: CoinClass }): Coin {
  const serial = randomBytes(32);
  const prepared = prepare(coinMessage(serial, k.coinClass.classId), 'randomized', randomBytes);
  const { blindedMessage, inverse } = blind(k.publicKey, prepared, randomBytes);
  const signature = finalize(k.publicKey, prepared, blindSign(k.privateKey, blindedMessage), inverse);
  return { serial, classId: k.coinClass.classId, prefix: prepared.subarray(0, 32), signature, program };
}

const classes = () => (id: Uint8Array) => keys.map((k) => k.coinClass).find((c) => c.classId[0] === id[0] && id.every((b) => b === id[0]));
const refusedFor = (fault: string) => (e: unknown) => isTallyError(e, 'OTP_COIN_INVALID') && e.details.fault === fault;

test('a coin signed blindly by its class key, with its class program, passes; it survives the wire', () => {
  const coin = coinCodec.decode(decodeCbor(encodeCbor(withdraw(keys[0]!))));
  const checked = checkCoin(coin, classes());
  assert.equal(checked.coinClass.denomination, '500');
  assert.deepEqual(checked.program.conditions, [{ kind: 'checkMaxHops', hops: 5 }]);
});

test('the blinded message the bank signs shares nothing with the coin it becomes', () => {
  const k = keys[0]!;
  const serial = randomBytes(32);
  const prepared = prepare(coinMessage(serial, k.coinClass.classId), 'randomized', randomBytes);
  const { blindedMessage, inverse } = blind(k.publicKey, prepared, randomBytes);
  const blindSignature = blindSign(k.privateKey, blindedMessage);
  const signature = finalize(k.publicKey, prepared, blindSignature, inverse);
  const seenByBank = Buffer.concat([blindedMessage, blindSignature]).toString('hex');
  for (const part of [serial, prepared.subarray(0, 32), signature]) {
    for (let at = 0; at + 8 <= part.length; at += 8) assert.ok(!seenByBank.includes(Buffer.from(part.subarray(at, at + 8)).toString('hex')), 'no 8-byte run of the coin appears in what the bank saw');
  }
});

test('an unknown class, or a program other than the class program, is refused', () => {
  const coin = withdraw(keys[0]!);
  assert.throws(() => checkCoin({ ...coin, classId: new Uint8Array(16).fill(9) }, classes()), refusedFor('class-unknown'));
  const other = buildProgram(2, [{ kind: 'checkMaxHops', hops: 50 }]);
  assert.throws(() => checkCoin({ ...coin, program: other }, classes()), refusedFor('program'), 'a consistent program of its own is still not the class program');
  const ops = [...program.instructions, { op: 'sendOTP' }];
  assert.throws(() => checkCoin({ ...coin, program: { ...program, instructions: ops, checksum: programChecksum(ops) } }, classes()), refusedFor('program'));
});

test("another class's signature, an altered serial or prefix, or a forged signature is refused", () => {
  const coin = withdraw(keys[0]!);
  const fromOther = withdraw(keys[1]!);
  assert.throws(() => checkCoin({ ...coin, signature: fromOther.signature }, classes()), refusedFor('signature'));
  assert.throws(() => checkCoin({ ...fromOther, classId: keys[0]!.coinClass.classId }, classes()), refusedFor('signature'), 'a coin of class 2 passed off as class 1');
  const serial = Uint8Array.from(coin.serial);
  serial[0] = (serial[0] as number) ^ 1;
  assert.throws(() => checkCoin({ ...coin, serial }, classes()), refusedFor('signature'));
  const prefix = Uint8Array.from(coin.prefix);
  prefix[31] = (prefix[31] as number) ^ 1;
  assert.throws(() => checkCoin({ ...coin, prefix }, classes()), refusedFor('signature'));
  const signature = Uint8Array.from(coin.signature);
  signature[100] = (signature[100] as number) ^ 1;
  assert.throws(() => checkCoin({ ...coin, signature }, classes()), refusedFor('signature'));
  assert.throws(() => checkCoin({ ...coin, signature: new Uint8Array(256) }, classes()), (e: unknown) => isTallyError(e, 'OTP_COIN_INVALID') || isTallyError(e, 'DECODE_FAILED'));
});
