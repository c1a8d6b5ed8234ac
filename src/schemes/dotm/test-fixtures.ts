/**
 * Fixtures for DOT-M node tests (not exported): an issuer node with the DOT-M module, an enrolled
 * OEM and an allowed trusted-app measurement; parties, each an account holder with a DOT-M trusted
 * app in an in-process secure element (temporary folder, file counter), registered and certified;
 * and the flows: issue and load, the nine steps in memory (the trusted apps' commands called in
 * the paper's order), uploading events and applying the ack, redeeming, and the conservation check.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret, type Signer } from '../../core/crypto/suite.ts';
import type { testBackends } from '../../issuer/db/test-databases.ts';
import { setup, type TestUser } from '../../issuer/http/test-harness.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { FileCounter } from '../../secure-element/counter-file.ts';
import { InProcessHost } from '../../secure-element/host.ts';
import { deriveDeviceKeys } from '../../secure-element/sealing.ts';
import { FileStorage } from '../../secure-element/storage-file.ts';
import { DOTM_FLOAT_ACCOUNT, dotmNodePart } from './node.ts';
import { decodeBlock, type CurrencyBlock } from './messages.ts';
import { eventAckCodec, walletEventWire, type WalletEvent } from './online.ts';
import { dotmTrustedApp, WALLET_KEY_LABEL, type DotmState } from './trusted-app.ts';

/** The measurement the test OEM attests and the node allows for DOT-M. */
export const TEST_MEASUREMENT = sha256(utf8('tally dotm trusted app, test build'));
/** Every test wallet's payment password. */
export const PASSWORD = 'correct horse';

type Backend = ReturnType<typeof testBackends>[number];
/** The DOT-M trusted app's commands. */
export type DotmCommands = typeof dotmTrustedApp.commands;
/** A DOT-M secure element in this process. */
export type DotmSe = InProcessHost<DotmState, DotmCommands>;

/** A party: its account, its secure element and the keys the node registered. */
export interface DotmParty extends TestUser {
  readonly name: string;
  readonly se: DotmSe;
  readonly dir: string;
  /** Key id of wpk. */
  readonly wallet: string;
  /** Key id of upk. */
  readonly userKeyId: string;
}

/** The JSON of POST /v1/dotm/events. */
export interface EventsAnswer {
  ack: string;
  crl: string;
  crlVersion: number;
  results: { seq: number; status: string; code?: string; message?: string; credited?: string; refund?: string }[];
  findings: { kind: string; subject: string; serial: string | null; culprit: string; wallet: string | null; received: string | null; spent: string | null; records: string[]; reason: string }[];
}

/** How far a payment goes: the paper's success, or one of the exceptional situations of §3.3.5. */
export type PaymentEnd =
  /** Steps 1–9. */
  | 'complete'
  /** Situations 3 and 5: P reached step 7 (deducted), R rolled back at step 9. */
  | 'confirmed-rolled-back'
  /** Situations 2 and 4: R rolled back after step 5, P withdrew its offer before step 7. */
  | 'abandoned-rolled-back';

