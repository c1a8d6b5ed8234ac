/**
 * Fixtures for the OTP node's tests (not exported): a node with the OTP part (periods of the
 * test's choosing), an enrolled OEM, account holders with a registered OTP device, and the TA's side
 * of each exchange built from the pure functions a trusted app will run: blind withdrawals, escrow
 * tags, coins sealed to the deposit key, signed key requests and in-flight reports.
 */
import assert from 'node:assert/strict';
import { generateKeyPair as generateNodeKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { randomBytes, sha256 } from '../../core/crypto/hash.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret, type Signer } from '../../core/crypto/suite.ts';
import { createIssuerApp } from '../../issuer/http/app.ts';
import type { testBackends } from '../../issuer/db/test-databases.ts';
import { setup, type TestUser } from '../../issuer/http/test-harness.ts';
import { signRequest } from '../../issuer/client/request-auth.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { keyId } from '../../pki/key-id.ts';
import { signRegistrationProof } from '../../pki/registration.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { blind, finalize } from './blind-rsa.ts';
import { classKey, preparedCoinMessage, SERIAL_BYTES, type Coin } from './coin.ts';
import { appendTag } from './escrow.ts';
import { exchangeKeyId } from './exchange-key.ts';
import {
  checkSigned,
  depositReceiptBodyCodec,
  depositReceiptCodec,
  DEPOSIT_RECEIPT_TAG,
  IN_FLIGHT_TAG,
  inFlightBodyCodec,
  KEY_REQUEST_TAG,
  keyRequestBodyCodec,
  NONCE_BYTES,
  paramsBodyCodec,
  paramsCodec,
  PARAMS_TAG,
  settledBodyCodec,
  settledCodec,
  SETTLED_TAG,
  signed,
  type CarriedCoin,
  type ClassEntry,
  type ParamsBody,
} from './messages.ts';
import { OTP_FLOAT_ACCOUNT, otpNodePartWith, type OtpNodeOptions } from './node.ts';
import { sealCoin, type SealedCoin } from './transfer.ts';
import { generateKeyPair } from '../../core/crypto/hpke.ts';

/** The measurement the test OEM attests for OTP devices. */
export const OTP_TEST_MEASUREMENT = sha256(utf8('tally otp trusted app, test build'));
/** Short periods for tests that move through epochs: one-minute epochs, ten seconds of grace. */
export const SHORT: Partial<OtpNodeOptions> = { epochMs: 60_000, depositGraceMs: 10_000 };

type Backend = ReturnType<typeof testBackends>[number];

/** An account holder with an OTP device (its key held here as the TA would hold it). */
export interface OtpClient extends TestUser {
  readonly device: Signer;
  readonly deviceId: string;
}

const generateRsa = promisify(generateNodeKeyPair);
let classKeys: Promise<KeyObject[]> | null = null;
let nextClassKey = 0;

/** Class keys shared by the tests of one process: generating 2048-bit RSA keys is the slow part of a node's first epoch. */
export async function pooledClassKey(): Promise<KeyObject> {
  classKeys ??= Promise.all(Array.from({ length: 15 }, async () => (await generateRsa('rsa', { modulusLength: 2048, publicExponent: 65537 })).privateKey));
  const keys = await classKeys;
  return keys[nextClassKey++ % keys.length] as KeyObject;
}

/**
 * The sessions waiting, directly or through another waiting session, on the transaction that runs
 * this query (PostgreSQL): a test holding a lock counts its own waiters, not those of the other
 * tests running beside it on the same server.
 */
export const WAITING_ON_THIS_SQL = `WITH RECURSIVE blocked(pid) AS (
    SELECT l.pid FROM pg_locks l WHERE NOT l.granted AND pg_backend_pid() = ANY (pg_blocking_pids(l.pid))
    UNION
    SELECT l.pid FROM pg_locks l JOIN blocked b ON b.pid = ANY (pg_blocking_pids(l.pid)) WHERE NOT l.granted
  ) SELECT count(*)::bigint AS n FROM blocked`;

/** A node with the OTP part and an enrolled OEM. */
export async function otpNode(backend: Backend, options: Partial<OtpNodeOptions> = {}) {
  const part = otpNodePartWith({ classKey: pooledClassKey, ...options });
  const h = await setup(backend, { schemes: [part] });
  const oem = signerFromSecret(nobleEd25519, sha256(utf8('otp test oem')));
  const enrolled = await h.asOperator('POST', '/v1/operator/oems', { name: 'Test OEM', publicKey: { suite: 'ed25519', key: toBase64url(oem.publicKey.key) } });
  assert.equal(enrolled.status, 201, await enrolled.clone().text());
  const oemKeyId = ((await enrolled.json()) as { keyId: string }).keyId;
  const allowed = await h.asOperator('POST', '/v1/operator/measurements', { measurement: toHex(OTP_TEST_MEASUREMENT), scheme: 'otp', description: 'otp test build' });
  assert.equal(allowed.status, 201, await allowed.clone().text());
  let seed = 40;
  let keys = 0;
  const key = () => ({ 'idempotency-key': `otp-${++keys}-${Date.now()}` });
  const bank = h.node.services.identity.issuerNode.signer.publicKey;

  /** A registered account holder with a registered OTP device. */
  async function client(): Promise<OtpClient> {
    const user = await h.register(++seed);
    const device = signerFromSecret(nobleEd25519, sha256(utf8(`otp device ${seed}`)));
    const res = await h.signed(user.user, 'POST', '/v1/devices', {
      publicKey: { suite: 'ed25519', key: toBase64url(device.publicKey.key) },
      scheme: 'otp',
      oem: oemKeyId,
      attestation: toBase64url(encodeAttestation(attestDevice(oem, { sePublicKey: device.publicKey, model: 'Test SE', taMeasurement: OTP_TEST_MEASUREMENT }))),
      proof: toBase64url(signRegistrationProof(device, { owner: fromHex(user.keyId), scheme: 'otp' })),
    }, key());
    assert.equal(res.status, 201, await res.clone().text());
    assert.equal(((await res.json()) as { keyId: string }).keyId, toHex(keyId(device.publicKey)));
    return { ...user, device, deviceId: toHex(keyId(device.publicKey)) };
  }

  /** The parameters, checked under the bank's key. */
  async function params(): Promise<ParamsBody> {
    const res = await h.send('GET', '/v1/otp/params');
    assert.equal(res.status, 200, await res.clone().text());
    const record = paramsCodec.decode(decodeCbor(fromBase64url(((await res.json()) as { params: string }).params)));
    return checkSigned(nodeProvider, bank, paramsBodyCodec, PARAMS_TAG, record);
  }

  /** The current epoch's class of `denomination` (minor units). */
  async function classOf(denomination: bigint): Promise<ClassEntry> {
    const body = await params();
    const epochOfEntry = (e: ClassEntry) => e.until;
    const latest = Math.max(...body.classes.map(epochOfEntry));
    const entry = body.classes.find((e) => e.until === latest && e.coinClass.denomination === denomination.toString());
    assert.ok(entry !== undefined, `no class of ${denomination}`);
    return entry;
  }

  /** Blinds a fresh coin of each class, sends the withdrawal, and finalizes the coins. */
  async function withdraw(who: OtpClient, entries: readonly ClassEntry[], headers = key()): Promise<{ res: Response; coins: Coin[] }> {
    const pending = entries.map((entry) => {
      const coin = { serial: randomBytes(SERIAL_BYTES), classId: entry.coinClass.classId, prefix: randomBytes(32) };
      const prepared = preparedCoinMessage(coin);
      const blinded = blind(classKey(entry.coinClass), prepared, randomBytes);
      return { entry, coin, prepared, blinded };
    });
    const res = await h.signed(who.user, 'POST', '/v1/otp/withdrawals', {
      device: who.deviceId,
      items: pending.map((p) => ({ classId: toBase64url(p.coin.classId), blinded: toBase64url(p.blinded.blindedMessage) })),
    }, headers);
    if (res.status !== 200) return { res, coins: [] };
    const { signatures } = (await res.clone().json()) as { signatures: string[] };
    const coins = pending.map((p, i) => ({
      ...p.coin,
      signature: finalize(classKey(p.entry.coinClass), p.prepared, fromBase64url(signatures[i] as string), p.blinded.inverse),
      program: p.entry.program,
    }));
    return { res, coins };
  }

  /** One offline transfer: `payer`'s device appends its escrow tag for exchange key `to` of the payee (a fresh one the bank never signed by default). */
  function pay(carried: CarriedCoin, payer: Signer, escrowKey: Uint8Array, to?: Uint8Array): CarriedCoin {
    const payee = exchangeKeyId(to ?? generateKeyPair().publicKey);
    return { coin: carried.coin, tags: appendTag({ serial: carried.coin.serial, tags: carried.tags, payee, device: payer, escrowPublicKey: escrowKey }) };
  }

  /** A carried coin sealed to the bank's deposit key, as the deposit carries it. */
  function sealForDeposit(carried: CarriedCoin, depositKey: Uint8Array): SealedCoin {
    return sealCoin(carried, depositKey).sealed;
  }

  /** Sends a deposit; for a 200, the receipt checked under the bank's key. */
  async function deposit(who: OtpClient, boxes: readonly (SealedCoin | Uint8Array)[], options: { app?: ReturnType<typeof createIssuerApp>; now?: number; headers?: Record<string, string> } = {}) {
    const coins = boxes.map((b) => toBase64url(b instanceof Uint8Array ? b : encodeCbor(b)));
    const res = await send(who, '/v1/otp/deposits', { device: who.deviceId, coins }, options);
    if (res.status !== 200) return { res, credited: null, outcomes: [] as string[] };
    const body = (await res.clone().json()) as { credited: string; receipt: string };
    const receipt = checkSigned(nodeProvider, bank, depositReceiptBodyCodec, DEPOSIT_RECEIPT_TAG, depositReceiptCodec.decode(decodeCbor(fromBase64url(body.receipt))));
    assert.equal(receipt.coins.length, boxes.length);
    return { res, credited: body.credited, outcomes: receipt.coins.map((c) => c.outcome), receipt };
  }

  /** Sends a signed in-flight report of `coins` (each with the tags it was sent with); for a 200, the Settled record checked under the bank's key and bound to the nonce. */
  async function inFlight(who: OtpClient, coins: readonly CarriedCoin[], options: { app?: ReturnType<typeof createIssuerApp>; now?: number; signer?: Signer } = {}) {
    const nonce = randomBytes(NONCE_BYTES);
    const report = signed(inFlightBodyCodec, options.signer ?? who.device, IN_FLIGHT_TAG, {
      coins: coins.map(({ coin, tags }) => ({ serial: coin.serial, classId: coin.classId, prefix: coin.prefix, signature: coin.signature, tags })),
      nonce,
    });
    const res = await send(who, '/v1/otp/in-flight', { device: who.deviceId, report: toBase64url(encodeCbor(report)) }, options);
    if (res.status !== 200) return { res, refunded: null, settled: [] as { serial: string; outcome: string }[] };
    const body = (await res.clone().json()) as { refunded: string; settled: string };
    const settled = checkSigned(nodeProvider, bank, settledBodyCodec, SETTLED_TAG, settledCodec.decode(decodeCbor(fromBase64url(body.settled))));
    assert.deepEqual(settled.nonce, nonce, 'the Settled record answers this report');
    return { res, refunded: body.refunded, settled: settled.coins.map((c) => ({ serial: toHex(c.serial), outcome: c.outcome })) };
  }

  /** A key request for `count` fresh keys, signed by `signer`. */
  function keyRequest(signer: Signer, count: number) {
    const publicKeys = Array.from({ length: count }, () => generateKeyPair().publicKey);
    const nonce = randomBytes(NONCE_BYTES);
    return { publicKeys, nonce, request: signed(keyRequestBodyCodec, signer, KEY_REQUEST_TAG, { publicKeys, nonce }) };
  }

  /** An exchange key made for `who`'s device and signed by the bank through the route: its public key. */
  async function exchangeKeyOf(who: OtpClient): Promise<Uint8Array> {
    const { publicKeys, request } = keyRequest(who.device, 1);
    const res = await h.signed(who.user, 'POST', '/v1/otp/exchange-keys', { device: who.deviceId, request: toBase64url(encodeCbor(request)) }, key());
    assert.equal(res.status, 200, await res.clone().text());
    return publicKeys[0] as Uint8Array;
  }

  /**
   * A second worker on the same database whose clock reads `now` (node workers whose clocks
   * disagree): its own app over the node's services.
   */
  function worker(now: () => number) {
    return createIssuerApp({ ...h.node.services, now }, [part]);
  }

  /** POSTs a body signed by `who` to this node's app, or to a worker at its time. */
  function send(who: OtpClient, path: string, body: unknown, options: { app?: ReturnType<typeof createIssuerApp>; now?: number; headers?: Record<string, string> } = {}) {
    if (options.app === undefined) return h.signed(who.user, 'POST', path, body, options.headers ?? key());
    const text = JSON.stringify(body);
    const auth = signRequest({ signer: who.user, keyId: who.keyId, method: 'POST', path, body: text, timestamp: options.now ?? h.now() });
    return options.app.request(path, { method: 'POST', body: text, headers: { 'content-type': 'application/json', ...auth, ...(options.headers ?? key()) } });
  }

  async function mint(who: Pick<TestUser, 'account'>, amount: string) {
    const res = await h.asOperator('POST', '/v1/operator/mint', { account: who.account, amount });
    assert.equal(res.status, 200, await res.clone().text());
  }

  /**
   * The audit with conservation: the journal balances, issued = online + float:otp, and the OTP
   * exposure check finds the float exactly equal to the coins signed and not yet spent. Answers
   * the float in minor units.
   */
  async function conservation(expectedFloat?: bigint): Promise<bigint> {
    const res = await h.send('GET', '/v1/audit', { headers: h.operator });
    const audit = (await res.json()) as { balanced: boolean; exposure: { scheme: string; float: string; expected: string; difference: string; exposed: unknown[] }[] };
    assert.equal(audit.balanced, true, JSON.stringify(audit));
    const ledger = await h.node.services.ledger.audit();
    assert.equal(ledger.balanced, true);
    const eur = ledger.currencies.find((c) => c.currency === 'EUR');
    assert.ok(eur !== undefined);
    const float = eur.offlineFloat.find((f) => f.account === OTP_FLOAT_ACCOUNT)?.amount ?? 0n;
    assert.equal(eur.totalOnline + eur.totalOfflineFloat + eur.totalSettlement, eur.totalIssued, 'issued = online + floats');
    const otp = audit.exposure.find((e) => e.scheme === 'otp');
    assert.ok(otp !== undefined, 'the audit checks the OTP float');
    assert.equal(otp.difference, '0.00', `float:otp ${otp.float} ≠ coins signed and not spent ${otp.expected}`);
    assert.deepEqual(otp.exposed, []);
    if (expectedFloat !== undefined) assert.equal(float, expectedFloat, 'float:otp');
    return float;
  }

  return { h, part, oem, key, bank, client, params, classOf, withdraw, pay, sealForDeposit, deposit, inFlight, keyRequest, exchangeKeyOf, worker, send, mint, conservation };
}

/** An open OTP test node. */
export type OtpNode = Awaited<ReturnType<typeof otpNode>>;

/** The balances of `who`, in major units. */
export async function balances(n: OtpNode, ...who: OtpClient[]): Promise<string[]> {
  return Promise.all(who.map((w) => n.h.balance(w)));
}

/** How many rows of an OTP table are about `serial`. */
export async function rowsOf(n: OtpNode, table: 'otp_claims' | 'otp_claim_disputes' | 'otp_spent', serial: Uint8Array): Promise<number> {
  return (await n.h.node.services.db.query(`SELECT 1 FROM ${table} WHERE serial = $1`, [serial])).rowCount ?? 0;
}

/** The operator's findings and disputes. */
export async function findings(n: OtpNode): Promise<{ findings: { serial: string; device: string; hop: number }[]; disputes: { serial: string; hop: number; devices: string[] }[] }> {
  const res = await n.h.send('GET', '/v1/otp/operator/findings', { headers: n.h.operator });
  assert.equal(res.status, 200);
  return (await res.json()) as never;
}
