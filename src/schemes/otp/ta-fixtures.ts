/**
 * Fixtures for the OTP trusted app's tests (not exported): a bank played here with the keys a node
 * would hold (the issuer node's key under a test hierarchy, escrow and deposit keys, RSA classes of
 * a few denominations), and wallets: otpTrustedApp in an in-process secure element kept in memory,
 * provisioned, with the bank's parameters.
 */
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { randomBytes } from '../../core/crypto/hash.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { certify, hierarchy, NOW, signer } from '../../pki/test-fixtures.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { InProcessHost, type HostOptions } from '../../secure-element/host.ts';
import { MemoryCounter, MemoryStorage } from '../../secure-element/memory-fixtures.ts';
import { encodePublicKey } from './blind-rsa.ts';
import { programDigest, type CoinClass } from './coin.ts';
import { sealedDigest, openCoin, type SealedCoin } from './transfer.ts';
import { issueExchangeKey } from './exchange-key.ts';
import { deriveKeyPair } from '../../core/crypto/hpke.ts';
import { DEPOSIT_RECEIPT_TAG, depositReceiptBodyCodec, paramsBodyCodec, PARAMS_TAG, signed, timeBodyCodec, TIME_TAG, type ClassEntry, type DepositOutcome, type Params } from './messages.ts';
import { blindSign, generateRsaKey, rsaPublicKeyOf } from './node-rsa.ts';
import { buildProgram, type Condition } from './program.ts';
import { otpTrustedApp, type OtpState } from './trusted-app.ts';

export { NOW };
const DAY = 86_400_000;

/** The test hierarchy; the issuer node's key is the bank's. */
export const pki = hierarchy('ed25519', 'otp-ta');
export const bankSigner = signer('otp-ta/issuer-node');
export const issuerNodeCert = encodeCertificate(certify({ issuer: pki.intermediary, issuerRole: 'intermediary', role: 'issuer-node', subject: bankSigner }));
export const escrow = deriveKeyPair(new Uint8Array(32).fill(7));
export const depositKeys = deriveKeyPair(new Uint8Array(32).fill(8));

type Commands = typeof otpTrustedApp.commands;
/** An OTP secure element in memory. */
export type OtpSe = InProcessHost<OtpState, Commands>;

/** A class the bank signs with: its published entry and its private key. */
export interface BankClass {
  readonly entry: ClassEntry;
  readonly key: KeyObject;
}

let classCounter = 0;
/** A class of `denomination` minor units whose program carries `conditions` (an expiry and a hop limit by default). */
export function makeClass(denomination: bigint, conditions?: readonly Condition[]): BankClass {
  const until = NOW + 30 * DAY;
  const program = buildProgram(2, conditions ?? [{ kind: 'checkExpiry', until }, { kind: 'checkMaxHops', hops: 3 }]);
  const key = generateRsaKey();
  const { modulus, exponent } = encodePublicKey(rsaPublicKeyOf(key));
  const classId = new Uint8Array(16);
  classId[15] = ++classCounter;
  const coinClass: CoinClass = { classId, denomination: denomination.toString(), currency: 'EUR', programDigest: programDigest(program), modulus, exponent };
  return { entry: { coinClass, program, until, depositUntil: until + 7 * DAY }, key };
}

/** The bank's parameters for `classes`, signed at `at`. */
export function paramsFor(classes: readonly BankClass[], at = NOW): Params {
  return signed(paramsBodyCodec, bankSigner, PARAMS_TAG, { currency: 'EUR', escrowKey: escrow.publicKey, depositKey: depositKeys.publicKey, classes: classes.map((c) => c.entry), at });
}

/** A provisioned wallet: its SE and what reopening it needs. */
export interface Wallet {
  readonly name: string;
  se: OtpSe;
  /** Closes the SE and opens it again from its sealed state. */
  reopen(): Promise<void>;
  /** A second device with a copy of this one's storage and counter (a cloned wallet folder). */
  clone(name: string): Promise<Wallet>;
}

