/**
 * What `bench dotm` stands on (DOT-M §4.2), without an issuer node:
 * - a central bank made here: the root key is pk_C (it signs the forms of presentation, Figure 4),
 *   the intermediary certifies users, wallets and the issuer node, whose key signs the acks;
 * - wallets: the DOT-M trusted app in a secure element (isolated: a child process with a file
 *   counter; or in-process, for counting), registered as §3.3.1 does it (init, ucert and wcert,
 *   pwd), with an account key and its user certificate that bind the secure link;
 * - software users X, Y and a feeder F that carry blocks through earlier offline transactions, so
 *   the payer holds exactly the n_b blocks with n_d records in all that a cell of Figure 10 asks
 *   for (Figure 8 defines both counts);
 * - the upkeep between runs: redeeming what a wallet holds and the node's ack of its events.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from '../../core/crypto/hash.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { signerFromSecret, type CryptoProvider, type PublicKey, type Signer, type SuiteName } from '../../core/crypto/suite.ts';
import { encodeCertificate, issueCertificate, type Certificate } from '../../pki/certificate.ts';
import type { CertificateExtensions } from '../../pki/extensions.ts';
import { keyId } from '../../pki/key-id.ts';
import type { Role } from '../../pki/roles.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { appendRecord, blockTip } from '../../schemes/dotm/block.ts';
import {
  BLOCK_SERIAL_BYTES,
  GAMMA_TAG,
  SUCCESS_TAG,
  successSigned,
  gammaSigned,
  notificationDigest,
  PRESENTATION_TAG,
  presentationSigned,
  RECORD_TAG,
  recordSigned,
  type CurrencyBlock,
  type TransactionData,
  type TransactionMessage,
  type TransactionRecord,
} from '../../schemes/dotm/messages.ts';
import { EVENT_ACK_TAG, eventAckBodyWire, REDEEM_BLOCKS_MAX } from '../../schemes/dotm/online.ts';
import { dotmTrustedApp, type DotmState } from '../../schemes/dotm/trusted-app.ts';
import { makeCounter } from '../../secure-element/counters.ts';
import { InProcessHost } from '../../secure-element/host.ts';
import { IsolatedHost } from '../../secure-element/host-isolated.ts';
import type { SecureElement } from '../../secure-element/secure-element.ts';
import { FileStorage } from '../../secure-element/storage-file.ts';

/** The currency of the bench's blocks and certificates. */
export const DOTM_BENCH_CURRENCY = 'EUR';
/** The payment password of the bench wallets. */
export const DOTM_BENCH_PASSWORD = 'bench-1234';
/** Value of each block the payer is fed, in minor units. */
export const BLOCK_VALUE_MINOR = 100n;

const HOUR_MS = 3_600_000;
const YEAR_MS = 365 * 24 * HOUR_MS;
const DOTM_APP_LOCATION = { module: new URL('../../schemes/dotm/trusted-app.ts', import.meta.url).href, export: 'dotmTrustedApp' };

type DotmCommands = typeof dotmTrustedApp.commands;
/** A secure element running the DOT-M trusted app, whichever host runs it. */
export type DotmElement = SecureElement<DotmCommands>;

/** The central bank's keys and certificates. */
export interface BenchBank {
  readonly suite: SuiteName;
  /** pk_C: the root key signs the presentations. */
  readonly root: Signer;
  readonly rootCert: Certificate;
  readonly intermediary: Signer;
  readonly intermediaryCert: Certificate;
  /** Signs the acks of wallet events (§3.3.4). */
  readonly issuerNode: Signer;
  readonly issuerNodeCert: Certificate;
  /** Start of every certificate window (an hour before the bench started). */
  readonly notBefore: number;
}

/** A fresh key of `suite`, made by the Node provider. */
export function freshSigner(suite: SuiteName): Signer {
  const s = nodeProvider.suites[suite];
  return signerFromSecret(s, s.generateSecretKey());
}

