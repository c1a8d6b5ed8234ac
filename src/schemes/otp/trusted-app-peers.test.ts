/**
 * The OTP trusted app across two banks of one root: a TA takes another bank's coins and pays to its
 * exchange keys only once it holds that bank's publication, which it checks itself (the bank's
 * certificate to its pinned root, the publication under that certificate). A coin of bank P paid to
 * a wallet of bank A keeps its escrow tags sealed to P's key, deposit included. Refused: a
 * publication signed by another key, a bank certified under another root, a publication of another
 * scheme; a list that leaves a bank out forgets it.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { encodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { signPublication } from '../../pki/publication.ts';
import { certify, hierarchy, signer } from '../../pki/test-fixtures.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { InProcessHost } from '../../secure-element/host.ts';
import { MemoryCounter, MemoryStorage } from '../../secure-element/memory-fixtures.ts';
import { isTallyError } from '../../core/errors.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { deriveKeyPair } from '../../core/crypto/hpke.ts';
import { issueExchangeKey } from './exchange-key.ts';
import { openTag } from './escrow.ts';
import { paramsBodyCodec, PARAMS_TAG, signed, timeBodyCodec, TIME_TAG } from './messages.ts';
import { blindSign } from './node-rsa.ts';
import { encodeOtpPublication } from './publication.ts';
import { bankSigner, depositKeys, escrow, giveKeys, makeClass, makeWallet, NOW, pki, withdraw, type BankClass, type OtpSe, type Wallet } from './ta-fixtures.ts';
import { openCoin } from './transfer.ts';
import { otpTrustedApp } from './trusted-app.ts';

const DAY = 86_400_000;
const rejected = (code: string) => (e: unknown) => isTallyError(e, 'SE_REJECTED') && (e.details as { reason?: string }).reason === code;

/** Bank P: another intermediary of the fixture's root, with its own issuer node, keys and classes. */
const pIntermediary = signer('otp-ta/intermediary-p');
const pIntermediaryCert = certify({ issuer: pki.root, issuerRole: 'root', role: 'intermediary', subject: pIntermediary, extensions: { name: 'Bank P' } });
const pIssuer = signer('otp-ta/issuer-node-p');
const pIssuerCert = certify({ issuer: pIntermediary, issuerRole: 'intermediary', role: 'issuer-node', subject: pIssuer });
const pEscrow = deriveKeyPair(new Uint8Array(32).fill(17));
const pDeposit = deriveKeyPair(new Uint8Array(32).fill(18));

let mine: BankClass;
let theirs: BankClass;

before(() => {
  mine = makeClass(100n);
  theirs = makeClass(500n);
});

/** A's publication (the fixture's bank), signed by its intermediary key. */
function publicationOfA(): { certificate: Uint8Array; publication: Uint8Array } {
  const body = encodeOtpPublication({ currency: 'EUR', issuerNode: bankSigner.publicKey, escrowKey: escrow.publicKey, depositKey: depositKeys.publicKey }, [mine.entry]);
  return { certificate: encodeCertificate(pki.intermediaryCert), publication: signPublication(pki.intermediary, { scheme: 'otp', version: 1, body }) };
}

/** P's publication, signed by `by` (P's intermediary key unless a test forges it). */
function publicationOfP(options: { by?: typeof pIntermediary; scheme?: string } = {}): { certificate: Uint8Array; publication: Uint8Array } {
  const body = encodeOtpPublication({ currency: 'EUR', issuerNode: pIssuer.publicKey, escrowKey: pEscrow.publicKey, depositKey: pDeposit.publicKey }, [theirs.entry]);
  return { certificate: encodeCertificate(pIntermediaryCert), publication: signPublication(options.by ?? pIntermediary, { scheme: options.scheme ?? 'otp', version: 1, body }) };
}

/** A wallet of bank P: its TA pins the same root and P's issuer node, with P's parameters, one coin of P's class and keys P signed. */
async function walletOfP(): Promise<OtpSe> {
  const options = { app: otpTrustedApp, storage: new MemoryStorage(), counter: new MemoryCounter(), provider: nodeProvider };
  const se: OtpSe = await InProcessHost.provision(options);
  await se.call('init', { root: encodeCertificate(pki.rootCert), owner: keyId(signer('otp-ta/owner/p').publicKey) });
  await se.call('certInit', { intermediary: encodeCertificate(pIntermediaryCert), issuerNode: encodeCertificate(pIssuerCert), now: NOW });
  await se.call('setParams', { params: signed(paramsBodyCodec, pIssuer, PARAMS_TAG, { currency: 'EUR', escrowKey: pEscrow.publicKey, depositKey: pDeposit.publicKey, classes: [theirs.entry], at: NOW }) });
  const requestId = randomBytes(16);
  const { blinded } = await se.call('prepareWithdrawal', { requestId, classIds: [theirs.entry.coinClass.classId] });
  await se.call('finishWithdrawal', { requestId, signatures: blinded.map((b) => blindSign(theirs.key, b)) });
  const request = await se.call('keyRequest', { count: 2 });
  const keys = request.body.publicKeys.map((publicKey) => issueExchangeKey(pIssuer, { publicKey, category: null, notBefore: NOW, notAfter: NOW + 30 * DAY }));
  await se.call('takeKeys', { keys, time: signed(timeBodyCodec, pIssuer, TIME_TAG, { nonce: request.body.nonce, at: NOW }) });
  return se;
}

