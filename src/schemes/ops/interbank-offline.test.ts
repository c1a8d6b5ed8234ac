/**
 * OPS across two banks, offline: a payee with a secure element at bank B takes in a payment from a
 * device of bank A. Its trusted app holds the other banks' intermediary certificates, the root's
 * list of revoked intermediaries and each bank's own list of revoked devices, each verified inside
 * the TA (forged, foreign-rooted and rolled-back inputs are refused there); B's sync of the collect
 * presents it to A and credits B's offline float once settled; a cloned device of A caught at A is
 * refused offline at B once B's payee holds A's newer list. A central bank and banks A, B and C, each
 * a node on loopback with its own PGlite database; every audit and the system's audit balance.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret, type Signer } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { DEFAULT_CURRENCY, startNode, type RunningNode } from '../../cli/node-start.ts';
import { signRequest } from '../../issuer/client/request-auth.ts';
import { loadIdentity } from '../../issuer/identity/load-identity.ts';
import { enrol } from '../../issuer/tier/enrol.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { decodeCertificate, encodeCertificate, issueCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { decodeRevocationList, encodeRevocationList, issueRevocationList } from '../../pki/revocation.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { FileCounter } from '../../secure-element/counter-file.ts';
import { InProcessHost } from '../../secure-element/host.ts';
import { FileStorage } from '../../secure-element/storage-file.ts';
import { ops } from './index.ts';
import { depositConfirmationCodec, encodePayment, syncAckCodec, syncReportBodyWire, type Payment } from './messages.ts';
import { opsTrustedApp } from './trusted-app.ts';
import { TEST_MEASUREMENT } from './test-fixtures.ts';

const PASSPHRASE = 'interbank offline test';
const silent = { log: () => undefined };
const env = { TALLY_NODE_PASSPHRASE: PASSPHRASE };
let root: string;
let calls = 0;

type Json = Record<string, unknown>;
interface Answer {
  status: number;
  body: Json;
}

async function send(base: string, method: string, path: string, options: { body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const text = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const res = await fetch(new URL(path, base), { method, headers: { 'content-type': 'application/json', ...options.headers }, ...(text === undefined ? {} : { body: text }) });
  const got = await res.text();
  return { status: res.status, body: got === '' ? {} : (JSON.parse(got) as Json) };
}

async function signed(base: string, signer: Signer, method: string, path: string, body?: unknown): Promise<Answer> {
  const raw = body === undefined ? '' : JSON.stringify(body);
  const headers = { ...signRequest({ signer, keyId: toHex(keyId(signer.publicKey)), method, path, body: raw, timestamp: Date.now() }), 'idempotency-key': `test-${++calls}-${Date.now()}` };
  return send(base, method, path, { ...(body === undefined ? {} : { raw }), headers });
}

/** A node and its operator. */
class Node {
  constructor(
    readonly name: string,
    public running: RunningNode,
  ) {}
  get url(): string {
    return this.running.url;
  }
  async ok(method: string, path: string, body?: unknown): Promise<Json> {
    const a = await send(this.url, method, path, { ...(body === undefined ? {} : { body }), headers: { authorization: `Bearer ${this.running.operatorToken}`, 'idempotency-key': `op-${++calls}-${Date.now()}` } });
    assert.ok(a.status >= 200 && a.status < 300, `${this.name} ${method} ${path}: ${a.status} ${JSON.stringify(a.body)}`);
    return a.body;
  }
}

class Bank extends Node {
  keyId = '';
  oem!: Signer;
  oemKeyId = '';
  certificates!: { root: Uint8Array; intermediary: Uint8Array; issuerNode: Uint8Array };
  async sync(): Promise<Json> {
    return this.ok('POST', '/v1/operator/reserve/sync');
  }
  async audit(): Promise<Json> {
    const a = await this.ok('GET', '/v1/audit');
    assert.equal(a['balanced'], true, `${this.name}'s audit: ${JSON.stringify(a)}`);
    return a;
  }
  /** The balance of `float:ops`, from the audit's exposure check. */
  async opsFloat(): Promise<string> {
    const a = await this.ok('GET', '/v1/audit');
    return ((a['exposure'] as Json[]).find((e) => e['scheme'] === 'ops') as Json)['float'] as string;
  }
  /** This bank's own signed list of revoked users and devices, as it publishes it. */
  async deviceList(): Promise<Uint8Array> {
    const a = await send(this.url, 'GET', '/v1/revocations');
    assert.equal(a.status, 200);
    return fromBase64url(a.body['list'] as string);
  }
}