/** Makes the central bank: a root, an intermediary under it, the issuer node under that; every key in `suite`. */
export function makeBank(suite: SuiteName): BenchBank {
  const notBefore = Date.now() - HOUR_MS;
  const root = freshSigner(suite);
  const intermediary = freshSigner(suite);
  const issuerNode = freshSigner(suite);
  const window = { notBefore, notAfter: notBefore + YEAR_MS };
  const rootCert = issueCertificate({ issuer: root, issuerRole: 'root', role: 'root', subject: root.publicKey, ...window, extensions: { name: 'Bench central bank' } });
  const intermediaryCert = issueCertificate({ issuer: root, issuerRole: 'root', role: 'intermediary', subject: intermediary.publicKey, ...window, extensions: { name: 'Bench intermediary' } });
  const issuerNodeCert = issueCertificate({ issuer: intermediary, issuerRole: 'intermediary', role: 'issuer-node', subject: issuerNode.publicKey, ...window });
  return { suite, root, rootCert, intermediary, intermediaryCert, issuerNode, issuerNodeCert, notBefore };
}

/** A certificate from the bank's intermediary, encoded. */
export function certifyBy(bank: BenchBank, role: Role, subject: PublicKey, extensions: CertificateExtensions): Uint8Array {
  return encodeCertificate(
    issueCertificate({ issuer: bank.intermediary, issuerRole: 'intermediary', role, subject, notBefore: bank.notBefore, notAfter: bank.notBefore + YEAR_MS, extensions }),
  );
}

/** A user whose keys live in software: X, Y and the feeder F. */
export interface SoftUser {
  readonly signer: Signer;
  /** keyId(upk). */
  readonly id: Uint8Array;
  readonly ucert: Uint8Array;
}

/** The feeder F, who also has a wallet key and wcert to sign γ with. */
export interface Feeder extends SoftUser {
  readonly wallet: Signer;
  readonly wcert: Uint8Array;
}

/** The software users that carry blocks to the payer. */
export interface Carriers {
  readonly x: SoftUser;
  readonly y: SoftUser;
  readonly f: Feeder;
}

function softUser(bank: BenchBank, name: string): SoftUser {
  const signer = freshSigner(bank.suite);
  return { signer, id: keyId(signer.publicKey), ucert: certifyBy(bank, 'user', signer.publicKey, { name, currency: DOTM_BENCH_CURRENCY }) };
}

/** Makes X, Y and F with their certificates. */
export function makeCarriers(bank: BenchBank): Carriers {
  const f = softUser(bank, 'Bench feeder F');
  const wallet = freshSigner(bank.suite);
  const wcert = certifyBy(bank, 'device', wallet.publicKey, { scheme: 'dotm', owner: f.id, currency: DOTM_BENCH_CURRENCY });
  return { x: softUser(bank, 'Bench carrier X'), y: softUser(bank, 'Bench carrier Y'), f: { ...f, wallet, wcert } };
}

/** A wallet of the bench: its secure element and what it was registered with. */
export interface BenchParty {
  readonly name: string;
  readonly se: DotmElement;
  /** The account key: it signs the wallet's side of the secure link's binding. */
  readonly account: Signer;
  /** The account's user certificate, sent in the link binding. */
  readonly accountCert: Uint8Array;
  readonly userKey: PublicKey;
  /** keyId(upk): the owner of blocks issued to this user. */
  readonly userId: Uint8Array;
  readonly walletKey: PublicKey;
  readonly ucert: Uint8Array;
  readonly wcert: Uint8Array;
}

/** Starts a secure element in its own process in `dir`, with a file counter beside it. */
export async function startIsolatedElement(dir: string, suite: SuiteName): Promise<DotmElement> {
  const host = await IsolatedHost.start({ app: dotmTrustedApp, location: DOTM_APP_LOCATION, dir: join(dir, 'se'), counter: { kind: 'file', path: join(dir, 'counter') }, suite, provision: true });
  return host as DotmElement;
}

