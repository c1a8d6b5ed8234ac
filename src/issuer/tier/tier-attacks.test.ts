/**
 * Tier 1 under attack and under crashes, with real parts: a central bank and intermediaries, each a
 * node on loopback with its own database (PGlite; the intermediaries' on PostgreSQL too when
 * TEST_DATABASE_URL is set), and, where the central bank itself is the attacker, a hostile central
 * bank on loopback that answers what the test says and passes everything else to the real one.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fromBase64url, toBase64url, toHex } from '../../core/bytes.ts';
import { isTallyError } from '../../core/errors.ts';
import { signerFromSecret, type Signer } from '../../core/crypto/suite.ts';
import { keyId } from '../../pki/key-id.ts';
import { decodeCertificate, encodeCertificate, issueCertificate } from '../../pki/certificate.ts';
import { encodeRevocationList, issueRevocationList } from '../../pki/revocation.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { startNode, DEFAULT_CURRENCY, type RunningNode } from '../../cli/node-start.ts';
import type { Logger } from '../../cli/log.ts';
import { signRequest } from '../client/request-auth.ts';
import type { Database } from '../db/database.ts';
import { closeTestTemplates, testBackends, type TestBackend, type TestDatabase } from '../db/test-databases.ts';
import { beginEnrolment } from '../identity/enrolment.ts';
import { createIdentity } from '../identity/create-identity.ts';
import { readKeyFile } from '../identity/keystore.ts';
import { hasIdentity } from '../identity/layout.ts';
import { loadOrCreateIdentity } from '../identity/node-identity.ts';
import { resolvePassphrase } from '../identity/passphrase.ts';
import { enrol } from './enrol.ts';
import { seedPgliteCluster } from '../db/test-pglite-cluster.ts';
import { signEnrolment } from './enrolment-record.ts';
import { CentralBankLink, centralBankInfo, MOVEMENT_PAGES_PER_SYNC, submitEnrolment } from './link.ts';

const PASSPHRASE = 'tier attacks test passphrase';
const env = { TALLY_NODE_PASSPHRASE: PASSPHRASE };
const quiet: Logger = { log: () => {} };
const ed25519 = nodeProvider.suites.ed25519;
const backends = testBackends();
const backend = backends.find((b) => b.kind === 'postgres' && b.skip === undefined) ?? (backends.find((b) => b.kind === 'pglite') as TestBackend);
let base = '';
const running: RunningNode[] = [];
const databases: TestDatabase[] = [];
const fakes: Server[] = [];

async function start(dataDir: string, options: { role?: 'central-bank'; db?: Database } = {}): Promise<RunningNode> {
  // A new folder starts on a copy of the tests' new PGlite cluster (test-pglite-cluster.ts).
  if (options.db === undefined) await seedPgliteCluster(dataDir);
  const node = await startNode({ port: 0, host: '127.0.0.1', dataDir, env, currency: DEFAULT_CURRENCY, logger: quiet, print: () => {}, schemes: [], tierSyncMs: 0, ...options });
  running.push(node);
  return node;
}

async function stop(node: RunningNode): Promise<void> {
  await node.stop();
  running.splice(running.indexOf(node), 1);
}

/** A fresh database for a node, which the node may close: the test disposes of it (and, on PostgreSQL, its schema) at the end. */
async function openDb(): Promise<Database> {
  const opened = await backend.open();
  databases.push(opened);
  const { db } = opened;
  return { kind: db.kind, query: (sql, params) => db.query(sql, params), exec: (sql) => db.exec(sql), transaction: (fn, options) => db.transaction(fn, options), close: async () => {} };
}

type Answer = { status: number; body: Record<string, unknown>; replayed: boolean };

async function http(node: RunningNode | string, method: string, path: string, options: { token?: string; body?: unknown; idempotencyKey?: string } = {}): Promise<Answer> {
  const url = typeof node === 'string' ? node : node.url;
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
      ...(method === 'POST' ? { 'idempotency-key': options.idempotencyKey ?? `test-${toHex(crypto.getRandomValues(new Uint8Array(8)))}` } : {}),
    },
    ...(body === undefined ? {} : { body }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, replayed: res.headers.get('idempotent-replayed') === 'true' };
}

const errorCode = (answer: { body: Record<string, unknown> }) => (answer.body['error'] as { code: string } | undefined)?.code;
const freshSigner = (): Signer => signerFromSecret(ed25519, ed25519.generateSecretKey());
const keyIdOf = (signer: Signer) => toHex(keyId(signer.publicKey));

/** A POST signed by an intermediary's key, as its link sends it. */
async function signedPost(url: string, path: string, signer: Signer, text: string): Promise<{ status: number; body: Record<string, unknown>; headers: Record<string, string> }> {
  const headers = { ...signRequest({ signer, keyId: keyIdOf(signer), method: 'POST', path, body: text, timestamp: Date.now() }), 'content-type': 'application/json', 'idempotency-key': `post-${toHex(crypto.getRandomValues(new Uint8Array(8)))}` };
  const res = await fetch(`${url}${path}`, { method: 'POST', headers, body: text });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers };
}

