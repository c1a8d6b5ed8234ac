/**
 * An OTP bank's publication to the other banks: the live classes of three epochs (every
 * denomination, 2048-bit keys) fit the two tiers' 16 KiB; what a reader rebuilds is the bank's own
 * class entries (the same digests, so checkCoin passes on a coin of the bank); more epochs than the
 * bound keep the newest; altered or oversized bodies do not decode.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeCbor } from '../../core/cbor.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { isTallyError } from '../../core/errors.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret } from '../../core/crypto/suite.ts';
import { blind, encodePublicKey, finalize } from './blind-rsa.ts';
import { checkCoin, classKey, preparedCoinMessage, programDigest } from './coin.ts';
import type { ClassEntry } from './messages.ts';
import { DENOMINATIONS } from './node-classes.ts';
import { blindSign, generateRsaKey, rsaPublicKeyOf } from './node-rsa.ts';
import { buildProgram } from './program.ts';
import { decodeOtpPublication, encodeOtpPublication, OTP_PUBLICATION_BYTES_MAX, PUBLISHED_EPOCHS_MAX, publishedEntries } from './publication.ts';

const EPOCH = 30 * 86_400_000;
const key = generateRsaKey();
const { modulus, exponent } = encodePublicKey(rsaPublicKeyOf(key));
const head = { currency: 'EUR', issuerNode: signerFromSecret(nobleEd25519, new Uint8Array(32).fill(3)).publicKey, escrowKey: randomBytes(32), depositKey: randomBytes(32) };

function epochEntries(epoch: number): ClassEntry[] {
  const until = (epoch + 2) * EPOCH;
  const program = buildProgram(2, [{ kind: 'checkExpiry', until }, { kind: 'checkMaxHops', hops: 8 }]);
  return DENOMINATIONS.map((d) => ({
    coinClass: { classId: randomBytes(16), denomination: d.toString(), currency: 'EUR', programDigest: programDigest(program), modulus, exponent },
    program,
    until,
    depositUntil: until + 7 * 86_400_000,
  }));
}

test("three epochs of every denomination fit the tiers' bound and come back as the bank's own entries", () => {
  const entries = [...epochEntries(700), ...epochEntries(701), ...epochEntries(702)];
  const body = encodeOtpPublication(head, entries);
  assert.ok(body.length <= OTP_PUBLICATION_BYTES_MAX, `${body.length} bytes`);
  const back = decodeOtpPublication(body);
  assert.equal(back.epochs.length, 3);
  assert.deepEqual(back.issuerNode, head.issuerNode);
  const rebuilt = publishedEntries(back);
  assert.equal(rebuilt.length, entries.length);
  for (const entry of entries) assert.deepEqual(rebuilt.find((r) => Buffer.from(r.coinClass.classId).equals(entry.coinClass.classId)), entry);

  // A coin signed by a class key checks under the rebuilt class, and not under another's.
  const entry = rebuilt[20] as ClassEntry;
  const coin = { serial: randomBytes(32), classId: entry.coinClass.classId, prefix: randomBytes(32) };
  const blinded = blind(classKey(entry.coinClass), preparedCoinMessage(coin), randomBytes);
  const signature = finalize(classKey(entry.coinClass), preparedCoinMessage(coin), blindSign(key, blinded.blindedMessage), blinded.inverse);
  assert.equal(checkCoin({ ...coin, signature, program: entry.program }, (id) => rebuilt.find((r) => Buffer.from(r.coinClass.classId).equals(id))?.coinClass).coinClass.denomination, entry.coinClass.denomination);
  assert.throws(
    () => checkCoin({ ...coin, signature: signature.map((b, i) => (i === 0 ? b ^ 1 : b)), program: entry.program }, (id) => rebuilt.find((r) => Buffer.from(r.coinClass.classId).equals(id))?.coinClass),
    (e: unknown) => isTallyError(e, 'OTP_COIN_INVALID'),
  );
});

test('more epochs than the bound: the newest are published', () => {
  const all = Array.from({ length: PUBLISHED_EPOCHS_MAX + 2 }, (_, i) => epochEntries(800 + i).slice(0, 2)).flat();
  const back = decodeOtpPublication(encodeOtpPublication(head, all));
  assert.equal(back.epochs.length, PUBLISHED_EPOCHS_MAX);
  assert.deepEqual(back.epochs.map((e) => e.until), [804, 803, 802].map((e) => (e + 2) * EPOCH));
});

test('a body that is altered, of another shape or over the bound does not decode', () => {
  const body = encodeOtpPublication(head, epochEntries(900));
  assert.throws(() => decodeOtpPublication(body.subarray(0, body.length - 5)), (e: unknown) => isTallyError(e));
  assert.throws(() => decodeOtpPublication(encodeCbor({ currency: 'EUR' })), (e: unknown) => isTallyError(e));
  assert.throws(() => decodeOtpPublication(new Uint8Array(OTP_PUBLICATION_BYTES_MAX + 1)), (e: unknown) => isTallyError(e));
  // Keys too wide for three epochs: the oldest are left out until it fits.
  const widen = (e: ClassEntry): ClassEntry => ({ ...e, coinClass: { ...e.coinClass, modulus: new Uint8Array(512).fill(0xc1) } });
  const wide = Array.from({ length: 3 }, (_, i) => epochEntries(950 + i)).flat().map(widen);
  const fitted = encodeOtpPublication(head, wide);
  assert.ok(fitted.length <= OTP_PUBLICATION_BYTES_MAX);
  assert.deepEqual(decodeOtpPublication(fitted).epochs.map((e) => e.until), [952].map((e) => (e + 2) * EPOCH));
  // One epoch that alone would not fit is refused, not cut.
  const huge = [...epochEntries(960), ...epochEntries(960).map((e) => ({ ...e, until: e.until, coinClass: { ...e.coinClass, classId: randomBytes(16) } }))].map(widen);
  assert.throws(() => encodeOtpPublication(head, [...huge, ...huge.map((e) => ({ ...e, coinClass: { ...e.coinClass, classId: randomBytes(16) } }))]), (e: unknown) => isTallyError(e, 'TOO_LARGE'));
});