let cb: Node;
let banks: Bank[] = [];
let bankA: Bank;
let bankB: Bank;
let bankC: Bank;
let seeds = 80;

async function startBank(name: string): Promise<Bank> {
  const dataDir = join(root, name);
  const asked = await enrol({ dataDir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, name, now: () => Date.now() });
  await cb.ok('POST', `/v1/cb/operator/enrolments/${asked.keyId}/approve`);
  const running = await startNode({ port: 0, host: '127.0.0.1', dataDir, env, schemes: [ops], currency: DEFAULT_CURRENCY, logger: silent, print: () => undefined });
  const bank = new Bank(name, running);
  bank.keyId = asked.keyId;
  await loadIdentity({ dataDir, passphrase: PASSPHRASE, provider: nodeProvider, currency: DEFAULT_CURRENCY, now: Date.now(), log: () => undefined });
  const info = await send(bank.url, 'GET', '/v1/info');
  const certs = info.body['certificates'] as Record<string, string>;
  bank.certificates = { root: fromBase64url(certs['root'] as string), intermediary: fromBase64url(certs['intermediary'] as string), issuerNode: fromBase64url(certs['issuerNode'] as string) };
  bank.oem = signerFromSecret(nobleEd25519, sha256(utf8(`oem of ${name}`)));
  const oem = await bank.ok('POST', '/v1/operator/oems', { name: `OEM of ${name}`, publicKey: { suite: 'ed25519', key: toBase64url(bank.oem.publicKey.key) } });
  bank.oemKeyId = oem['keyId'] as string;
  await bank.ok('POST', '/v1/operator/measurements', { measurement: toHex(TEST_MEASUREMENT), scheme: 'ops', description: 'test build' });
  await cb.ok('POST', '/v1/cb/operator/issue', { intermediary: asked.keyId, amount: '1000.00' });
  return bank;
}

type Se = InProcessHost<unknown, typeof opsTrustedApp.commands>;

function openSe(dir: string, provision: boolean): Promise<Se> {
  const options = { app: opsTrustedApp, storage: new FileStorage(join(dir, 'se')), counter: new FileCounter(join(dir, 'counter')), provider: nodeProvider };
  return (provision ? InProcessHost.provision(options) : InProcessHost.open(options)) as Promise<Se>;
}

interface Holder {
  readonly bank: Bank;
  readonly user: Signer;
  readonly keyId: string;
  readonly account: string;
  readonly se: Se;
  readonly dir: string;
  readonly device: string;
  readonly certificate: Uint8Array;
}

/** A customer of `bank` with an OPS device holding `offline` (nothing when undefined). */
async function holder(bank: Bank, offline?: string): Promise<Holder> {
  const user = signerFromSecret(nobleEd25519, new Uint8Array(32).fill(++seeds));
  const u = await signed(bank.url, user, 'POST', '/v1/users', { publicKey: { suite: 'ed25519', key: toBase64url(user.publicKey.key) } });
  assert.equal(u.status, 201, JSON.stringify(u.body));
  const dir = await mkdtemp(join(root, 'se-'));
  const se = await openSe(dir, true);
  const init = await se.call('init', { root: bank.certificates.root, owner: fromHex(u.body['keyId'] as string) });
  const attestation = attestDevice(bank.oem, { sePublicKey: init.publicKey, model: 'Test SE', taMeasurement: TEST_MEASUREMENT });
  const reg = await signed(bank.url, user, 'POST', '/v1/devices', {
    publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) },
    scheme: 'ops',
    oem: bank.oemKeyId,
    attestation: toBase64url(encodeAttestation(attestation)),
    proof: toBase64url(init.proof),
  });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  const certificate = fromBase64url(reg.body['certificate'] as string);
  await se.call('certInit', { certificate, intermediary: bank.certificates.intermediary, issuerNode: bank.certificates.issuerNode });
  const h: Holder = { bank, user, keyId: u.body['keyId'] as string, account: u.body['account'] as string, se, dir, device: reg.body['keyId'] as string, certificate };
  if (offline !== undefined) {
    await bank.ok('POST', '/v1/operator/mint', { account: h.account, amount: offline });
    const dep = await signed(bank.url, user, 'POST', '/v1/ops/deposits', { device: h.device, amount: offline });
    assert.equal(dep.status, 200, JSON.stringify(dep.body));
    await se.call('deposit', { confirmation: depositConfirmationCodec.decode(decodeCbor(fromBase64url(dep.body['confirmation'] as string))) });
  }
  return h;
}