/** A node with DOT-M, an enrolled OEM and the test measurement allowed. */
export async function dotmNode(backend: Backend) {
  const h = await setup(backend, { schemes: [dotmNodePart] });
  const oem = signerFromSecret(nobleEd25519, sha256(utf8('test oem for dotm')));
  const enrolled = await h.asOperator('POST', '/v1/operator/oems', { name: 'Test OEM', publicKey: { suite: 'ed25519', key: toBase64url(oem.publicKey.key) } });
  assert.equal(enrolled.status, 201, await enrolled.clone().text());
  const oemKeyId = ((await enrolled.json()) as { keyId: string }).keyId;
  const allowed = await h.asOperator('POST', '/v1/operator/measurements', { measurement: toHex(TEST_MEASUREMENT), scheme: 'dotm', description: 'dotm test build' });
  assert.equal(allowed.status, 201, await allowed.clone().text());
  const { identity } = h.node.services;
  const dirs: string[] = [];
  const open: DotmSe[] = [];
  let seed = 170;
  let keys = 0;
  const key = () => ({ 'idempotency-key': `dotm-${++keys}-${Date.now()}` });

  async function openSe(dir: string, provision: boolean): Promise<DotmSe> {
    const options = { app: dotmTrustedApp, storage: new FileStorage(join(dir, 'se')), counter: new FileCounter(join(dir, 'counter')), provider: nodeProvider };
    const se = (await (provision ? InProcessHost.provision(options) : InProcessHost.open(options))) as DotmSe;
    open.push(se);
    return se;
  }

  /** An account holder with a provisioned trusted app that ran `init`: what registration needs. */
  async function unregistered(name: string) {
    const account = await h.register(++seed);
    const dir = await mkdtemp(join(tmpdir(), `tally-dotm-${name}-`));
    dirs.push(dir);
    const se = await openSe(dir, true);
    const init = await se.call('init', {
      root: encodeCertificate(identity.root.certificate),
      intermediary: encodeCertificate(identity.intermediary.certificate),
      issuerNode: encodeCertificate(identity.issuerNode.certificate),
      account: fromHex(account.keyId),
    });
    return { name, ...account, se, dir, init };
  }
  type Unregistered = Awaited<ReturnType<typeof unregistered>>;

  /** The body of POST /v1/dotm/wallets for `ta`, with the test OEM's attestation of its wallet key. */
  function registration(ta: Unregistered, change: { measurement?: Uint8Array; oem?: string } = {}) {
    const attestation = attestDevice(oem, { sePublicKey: ta.init.walletKey, model: 'Test SE', taMeasurement: change.measurement ?? TEST_MEASUREMENT });
    return {
      userKey: { suite: ta.init.userKey.suite, key: toBase64url(ta.init.userKey.key) },
      userProof: toBase64url(ta.init.userProof),
      walletKey: { suite: ta.init.walletKey.suite, key: toBase64url(ta.init.walletKey.key) },
      walletProof: toBase64url(ta.init.walletProof),
      oem: change.oem ?? oemKeyId,
      attestation: toBase64url(encodeAttestation(attestation)),
    };
  }

  async function register(ta: Pick<Unregistered, 'user'>, body: unknown): Promise<Response> {
    return h.signed(ta.user, 'POST', '/v1/dotm/wallets', body, key());
  }

  /** A registered, certified party with a password and `money` in its account. */
  async function party(name: string, money = '100.00'): Promise<DotmParty> {
    const ta = await unregistered(name);
    const res = await register(ta, registration(ta));
    assert.equal(res.status, 201, await res.clone().text());
    const registered = (await res.json()) as { wallet: string; user: string; ucert: string; wcert: string };
    await ta.se.call('certify', { ucert: fromBase64url(registered.ucert), wcert: fromBase64url(registered.wcert) });
    await ta.se.call('setPassword', { password: PASSWORD });
    if (money !== '0') await mint(ta, money);
    const { init: _init, ...rest } = ta;
    return { ...rest, wallet: registered.wallet, userKeyId: registered.user };
  }

  async function mint(who: Pick<TestUser, 'account'>, amount: string): Promise<void> {
    const res = await h.asOperator('POST', '/v1/operator/mint', { account: who.account, amount });
    assert.equal(res.status, 200, await res.clone().text());
  }

  /** POST /v1/dotm/issue as `who` for `wallet` (its own by default). */
  async function issue(who: Pick<DotmParty, 'user' | 'wallet'>, amount: string, options: { blocks?: number; wallet?: string; key?: Record<string, string> } = {}): Promise<Response> {
    const body = { wallet: options.wallet ?? who.wallet, amount, ...(options.blocks === undefined ? {} : { blocks: options.blocks }) };
    return h.signed(who.user, 'POST', '/v1/dotm/issue', body, options.key ?? key());
  }

  /** §3.3.2 end to end: the node issues, the trusted app loads. */
  async function withdraw(p: DotmParty, amount: string, blocks?: number): Promise<CurrencyBlock[]> {
    const res = await issue(p, amount, blocks === undefined ? {} : { blocks });
    assert.equal(res.status, 201, await res.clone().text());
    const issued = ((await res.json()) as { blocks: string[] }).blocks.map((b) => decodeBlock(fromBase64url(b)));
    await p.se.call('load', { blocks: issued, now: h.now() });
    return issued;
  }

  /** §3.3.3 in memory: R asks, P pays, R accepts, then the payment ends as `end` says. */
  async function pay(payer: Pick<DotmParty, 'se'>, payee: Pick<DotmParty, 'se'>, v: bigint, end: PaymentEnd = 'complete') {
    const request = await payee.se.call('request', { v, now: h.now() });
    const paid = await payer.se.call('pay', { request, password: PASSWORD, expect: { v }, now: h.now() });
    assert.equal(paid.kind, 'transaction');
    assert.ok(paid.transaction !== undefined);
    const notification = await payee.se.call('accept', { transaction: paid.transaction, now: h.now() });
    if (end === 'abandoned-rolled-back') {
      await payer.se.call('abandon', {});
      await payee.se.call('rollback', {});
    } else {
      const success = await payer.se.call('confirm', { notification });
      await (end === 'complete' ? payee.se.call('complete', { success }) : payee.se.call('rollback', {}));
    }
    return { request, transaction: paid.transaction, notification };
  }

  /** The base64url form of events for the upload body. */
  const wire = (events: readonly WalletEvent[]) => events.map((e) => toBase64url(encodeCbor(walletEventWire(e))));

  /** POST /v1/dotm/events with these events (the wallet's whole unacknowledged log by default). */
  async function upload(p: Pick<DotmParty, 'user' | 'wallet' | 'se'>, options: { events?: readonly WalletEvent[]; raw?: string[]; key?: Record<string, string>; se?: DotmSe } = {}): Promise<Response> {
    const events = options.raw ?? wire(options.events ?? (await (options.se ?? p.se).call('events', {})).events);
    return h.signed(p.user, 'POST', '/v1/dotm/events', { wallet: p.wallet, events }, options.key ?? key());
  }

  /** §3.3.4: uploads the log, then applies the node's ack and revocation list in the trusted app. */
  async function sync(p: Pick<DotmParty, 'user' | 'wallet' | 'se'>, se: DotmSe = p.se): Promise<EventsAnswer> {
    const res = await upload(p, { se });
    assert.equal(res.status, 200, await res.clone().text());
    const answer = (await res.json()) as EventsAnswer;
    await applyAck(se, answer);
    return answer;
  }

  async function applyAck(se: DotmSe, answer: Pick<EventsAnswer, 'ack' | 'crl'>) {
    const ack = eventAckCodec.decode(decodeCbor(fromBase64url(answer.ack)));
    return se.call('ack', { ack, crl: fromBase64url(answer.crl) });
  }

  /** Gives `amount` up in the trusted app and syncs: the node credits it (or refuses). */
  async function redeem(p: DotmParty, amount: bigint): Promise<EventsAnswer> {
    await p.se.call('redeem', { amount, password: PASSWORD, now: h.now() });
    return sync(p);
  }

  /** Copies a party's secure element folder (sealed state, master secret, file counter) and opens the copy: a clone. */
  async function cloneSe(p: Pick<DotmParty, 'dir'>): Promise<DotmSe> {
    const dir = await mkdtemp(join(tmpdir(), 'tally-dotm-clone-'));
    dirs.push(dir);
    await cp(p.dir, dir, { recursive: true });
    return openSe(dir, false);
  }

  /** wsk of a secure element folder, as an attacker who extracted it would hold it. */
  async function extractWalletKey(dir: string): Promise<Signer> {
    const master = await new FileStorage(join(dir, 'se')).readMaster();
    assert.ok(master !== null);
    return deriveDeviceKeys(master, nodeProvider).signer(dotmTrustedApp.name, WALLET_KEY_LABEL, 'ed25519');
  }

  /** An account balance in minor units. */
  async function balanceMinor(who: Pick<TestUser, 'account'>): Promise<bigint> {
    const account = await h.node.services.ledger.account(who.account);
    assert.ok(account !== undefined);
    return account.balance;
  }

  /**
   * The audit balances, nothing sits in settlement, and float:dotm holds exactly what the given
   * secure elements hold (pass every genuine one; a clone's copies are not backed by the float).
   */
  async function conservation(holders: readonly DotmSe[]): Promise<{ float: bigint; held: bigint }> {
    const audit = await h.node.services.ledger.audit();
    assert.equal(audit.balanced, true, `the audit does not balance: ${JSON.stringify(audit, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
    const eur = audit.currencies.find((c) => c.currency === 'EUR');
    assert.ok(eur !== undefined, 'the audit has no EUR');
    assert.equal(eur.totalSettlement, 0n);
    const float = eur.offlineFloat.find((f) => f.account === DOTM_FLOAT_ACCOUNT)?.amount ?? 0n;
    let held = 0n;
    for (const se of holders) held += (await se.call('status', {})).balance;
    assert.equal(float, held, `float:dotm ${float} ≠ Σ TA balances ${held}`);
    return { float, held };
  }

  return {
    h,
    oem,
    oemKeyId,
    key,
    openSe,
    unregistered,
    registration,
    register,
    party,
    mint,
    issue,
    withdraw,
    pay,
    wire,
    upload,
    sync,
    applyAck,
    redeem,
    cloneSe,
    extractWalletKey,
    balanceMinor,
    conservation,
    async close() {
      for (const se of open) await se.close();
      await h.close();
      for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** An open DOT-M test node. */
export type DotmNode = Awaited<ReturnType<typeof dotmNode>>;