function running(name: string, options: HostOptions<OtpState, Commands> & { storage: MemoryStorage; counter: MemoryCounter }, se: OtpSe): Wallet {
  const wallet: Wallet = {
    name,
    se,
    async reopen() {
      await wallet.se.close();
      wallet.se = await InProcessHost.open(options);
    },
    async clone(cloneName) {
      const copy = { ...options, storage: options.storage.clone(), counter: options.counter.clone() };
      return running(cloneName, copy, await InProcessHost.open(copy));
    },
  };
  return wallet;
}

/** Provisions a wallet: Init, CertInit, the bank's parameters. */
export async function makeWallet(name: string, classes: readonly BankClass[]): Promise<Wallet> {
  const options = { app: otpTrustedApp, storage: new MemoryStorage(), counter: new MemoryCounter(), provider: nodeProvider };
  const se: OtpSe = await InProcessHost.provision(options);
  await se.call('init', { root: encodeCertificate(pki.rootCert), owner: keyId(signer(`otp-ta/owner/${name}`).publicKey) });
  const pinned = await se.call('certInit', { intermediary: encodeCertificate(pki.intermediaryCert), issuerNode: issuerNodeCert, now: NOW });
  assert.deepEqual(pinned.bank, bankSigner.publicKey);
  await se.call('setParams', { params: paramsFor(classes) });
  return running(name, options, se);
}

/** A withdrawal the bank signs blindly: `count` coins of each class named. */
export async function withdraw(wallet: Wallet, classes: readonly BankClass[]): Promise<bigint> {
  const requestId = randomBytes(16);
  const { blinded } = await wallet.se.call('prepareWithdrawal', { requestId, classIds: classes.map((c) => c.entry.coinClass.classId) });
  const signatures = blinded.map((b, i) => blindSign((classes[i] as BankClass).key, b));
  return (await wallet.se.call('finishWithdrawal', { requestId, signatures })).amount;
}

/** Tops a wallet up with `count` exchange keys the bank signs (category as given), and the bank's time `at`. */
export async function giveKeys(wallet: Wallet, count: number, options: { category?: string | null; at?: number; validityMs?: number } = {}): Promise<void> {
  const at = options.at ?? NOW;
  const request = await wallet.se.call('keyRequest', { count });
  const keys = request.body.publicKeys.map((publicKey) => issueExchangeKey(bankSigner, { publicKey, category: options.category ?? null, notBefore: at, notAfter: at + (options.validityMs ?? 30 * DAY) }));
  await wallet.se.call('takeKeys', { keys, time: signed(timeBodyCodec, bankSigner, TIME_TAG, { nonce: request.body.nonce, at }) });
}

/** The bank's receipt for deposited boxes: opened with the deposit key, outcome as told (credited by default). */
export function receiptFor(boxes: readonly SealedCoin[], classes: readonly BankClass[], outcome: (i: number) => DepositOutcome = () => 'credited') {
  let credited = 0n;
  const coins = boxes.map((sealed, i) => {
    const { carried } = openCoin(sealed, depositKeys.privateKey, depositKeys.publicKey);
    const entry = classes.find((c) => Buffer.from(c.entry.coinClass.classId).equals(carried.coin.classId));
    assert.ok(entry !== undefined);
    if (outcome(i) === 'credited') credited += BigInt(entry.entry.coinClass.denomination);
    return { digest: sealedDigest(sealed), outcome: outcome(i) };
  });
  return signed(depositReceiptBodyCodec, bankSigner, DEPOSIT_RECEIPT_TAG, { coins, credited: credited.toString() });
}

/** The class ids of `classes`, `times` each. */
export function idsOf(classes: readonly BankClass[], times = 1): Uint8Array[] {
  return classes.flatMap((c) => Array.from({ length: times }, () => c.entry.coinClass.classId));
}