/** The device's sync at its bank, with the payments it collected from other banks' devices; the ack goes into the TA. */
async function syncTa(h: Holder, payments: readonly Payment[] = []): Promise<Answer> {
  const report = await h.se.call('report', {});
  const a = await signed(h.bank.url, h.user, 'POST', '/v1/ops/sync', {
    device: h.device,
    report: toBase64url(encodeCbor({ body: syncReportBodyWire(report.body), signature: report.signature })),
    ...(payments.length === 0 ? {} : { payments: payments.map((p) => toBase64url(encodePayment(p))) }),
  });
  if (a.status === 200) await h.se.call('syncAck', { ack: syncAckCodec.decode(decodeCbor(fromBase64url(a.body['ack'] as string))), crl: fromBase64url(a.body['crl'] as string) });
  return a;
}

/** What a wallet at any bank gathers for its TA: the directory's certificates, the root's list, and `lists` (other banks' device lists). */
async function peerInput(lists: readonly Uint8Array[]): Promise<{ intermediaries: Uint8Array[]; rootCrl: Uint8Array; crls: Uint8Array[] }> {
  const directory = await send(cb.url, 'GET', '/v1/cb/directory');
  const revocations = await send(cb.url, 'GET', '/v1/cb/revocations');
  return {
    intermediaries: (directory.body['intermediaries'] as Json[]).map((i) => fromBase64url(i['certificate'] as string)),
    rootCrl: fromBase64url(revocations.body['list'] as string),
    crls: [...lists],
  };
}

async function rejected(run: Promise<unknown>, reason: string): Promise<void> {
  await assert.rejects(run, (e) => isTallyError(e, 'SE_REJECTED') && e.details.reason === reason, `expected the TA to refuse with ${reason}`);
}

async function balance(h: Pick<Holder, 'bank' | 'user' | 'account'>): Promise<string> {
  const a = await signed(h.bank.url, h.user, 'GET', `/v1/accounts/${h.account}`);
  return a.body['balance'] as string;
}

async function claimState(h: Pick<Holder, 'bank' | 'user'>, claimId: string): Promise<Json> {
  const a = await signed(h.bank.url, h.user, 'GET', `/v1/interbank/claims/${claimId}`);
  assert.equal(a.status, 200, JSON.stringify(a.body));
  return a.body;
}

async function reserveOf(bank: Bank): Promise<string> {
  const list = (await cb.ok('GET', '/v1/cb/intermediaries'))['intermediaries'] as Json[];
  return list.find((i) => i['keyId'] === bank.keyId)?.['reserve'] as string;
}

/** Every bank synced (a few rounds: a decision of one reaches the other), every audit balanced, the system's too. */
async function settleAndAudit(): Promise<Json> {
  for (let round = 0; round < 3; round++) for (const b of banks) await b.sync();
  for (const b of banks) await b.audit();
  const system = await cb.ok('GET', '/v1/cb/audit');
  assert.equal(system['balanced'], true, `the system's audit: ${JSON.stringify(system)}`);
  return system;
}

function minor(decimal: string): bigint {
  assert.match(decimal, /^-?[0-9]+\.[0-9]{2}$/);
  return BigInt(decimal.replace('.', ''));
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'tally-interbank-offline-'));
  const running = await startNode({ port: 0, host: '127.0.0.1', dataDir: join(root, 'cb'), env, currency: DEFAULT_CURRENCY, role: 'central-bank', logger: silent, print: () => undefined });
  cb = new Node('central bank', running);
  bankA = await startBank('bank-a');
  bankB = await startBank('bank-b');
  bankC = await startBank('bank-c');
  banks = [bankA, bankB, bankC];
  for (let round = 0; round < 2; round++) for (const b of banks) await b.sync();
});

