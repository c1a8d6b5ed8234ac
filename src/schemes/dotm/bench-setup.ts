/**
 * What `bench dotm` stands on (DOT-M §4.2), over the harness's issuer node serving DOT-M:
 * - the central bank is the node: its root key is pk_C and signs the forms of presentation of the
 *   blocks it issues (Figure 4), its intermediary certifies users and wallets, its issuer-node key
 *   signs the acks of wallet events (§3.3.4);
 * - wallets: the DOT-M trusted app in a secure element (isolated: a child process with a file
 *   counter; or in-process, for counting), registered with the node as §3.3.1 does it (init, the
 *   OEM's attestation of wpk, ucert and wcert from the node, pwd), with an account key and its user
 *   certificate that bind the secure link;
 * - software users X, Y and a feeder F, registered with the node like any wallet but with their keys
 *   in software, that carry blocks the node issued through earlier offline transactions, so the
 *   payer holds exactly the n_b blocks with n_d records in all that a cell of Figure 10 asks for
 *   (Figure 8 defines both counts);
 * - the online steps between runs, through the node's routes: blocks issued and loaded, what a
 *   wallet holds redeemed, its events uploaded and the node's ack applied.
 */
import { fromBase64url, fromHex, toBase64url, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { signerFromSecret, type PublicKey, type Signer, type SuiteName } from '../../core/crypto/suite.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { signRegistrationProof } from '../../pki/registration.ts';
import type { SecureElement } from '../../secure-element/secure-element.ts';
import type { BenchHarness, BenchNode, BenchOem, BenchUser } from '../../sim/bench/plugin.ts';
import { appendRecord, blockTip } from './block.ts';
import { dotmNodePart } from './node.ts';
import { decodeBlock, DOTM_SCHEME, GAMMA_TAG, gammaSigned, notificationDigest, RECORD_TAG, recordSigned, SUCCESS_TAG, successSigned, type CurrencyBlock, type TransactionData, type TransactionMessage, type TransactionRecord } from './messages.ts';
import { eventAckCodec, REDEEM_BLOCKS_MAX, walletEventWire } from './online.ts';
import { dotmTrustedApp, USER_PROOF_SCHEME } from './trusted-app.ts';

/** The payment password of the bench wallets. */
export const DOTM_BENCH_PASSWORD = 'bench-1234';
/** Value of each block the payer is fed, in minor units. */
export const BLOCK_VALUE_MINOR = 100n;
/** The TA build the bench OEM attests and the bench node allows. */
const BENCH_MEASUREMENT = sha256(utf8('tally dotm trusted app, bench build'));
/** Where the isolated host's child process finds the DOT-M trusted app. */
const DOTM_APP_LOCATION = { module: new URL('./trusted-app.ts', import.meta.url).href, export: 'dotmTrustedApp' };
/** Most events in one upload, and most base64url characters: the node's limits, as the wallet keeps to them. */
const UPLOAD_EVENTS_MAX = 16;
const UPLOAD_CHARS_MAX = 48 * 1024;

/** A secure element running the DOT-M trusted app, whichever host runs it. */
export type DotmElement = SecureElement<typeof dotmTrustedApp.commands>;

/** The node the bench stands on, its OEM, and the suite of every key. */
export interface DotmWorld {
  readonly harness: BenchHarness;
  readonly node: BenchNode;
  readonly oem: BenchOem;
  readonly suite: SuiteName;
}

/** Opens a node serving DOT-M with its keys in `suite`, and enrols the bench OEM. */
export async function openWorld(harness: BenchHarness, suite: SuiteName): Promise<DotmWorld> {
  return worldOn(harness, await harness.openNode({ schemes: [dotmNodePart], suite }), suite);
}

/** The bench's world on a node already serving DOT-M with keys in `suite`: enrols the bench OEM. */
export async function worldOn(harness: BenchHarness, node: BenchNode, suite: SuiteName): Promise<DotmWorld> {
  const oem = await node.enrolOem(DOTM_SCHEME, BENCH_MEASUREMENT);
  return { harness, node, oem, suite };
}

function freshSigner(world: DotmWorld): Signer {
  const s = world.harness.provider.suites[world.suite];
  return signerFromSecret(s, s.generateSecretKey());
}

const keyJson = (k: PublicKey) => ({ suite: k.suite, key: toBase64url(k.key) });

/** The node's answer to a wallet registration. */
interface Registered {
  readonly wallet: string;
  readonly ucert: Uint8Array;
  readonly wcert: Uint8Array;
}

/** Registers wpk and upk for `account` (POST /v1/dotm/wallets): the proofs of possession, the OEM's attestation of wpk. */
async function registerWallet(world: DotmWorld, account: BenchUser, keys: { userKey: PublicKey; userProof: Uint8Array; walletKey: PublicKey; walletProof: Uint8Array }, model: string): Promise<Registered> {
  const attestation = attestDevice(world.oem.signer, { sePublicKey: keys.walletKey, model, taMeasurement: BENCH_MEASUREMENT });
  const body = (await world.node.call(account.signer, 'POST', '/v1/dotm/wallets', {
    userKey: keyJson(keys.userKey),
    userProof: toBase64url(keys.userProof),
    walletKey: keyJson(keys.walletKey),
    walletProof: toBase64url(keys.walletProof),
    oem: world.oem.keyId,
    attestation: toBase64url(encodeAttestation(attestation)),
  })) as { wallet: string; ucert: string; wcert: string };
  return { wallet: body.wallet, ucert: fromBase64url(body.ucert), wcert: fromBase64url(body.wcert) };
}

/** A user whose keys live in software (X, Y, the feeder F), registered with the node as a wallet. */
export interface SoftUser {
  readonly account: BenchUser;
  /** usk. */
  readonly signer: Signer;
  /** keyId(upk). */
  readonly id: Uint8Array;
  readonly ucert: Uint8Array;
  /** wsk: signs γ. */
  readonly walletSigner: Signer;
  /** keyId(wpk), as the node names the wallet. */
  readonly wallet: string;
  readonly wcert: Uint8Array;
}

/** The software users that carry blocks to the payer. */
export interface Carriers {
  readonly x: SoftUser;
  readonly y: SoftUser;
  readonly f: SoftUser;
}

async function softUser(world: DotmWorld, name: string): Promise<SoftUser> {
  const account = await world.node.registerUser(world.suite);
  const signer = freshSigner(world);
  const walletSigner = freshSigner(world);
  const userProof = signRegistrationProof(signer, { owner: fromHex(account.keyId), scheme: USER_PROOF_SCHEME });
  const walletProof = signRegistrationProof(walletSigner, { owner: keyId(signer.publicKey), scheme: DOTM_SCHEME });
  const registered = await registerWallet(world, account, { userKey: signer.publicKey, userProof, walletKey: walletSigner.publicKey, walletProof }, `Bench software carrier ${name}`);
  return { account, signer, id: keyId(signer.publicKey), ucert: registered.ucert, walletSigner, wallet: registered.wallet, wcert: registered.wcert };
}

/** Registers X, Y and F with the node. */
export async function makeCarriers(world: DotmWorld): Promise<Carriers> {
  return { x: await softUser(world, 'X'), y: await softUser(world, 'Y'), f: await softUser(world, 'F') };
}

/** A wallet of the bench: its secure element and what it was registered with. */
export interface BenchParty {
  readonly name: string;
  readonly se: DotmElement;
  /** The account holder: its key signs the calls to the node and the wallet's side of the link's binding. */
  readonly user: BenchUser;
  readonly account: Signer;
  /** The account's user certificate, sent in the link binding. */
  readonly accountCert: Uint8Array;
  readonly userKey: PublicKey;
  /** keyId(upk): the owner of blocks issued to this user. */
  readonly userId: Uint8Array;
  readonly walletKey: PublicKey;
  /** keyId(wpk), as the node names the wallet. */
  readonly wallet: string;
  readonly ucert: Uint8Array;
  readonly wcert: Uint8Array;
}

/** Starts a secure element in its own process in `dir`, with a file counter beside it. */
export function startIsolatedElement(world: DotmWorld, dir: string): Promise<DotmElement> {
  return world.harness.startElement({ app: dotmTrustedApp, location: DOTM_APP_LOCATION, dir, suite: world.suite });
}

/** Starts a secure element in this process in `dir`, whose keys sign and verify through `provider` (a meter's). */
export function startInProcessElement(world: DotmWorld, dir: string, provider: BenchHarness['provider']): Promise<DotmElement> {
  return world.harness.startInProcessElement({ app: dotmTrustedApp, dir, suite: world.suite, provider });
}

/**
 * Registers a wallet with the node (§3.3.1): an account, init makes usk and wsk, the OEM attests
 * wpk, the node issues ucert (role user, owned by the account) and wcert (role device, scheme dotm,
 * owned by upk), certify, pwd.
 * @throws TallyError SE_REJECTED when the TA refuses a step; Error when the node refuses
 */
export async function registerParty(world: DotmWorld, name: string, se: DotmElement): Promise<BenchParty> {
  const { node } = world;
  const user = await node.registerUser(world.suite);
  const init = await se.call('init', {
    root: encodeCertificate(node.certificates.root),
    intermediary: encodeCertificate(node.certificates.intermediary),
    issuerNode: encodeCertificate(node.certificates.issuerNode),
    account: fromHex(user.keyId),
  });
  const registered = await registerWallet(world, user, init, 'Bench SE');
  await se.call('certify', { ucert: registered.ucert, wcert: registered.wcert });
  await se.call('setPassword', { password: DOTM_BENCH_PASSWORD });
  return {
    name,
    se,
    user,
    account: user.signer,
    accountCert: user.certificate,
    userKey: init.userKey,
    userId: keyId(init.userKey),
    walletKey: init.walletKey,
    wallet: registered.wallet,
    ucert: registered.ucert,
    wcert: registered.wcert,
  };
}

/** The online steps' times of one run, ms: issuing and loading blocks, redeeming, uploading events and applying the ack. */
export interface OnlineTimes {
  issue: number[];
  redeem: number[];
  sync: number[];
}

/** Empty online times. */
export function onlineTimes(): OnlineTimes {
  return { issue: [], redeem: [], sync: [] };
}

/** Has the node issue `count` blocks of `value` to a wallet of `account` (the account is minted what they cost first). */
async function issue(world: DotmWorld, account: BenchUser, wallet: string, count: number, value: bigint): Promise<CurrencyBlock[]> {
  const { node } = world;
  const amount = value * BigInt(count);
  await node.mint(account.account, amount);
  const body = (await node.call(account.signer, 'POST', '/v1/dotm/issue', { wallet, amount: node.amount(amount), blocks: count })) as { blocks: string[] };
  return body.blocks.map((b) => decodeBlock(fromBase64url(b)));
}

function signedRecord(payer: SoftUser, fields: Omit<TransactionRecord, 'signature'>): TransactionRecord {
  return { ...fields, signature: signRecord(payer.signer, RECORD_TAG, recordSigned(fields)) };
}

/**
 * Blocks issued to X (to F when `records` is 1) carried in software to F over `records` holders:
 * paid in full X → Y → X → … → F, each record signed by its payer. F's payment to the wallet adds
 * the last record, so each block then carries `records` records.
 */
async function carriedToFeeder(world: DotmWorld, carriers: Carriers, records: number, count: number, value: bigint): Promise<CurrencyBlock[]> {
  const holders: SoftUser[] = Array.from({ length: records }, (_, j) => (j === records - 1 ? carriers.f : j % 2 === 0 ? carriers.x : carriers.y));
  const first = holders[0] ?? carriers.f;
  const issued = await issue(world, first.account, first.wallet, count, value);
  return issued.map((fresh) => {
    let block = fresh;
    for (let j = 0; j + 1 < holders.length; j++) {
      const payer = holders[j] as SoftUser;
      const payee = holders[j + 1] as SoftUser;
      block = appendRecord(block, signedRecord(payer, { prev: blockTip(block), amount: value, timestamp: Date.now(), ucertP: payer.ucert, ucertR: payee.ucert }));
    }
    return block;
  });
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
 * blocks without records are issued by the node to the payer and loaded (§3.3.2, timed as an
 * online step); the others are issued to the carriers and carried to F in software, then F pays
 * them all to the payer through the payer's own commands (request, accept with σ built here,
 * complete), which adds F's record to each.
 * @throws TallyError SE_REJECTED when the payer's TA refuses a block or σ; Error when the node refuses
 */
export async function feedPayer(world: DotmWorld, carriers: Carriers, payer: BenchParty, shares: readonly number[], times: OnlineTimes, value: bigint = BLOCK_VALUE_MINOR): Promise<void> {
  const freshCount = shares.filter((k) => k === 0).length;
  if (freshCount > 0) {
    const started = performance.now();
    const fresh = await issue(world, payer.user, payer.wallet, freshCount, value);
    await payer.se.call('load', { blocks: fresh, now: Date.now() });
    times.issue.push(performance.now() - started);
  }
  const byRecords = new Map<number, number>();
  for (const k of shares) if (k > 0) byRecords.set(k, (byRecords.get(k) ?? 0) + 1);
  const carried: CurrencyBlock[] = [];
  for (const [records, count] of byRecords) carried.push(...(await carriedToFeeder(world, carriers, records, count, value)));
  if (carried.length === 0) return;

  const v = value * BigInt(carried.length);
  const request = await payer.se.call('request', { v, now: Date.now() });
  const { f } = carriers;
  const blocks = carried.map((block) => ({
    block,
    current: signedRecord(f, { prev: blockTip(block), amount: value, timestamp: Date.now(), ucertP: f.ucert, ucertR: request.ucertR }),
  }));
  const tsd: TransactionData = { tsn: request.tsn, v, nb: blocks.length, nd: blocks.reduce((n, t) => n + t.block.records.length, 0), blocks };
  const transaction: TransactionMessage = { tsd, gamma: signRecord(f.walletSigner, GAMMA_TAG, gammaSigned(tsd)), wcertP: f.wcert };
  const notification = await payer.se.call('accept', { transaction, now: Date.now() });
  // Step 8, signed with the feeding wallet's wsk_P as a payer's secure element signs it.
  const success = { tsn: request.tsn, notification: notificationDigest(notification) };
  await payer.se.call('complete', { success: { ...success, signature: signRecord(f.walletSigner, SUCCESS_TAG, successSigned(success)) } });
}

/** Event texts in uploads the node takes (at most 16, about 48 KiB of characters each; a larger event alone). */
function uploads(texts: readonly string[]): string[][] {
  const out: string[][] = [];
  let current: string[] = [];
  let chars = 0;
  for (const text of texts) {
    if (current.length > 0 && (current.length === UPLOAD_EVENTS_MAX || chars + text.length > UPLOAD_CHARS_MAX)) {
      out.push(current);
      current = [];
      chars = 0;
    }
    current.push(text);
    chars += text.length;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/**
 * A wallet's sync (§3.3.4): its events uploaded to the node in order, the node's ack (and
 * revocation list) applied, which clears them.
 * @throws Error when the node refuses an event or finds fraud: a bench wallet must never be suspected
 */
async function syncParty(world: DotmWorld, party: BenchParty): Promise<void> {
  const { node } = world;
  const { events } = await party.se.call('events', {});
  const texts = events.map((e) => toBase64url(encodeCbor(walletEventWire(e))));
  type Answer = { ack: string; crl: string; results: Array<{ seq: number; status: string; code?: string; message?: string }>; findings: unknown[] };
  let last: Answer | undefined;
  for (const chunk of uploads(texts).concat(texts.length === 0 ? [[]] : [])) {
    const response = await node.send(party.account, 'POST', '/v1/dotm/events', { wallet: party.wallet, events: chunk });
    const text = await response.text();
    if (response.status >= 300) {
      const largest = Math.max(0, ...chunk.map((t) => Math.ceil((t.length * 3) / 4)));
      throw new Error(`${party.name}'s sync: the node refused an upload of ${chunk.length} event(s), the largest ${largest} bytes: ${response.status} ${text.slice(0, 300)}`);
    }
    last = JSON.parse(text) as Answer;
    const refused = last.results.filter((r) => r.status === 'refused');
    if (refused.length > 0 || last.findings.length > 0) throw new Error(`${party.name}'s sync: refused ${JSON.stringify(refused)}, findings ${JSON.stringify(last.findings)}`);
  }
  if (last === undefined) return;
  const ack = eventAckCodec.decode(decodeCbor(fromBase64url(last.ack)), 'ack');
  await party.se.call('ack', { ack, crl: fromBase64url(last.crl) });
}

/**
 * The upkeep of a wallet between runs, as the wallet does it online: what it holds is redeemed (one
 * redemption takes up to REDEEM_BLOCKS_MAX blocks), then a sync has the node credit the redemptions
 * and acknowledge every event. Both steps are timed as online steps.
 * @throws TallyError SE_REJECTED when the TA refuses a redemption or the ack; Error when the node refuses
 */
export async function drain(world: DotmWorld, party: BenchParty, options: { redeem: boolean }, times: OnlineTimes): Promise<void> {
  if (options.redeem) {
    for (let round = 0; round < 8; round++) {
      const status = await party.se.call('status', {});
      if (status.balance === 0n) break;
      const largest = status.blocks.map((b) => b.remaining).sort((a, b) => (a === b ? 0 : a > b ? -1 : 1)).slice(0, REDEEM_BLOCKS_MAX);
      const started = performance.now();
      await party.se.call('redeem', { amount: largest.reduce((s, r) => s + r, 0n), password: DOTM_BENCH_PASSWORD, now: Date.now() });
      times.redeem.push(performance.now() - started);
    }
  }
  const started = performance.now();
  await syncParty(world, party);
  times.sync.push(performance.now() - started);
}