/** A central bank that answers what `answer` says and passes everything else to the real one at `real`. */
async function hostileCentralBank(real: string, answer: (method: string, path: string) => { status: number; body: unknown } | undefined): Promise<{ url: string; served: string[] }> {
  const served: string[] = [];
  const read = async (req: IncomingMessage) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  };
  const server = createServer((req, res) => {
    void (async () => {
      const body = await read(req);
      const path = req.url ?? '/';
      served.push(`${req.method} ${path}`);
      let reply = answer(req.method ?? 'GET', path);
      if (reply === undefined) {
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string' && name !== 'host' && name !== 'content-length' && name !== 'connection') headers[name] = value;
        const passed = await fetch(`${real}${path}`, { method: req.method ?? 'GET', headers, ...(body === '' ? {} : { body }) });
        reply = { status: passed.status, body: await passed.json() };
      }
      res.writeHead(reply.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(reply.body));
    })().catch((e: unknown) => {
      res.writeHead(500);
      res.end(String(e));
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  fakes.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, served };
}

/** Enrols an intermediary (asked, approved, completed) and starts it, on `db` when given. */
async function enrolled(cb: RunningNode, dataDir: string, name: string, db?: Database): Promise<{ node: RunningNode; keyId: string; dir: string }> {
  const asked = await enrol({ dataDir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, name, rootKeyId: cb.rootKeyId, now: Date.now });
  const approved = await http(cb, 'POST', `/v1/cb/operator/enrolments/${asked.keyId}/approve`, { token: cb.operatorToken });
  assert.equal(approved.status, 200, JSON.stringify(approved.body));
  assert.equal((await enrol({ dataDir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, now: Date.now })).completed, true);
  return { node: await start(dataDir, db === undefined ? {} : { db }), keyId: asked.keyId, dir: dataDir };
}

/** What an intermediary's books hold of its reserve. */
async function mirror(db: Database): Promise<{ cursor: number; reserve: bigint; unallocated: bigint; movements: number }> {
  const cursor = (await db.query<{ cursor: bigint }>('SELECT cursor FROM tier_link WHERE one')).rows[0];
  const balance = async (id: string) => BigInt((await db.query<{ balance: bigint }>('SELECT balance FROM accounts WHERE id = $1', [id])).rows[0]?.balance ?? 0n);
  const movements = (await db.query<{ n: bigint }>("SELECT count(*) AS n FROM transfers WHERE kind IN ('reserve-in', 'reserve-out')")).rows[0];
  return { cursor: cursor === undefined ? 0 : Number(cursor.cursor), reserve: -(await balance('cb:issuance')), unallocated: await balance('cb:reserve'), movements: Number(movements?.n ?? 0) };
}

async function issue(cb: RunningNode, intermediary: string, amount: string): Promise<void> {
  const issued = await http(cb, 'POST', '/v1/cb/operator/issue', { token: cb.operatorToken, body: { intermediary, amount } });
  assert.equal(issued.status, 200, JSON.stringify(issued.body));
}

async function auditLine(cb: RunningNode, key: string): Promise<{ balanced: boolean; problem?: string; reported: { cursor: number; reserve: string; online: string } | null }> {
  const audit = await http(cb, 'GET', '/v1/cb/audit', { token: cb.operatorToken });
  const line = (audit.body['intermediaries'] as { keyId: string; balanced: boolean; problem?: string; reported: { cursor: number; reserve: string; online: string } | null }[]).find((l) => l.keyId === key);
  assert.ok(line !== undefined, `intermediary ${key} is in the audit`);
  return line;
}

before(async () => {
  base = await mkdtemp(join(tmpdir(), 'tally-tier-attacks-'));
});
after(async () => {
  for (const node of [...running]) await node.stop();
  for (const server of fakes) {
    server.closeAllConnections();
    await new Promise((done) => server.close(done));
  }
  for (const opened of databases) await opened.dispose();
  await closeTestTemplates();
  await rm(base, { recursive: true, force: true });
});

describe(`tier 1 under attack (intermediaries on ${backend.kind})`, () => {
  let cb: RunningNode;
  let cbDir = '';
  let rootSigner: Signer;
  let a: { node: RunningNode; keyId: string; dir: string; db: Database };
  let b: { node: RunningNode; keyId: string; dir: string; db: Database };

  before(async () => {
    cbDir = join(base, 'cb');
    cb = await start(cbDir, { role: 'central-bank', db: await openDb() });
    rootSigner = (await readKeyFile(join(cbDir, 'identity', 'root.key'), PASSPHRASE, nodeProvider)).signer;
    const dbA = await openDb();
    a = { ...(await enrolled(cb, join(base, 'bank-a'), 'Bank A', dbA)), db: dbA };
    const dbB = await openDb();
    b = { ...(await enrolled(cb, join(base, 'bank-b'), 'Bank B', dbB)), db: dbB };
  });

  /** A link of `who` to `centralBank` (another object over the same database, as a second process would be). */
  async function linkOf(who: { dir: string; db: Database }, centralBank?: string): Promise<CentralBankLink> {
    const identity = await loadOrCreateIdentity({ dataDir: who.dir, passphrase: PASSPHRASE, provider: nodeProvider, currency: DEFAULT_CURRENCY, now: Date.now() });
    return new CentralBankLink({ db: who.db, identity: centralBank === undefined ? identity : { ...identity, centralBank }, provider: nodeProvider, currency: DEFAULT_CURRENCY, now: Date.now });
  }

  describe('enrolment', () => {
    test('an approval replayed answers the same certificate and certifies nothing more; a decision stands; a request sent again after it does not undo it', async () => {
      const dir = join(base, 'bank-replay');
      const asked = await enrol({ dataDir: dir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, name: 'Bank Replay', now: Date.now });
      const path = `/v1/cb/operator/enrolments/${asked.keyId}/approve`;
      const first = await http(cb, 'POST', path, { token: cb.operatorToken, idempotencyKey: 'approve-replay-1' });
      assert.equal(first.status, 200);
      const replayed = await http(cb, 'POST', path, { token: cb.operatorToken, idempotencyKey: 'approve-replay-1' });
      assert.equal(replayed.replayed, true);
      assert.deepEqual(replayed.body, first.body, 'the same answer, the same certificate');
      assert.equal(errorCode(await http(cb, 'POST', path, { token: cb.operatorToken })), 'ALREADY_SETTLED', 'approved again under a new key');
      assert.equal(errorCode(await http(cb, 'POST', `/v1/cb/operator/enrolments/${asked.keyId}/refuse`, { token: cb.operatorToken, body: { reason: 'too late' } })), 'ALREADY_SETTLED');
      const pending = await readKeyFile(join(dir, 'enrolment', 'intermediary.key'), PASSPHRASE, nodeProvider);
      const again = await submitEnrolment(cb.url, { name: 'Bank Replay', currency: 'EUR', rootKeyId: cb.rootKeyId, intermediary: pending.signer, keyId: asked.keyId });
      const atCb = await http(cb, 'GET', `/v1/cb/enrolments/${asked.keyId}`);
      assert.equal(atCb.body['status'], 'approved', 'sent again, the request is still approved');
      assert.equal(atCb.body['certificate'], first.body['certificate'], 'with the one certificate');
      assert.ok(again.status === 'pending' || again.status === 'approved');
      assert.equal((await enrol({ dataDir: dir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, now: Date.now })).completed, true);
      await assert.rejects(enrol({ dataDir: dir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, now: Date.now }), (e) => isTallyError(e, 'ROLE_MISMATCH'), 'an enrolled folder enrols no more');
    });

    test('a request racing its own approval: one row, one certificate, approved in the end', async () => {
      const dir = join(base, 'bank-race');
      const info = await centralBankInfo(cb.url);
      const pending = await beginEnrolment({ dataDir: dir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, name: 'Bank Race', currency: info.currency, rootCertificate: info.rootCertificate, suite: 'ed25519', now: Date.now() });
      const submit = () => submitEnrolment(cb.url, { name: 'Bank Race', currency: 'EUR', rootKeyId: cb.rootKeyId, intermediary: pending.intermediary, keyId: pending.keyId }).catch((e: unknown) => e);
      const approve = () => http(cb, 'POST', `/v1/cb/operator/enrolments/${pending.keyId}/approve`, { token: cb.operatorToken });
      const [, approval] = await Promise.all([submit(), approve(), submit(), submit()]);
      const approvals = [approval];
      if (approval.status !== 200) {
        assert.equal(errorCode(approval), 'NOT_FOUND', 'an approval that came first finds nothing to approve');
        approvals.push(await approve());
      }
      assert.equal(approvals.filter((x) => x.status === 200).length, 1);
      const certificate = approvals.find((x) => x.status === 200)?.body['certificate'];
      await Promise.all([submit(), submit()]);
      const atCb = await http(cb, 'GET', `/v1/cb/enrolments/${pending.keyId}`);
      assert.equal(atCb.body['status'], 'approved');
      assert.equal(atCb.body['certificate'], certificate);
      assert.equal((await enrol({ dataDir: dir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, now: Date.now })).completed, true);
    });

    test('the same key under two names, even at once: one is kept, the other ALREADY_REGISTERED', async () => {
      const key = freshSigner();
      const send = (name: string) =>
        http(cb, 'POST', '/v1/cb/enrolments', { body: { name, publicKey: { suite: 'ed25519', key: toBase64url(key.publicKey.key) }, proof: toBase64url(signEnrolment(key, { name, currency: 'EUR', rootKeyId: cb.rootKeyId, subject: key.publicKey })) } });
      const answers = await Promise.all([send('Bank Two One'), send('Bank Two Two')]);
      assert.deepEqual(answers.map((x) => x.status).sort(), [202, 409], JSON.stringify(answers.map((x) => x.body)));
      const kept = answers.find((x) => x.status === 202)?.body['name'];
      assert.equal(errorCode(answers.find((x) => x.status === 409) as Answer), 'ALREADY_REGISTERED');
      assert.equal((await http(cb, 'GET', `/v1/cb/enrolments/${keyIdOf(key)}`)).body['name'], kept);
      assert.equal(errorCode(await send(kept === 'Bank Two One' ? 'Bank Two Two' : 'Bank Two One')), 'ALREADY_REGISTERED', 'and later');
    });

    test("the central bank's root key is never enrolled as an intermediary; another intermediary's key is not enrolled again under another name", async () => {
      const asRoot = await http(cb, 'POST', '/v1/cb/enrolments', {
        body: { name: 'Root In Disguise', publicKey: { suite: 'ed25519', key: toBase64url(rootSigner.publicKey.key) }, proof: toBase64url(signEnrolment(rootSigner, { name: 'Root In Disguise', currency: 'EUR', rootKeyId: cb.rootKeyId, subject: rootSigner.publicKey })) },
      });
      assert.equal(asRoot.status, 409, JSON.stringify(asRoot.body));
      assert.equal(errorCode(asRoot), 'ALREADY_REGISTERED');
      assert.equal((await http(cb, 'GET', `/v1/cb/enrolments/${cb.rootKeyId}`)).status, 404, 'no request of the root key was stored');

      const keyA = (await readKeyFile(join(a.dir, 'identity', 'intermediary.key'), PASSPHRASE, nodeProvider)).signer;
      const certificateA = (await http(cb, 'GET', `/v1/cb/enrolments/${a.keyId}`)).body['certificate'];
      const sendA = (name: string) => http(cb, 'POST', '/v1/cb/enrolments', { body: { name, publicKey: { suite: 'ed25519', key: toBase64url(keyA.publicKey.key) }, proof: toBase64url(signEnrolment(keyA, { name, currency: 'EUR', rootKeyId: cb.rootKeyId, subject: keyA.publicKey })) } });
      assert.equal(errorCode(await sendA('Bank A Again')), 'ALREADY_REGISTERED');
      const same = await sendA('Bank A');
      assert.equal(same.body['status'], 'approved', 'its own request again: as decided');
      assert.equal(same.body['certificate'], certificateA, 'no new certificate');
    });

    test('completeEnrolment refuses a certificate a central bank answers for another key, role, currency, name or root, or out of date; the folder waits unchanged', async () => {
      let answer: { status: number; body: unknown } = { status: 404, body: { error: { code: 'NOT_FOUND', message: 'none' } } };
      let asked: { keyId: string } | undefined;
      const fake = await hostileCentralBank(cb.url, (method, path) => {
        if (method === 'POST' && path === '/v1/cb/enrolments') return { status: 202, body: { keyId: asked?.keyId ?? 'unknown', name: 'Bank F', status: 'pending' } };
        if (method === 'GET' && path.startsWith('/v1/cb/enrolments/')) return answer;
        return undefined;
      });
      const dir = join(base, 'bank-fake');
      const pending = await beginEnrolment({ dataDir: dir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: fake.url, name: 'Bank F', ...(await centralBankInfo(fake.url)), suite: 'ed25519', now: Date.now() });
      asked = pending;
      const now = Date.now();
      const certify = (o: { subject?: Signer; role?: 'intermediary' | 'oem'; currency?: string; name?: string; issuer?: Signer; notAfter?: number }) =>
        toBase64url(
          encodeCertificate(
            issueCertificate({
              issuer: o.issuer ?? rootSigner,
              issuerRole: 'root',
              role: o.role ?? 'intermediary',
              subject: (o.subject ?? pending.intermediary).publicKey,
              notBefore: now - 3_600_000,
              notAfter: o.notAfter ?? now + 86_400_000,
              extensions: { name: o.name ?? 'Bank F', currency: o.currency ?? 'EUR' },
            }),
          ),
        );
      const approved = (certificate: string) => ({ status: 200, body: { keyId: pending.keyId, name: 'Bank F', status: 'approved', certificate } });
      const cases: [string, string][] = [
        ['another key', certify({ subject: freshSigner() })],
        ['another role', certify({ role: 'oem' })],
        ['another currency', certify({ currency: 'USD' })],
        ['another name', certify({ name: 'Bank G' })],
        ['another root', certify({ issuer: freshSigner() })],
        ['out of date', certify({ notAfter: now - 60_000 })],
        ['not a certificate', toBase64url(new Uint8Array([1, 2, 3]))],
        ['not base64url', 'not a certificate'],
      ];
      for (const [why, certificate] of cases) {
        answer = approved(certificate);
        await assert.rejects(
          enrol({ dataDir: dir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: fake.url, now: Date.now }),
          (e) => isTallyError(e) && (e.code.startsWith('CERT_') || e.code === 'DECODE_FAILED'),
          why,
        );
        assert.equal(await hasIdentity(dir), false, `${why}: no identity made`);
        await stat(join(dir, 'enrolment', 'request.json'));
      }
      answer = approved(certify({ subject: freshSigner() }));
      await assert.rejects(start(dir), (e) => isTallyError(e, 'CERT_CHAIN_INVALID'), 'a start refuses it too');
      answer = { status: 200, body: { keyId: pending.keyId, name: 'Bank F', status: 'approved' } };
      assert.equal((await enrol({ dataDir: dir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: fake.url, now: Date.now })).completed, false, 'approved without a certificate: nothing to make');
      // The same answer with the right certificate completes: the refusals above were each for the field they changed.
      answer = approved(certify({}));
      assert.equal((await enrol({ dataDir: dir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: fake.url, now: Date.now })).completed, true);
      assert.equal(await hasIdentity(dir), true);
    });

    test('a crash between the enrolment folder and the request: the next enrol sends it, and so does a start', async () => {
      const info = await centralBankInfo(cb.url);
      const crashed = async (name: string) => {
        const dir = join(base, `bank-${name.toLowerCase().replace(/ /g, '-')}`);
        const pending = await beginEnrolment({ dataDir: dir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, name, currency: info.currency, rootCertificate: info.rootCertificate, suite: 'ed25519', now: Date.now() });
        assert.equal((await http(cb, 'GET', `/v1/cb/enrolments/${pending.keyId}`)).status, 404, 'never sent');
        return { dir, keyId: pending.keyId };
      };
      const one = await crashed('Bank Crash One');
      const outcome = await enrol({ dataDir: one.dir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, now: Date.now });
      assert.equal(outcome.requested, false);
      assert.equal(outcome.status, 'pending');
      assert.equal((await http(cb, 'GET', `/v1/cb/enrolments/${one.keyId}`)).body['status'], 'pending', 'the central bank has it now');

      const two = await crashed('Bank Crash Two');
      await assert.rejects(start(two.dir), (e) => isTallyError(e, 'ENROLMENT_PENDING'));
      assert.equal((await http(cb, 'GET', `/v1/cb/enrolments/${two.keyId}`)).body['status'], 'pending');
    });

    test('a folder with an enrolment and an identity: enrol refuses it; a completion cut short before the enrolment folder went still starts as the intermediary', async () => {
      // A standalone identity made beside an enrolment under way.
      const dir = join(base, 'bank-both');
      const asked = await enrol({ dataDir: dir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, name: 'Bank Both', now: Date.now });
      assert.equal(await createIdentity({ dataDir: dir, passphrase: PASSPHRASE, provider: nodeProvider, currency: DEFAULT_CURRENCY, now: Date.now() }), 'created');
      await assert.rejects(enrol({ dataDir: dir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, now: Date.now }), (e) => isTallyError(e, 'ROLE_MISMATCH'));
      await http(cb, 'POST', `/v1/cb/operator/enrolments/${asked.keyId}/approve`, { token: cb.operatorToken });
      const standalone = await start(dir);
      assert.equal(standalone.role, 'standalone', 'the identity decides; the enrolment is not completed over it');
      await stop(standalone);

      // The identity renamed into place, then a crash before the enrolment folder was removed.
      const cut = join(base, 'bank-cut');
      const cutAsked = await enrol({ dataDir: cut, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, name: 'Bank Cut', now: Date.now });
      await http(cb, 'POST', `/v1/cb/operator/enrolments/${cutAsked.keyId}/approve`, { token: cb.operatorToken });
      await cp(join(cut, 'enrolment'), join(cut, 'enrolment-kept'), { recursive: true });
      assert.equal((await enrol({ dataDir: cut, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, now: Date.now })).completed, true);
      await rename(join(cut, 'enrolment-kept'), join(cut, 'enrolment'));
      const node = await start(cut);
      assert.equal(node.role, 'intermediary');
      await stop(node);
      await assert.rejects(enrol({ dataDir: cut, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, now: Date.now }), (e) => isTallyError(e, 'ROLE_MISMATCH'));
    });

    test('a wrong passphrase on the second enrol changes nothing and sends nothing; no new passphrase is generated over an enrolment', async () => {
      const dir = join(base, 'bank-passphrase');
      const asked = await enrol({ dataDir: dir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, name: 'Bank Passphrase', now: Date.now });
      const request = await readFile(join(dir, 'enrolment', 'request.json'));
      await assert.rejects(enrol({ dataDir: dir, passphrase: 'not the passphrase', provider: nodeProvider, centralBank: cb.url, now: Date.now }), (e) => isTallyError(e, 'AEAD_FAILED'));
      assert.deepEqual(await readFile(join(dir, 'enrolment', 'request.json')), request);
      assert.equal((await http(cb, 'GET', `/v1/cb/enrolments/${asked.keyId}`)).body['status'], 'pending');
      // Neither TALLY_NODE_PASSPHRASE nor a passphrase file: a new passphrase could never open the key there.
      await assert.rejects(resolvePassphrase({ dataDir: dir, env: {} }), (e) => isTallyError(e, 'DECODE_FAILED'));
      await assert.rejects(stat(join(dir, 'passphrase')), { code: 'ENOENT' }, 'no passphrase file was written');
    });
  });

  describe('the reserve mirror', () => {
    test('two syncs at once, from two links over the same books: every movement recorded once', async () => {
      for (const amount of ['10.00', '20.00', '30.00']) await issue(cb, a.keyId, amount);
      const before = await mirror(a.db);
      const [one, two] = [await linkOf(a), await linkOf(a)];
      const reports = await Promise.all([one.sync(), two.sync(), http(a.node, 'POST', '/v1/operator/reserve/sync', { token: a.node.operatorToken })]);
      const after = await mirror(a.db);
      assert.equal(after.movements - before.movements, 3);
      assert.equal(after.reserve - before.reserve, 6000n);
      assert.equal(reports[0].recorded + reports[1].recorded + Number(reports[2].body['recorded']), 3, 'each counted by the sync that recorded it');
      assert.equal((await auditLine(cb, a.keyId)).balanced, true);
    });

    test('a crash between recording a movement and moving the cursor records nothing; the next sync records it once; a cursor set back records nothing twice', async () => {
      await issue(cb, a.keyId, '5.00');
      const before = await mirror(a.db);
      await a.db.exec(`CREATE FUNCTION tally_test_crash() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the process stops here'; END $$;
        CREATE TRIGGER tally_test_crash BEFORE UPDATE ON tier_link FOR EACH ROW EXECUTE FUNCTION tally_test_crash();`);
      try {
        await assert.rejects((await linkOf(a)).sync(), /the process stops here/);
      } finally {
        await a.db.exec('DROP TRIGGER tally_test_crash ON tier_link; DROP FUNCTION tally_test_crash();');
      }
      assert.deepEqual(await mirror(a.db), before, 'the movement went with its cursor');
      const synced = await (await linkOf(a)).sync();
      assert.equal(synced.recorded, 1);
      const after = await mirror(a.db);
      assert.equal(after.reserve - before.reserve, 500n);
      // The cursor alone set back (as if it had been lost): the movements are found recorded, not recorded again.
      await a.db.query('UPDATE tier_link SET cursor = 0 WHERE one');
      await (await linkOf(a)).sync();
      assert.deepEqual(await mirror(a.db), after);
    });

    test('a hostile movements answer is refused whole: nothing recorded, the cursor where it was', async () => {
      await (await linkOf(a)).sync();
      const before = await mirror(a.db);
      const c = before.cursor;
      const move = (id: number, amount = '1.00', extra: Record<string, unknown> = {}) => ({ id, amount, direction: 'in', kind: 'cb-issue', at: new Date().toISOString(), ...extra });
      let page: unknown = null;
      const fake = await hostileCentralBank(cb.url, (method, path) => (method === 'GET' && path.startsWith('/v1/cb/movements') ? { status: 200, body: page } : undefined));
      const link = await linkOf(a, fake.url);
      const cases: [string, unknown][] = [
        ['a negative amount', [move(c + 1, '-5.00')]],
        ['a zero amount', [move(c + 1, '0.00')]],
        ['a huge amount', [move(c + 1, '99999999999999999999.00')]],
        ['more decimals than the currency', [move(c + 1, '1.001')]],
        ['an amount that is a number', [move(c + 1, 5 as unknown as string)]],
        ['ids going backwards', [move(c + 2), move(c + 1)]],
        ['an id twice', [move(c + 1), move(c + 1)]],
        ['an id at the cursor', [move(c)]],
        ['a direction unknown', [move(c + 1, '1.00', { direction: 'sideways' })]],
        ['a kind that is not text', [move(c + 1, '1.00', { kind: { a: 1 } })]],
        ['a movement that is not an object', [null]],
        ['a fine movement before a bad one', [move(c + 1), move(c + 2, '-1.00')]],
      ];
      for (const [why, movements] of cases) {
        page = { reserve: `reserve:${a.keyId}`, movements, more: false };
        await assert.rejects(link.sync(), (e) => isTallyError(e, 'DECODE_FAILED'), why);
        assert.deepEqual(await mirror(a.db), before, `${why}: nothing recorded`);
      }
      page = { reserve: `reserve:${a.keyId}`, movements: 'none', more: false };
      await assert.rejects(link.sync(), (e) => isTallyError(e, 'DECODE_FAILED'));
      assert.deepEqual(await mirror(a.db), before);
      // The same page again and again, "more" each time: refused at the second page, not looped on.
      page = { reserve: `reserve:${a.keyId}`, movements: [], more: true };
      await link.sync();
      assert.deepEqual(await mirror(a.db), before, 'an empty page that says more ends the sync');
    });

    test('a central bank with "more" forever: one sync reads a bounded number of pages and stops', async () => {
      const db = await openDb();
      const dir = join(base, 'bank-more');
      const more = await enrolled(cb, dir, 'Bank More', db);
      let next = 1_000_000;
      const fake = await hostileCentralBank(cb.url, (method, path) => {
        if (method === 'GET' && path.startsWith('/v1/cb/movements')) {
          next += 1;
          // Stops after far more pages than a sync may read, so that a link without a bound ends too (and fails below).
          return { status: 200, body: { reserve: `reserve:${more.keyId}`, movements: [{ id: next, amount: '0.01', direction: 'in', kind: 'cb-issue', at: new Date().toISOString() }], more: next < 1_000_000 + 10 * MOVEMENT_PAGES_PER_SYNC } };
        }
        if (method === 'POST' && path === '/v1/cb/positions') return { status: 200, body: { recorded: true } };
        return undefined;
      });
      const link = await linkOf({ dir, db }, fake.url);
      const report = await link.sync();
      const pages = fake.served.filter((line) => line.startsWith('GET /v1/cb/movements')).length;
      assert.equal(pages, MOVEMENT_PAGES_PER_SYNC, 'no more pages than the bound');
      assert.equal(report.recorded, MOVEMENT_PAGES_PER_SYNC);
      await stop(more.node);
    });

    test("an intermediary's database restored from an older backup: its cursor is behind, the next sync records what it missed once, and its report catches up", async () => {
      const dir = join(base, 'bank-restored');
      const restored = await enrolled(cb, dir, 'Bank Restored');
      const sync = async (node: RunningNode) => {
        const synced = await http(node, 'POST', '/v1/operator/reserve/sync', { token: node.operatorToken });
        assert.equal(synced.status, 200, JSON.stringify(synced.body));
        return synced.body;
      };
      await issue(cb, restored.keyId, '100.00');
      await sync(restored.node);
      await stop(restored.node);
      await cp(join(dir, 'pglite'), join(base, 'bank-restored-backup'), { recursive: true });
      let node = await start(dir);
      await issue(cb, restored.keyId, '50.00');
      const newer = await sync(node);
      assert.equal(newer['reserve'], '150.00');
      await stop(node);
      await rm(join(dir, 'pglite'), { recursive: true, force: true });
      await cp(join(base, 'bank-restored-backup'), join(dir, 'pglite'), { recursive: true });
      node = await start(dir);
      const caughtUp = await sync(node);
      assert.equal(caughtUp['recorded'], 1, 'the movement the backup missed');
      assert.equal(caughtUp['reserve'], '150.00');
      assert.equal(caughtUp['cursor'], newer['cursor']);
      const line = await auditLine(cb, restored.keyId);
      assert.equal(line.balanced, true, JSON.stringify(line));
      await stop(node);
    });
  });

  describe("the system's audit", () => {
    test("a report binds to the key that signed it: A cannot report B's books, not even by naming B", async () => {
      await (await linkOf(b)).sync();
      const lineB = await auditLine(cb, b.keyId);
      const keyA = (await readKeyFile(join(a.dir, 'identity', 'intermediary.key'), PASSPHRASE, nodeProvider)).signer;
      const report = { cursor: 0, reserve: '999.00', unallocated: '999.00', online: '0.00', settlement: '0.00', offlineFloat: '0.00', ledgerBalanced: true, asOf: new Date().toISOString() };
      const named = await signedPost(cb.url, '/v1/cb/positions', keyA, JSON.stringify({ ...report, intermediary: b.keyId }));
      assert.equal(named.status, 400, 'no field names whose books they are');
      // Signed by A but claiming B's key id: the signature does not verify under B's key.
      const text = JSON.stringify(report);
      const headers = signRequest({ signer: keyA, keyId: b.keyId, method: 'POST', path: '/v1/cb/positions', body: text, timestamp: Date.now() });
      const res = await fetch(`${cb.url}/v1/cb/positions`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: text });
      assert.equal(res.status, 401);
      assert.deepEqual(await auditLine(cb, b.keyId), lineB, "B's line is as it was");
      await (await linkOf(a)).sync();
    });

    test('a signed report replayed is refused (its nonce); a cursor ahead is refused; neither changes the audit', async () => {
      await (await linkOf(a)).sync();
      const line = await auditLine(cb, a.keyId);
      assert.ok(line.reported !== null);
      const keyA = (await readKeyFile(join(a.dir, 'identity', 'intermediary.key'), PASSPHRASE, nodeProvider)).signer;
      const honest = JSON.stringify({ ...line.reported, asOf: new Date().toISOString() });
      const sent = await signedPost(cb.url, '/v1/cb/positions', keyA, honest);
      assert.equal(sent.status, 200);
      const replay = await fetch(`${cb.url}/v1/cb/positions`, { method: 'POST', headers: sent.headers, body: honest });
      assert.equal(replay.status, 401);
      assert.equal(((await replay.json()) as { error: { code: string } }).error.code, 'NONCE_REPLAYED');
      const ahead = await signedPost(cb.url, '/v1/cb/positions', keyA, JSON.stringify({ ...line.reported, cursor: line.reported.cursor + 1_000_000, reserve: '0.00' }));
      assert.equal(ahead.status, 400);
      const now = await auditLine(cb, a.keyId);
      assert.equal(now.balanced, true);
      assert.equal(now.reported?.cursor, line.reported.cursor);
    });

    test("a revoked intermediary still reports (to be wound down under the audit's eye); a refused or pending one cannot call at all", async () => {
      const db = await openDb();
      const dir = join(base, 'bank-wound-down');
      const down = await enrolled(cb, dir, 'Bank Wound Down', db);
      await issue(cb, down.keyId, '7.00');
      const revoked = await http(cb, 'POST', '/v1/cb/operator/revoke', { token: cb.operatorToken, body: { intermediary: down.keyId, reason: 'wound down' } });
      assert.equal(revoked.status, 200);
      const synced = await http(down.node, 'POST', '/v1/operator/reserve/sync', { token: down.node.operatorToken });
      assert.equal(synced.status, 200, JSON.stringify(synced.body));
      assert.equal(synced.body['revoked'], true);
      const line = await auditLine(cb, down.keyId);
      assert.equal(line.reported?.reserve, '7.00');
      assert.equal(line.balanced, true);
      await stop(down.node);

      const waiting = join(base, 'bank-waiting');
      const asked = await enrol({ dataDir: waiting, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, name: 'Bank Waiting', now: Date.now });
      const key = (await readKeyFile(join(waiting, 'enrolment', 'intermediary.key'), PASSPHRASE, nodeProvider)).signer;
      const report = JSON.stringify({ cursor: 0, reserve: '0.00', unallocated: '0.00', online: '0.00', settlement: '0.00', offlineFloat: '0.00', ledgerBalanced: true, asOf: new Date().toISOString() });
      const pendingReport = await signedPost(cb.url, '/v1/cb/positions', key, report);
      assert.equal(errorCode(pendingReport), 'KEY_UNKNOWN');
      await http(cb, 'POST', `/v1/cb/operator/enrolments/${asked.keyId}/refuse`, { token: cb.operatorToken, body: { reason: 'no licence' } });
      assert.equal(errorCode(await signedPost(cb.url, '/v1/cb/positions', key, report)), 'KEY_UNKNOWN');
    });
  });

  describe('minting at an intermediary', () => {
    test('mints at once that together exceed the reserve: only what fits lands, and every book balances', async () => {
      await issue(cb, b.keyId, '100.00');
      await (await linkOf(b)).sync();
      const before = await mirror(b.db);
      const suite = ed25519;
      const user = signerFromSecret(suite, suite.generateSecretKey());
      const id = toHex(keyId(user.publicKey));
      const body = JSON.stringify({ publicKey: { suite: 'ed25519', key: toBase64url(user.publicKey.key) } });
      const registered = await fetch(`${b.node.url}/v1/users`, { method: 'POST', headers: { ...signRequest({ signer: user, keyId: id, method: 'POST', path: '/v1/users', body, timestamp: Date.now() }), 'content-type': 'application/json', 'idempotency-key': `user-${id.slice(0, 16)}` }, body });
      assert.equal(registered.status, 201);
      const share = before.unallocated / 4n;
      assert.ok(share > 0n);
      const amount = `${share / 100n}.${String(share % 100n).padStart(2, '0')}`;
      const answers = await Promise.all(Array.from({ length: 10 }, () => http(b.node, 'POST', '/v1/operator/mint', { token: b.node.operatorToken, body: { account: `user:${id}`, amount } })));
      const landed = answers.filter((x) => x.status === 200).length;
      assert.equal(landed, 4, JSON.stringify(answers.map((x) => x.body)));
      assert.ok(answers.filter((x) => x.status !== 200).every((x) => errorCode(x) === 'INSUFFICIENT_FUNDS'));
      const after = await mirror(b.db);
      assert.equal(after.unallocated, before.unallocated - 4n * share);
      assert.ok(after.unallocated >= 0n);
      const audit = await http(b.node, 'GET', '/v1/audit', { token: b.node.operatorToken });
      assert.equal(audit.body['balanced'], true);
      await (await linkOf(b)).sync();
      assert.equal((await auditLine(cb, b.keyId)).balanced, true);
      assert.equal(errorCode(await http(cb, 'POST', '/v1/operator/mint', { token: cb.operatorToken, body: { account: `user:${id}`, amount: '1.00' } })), 'ROLE_MISMATCH', 'a central bank mints into no account');
    });
  });

  describe('revocation', () => {
    test('revoking one intermediary twice, and two at once: one new version each, both in the newest list', async () => {
      const approvedKey = async (name: string) => {
        const key = freshSigner();
        const asked = await http(cb, 'POST', '/v1/cb/enrolments', { body: { name, publicKey: { suite: 'ed25519', key: toBase64url(key.publicKey.key) }, proof: toBase64url(signEnrolment(key, { name, currency: 'EUR', rootKeyId: cb.rootKeyId, subject: key.publicKey })) } });
        assert.equal(asked.status, 202);
        const approved = await http(cb, 'POST', `/v1/cb/operator/enrolments/${keyIdOf(key)}/approve`, { token: cb.operatorToken });
        return { keyId: keyIdOf(key), serial: decodeCertificate(fromBase64url(String(approved.body['certificate']))).body.serial };
      };
      const [x, y] = [await approvedKey('Bank X'), await approvedKey('Bank Y')];
      const version = Number((await http(cb, 'GET', '/v1/cb/revocations')).body['version']);
      const revoke = (key: string) => http(cb, 'POST', '/v1/cb/operator/revoke', { token: cb.operatorToken, body: { intermediary: key, reason: 'test' } });
      const answers = await Promise.all([revoke(x.keyId), revoke(y.keyId), revoke(x.keyId)]);
      assert.ok(answers.every((r) => r.status === 200), JSON.stringify(answers.map((r) => r.body)));
      assert.equal(answers.filter((r) => r.body['already'] === true).length, 1, 'X revoked once');
      assert.deepEqual(answers.filter((r) => r.body['already'] === false).map((r) => Number(r.body['version'])).sort(), [version + 1, version + 2]);
      const list = await http(cb, 'GET', '/v1/cb/revocations');
      assert.equal(list.body['version'], version + 2);
      const { decodeRevocationList, listRevokes } = await import('../../pki/revocation.ts');
      const newest = decodeRevocationList(fromBase64url(String(list.body['list'])));
      assert.ok(listRevokes(newest, x.serial) && listRevokes(newest, y.serial));
    });

    test('a hostile central bank cannot roll the list back, nor hand a list signed by another key', async () => {
      const old = await http(cb, 'GET', '/v1/cb/revocations');
      const key = freshSigner();
      const name = 'Bank Z';
      await http(cb, 'POST', '/v1/cb/enrolments', { body: { name, publicKey: { suite: 'ed25519', key: toBase64url(key.publicKey.key) }, proof: toBase64url(signEnrolment(key, { name, currency: 'EUR', rootKeyId: cb.rootKeyId, subject: key.publicKey })) } });
      await http(cb, 'POST', `/v1/cb/operator/enrolments/${keyIdOf(key)}/approve`, { token: cb.operatorToken });
      await http(cb, 'POST', '/v1/cb/operator/revoke', { token: cb.operatorToken, body: { intermediary: keyIdOf(key), reason: 'test' } });
      const newest = Number((await http(cb, 'GET', '/v1/cb/revocations')).body['version']);
      assert.equal(newest, Number(old.body['version']) + 1);
      const fresh = await (await linkOf(a)).sync();
      assert.equal(fresh.rootListVersion, newest);

      let served: unknown = old.body;
      const fake = await hostileCentralBank(cb.url, (method, path) => (method === 'GET' && path === '/v1/cb/revocations' ? { status: 200, body: served } : undefined));
      const link = await linkOf(a, fake.url);
      const rolledBack = await link.sync();
      assert.equal(rolledBack.rootListVersion, newest, 'the older list, root-signed as it is, is not taken');
      const held = async () => (await a.db.query<{ root_list_version: bigint }>('SELECT root_list_version FROM tier_link WHERE one')).rows[0]?.root_list_version;
      assert.equal(Number(await held()), newest);

      const stranger = freshSigner();
      served = { version: 999, list: toBase64url(encodeRevocationList(issueRevocationList({ issuer: stranger, version: 999, issuedAt: Date.now(), revoked: [] }))) };
      await assert.rejects(link.sync(), (e) => isTallyError(e, 'CRL_INVALID'));
      assert.equal(Number(await held()), newest, 'a list signed by another key is not kept');
      served = { version: 999, list: 'not a list' };
      await assert.rejects(link.sync(), (e) => isTallyError(e, 'DECODE_FAILED'));
      assert.equal(Number(await held()), newest);
    });
  });
});