after(async () => {
  for (const n of [...banks, cb]) await n?.running.stop().catch(() => undefined);
  await rm(root, { recursive: true, force: true });
});

describe('a payee TA at B takes in a payment from a device of A offline', () => {
  test("with A's certificate (verified in the TA) it collects; B presents the collect to A and credits its offline float once settled", { timeout: 120_000 }, async () => {
    const alice = await holder(bankA, '30.00');
    const dave = await holder(bankB);
    try {
      await syncTa(dave); // the TA's trusted time passes the start of Alice's certificate
      const payment = await alice.se.call('pay', { amount: 1200n, receiver: dave.certificate });
      // Pinned to its own bank, Dave's TA does not know A's intermediary.
      await rejected(dave.se.call('collect', { payment }), 'PAYMENT_INVALID');
      const taken = await dave.se.call('peers', await peerInput([await bankA.deviceList()]));
      assert.equal(taken.peers, 2, "A's and C's certificates (B's own is not a peer)");
      assert.equal(taken.crls, 1);
      assert.equal((await dave.se.call('collect', { payment })).balance, 1200n);
      await rejected(dave.se.call('collect', { payment }), 'PAYMENT_REPLAYED');

      const floatB0 = minor(await bankB.opsFloat());
      const reserveA0 = minor(await reserveOf(bankA));
      const reserveB0 = minor(await reserveOf(bankB));
      // Without the payment itself B cannot present the collect: the sync is refused, nothing recorded.
      const bare = await syncTa(dave);
      assert.equal(bare.status, 422, JSON.stringify(bare.body));
      assert.equal((bare.body['error'] as Json)['code'], 'PAYMENT_INVALID');
      const synced = await syncTa(dave, [payment]);
      assert.equal(synced.status, 200, JSON.stringify(synced.body));
      const foreign = synced.body['foreign'] as Json[];
      assert.equal(foreign.length, 1, JSON.stringify(synced.body));
      const claim = (foreign[0] as Json)['claim'] as Json;
      assert.equal(claim['status'], 'pending');
      assert.equal(claim['amount'], '12.00');
      // Before settlement: B's float has not received it, and B's audit balances (the claim covers it).
      await bankB.audit();
      assert.equal(minor(await bankB.opsFloat()), floatB0);
      await settleAndAudit();
      assert.equal((await claimState(dave, claim['claimId'] as string))['status'], 'settled');
      assert.equal(minor(await bankB.opsFloat()), floatB0 + 1200n, "B's offline float received it");
      assert.equal(await balance(dave), '0.00', 'the money is on the device, not in the account');
      assert.equal(minor(await reserveOf(bankA)), reserveA0 - 1200n);
      assert.equal(minor(await reserveOf(bankB)), reserveB0 + 1200n);
      // Alice's own report reaches A later: the payment is known and paid once.
      assert.equal((await syncTa(alice)).status, 200);
      // Dave withdraws what he took in: B's float pays it, the books still balance.
      const out = await dave.se.call('withdraw', { amount: 1200n });
      const w = await signed(bankB.url, dave.user, 'POST', '/v1/ops/withdrawals', { device: dave.device, confirmation: toBase64url(encodeCbor({ ...out })) });
      assert.equal(w.status, 200, JSON.stringify(w.body));
      assert.equal(await balance(dave), '12.00');
      await settleAndAudit();
    } finally {
      await alice.se.close();
      await dave.se.close();
    }
  });

  test('the TA refuses a forged peer certificate, one under another root, another currency, a list not signed by its issuer, and older lists', { timeout: 120_000 }, async () => {
    const dave = await holder(bankB);
    try {
      const good = await peerInput([await bankA.deviceList()]);
      assert.equal((await dave.se.call('peers', good)).peers, 2);
      const a = decodeCertificate(bankA.certificates.intermediary);
      // Forged: A's certificate with another key, still naming the root as issuer (the root did not sign it).
      const thief = signerFromSecret(nobleEd25519, new Uint8Array(32).fill(201));
      const forged = encodeCertificate({ body: { ...a.body, subject: thief.publicKey }, signature: a.signature });
      await rejected(dave.se.call('peers', { intermediaries: [forged], crls: [] }), 'CERT_SIGNATURE_INVALID');
      // An intermediary certified by another root (a central bank the TA was not initialised with).
      const otherRoot = signerFromSecret(nobleEd25519, new Uint8Array(32).fill(202));
      const now = Date.now();
      const foreignBank = issueCertificate({ issuer: otherRoot, issuerRole: 'root', subject: thief.publicKey, role: 'intermediary', serial: new Uint8Array(16).fill(2), notBefore: now - 60_000, notAfter: now + 3_600_000, extensions: { currency: 'EUR', name: 'Elsewhere' } });
      await rejected(dave.se.call('peers', { intermediaries: [encodeCertificate(foreignBank)], crls: [] }), 'CERT_UNKNOWN_ISSUER');
      // A list for A's devices signed by B (B's bank trying to revoke, or un-revoke, A's devices).
      const byB = await bankB.deviceList();
      const bList = decodeRevocationList(byB);
      assert.notEqual(toHex(bList.body.issuer), bankA.keyId);
      await rejected(dave.se.call('peers', { intermediaries: [], crls: [byB] }), 'CRL_INVALID');
      // A list with A's issuer id but not A's signature.
      const fakeA = encodeRevocationList({ body: { ...decodeRevocationList(good.crls[0] as Uint8Array).body, version: 99 }, signature: bList.signature });
      await rejected(dave.se.call('peers', { intermediaries: [], crls: [fakeA] }), 'CRL_INVALID');
      // A root list signed by someone else than the root.
      const notRoot = encodeRevocationList(issueRevocationList({ issuer: thief, version: 50, issuedAt: now, revoked: [] }));
      await rejected(dave.se.call('peers', { intermediaries: [], rootCrl: notRoot, crls: [] }), 'CRL_INVALID');
      // Older lists than those held: the root's and A's, once newer ones are in the TA. The newer
      // ones revoke a device of A (its owner lost it) and bank C (the central bank withdrew its licence).
      const oldRoot = good.rootCrl;
      const oldA = good.crls[0] as Uint8Array;
      const victim = await holder(bankA, '1.00');
      const charlie = await holder(bankC, '1.00');
      try {
        await syncTa(dave);
        const fromVictim = await victim.se.call('pay', { amount: 100n, receiver: dave.certificate });
        const fromCharlie = await charlie.se.call('pay', { amount: 100n, receiver: dave.certificate });
        await bankA.ok('POST', '/v1/operator/revoke', { keyId: victim.device, reason: 'lost' });
        await cb.ok('POST', '/v1/cb/operator/revoke', { intermediary: bankC.keyId, reason: 'licence withdrawn' });
        const newer = await peerInput([await bankA.deviceList()]);
        assert.ok(decodeRevocationList(newer.rootCrl).body.version > decodeRevocationList(oldRoot).body.version);
        assert.ok(decodeRevocationList(newer.crls[0] as Uint8Array).body.version > decodeRevocationList(oldA).body.version);
        await dave.se.call('peers', newer);
        await rejected(dave.se.call('peers', { intermediaries: [], rootCrl: oldRoot, crls: [] }), 'CRL_ROLLBACK');
        await rejected(dave.se.call('peers', { intermediaries: [], crls: [oldA] }), 'CRL_ROLLBACK');
        // A revoked device of A, and a device of the revoked bank C, are refused offline.
        await rejected(dave.se.call('collect', { payment: fromVictim }), 'CERT_REVOKED');
        await rejected(dave.se.call('collect', { payment: fromCharlie }), 'CERT_REVOKED');
      } finally {
        await victim.se.close();
        await charlie.se.close();
      }
      // Leaving a list out changes nothing: the newer ones stay.
      assert.equal((await dave.se.call('peers', { intermediaries: [], crls: [] })).crls, 1);
      await settleAndAudit();
    } finally {
      await dave.se.close();
    }
  });
});

