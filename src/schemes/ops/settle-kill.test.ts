/**
 * A node killed with SIGKILL while it settles bulk claims loses no acknowledged payment and credits
 * nothing twice once it is started again on the same data. The node runs in a process of its own
 * (PGlite in its data folder, and PostgreSQL when a URL is set); payments are made beforehand by
 * real OPS trusted apps (in-process hosts kept in memory); three claimers send their bulk claims at
 * once and the node is killed at a different moment in each round. After each restart every
 * request is sent again under its key: an answer given before the kill comes back the same, the
 * rest are settled then, each payment is credited exactly once, and the audit balances.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import pg from 'pg';
import { fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { signerFromSecret, type Signer } from '../../core/crypto/suite.ts';
import { startNodeChild, type NodeChild } from '../../e2e/node-child-fixtures.ts';
import { signRequest } from '../../issuer/client/request-auth.ts';
import { dropPostgresSchema } from '../../issuer/db/postgres.ts';
import { shardOfKey } from '../../issuer/queue/settle-queue.ts';
import { deleteTestStream, partsInHand, streamMessages, testNatsUrl } from '../../issuer/queue/test-nats.ts';
import { BIN } from '../../cli/e2e-process.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { keyId } from '../../pki/key-id.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { InProcessHost } from '../../secure-element/host.ts';
import { MemoryCounter, MemoryStorage } from '../../secure-element/memory-fixtures.ts';
import { depositConfirmationCodec, encodePayment, REPORT_ENTRIES_MAX, syncAckCodec } from './messages.ts';
import { CLAIMS_BULK_PAYMENTS_MAX } from './node.ts';
import { opsTrustedApp } from './trusted-app.ts';

const MEASUREMENT = sha256(utf8('tally ops trusted app, kill test build'));
const DEVICES = 4;
const CLAIMERS = 3;
/** Bulk requests per claimer: each as large as the route takes. */
const REQUESTS_PER_CLAIMER = 1;
const PAYMENTS = CLAIMERS * REQUESTS_PER_CLAIMER * CLAIMS_BULK_PAYMENTS_MAX;

