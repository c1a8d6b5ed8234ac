/**
 * The deposit's opening workers answer what the request thread answers, coin for coin: valid coins
 * of two classes, a coin of another bank's class (and of a revoked one), coins tampered with, sealed
 * to another key, of an unknown class, past their hops, garbage and the empty string, views into
 * larger buffers; a deposit too small for the workers is opened here; a pool stopped while it opens
 * a deposit answers the same, and starts again for the next one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { deriveKeyPair } from '../../core/crypto/hpke.ts';
import type { ClassEntry } from './messages.ts';
import { openSealedCoin, type OpenedCoin, type OpeningClasses } from './node-open.ts';
import { closeOpeningPool, coinsOpenedInWorkers, openCoins, POOL_FROM } from './node-open-pool.ts';
import { depositKeys, idsOf, makeClass, makeWallet, NOW, withdraw } from './ta-fixtures.ts';
import type { SealedCoin } from './transfer.ts';

after(() => closeOpeningPool());

const five = makeClass(500n);
const one = makeClass(100n);
const theirs = makeClass(200n);
const revokedBanks = makeClass(300n);

/** Sealed coins of `classes` from a fresh wallet, as its TA seals them for deposit. */
async function sealedCoins(name: string, classes: ReturnType<typeof makeClass>[], times: number): Promise<SealedCoin[]> {
  const wallet = await makeWallet(name, classes);
  for (let i = 0; i < times; i++) await withdraw(wallet, classes);
  const { sealed } = await wallet.se.call('prepareDeposit', { requestId: randomBytes(16), classIds: idsOf(classes, times) });
  return sealed;
}

const encode = (sealed: SealedCoin): Uint8Array => encodeCbor(sealed);

function classesWith(hops: number): OpeningClasses {
  const live = (c: { entry: ClassEntry }) => [toHex(c.entry.coinClass.classId), { entry: c.entry, hops }] as const;
  return {
    live: new Map([live(five), live(one)]),
    foreign: new Map([
      [toHex(theirs.entry.coinClass.classId), { entry: theirs.entry, revoked: false }],
      [toHex(revokedBanks.entry.coinClass.classId), { entry: revokedBanks.entry, revoked: true }],
    ]),
    evidenceBytesMax: 8192,
  };
}

/** What a test compares: the outcome, and the coin's serial and class when accepted. */
const summary = (o: OpenedCoin) => (o.refused ? { digest: toHex(o.digest), refused: true } : { digest: toHex(o.digest), refused: false, serial: toHex(o.carried.coin.serial), classIdHex: o.classIdHex, foreign: o.foreign });

test('the workers open and judge a deposit coin for coin as the request thread does', async () => {
  const ours = await sealedCoins('pool-ours', [five, one], 3);
  const [other] = await sealedCoins('pool-theirs', [theirs], 1);
  const [ofRevoked] = await sealedCoins('pool-revoked', [revokedBanks], 1);
  const raws: Uint8Array[] = ours.map(encode);
  // Views into a larger buffer, as a body's bytes may be.
  const padded = new Uint8Array((raws[0] as Uint8Array).length + 40).fill(0xaa);
  padded.set(raws[0] as Uint8Array, 20);
  raws.push(padded.subarray(20, 20 + (raws[0] as Uint8Array).length));
  raws.push(encode(other as SealedCoin), encode(ofRevoked as SealedCoin));
  const tampered = Uint8Array.from(raws[1] as Uint8Array);
  tampered[tampered.length - 3] = (tampered[tampered.length - 3] as number) ^ 0x01;
  raws.push(tampered, randomBytes(300), new Uint8Array(0), encodeCbor([1, 2, 3]));
  // Sealed to another deposit key: the box does not open here.
  const elsewhere = deriveKeyPair(new Uint8Array(32).fill(9));
  const keys = { privateKey: depositKeys.privateKey, publicKey: depositKeys.publicKey };
  assert.ok(raws.length >= POOL_FROM);
  const classes = classesWith(3);
  const before = coinsOpenedInWorkers();
  const pooled = await openCoins(raws, keys, classes, NOW);
  assert.equal(coinsOpenedInWorkers() - before, raws.length, 'every coin went to a worker');
  const here = raws.map((raw) => openSealedCoin(raw, keys, classes, NOW));
  assert.deepEqual(pooled.map(summary), here.map(summary));
  // Our 6 coins and the copy of the first, and the other bank's coin; not the revoked bank's, the
  // tampered one or the junk.
  assert.equal(pooled.filter((o) => !o.refused).length, 8);
  assert.equal(pooled.filter((o) => !o.refused && o.foreign).length, 1);
  // With no hop allowed, our coins carry more tags than a coin may: refused alike in both places.
  const strict = classesWith(-1);
  assert.deepEqual((await openCoins(raws, keys, strict, NOW)).map(summary), raws.map((raw) => summary(openSealedCoin(raw, keys, strict, NOW))));
  assert.equal((await openCoins(raws, keys, strict, NOW)).filter((o) => !o.refused && !o.foreign).length, 0);
  // After the other bank's deposit window, its coin is refused too.
  const late = (theirs.entry.depositUntil as number) + 1;
  assert.equal((await openCoins(raws, keys, classes, late)).filter((o) => !o.refused && o.foreign).length, 0);
  // Opened with another key, nothing opens.
  const wrong = await openCoins(raws, { privateKey: elsewhere.privateKey, publicKey: elsewhere.publicKey }, classes, NOW);
  assert.equal(wrong.every((o) => o.refused), true);
});

test('a deposit of fewer coins than POOL_FROM is opened on the request thread', async () => {
  const raws = (await sealedCoins('pool-small', [five], POOL_FROM - 1)).map(encode);
  const before = coinsOpenedInWorkers();
  const opened = await openCoins(raws, depositKeys, classesWith(3), NOW);
  assert.equal(coinsOpenedInWorkers(), before);
  assert.equal(opened.filter((o) => !o.refused).length, POOL_FROM - 1);
});

test('a pool stopped while a deposit is being opened answers the same (coins no worker answered are opened on the request thread)', async () => {
  const raws = (await sealedCoins('pool-stopped', [five, one], 8)).map(encode);
  const classes = classesWith(3);
  const here = raws.map((raw) => openSealedCoin(raw, depositKeys, classes, NOW));
  const opening = openCoins(raws, depositKeys, classes, NOW);
  await closeOpeningPool();
  const opened = await opening;
  assert.deepEqual(opened.map(summary), here.map(summary));
  assert.equal(opened.filter((o) => !o.refused).length, 16);
  // The next large deposit starts the workers again.
  const before = coinsOpenedInWorkers();
  assert.deepEqual((await openCoins(raws, depositKeys, classes, NOW)).map(summary), here.map(summary));
  assert.equal(coinsOpenedInWorkers() - before, raws.length);
});

test('a job that cannot be sent to a worker is opened on the request thread, with the same answers', async () => {
  const raws = (await sealedCoins('pool-unsendable', [five], POOL_FROM)).map(encode);
  const classes = classesWith(3);
  // A function cannot cross to a worker thread (structured clone refuses it).
  const unsendable = { ...classes, cannotCross: () => undefined } as OpeningClasses;
  const before = coinsOpenedInWorkers();
  const opened = await openCoins(raws, depositKeys, unsendable, NOW);
  assert.equal(coinsOpenedInWorkers(), before);
  assert.deepEqual(opened.map(summary), raws.map((raw) => summary(openSealedCoin(raw, depositKeys, classes, NOW))));
  assert.equal(opened.filter((o) => !o.refused).length, POOL_FROM);
});