/** A customer of `bank` without a device: a registered key, its account and client certificate. */
async function customer(bank: Bank): Promise<{ bank: Bank; user: Signer; keyId: string; account: string; certificate: Uint8Array }> {
  const user = signerFromSecret(nobleEd25519, new Uint8Array(32).fill(++seeds));
  const a = await signed(bank.url, user, 'POST', '/v1/users', { publicKey: { suite: 'ed25519', key: toBase64url(user.publicKey.key) } });
  assert.equal(a.status, 201, JSON.stringify(a.body));
  return { bank, user, keyId: a.body['keyId'] as string, account: a.body['account'] as string, certificate: fromBase64url(a.body['certificate'] as string) };
}

describe('a cloned device of A pays a customer of A online and a payee TA at B offline', () => {
  test("A catches the double spend, names and revokes the device, refuses B's claim; B's payee refuses the device once it holds A's newer list", { timeout: 120_000 }, async () => {
    const alice = await holder(bankA, '40.00');
    const carol = await customer(bankA);
    const dave = await holder(bankB);
    const cloneDir = await mkdtemp(join(root, 'clone-'));
    await cp(alice.dir, cloneDir, { recursive: true });
    const clone = await openSe(cloneDir, false);
    try {
      await syncTa(dave);
      await dave.se.call('peers', await peerInput([await bankA.deviceList()]));
      const before = await settleAndAudit();
      const floatB0 = minor(await bankB.opsFloat());
      const toCarol = await alice.se.call('pay', { amount: 1000n, receiver: carol.certificate });
      const toDave = await clone.call('pay', { amount: 1000n, receiver: dave.certificate });
      assert.equal(toCarol.index, toDave.index, 'the clone signs the same index again');
      const local = await signed(bankA.url, carol.user, 'POST', '/v1/ops/claims', { payment: toBase64url(encodePayment(toCarol)) });
      assert.equal(local.status, 200, JSON.stringify(local.body));
      // Offline, Dave's TA cannot tell: the clone's payment verifies and goes in.
      assert.equal((await dave.se.call('collect', { payment: toDave })).balance, 1000n);
      const synced = await syncTa(dave, [toDave]);
      assert.equal(synced.status, 200, JSON.stringify(synced.body));
      const claimId = (((synced.body['foreign'] as Json[])[0] as Json)['claim'] as Json)['claimId'] as string;
      const after = await settleAndAudit();
      const state = await claimState(dave, claimId);
      assert.equal(state['status'], 'refused', JSON.stringify(state));
      assert.equal(state['code'], 'DOUBLE_SPEND');
      assert.match(state['reason'] as string, new RegExp(alice.device));
      assert.equal(minor(await bankB.opsFloat()), floatB0, "B's float got nothing for it");
      assert.deepEqual(after['intermediaries'] && (after['intermediaries'] as Json[]).map((i) => i['reserve']), (before['intermediaries'] as Json[]).map((i) => i['reserve']), 'no reserve moved');
      // B's audit balances with the loss named: the device of A that made it.
      const exposure = ((await bankB.audit())['exposure'] as Json[]).find((e) => e['scheme'] === 'ops') as Json;
      assert.deepEqual(exposure['exposed'], [{ device: alice.device, amount: '10.00', fraud: true }]);
      assert.equal(exposure['attributed'], '10.00');
      // A named the device in a fraud case and revoked it: its list says so.
      const fraud = (await bankA.ok('GET', '/v1/ops/fraud'))['cases'] as Json[];
      assert.ok(fraud.some((f) => f['device'] === alice.device && f['kind'] === 'clone'), JSON.stringify(fraud));
      const listA = decodeRevocationList(await bankA.deviceList());
      assert.ok(listA.body.revoked.some((serial) => toHex(serial) === toHex(decodeCertificate(alice.certificate).body.serial)));
      // The clone pays Dave again: refused offline once Dave's TA holds A's newer list.
      const later = await clone.call('pay', { amount: 500n, receiver: dave.certificate });
      await dave.se.call('peers', await peerInput([await bankA.deviceList()]));
      await rejected(dave.se.call('collect', { payment: later }), 'CERT_REVOKED');
      assert.equal((await dave.se.call('balance', {})).balance, 1000n);
      await settleAndAudit();
    } finally {
      await clone.close();
      await alice.se.close();
      await dave.se.close();
    }
  });
});