/** P's wallet pays its coin to `payee` (a wallet of A): the payee's key, the payer's box, the payee's receipt of it. */
async function payFromP(payer: OtpSe, payee: Wallet) {
  const { keys } = await payee.se.call('offerKeys', { count: 1 });
  const { sealed } = await payer.call('pay', { items: [{ classId: theirs.entry.coinClass.classId, key: keys[0]! }] });
  return { sealed, received: () => payee.se.call('receive', { sealed }) };
}

test("a wallet of A takes a coin of P once it holds P's publication; the coin's tags stay sealed to P's escrow key, deposit included", async () => {
  const payer = await walletOfP();
  const bob = await makeWallet('bob', [mine]);
  await giveKeys(bob, 2);
  // Without A's publication, P's TA does not know who signed Bob's exchange key.
  const { keys } = await bob.se.call('offerKeys', { count: 1 });
  await assert.rejects(payer.call('pay', { items: [{ classId: theirs.entry.coinClass.classId, key: keys[0]! }] }), rejected('SIGNATURE_INVALID'));

  assert.deepEqual(await payer.call('setPeers', { peers: [publicationOfA()], now: NOW }), { peers: 1, classes: 1, refused: [] });
  // Without P's publication, Bob's TA refuses P's coin.
  const first = await payFromP(payer, bob);
  await assert.rejects(first.received(), rejected('OTP_COIN_INVALID'));
  assert.deepEqual(await bob.se.call('setPeers', { peers: [publicationOfP(), publicationOfA()], now: NOW }), { peers: 1, classes: 1, refused: [] }, "A's own publication is skipped");
  const taken = await first.received();
  assert.equal(taken.amount, 500n);
  await payer.call('acknowledge', { acks: taken.acks });
  assert.equal((await bob.se.call('status', {})).balance, 500n);

  // Bob deposits it at A: sealed to A's deposit key, its last tag (naming A) sealed to P's escrow key.
  const { sealed } = await bob.se.call('prepareDeposit', { requestId: randomBytes(16), classIds: [theirs.entry.coinClass.classId] });
  const { carried } = openCoin(sealed[0]!, depositKeys.privateKey, depositKeys.publicKey);
  assert.equal(carried.tags.length, 2);
  for (const hop of [1, 2]) {
    assert.ok(openTag(nodeProvider, pEscrow.privateKey, carried.coin.serial, carried.tags, hop).device);
    assert.throws(() => openTag(nodeProvider, escrow.privateKey, carried.coin.serial, carried.tags, hop), (e: unknown) => isTallyError(e));
  }
});

test("publications the TA refuses, each left out without the others: signed by another key, of a bank under another root, of another scheme; a list without a bank forgets it", async () => {
  const bob = await makeWallet('bob-2', [mine]);
  await giveKeys(bob, 2);
  const other = hierarchy('ed25519', 'another-root');
  const foreign = certify({ issuer: other.root, issuerRole: 'root', role: 'intermediary', subject: pIntermediary, extensions: { name: 'Bank P' } });
  const bad = [publicationOfP({ by: signer('otp-ta/not-p') }), { ...publicationOfP(), certificate: encodeCertificate(foreign) }, publicationOfP({ scheme: 'opera' })];
  const out = await bob.se.call('setPeers', { peers: bad, now: NOW });
  assert.deepEqual([out.peers, out.classes], [0, 0]);
  assert.equal(out.refused.length, 3);
  assert.equal(out.refused[0], 'SIGNATURE_INVALID');
  assert.ok(out.refused[1]?.startsWith('CERT_'), out.refused[1]);
  assert.equal(out.refused[2], 'OTP_PEER_INVALID');
  const payer = await walletOfP();
  await payer.call('setPeers', { peers: [publicationOfA()], now: NOW });
  // None of them made P's coins acceptable.
  const refusedCoin = await payFromP(payer, bob);
  await assert.rejects(refusedCoin.received(), rejected('OTP_COIN_INVALID'));

  // A bad entry beside a good one: the good one is taken.
  assert.deepEqual(await bob.se.call('setPeers', { peers: [bad[0]!, publicationOfP()], now: NOW }), { peers: 1, classes: 1, refused: ['SIGNATURE_INVALID'] });
  // Then left out: P's coins are refused again.
  assert.deepEqual(await bob.se.call('setPeers', { peers: [], now: NOW }), { peers: 0, classes: 0, refused: [] });
  await assert.rejects(refusedCoin.received(), rejected('OTP_COIN_INVALID'));
  // The TA's own coins are untouched by all this.
  assert.equal(await withdraw(bob, [mine]), 100n);
});