/** Starts a secure element in this process in `dir`, whose keys sign and verify through `provider`. */
export async function startInProcessElement(dir: string, suite: SuiteName, provider: CryptoProvider): Promise<DotmElement> {
  // The file counter lives beside the state: the folder must exist before it opens.
  await mkdir(join(dir, 'se'), { recursive: true, mode: 0o700 });
  const storage = new FileStorage(join(dir, 'se'));
  return InProcessHost.provision<DotmState, DotmCommands>({ app: dotmTrustedApp, storage, counter: makeCounter({ kind: 'file', path: join(dir, 'se', 'counter') }), provider, suite });
}

/**
 * Registers a wallet (§3.3.1): init makes usk and wsk, the intermediary issues ucert (role user,
 * owned by the account) and wcert (role device, scheme dotm, owned by upk), certify, pwd.
 * @throws TallyError SE_REJECTED when the TA refuses a step
 */
export async function registerParty(bank: BenchBank, name: string, se: DotmElement): Promise<BenchParty> {
  const account = freshSigner(bank.suite);
  const accountId = keyId(account.publicKey);
  const accountCert = certifyBy(bank, 'user', account.publicKey, { name: `Bench account ${name}`, currency: DOTM_BENCH_CURRENCY });
  const init = await se.call('init', {
    root: encodeCertificate(bank.rootCert),
    intermediary: encodeCertificate(bank.intermediaryCert),
    issuerNode: encodeCertificate(bank.issuerNodeCert),
    account: accountId,
  });
  const userId = keyId(init.userKey);
  const ucert = certifyBy(bank, 'user', init.userKey, { currency: DOTM_BENCH_CURRENCY, owner: accountId });
  const wcert = certifyBy(bank, 'device', init.walletKey, { scheme: 'dotm', owner: userId, currency: DOTM_BENCH_CURRENCY });
  await se.call('certify', { ucert, wcert });
  await se.call('setPassword', { password: DOTM_BENCH_PASSWORD });
  return { name, se, account, accountCert, userKey: init.userKey, userId, walletKey: init.walletKey, ucert, wcert };
}

/** A fresh block of `value` issued to `owner` (a user key id), signed with pk_C's key (Figure 4). */
export function mintBlock(bank: BenchBank, owner: Uint8Array, value: bigint): CurrencyBlock {
  const unsigned = { serial: randomBytes(BLOCK_SERIAL_BYTES), value, currency: DOTM_BENCH_CURRENCY, owner };
  return { presentation: { ...unsigned, signature: signRecord(bank.root, PRESENTATION_TAG, presentationSigned(unsigned)) }, records: [], remaining: value, count: 0 };
}

function signedRecord(payer: SoftUser, fields: Omit<TransactionRecord, 'signature'>): TransactionRecord {
  return { ...fields, signature: signRecord(payer.signer, RECORD_TAG, recordSigned(fields)) };
}

/**
 * A block carried in software to F over `records` holders: issued to X (or to F when `records` is
 * 1), paid in full X → Y → X → … → F, each record signed by its payer. F's payment to the wallet
 * adds the last record, so the block then carries `records` records.
 */
function carriedToFeeder(bank: BenchBank, carriers: Carriers, records: number, value: bigint): CurrencyBlock {
  const holders: SoftUser[] = Array.from({ length: records }, (_, j) => (j === records - 1 ? carriers.f : j % 2 === 0 ? carriers.x : carriers.y));
  const first = holders[0] ?? carriers.f;
  let block = mintBlock(bank, first.id, value);
  for (let j = 0; j + 1 < holders.length; j++) {
    const payer = holders[j] as SoftUser;
    const payee = holders[j + 1] as SoftUser;
    block = appendRecord(block, signedRecord(payer, { prev: blockTip(block), amount: value, timestamp: Date.now(), ucertP: payer.ucert, ucertR: payee.ucert }));
  }
  return block;
}

