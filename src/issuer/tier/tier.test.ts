/**
 * Tier 1 of the two tiers, with real parts: a central bank and two intermediaries, each a node
 * listening on loopback with its own data folder and its own PGlite database. Enrolment (and its
 * refusals), issuance through the tiers, the reserve mirror, the system's audit, and revocation.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { toBase64url, toHex } from '../../core/bytes.ts';
import { isTallyError } from '../../core/errors.ts';
import { signerFromSecret } from '../../core/crypto/suite.ts';
import { keyId } from '../../pki/key-id.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { decodeRevocationList, listRevokes, verifyRevocationList } from '../../pki/revocation.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { startNode, DEFAULT_CURRENCY, type RunningNode } from '../../cli/node-start.ts';
import { registerCustomer } from '../../cli/demo-two-tier.ts';
import type { Logger } from '../../cli/log.ts';
import { signRequest } from '../client/request-auth.ts';
import { enrol } from './enrol.ts';
import { seedPgliteCluster } from '../db/test-pglite-cluster.ts';
import { readKeyFile } from '../identity/keystore.ts';
import { signEnrolment } from './enrolment-record.ts';

const PASSPHRASE = 'two tiers test passphrase';
const env = { TALLY_NODE_PASSPHRASE: PASSPHRASE };
const quiet: Logger = { log: () => {} };
let base = '';
const running: RunningNode[] = [];

async function start(dataDir: string, role?: 'central-bank'): Promise<RunningNode> {
  // The intermediaries serve no scheme here: tier 1 is about the ledger and the link. They sync
  // only when the test asks, so what the central bank sees between two syncs is known.
  // A new folder starts on a copy of the tests' new PGlite cluster (test-pglite-cluster.ts).
  await seedPgliteCluster(dataDir);
  const node = await startNode({ port: 0, host: '127.0.0.1', dataDir, env, currency: DEFAULT_CURRENCY, logger: quiet, print: () => {}, schemes: [], tierSyncMs: 0, ...(role === undefined ? {} : { role }) });
  running.push(node);
  return node;
}

async function stop(node: RunningNode): Promise<void> {
  await node.stop();
  running.splice(running.indexOf(node), 1);
}

async function http(node: RunningNode | string, method: string, path: string, options: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const url = typeof node === 'string' ? node : node.url;
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
      ...(method === 'POST' ? { 'idempotency-key': `test-${toHex(crypto.getRandomValues(new Uint8Array(8)))}` } : {}),
      ...options.headers,
    },
    ...(body === undefined ? {} : { body }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const errorCode = (answer: { body: Record<string, unknown> }) => (answer.body['error'] as { code: string } | undefined)?.code;

async function enrolled(cb: RunningNode, dataDir: string, name: string): Promise<{ node: RunningNode; keyId: string }> {
  const asked = await enrol({ dataDir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, name, rootKeyId: cb.rootKeyId, now: Date.now });
  assert.equal(asked.status, 'pending');
  assert.equal(asked.completed, false);
  const approved = await http(cb, 'POST', `/v1/cb/operator/enrolments/${asked.keyId}/approve`, { token: cb.operatorToken });
  assert.equal(approved.status, 200, JSON.stringify(approved.body));
  const done = await enrol({ dataDir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, now: Date.now });
  assert.equal(done.completed, true);
  return { node: await start(dataDir), keyId: asked.keyId };
}

async function systemAudit(cb: RunningNode): Promise<Record<string, unknown>> {
  const audit = await http(cb, 'GET', '/v1/cb/audit', { token: cb.operatorToken });
  assert.equal(audit.status, 200);
  return audit.body;
}

async function nodeAudit(node: RunningNode): Promise<{ balanced: boolean; issued: string; online: string; reserves: string }> {
  const audit = await http(node, 'GET', '/v1/audit', { token: node.operatorToken });
  const eur = (audit.body['currencies'] as { totalIssued: string; totalOnline: string; totalReserves: string }[])[0];
  return { balanced: audit.body['balanced'] === true, issued: eur?.totalIssued ?? '0.00', online: eur?.totalOnline ?? '0.00', reserves: eur?.totalReserves ?? '0.00' };
}

before(async () => {
  base = await mkdtemp(join(tmpdir(), 'tally-tiers-'));
});
after(async () => {
  for (const node of [...running]) await node.stop();
  await rm(base, { recursive: true, force: true });
});

describe('two tiers: the central bank and its intermediaries', () => {
  let cb: RunningNode;
  let a: { node: RunningNode; keyId: string };
  let b: { node: RunningNode; keyId: string };

  before(async () => {
    cb = await start(join(base, 'cb'), 'central-bank');
    a = await enrolled(cb, join(base, 'bank-a'), 'Bank A');
    b = await enrolled(cb, join(base, 'bank-b'), 'Bank B');
  });

  test('each tier is what it says: the root is the central bank\'s at both banks, and no root key leaves it', async () => {
    const info = async (node: RunningNode) => (await http(node, 'GET', '/v1/info')).body as { role: string; centralBank?: string; certificates: { root: string; intermediary: string } };
    const [atCb, atA, atB] = await Promise.all([info(cb), info(a.node), info(b.node)]);
    assert.equal(atCb.role, 'central-bank');
    assert.equal(atA.role, 'intermediary');
    assert.equal(atA.centralBank, cb.url);
    assert.equal(atA.certificates.root, atCb.certificates.root, 'A chains to the central bank\'s root');
    assert.equal(atB.certificates.root, atCb.certificates.root, 'B too');
    assert.notEqual(atA.certificates.intermediary, atB.certificates.intermediary);
    const certificate = decodeCertificate(Uint8Array.from(Buffer.from(atA.certificates.intermediary, 'base64url')));
    assert.equal(certificate.body.extensions.name, 'Bank A');
    assert.equal(toHex(keyId(certificate.body.subject)), a.keyId);
    await assert.rejects(stat(join(base, 'bank-a', 'identity', 'root.key')), { code: 'ENOENT' }, 'an intermediary holds no root key');
    await assert.rejects(stat(join(base, 'bank-a', 'enrolment')), { code: 'ENOENT' }, 'the enrolment folder is gone once the identity is made');
    // A central bank keeps no customer accounts and mints into none; an intermediary has no central bank routes.
    assert.equal(errorCode(await http(cb, 'POST', '/v1/operator/mint', { token: cb.operatorToken, body: { account: 'user:00', amount: '1.00' } })), 'ROLE_MISMATCH');
    assert.equal(errorCode(await http(a.node, 'POST', `/v1/cb/operator/enrolments/${a.keyId}/approve`, { token: a.node.operatorToken })), 'ROLE_MISMATCH');
    assert.equal(errorCode(await http(a.node, 'GET', '/v1/cb/movements')), 'ROLE_MISMATCH');
  });

  test('money flows through the tiers: issued into a reserve, mirrored by the intermediary, minted from it and no further; every audit balances', async () => {
    const issue = await http(cb, 'POST', '/v1/cb/operator/issue', { token: cb.operatorToken, body: { intermediary: a.keyId, amount: '1000.00' } });
    assert.equal(issue.status, 200, JSON.stringify(issue.body));
    assert.equal(errorCode(await http(cb, 'POST', '/v1/cb/operator/issue', { token: cb.operatorToken, body: { intermediary: 'ab'.repeat(32), amount: '1.00' } })), 'ACCOUNT_UNKNOWN');
    assert.equal((await http(cb, 'POST', '/v1/cb/operator/issue', { token: cb.operatorToken, body: { intermediary: b.keyId, amount: '250.00' } })).status, 200);

    // Before the banks sync, their books are behind their reserves: the system audit says so.
    const stale = await systemAudit(cb);
    assert.equal(stale['issued'], '1250.00');
    assert.equal(stale['reserves'], '1250.00');
    assert.equal(stale['ledgerBalanced'], true);
    assert.equal(stale['balanced'], false);
    const lines = stale['intermediaries'] as { keyId: string; balanced: boolean; problem?: string }[];
    assert.match(String(lines.find((line) => line.keyId === a.keyId)?.problem), /has not reported/);

    const synced = await http(a.node, 'POST', '/v1/operator/reserve/sync', { token: a.node.operatorToken });
    assert.equal(synced.status, 200, JSON.stringify(synced.body));
    assert.equal(synced.body['reserve'], '1000.00');
    assert.equal(synced.body['unallocated'], '1000.00');
    // A second sync records nothing again.
    const again = await http(a.node, 'POST', '/v1/operator/reserve/sync', { token: a.node.operatorToken });
    assert.equal(again.body['recorded'], 0);
    assert.equal(again.body['reserve'], '1000.00');

    const alice = await registerCustomer(a.node);
    const minted = await http(a.node, 'POST', '/v1/operator/mint', { token: a.node.operatorToken, body: { account: alice, amount: '600.00' } });
    assert.equal(minted.status, 200, JSON.stringify(minted.body));
    const over = await http(a.node, 'POST', '/v1/operator/mint', { token: a.node.operatorToken, body: { account: alice, amount: '400.01' } });
    assert.equal(errorCode(over), 'INSUFFICIENT_FUNDS', 'no further than the reserve');
    assert.match(String((over.body['error'] as { message: string }).message), /reserve at the central bank/);
    assert.equal((await http(a.node, 'POST', '/v1/operator/mint', { token: a.node.operatorToken, body: { account: alice, amount: '400.00' } })).status, 200, 'exactly the reserve');

    const atA = await nodeAudit(a.node);
    assert.deepEqual(atA, { balanced: true, issued: '1000.00', online: '1000.00', reserves: '0.00' }, "A's books: the whole reserve is in its customer's account");
    await http(a.node, 'POST', '/v1/operator/reserve/sync', { token: a.node.operatorToken });
    await http(b.node, 'POST', '/v1/operator/reserve/sync', { token: b.node.operatorToken });
    assert.deepEqual(await nodeAudit(b.node), { balanced: true, issued: '250.00', online: '0.00', reserves: '250.00' });
    const system = await systemAudit(cb);
    assert.equal(system['balanced'], true, JSON.stringify(system));
    assert.equal(system['reportedReserves'], '1250.00');
    const lineA = (system['intermediaries'] as { keyId: string; reported: { online: string; reserve: string } }[]).find((line) => line.keyId === a.keyId);
    assert.equal(lineA?.reported.online, '1000.00');
  });

  test('a report behind the reserve leaves the system audit unbalanced, naming the bank; a forged report is refused and changes nothing', async () => {
    // A new issue that B has not synced: its report is behind.
    assert.equal((await http(cb, 'POST', '/v1/cb/operator/issue', { token: cb.operatorToken, body: { intermediary: b.keyId, amount: '10.00' } })).status, 200);
    const audit = await systemAudit(cb);
    const lineB = (audit['intermediaries'] as { keyId: string; balanced: boolean; problem?: string }[]).find((line) => line.keyId === b.keyId);
    assert.equal(audit['balanced'], false);
    assert.equal(lineB?.balanced, false);
    assert.match(String(lineB?.problem), /covers movements up to/);
    await http(b.node, 'POST', '/v1/operator/reserve/sync', { token: b.node.operatorToken });
    assert.equal((await systemAudit(cb))['balanced'], true);
    const signer = { keyId: b.keyId };
    const body = JSON.stringify({ cursor: 1_000_000, reserve: '999.00', unallocated: '999.00', online: '0.00', settlement: '0.00', offlineFloat: '0.00', ledgerBalanced: true, asOf: new Date().toISOString() });
    // Without B's key it cannot be sent at all: an unsigned or wrongly signed report is refused.
    const unsigned = await http(cb, 'POST', '/v1/cb/positions', { body: JSON.parse(body) as unknown });
    assert.equal(errorCode(unsigned), 'UNAUTHENTICATED');
    const suite = nodeProvider.suites.ed25519;
    const stranger = signerFromSecret(suite, suite.generateSecretKey());
    const forged = signRequest({ signer: stranger, keyId: signer.keyId, method: 'POST', path: '/v1/cb/positions', body, timestamp: Date.now() });
    const refused = await fetch(`${cb.url}/v1/cb/positions`, { method: 'POST', headers: { ...forged, 'content-type': 'application/json', 'idempotency-key': 'forged-report-1' }, body });
    assert.equal(refused.status, 401);
    assert.equal((await systemAudit(cb))['balanced'], true, 'a refused report changed nothing');

    // B itself may report wrongly: the audit names it. A cursor past the reserve's movements is refused.
    const bKey = await readKeyFile(join(base, 'bank-b', 'identity', 'intermediary.key'), PASSPHRASE, nodeProvider);
    const report = async (fields: Record<string, unknown>) => {
      const text = JSON.stringify({ ...JSON.parse(body), ...fields });
      const headers = signRequest({ signer: bKey.signer, keyId: b.keyId, method: 'POST', path: '/v1/cb/positions', body: text, timestamp: Date.now() });
      return fetch(`${cb.url}/v1/cb/positions`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json', 'idempotency-key': `report-${toHex(crypto.getRandomValues(new Uint8Array(6)))}` }, body: text });
    };
    const ahead = await report({});
    assert.equal(ahead.status, 400, 'a cursor past the movements');
    const last = Number(((await systemAudit(cb))['intermediaries'] as { keyId: string; reported: { cursor: number } }[]).find((line) => line.keyId === b.keyId)?.reported.cursor);
    assert.equal((await report({ cursor: last })).status, 200);
    const lied = await systemAudit(cb);
    assert.equal(lied['balanced'], false);
    assert.match(String((lied['intermediaries'] as { keyId: string; problem?: string }[]).find((line) => line.keyId === b.keyId)?.problem), /reports a reserve of 999.00, the central bank holds 260.00/);
    await http(b.node, 'POST', '/v1/operator/reserve/sync', { token: b.node.operatorToken });
    assert.equal((await systemAudit(cb))['balanced'], true, "B's next honest report replaces it");
  });

  test('enrolment refuses a forged proof, a request for another root, and a pinned root that differs; a refused request stops the node from starting', async () => {
    const suite = nodeProvider.suites.ed25519;
    const key = signerFromSecret(suite, suite.generateSecretKey());
    const other = signerFromSecret(suite, suite.generateSecretKey());
    const request = { name: 'Bank X', currency: 'EUR', rootKeyId: cb.rootKeyId, subject: key.publicKey };
    const send = (proof: Uint8Array, name = 'Bank X') => http(cb, 'POST', '/v1/cb/enrolments', { body: { name, publicKey: { suite: 'ed25519', key: toBase64url(key.publicKey.key) }, proof: toBase64url(proof) } });
    assert.equal(errorCode(await send(signEnrolment(other, request))), 'SIGNATURE_INVALID', 'signed by another key');
    assert.equal(errorCode(await send(signEnrolment(key, { ...request, rootKeyId: 'cd'.repeat(32) }))), 'SIGNATURE_INVALID', 'for another root');
    assert.equal(errorCode(await send(signEnrolment(key, { ...request, currency: 'USD' }))), 'SIGNATURE_INVALID', 'for another currency');
    assert.equal(errorCode(await send(signEnrolment(key, request), 'Bank Y')), 'SIGNATURE_INVALID', 'the name is signed too');
    assert.equal(errorCode(await send(new Uint8Array(4000))), 'BODY_INVALID', 'an oversized proof');
    const listed = await http(cb, 'GET', '/v1/cb/intermediaries', { token: cb.operatorToken });
    assert.ok(!(listed.body['intermediaries'] as { name: string }[]).some((i) => i.name === 'Bank X'), 'no refused request was stored');

    // A pinned root that is not the central bank's: nothing is made, nothing sent.
    const pinned = join(base, 'bank-pinned');
    await assert.rejects(enrol({ dataDir: pinned, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, name: 'Bank P', rootKeyId: 'ef'.repeat(32), now: Date.now }), (e) => isTallyError(e, 'CERT_CHAIN_INVALID'));
    await assert.rejects(stat(join(pinned, 'enrolment')), { code: 'ENOENT' });

    // Pending: the node does not start; refused: it does not either, and says why.
    const refusedDir = join(base, 'bank-refused');
    const asked = await enrol({ dataDir: refusedDir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, name: 'Bank R', now: Date.now });
    await assert.rejects(start(refusedDir), (e) => isTallyError(e, 'ENROLMENT_PENDING') && e.message.includes(`tally cb approve ${asked.keyId}`));
    const refusal = await http(cb, 'POST', `/v1/cb/operator/enrolments/${asked.keyId}/refuse`, { token: cb.operatorToken, body: { reason: 'not supervised' } });
    assert.equal(refusal.status, 200);
    assert.equal(errorCode(await http(cb, 'POST', `/v1/cb/operator/enrolments/${asked.keyId}/approve`, { token: cb.operatorToken })), 'ALREADY_SETTLED', 'a decision stands');
    await assert.rejects(start(refusedDir), (e) => isTallyError(e, 'ENROLMENT_REFUSED') && e.message.includes('not supervised'));
    await assert.rejects(stat(join(refusedDir, 'identity')), { code: 'ENOENT' }, 'no identity was made');
  });

  test('the central bank answers movements only to the intermediary they belong to, once per signed request', async () => {
    const suite = nodeProvider.suites.ed25519;
    const stranger = signerFromSecret(suite, suite.generateSecretKey());
    const strangerId = toHex(keyId(stranger.publicKey));
    const headers = signRequest({ signer: stranger, keyId: strangerId, method: 'GET', path: '/v1/cb/movements?after=0', body: '', timestamp: Date.now() });
    const res = await fetch(`${cb.url}/v1/cb/movements?after=0`, { headers });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'KEY_UNKNOWN');
    assert.equal(errorCode(await http(cb, 'GET', '/v1/cb/movements?after=0')), 'UNAUTHENTICATED');
  });

  test('revoking an intermediary: the root signs a new list, the intermediary learns it at its next sync, nothing more is issued to it, and its node still starts on the same folder', async () => {
    const revoked = await http(cb, 'POST', '/v1/cb/operator/revoke', { token: cb.operatorToken, body: { intermediary: b.keyId, reason: 'licence withdrawn' } });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal(revoked.body['version'], 2);
    const twice = await http(cb, 'POST', '/v1/cb/operator/revoke', { token: cb.operatorToken, body: { intermediary: b.keyId, reason: 'licence withdrawn' } });
    assert.equal(twice.body['already'], true);
    assert.equal(errorCode(await http(cb, 'POST', '/v1/cb/operator/issue', { token: cb.operatorToken, body: { intermediary: b.keyId, amount: '1.00' } })), 'CERT_REVOKED');

    const list = await http(cb, 'GET', '/v1/cb/revocations');
    const decoded = decodeRevocationList(Uint8Array.from(Buffer.from(String(list.body['list']), 'base64url')));
    const root = decodeCertificate(Uint8Array.from(Buffer.from(String(((await http(cb, 'GET', '/v1/info')).body['certificates'] as { root: string }).root), 'base64url')));
    verifyRevocationList(nodeProvider, decoded, root.body.subject);
    const info = (await http(b.node, 'GET', '/v1/info')).body['certificates'] as { intermediary: string };
    const serial = decodeCertificate(Uint8Array.from(Buffer.from(info.intermediary, 'base64url'))).body.serial;
    assert.ok(listRevokes(decoded, serial), "the list names B's certificate");

    const synced = await http(b.node, 'POST', '/v1/operator/reserve/sync', { token: b.node.operatorToken });
    assert.equal(synced.status, 200, 'a revoked intermediary still reads its reserve and reports');
    assert.equal(synced.body['revoked'], true);
    assert.equal(synced.body['rootListVersion'], 2);
    const fromA = await http(a.node, 'POST', '/v1/operator/reserve/sync', { token: a.node.operatorToken });
    assert.equal(fromA.body['revoked'], false);
    assert.equal(fromA.body['rootListVersion'], 2);

    // A restart of A keeps its books and its link.
    const dirA = join(base, 'bank-a');
    await stop(a.node);
    a = { ...a, node: await start(dirA) };
    const after = await http(a.node, 'POST', '/v1/operator/reserve/sync', { token: a.node.operatorToken });
    assert.equal(after.body['recorded'], 0);
    assert.equal(after.body['reserve'], '1000.00');
    assert.equal((await systemAudit(cb))['balanced'], true);
  });
});