/** A client of a child node: signed requests as a user, or as the operator. */
function clientOf(node: NodeChild) {
  const send = (who: Signer | 'operator', method: string, path: string, body: unknown, key?: string): Promise<Response> => {
    const text = method === 'GET' ? '' : JSON.stringify(body);
    const auth = who === 'operator' ? { authorization: `Bearer ${node.operatorToken}` } : signRequest({ signer: who, keyId: toHex(keyId(who.publicKey)), method, path, body: text, timestamp: Date.now() });
    const headers: Record<string, string> = { 'content-type': 'application/json', ...auth };
    if (method !== 'GET') headers['idempotency-key'] = key ?? `kill-${toHex(randomBytes(8))}`;
    return fetch(`${node.url}${path}`, { method, headers, ...(method === 'GET' ? {} : { body: text }) });
  };
  const call = async (who: Signer | 'operator', method: string, path: string, body: unknown): Promise<Record<string, unknown>> => {
    const res = await send(who, method, path, body);
    const text = await res.text();
    assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${text}`);
    return JSON.parse(text) as Record<string, unknown>;
  };
  return { send, call };
}

function fresh(): Signer {
  const s = nodeProvider.suites.ed25519;
  return signerFromSecret(s, s.generateSecretKey());
}

async function register(client: ReturnType<typeof clientOf>): Promise<{ signer: Signer; keyId: string; account: string; certificate: Uint8Array }> {
  const signer = fresh();
  const body = await client.call(signer, 'POST', '/v1/users', { publicKey: { suite: 'ed25519', key: toBase64url(signer.publicKey.key) } });
  return { signer, keyId: String(body['keyId']), account: String(body['account']), certificate: fromBase64url(String(body['certificate'])) };
}

/** A fresh OPS trusted app whose device key settles on `shard` of two: keys are drawn again until one does. */
async function deviceOnShard(node: NodeChild, owner: string, shard: number) {
  for (;;) {
    const se = await InProcessHost.provision({ app: opsTrustedApp, storage: new MemoryStorage(), counter: new MemoryCounter(), provider: nodeProvider });
    const init = await se.call('init', { root: fromBase64url(node.root), owner: fromHex(owner) });
    if (shardOfKey(toHex(keyId(init.publicKey)), 2) === shard) return { se, init };
  }
}

/** Device owners with real OPS trusted apps, funded, paying the claimers; answers each claimer's bulk bodies. */
async function makePayments(node: NodeChild, claimers: ReadonlyArray<{ certificate: Uint8Array }>): Promise<string[][][]> {
  const client = clientOf(node);
  const oem = fresh();
  const enrolled = await client.call('operator', 'POST', '/v1/operator/oems', { name: 'Kill test OEM', publicKey: { suite: 'ed25519', key: toBase64url(oem.publicKey.key) } });
  await client.call('operator', 'POST', '/v1/operator/measurements', { measurement: toHex(MEASUREMENT), scheme: 'ops', description: 'kill test build' });
  const perClaimer: string[][] = claimers.map(() => []);
  let made = 0;
  for (let d = 0; d < DEVICES; d++) {
    const owner = await register(client);
    // Device d settles on shard d % 2 of the two the sharded backends use, so both always have parts.
    const { se, init } = await deviceOnShard(node, owner.keyId, d % 2);
    const attestation = attestDevice(oem, { sePublicKey: init.publicKey, model: 'Kill test SE', taMeasurement: MEASUREMENT });
    const device = await client.call(owner.signer, 'POST', '/v1/devices', {
      publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) },
      scheme: 'ops',
      oem: String(enrolled['keyId']),
      attestation: toBase64url(encodeAttestation(attestation)),
      proof: toBase64url(init.proof),
    });
    await se.call('certInit', { certificate: fromBase64url(String(device['certificate'])), intermediary: fromBase64url(node.intermediary), issuerNode: fromBase64url(node.issuerNode) });
    const count = Math.ceil(PAYMENTS / DEVICES);
    const amount = `${(count / 100).toFixed(2)}`;
    await client.call('operator', 'POST', '/v1/operator/mint', { account: owner.account, amount });
    const deposit = await client.call(owner.signer, 'POST', '/v1/ops/deposits', { device: device['keyId'], amount });
    await se.call('deposit', { confirmation: depositConfirmationCodec.decode(decodeCbor(fromBase64url(String(deposit['confirmation']))), 'confirmation') });
    for (let k = 0; k < count && made < PAYMENTS; k++, made++) {
      if (k > 0 && k % REPORT_ENTRIES_MAX === 0) {
        const report = await se.call('report', {});
        const synced = await client.call(owner.signer, 'POST', '/v1/ops/sync', { device: device['keyId'], report: toBase64url(encodeCbor({ body: { ...report.body }, signature: report.signature })) });
        await se.call('syncAck', { ack: syncAckCodec.decode(decodeCbor(fromBase64url(String(synced['ack']))), 'ack'), crl: fromBase64url(String(synced['crl'])) });
      }
      const to = made % claimers.length;
      const payment = await se.call('pay', { amount: 1n, receiver: (claimers[to] as { certificate: Uint8Array }).certificate });
      (perClaimer[to] as string[]).push(toBase64url(encodePayment(payment)));
    }
  }
  return perClaimer.map((texts) => Array.from({ length: Math.ceil(texts.length / CLAIMS_BULK_PAYMENTS_MAX) }, (_unused, r) => texts.slice(r * CLAIMS_BULK_PAYMENTS_MAX, (r + 1) * CLAIMS_BULK_PAYMENTS_MAX)));
}

/** Each claimer holds one cent a payment made to it (each credited once), and the audit balances. */
async function assertCreditedOnce(client: ReturnType<typeof clientOf>, claimers: ReadonlyArray<{ signer: Signer; account: string }>, bodies: readonly string[][][]): Promise<void> {
  for (const [c, claimer] of claimers.entries()) {
    const paid = bodies[c]?.reduce((n, b) => n + b.length, 0) ?? 0;
    const account = await client.call(claimer.signer, 'GET', `/v1/accounts/${claimer.account}`, undefined);
    assert.equal(account['balance'], (paid / 100).toFixed(2), `claimer ${c} is credited each payment once`);
  }
  const audit = await client.call('operator', 'GET', '/v1/audit', undefined);
  assert.equal(audit['balanced'], true, JSON.stringify(audit));
}

interface Sent {
  readonly claimer: number;
  readonly key: string;
  readonly payments: readonly string[];
}

const postgresUrl = process.env['TEST_DATABASE_URL'];
const natsUrl = testNatsUrl();
/**
 * The node settles inline on PGlite and on PostgreSQL; and, on PostgreSQL when the suite has it,
 * through NATS JetStream in two shards with its workers in the killed process (a part held by a
 * worker when it died is delivered again after the restart, here after two seconds).
 */
const backends = [
  { kind: 'pglite' as const, name: 'pglite' },
  ...(postgresUrl === undefined || postgresUrl === '' ? [] : [{ kind: 'postgres' as const, url: postgresUrl, name: 'postgres' }]),
  {
    ...(postgresUrl === undefined || postgresUrl === '' ? { kind: 'pglite' as const } : { kind: 'postgres' as const, url: postgresUrl }),
    name: `${postgresUrl === undefined || postgresUrl === '' ? 'pglite' : 'postgres'}, settled through NATS JetStream in 2 shards`,
    settle: { natsUrl, shards: 2, ackWaitMs: 2_000 },
  },
];

describe('OPS bulk claims across a SIGKILL of the node', { concurrency: true }, () => {
  for (const backend of backends) {
    test(`on ${backend.name}: nothing acknowledged is lost, nothing is credited twice, the audit balances`, { timeout: 240_000 }, async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'tally-settle-kill-'));
      const schema = `tally_kill_${toHex(randomBytes(4))}`;
      const options = {
        dataDir,
        schemes: ['ops'],
        offlinePaymentsMax: 1000,
        holdingLimitMinor: '100000',
        ...(backend.kind === 'postgres' ? { postgres: { url: backend.url, schema } } : {}),
        ...('settle' in backend ? { settle: backend.settle } : {}),
      };
      let node = await startNodeChild(options);
      try {
        const claimers: Array<Awaited<ReturnType<typeof register>>> = [];
        for (let c = 0; c < CLAIMERS; c++) claimers.push(await register(clientOf(node)));
        const bodies = await makePayments(node, claimers);
        const requests: Sent[] = bodies.flatMap((rounds, claimer) => rounds.map((payments, r) => ({ claimer, key: `kill-${claimer}-${r}-${toHex(randomBytes(4))}`, payments })));
        const acknowledged = new Map<string, string>();
        let cutShort = 0;
        // Each round: every request not yet answered sent at once, the node killed after `delay` ms,
        // started again on the same data.
        for (const delay of [40, 300]) {
          const client = clientOf(node);
          const inFlight = requests
            .filter((r) => !acknowledged.has(r.key))
            .map(async (r) => {
              try {
                const res = await client.send((claimers[r.claimer] as { signer: Signer }).signer, 'POST', '/v1/ops/claims/bulk', { payments: r.payments }, r.key);
                const text = await res.text();
                if (res.status === 200) acknowledged.set(r.key, text);
              } catch {
                // The connection died with the node: not acknowledged.
              }
            });
          await new Promise((done) => setTimeout(done, delay));
          await node.kill();
          await Promise.all(inFlight);
          cutShort += requests.filter((r) => !acknowledged.has(r.key)).length;
          node = await startNodeChild(options);
        }
        // Every request again under its key: the acknowledged answers come back unchanged, the rest are settled now.
        const client = clientOf(node);
        for (const r of requests) {
          const res = await client.send((claimers[r.claimer] as { signer: Signer }).signer, 'POST', '/v1/ops/claims/bulk', { payments: r.payments }, r.key);
          const text = await res.text();
          assert.equal(res.status, 200, text);
          const before = acknowledged.get(r.key);
          if (before !== undefined) assert.deepEqual(JSON.parse(text), JSON.parse(before), 'an acknowledged answer is stored with its effects');
          // A request that committed before the kill but whose answer was lost gets its stored answer;
          // one that did not commit is settled now: either way each of its payments credited, none refused.
          const answer = JSON.parse(text) as { credited: number; refused: unknown[] };
          assert.equal(answer.credited, r.payments.length, text);
          assert.deepEqual(answer.refused, []);
        }
        await assertCreditedOnce(client, claimers, bodies);
        assert.ok(cutShort > 0, 'at least one kill came while requests were unanswered');
        if ('settle' in backend) {
          assert.ok(node.stream !== undefined, 'the node settled through its stream');
          assert.equal(await streamMessages(natsUrl, node.stream), 0, 'every part was acknowledged');
        }
      } finally {
        await node.stop().catch(() => {});
        if (node.stream !== undefined) await deleteTestStream(natsUrl, node.stream);
        if (backend.kind === 'postgres') await dropPostgresSchema(backend.url, schema);
        await rm(dataDir, { recursive: true, force: true });
      }
    });
  }
});

/** `tally settle worker` in a process of its own, started on the child node's data and schema. */
async function startWorker(dataDir: string, databaseUrl: string, shard: number): Promise<{ kill(): Promise<void>; stop(): Promise<string> }> {
  const child = spawn(process.execPath, [BIN, 'settle', 'worker', '--data', dataDir, '--nats', natsUrl, '--shards', '2', '--shard', String(shard), '--database-url', databaseUrl, '--ack-wait', '2', '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TALLY_NODE_PASSPHRASE: 'node child passphrase' },
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  await new Promise<void>((ready, fail) => {
    const timer = setTimeout(() => fail(new Error(`worker ${shard} did not start within 60 s: ${stderr}`)), 60_000);
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      const event = JSON.parse(line) as { event?: string; shards?: number[] };
      if (event.event === 'working' && event.shards?.[0] === shard) ready();
      else fail(new Error(`worker ${shard} said ${line}`));
    });
    void exited.then(() => fail(new Error(`worker ${shard} exited before it started: ${stderr}`)));
  });
  return {
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
      return stderr;
    },
  };
}

describe('OPS bulk claims settled by tally settle worker processes', { skip: postgresUrl === undefined || postgresUrl === '' ? 'TEST_DATABASE_URL is not set: outside workers need PostgreSQL' : false }, () => {
  test('a worker SIGKILLed with parts in hand and started again: every request answered, each payment credited once, the audit balanced, the stream empty', { timeout: 240_000 }, async () => {
    const url = postgresUrl as string;
    const dataDir = await mkdtemp(join(tmpdir(), 'tally-settle-workers-'));
    const schema = `tally_workers_${toHex(randomBytes(4))}`;
    // The node runs no worker of its own: two worker processes settle its two shards.
    const node = await startNodeChild({ dataDir, schemes: ['ops'], offlinePaymentsMax: 1000, holdingLimitMinor: '100000', postgres: { url, schema }, settle: { natsUrl, shards: 2, localWorkers: false } });
    const databaseUrl = `${url}${url.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    const workers = [await startWorker(dataDir, databaseUrl, 0), await startWorker(dataDir, databaseUrl, 1)];
    let blocker: pg.Client | undefined;
    try {
      const claimers: Array<Awaited<ReturnType<typeof register>>> = [];
      for (let c = 0; c < CLAIMERS; c++) claimers.push(await register(clientOf(node)));
      const bodies = await makePayments(node, claimers);
      const client = clientOf(node);
      const requests = bodies.flatMap((rounds, claimer) => rounds.map((payments, r) => ({ claimer, key: `workers-${claimer}-${r}`, payments })));
      // The payments' table is held locked against writes while the requests go in: each worker then
      // waits inside its part's transaction, so worker 1 holds parts when it is killed, however fast
      // or slow the machine (reads, and the routes' own records, go on).
      blocker = new pg.Client({ connectionString: databaseUrl });
      await blocker.connect();
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE ops_payments IN EXCLUSIVE MODE');
      let answered = 0;
      const sent = requests.map(async (r) => {
        const res = await client.send((claimers[r.claimer] as { signer: Signer }).signer, 'POST', '/v1/ops/claims/bulk', { payments: r.payments }, r.key);
        const text = await res.text();
        answered++;
        return { r, status: res.status, text };
      });
      // Killed while it holds parts: delivered to it, not acknowledged.
      let held = 0;
      for (let waited = 0; held === 0 && waited < 20_000; waited += 20) {
        held = await partsInHand(natsUrl, node.stream as string, 1);
        if (held === 0) await new Promise((done) => setTimeout(done, 20));
      }
      assert.ok(held > 0, 'worker 1 took parts');
      const unansweredAtKill = requests.length - answered;
      await (workers[1] as { kill(): Promise<void> }).kill();
      await blocker.query('COMMIT');
      await blocker.end();
      blocker = undefined;
      await new Promise((done) => setTimeout(done, 500));
      workers[1] = await startWorker(dataDir, databaseUrl, 1);
      for (const { r, status, text } of await Promise.all(sent)) {
        assert.equal(status, 200, text);
        const answer = JSON.parse(text) as { credited: number; refused: unknown[]; parts: number };
        assert.equal(answer.credited, r.payments.length, text);
        assert.deepEqual(answer.refused, []);
        assert.ok(answer.parts >= 2, 'the payments of four devices spread over both shards');
      }
      assert.ok(unansweredAtKill > 0, 'the worker was killed while requests waited on it');
      // What it held came back to the worker started in its place.
      const restarted = await (workers[1] as { stop(): Promise<string> }).stop();
      const settledAfter = restarted.split('\n').filter((l) => l.includes('"stopped"')).map((l) => (JSON.parse(l) as { settled: number }).settled);
      assert.ok((settledAfter[0] ?? 0) >= 1, `the restarted worker settled the parts the killed one held: ${restarted}`);
      await assertCreditedOnce(client, claimers, bodies);
      assert.equal(await streamMessages(natsUrl, node.stream as string), 0, 'every part was acknowledged');
    } finally {
      await blocker?.end().catch(() => {});
      for (const w of workers) await w.stop().catch(() => '');
      await node.stop().catch(() => {});
      if (node.stream !== undefined) await deleteTestStream(natsUrl, node.stream);
      await dropPostgresSchema(url, schema);
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