/** n_d records spread over n_b blocks as evenly as possible, the larger shares first. */
export function recordsPerBlock(blocks: number, records: number): number[] {
  if (!Number.isInteger(blocks) || blocks < 1) throw new RangeError(`n_b: expected a positive integer, got ${blocks}`);
  if (!Number.isInteger(records) || records < 0) throw new RangeError(`n_d: expected a non-negative integer, got ${records}`);
  const base = Math.floor(records / blocks);
  const extra = records % blocks;
  return Array.from({ length: blocks }, (_, i) => base + (i < extra ? 1 : 0));
}

/**
 * Feeds the payer so it holds one block per entry of `shares`, each carrying that many records:
 * blocks without records are issued to it and loaded (§3.3.2); the others are carried to F in
 * software, then F pays them all to the payer through the payer's own commands (request, accept
 * with σ built here, complete), which adds F's record to each.
 * @throws TallyError SE_REJECTED when the payer's TA refuses a block or σ
 */
export async function feedPayer(bank: BenchBank, carriers: Carriers, payer: BenchParty, shares: readonly number[], value: bigint = BLOCK_VALUE_MINOR): Promise<void> {
  const fresh = shares.filter((k) => k === 0).map(() => mintBlock(bank, payer.userId, value));
  if (fresh.length > 0) await payer.se.call('load', { blocks: fresh, now: Date.now() });
  const carried = shares.filter((k) => k > 0).map((k) => carriedToFeeder(bank, carriers, k, value));
  if (carried.length === 0) return;

  const v = value * BigInt(carried.length);
  const request = await payer.se.call('request', { v, now: Date.now() });
  const { f } = carriers;
  const blocks = carried.map((block) => ({
    block,
    current: signedRecord(f, { prev: blockTip(block), amount: value, timestamp: Date.now(), ucertP: f.ucert, ucertR: request.ucertR }),
  }));
  const tsd: TransactionData = { tsn: request.tsn, v, nb: blocks.length, nd: blocks.reduce((n, t) => n + t.block.records.length, 0), blocks };
  const transaction: TransactionMessage = { tsd, gamma: signRecord(f.wallet, GAMMA_TAG, gammaSigned(tsd)), wcertP: f.wcert };
  const notification = await payer.se.call('accept', { transaction, now: Date.now() });
  const success = { tsn: request.tsn, notification: notificationDigest(notification) };
  await payer.se.call('complete', { success: { ...success, signature: signRecord(f.wallet, SUCCESS_TAG, successSigned(success)) } });
}

/**
 * The upkeep of a wallet between runs, as a sync would do it (§3.3.4): what it holds is redeemed
 * (one redemption takes up to REDEEM_BLOCKS_MAX blocks), then the node's ack clears its events.
 * @throws TallyError SE_REJECTED when the TA refuses a redemption or the ack
 */
export async function drain(bank: BenchBank, party: BenchParty, options: { redeem: boolean }): Promise<void> {
  if (options.redeem) {
    for (let round = 0; round < 8; round++) {
      const status = await party.se.call('status', {});
      if (status.balance === 0n) break;
      const largest = status.blocks.map((b) => b.remaining).sort((a, b) => (a === b ? 0 : a > b ? -1 : 1)).slice(0, REDEEM_BLOCKS_MAX);
      await party.se.call('redeem', { amount: largest.reduce((s, r) => s + r, 0n), password: DOTM_BENCH_PASSWORD, now: Date.now() });
    }
  }
  const { events } = await party.se.call('events', {});
  const last = events.at(-1);
  if (last === undefined) return;
  const body = { wallet: keyId(party.walletKey), upTo: last.body.seq, time: Date.now() };
  await party.se.call('ack', { ack: { body, signature: signRecord(bank.issuerNode, EVENT_ACK_TAG, eventAckBodyWire(body)) } });
}
