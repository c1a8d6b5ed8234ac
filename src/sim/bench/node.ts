/**
 * The issuer node every scheme's benchmark stands on: a real node with the schemes it is given,
 * served over HTTP on a loopback port, with PGlite on disk in a temporary folder or a fresh
 * PostgreSQL schema (dropped at stop); a client that signs its requests; and the account-level
 * services every scheme needs (users, an OEM with an allowed TA build, minting, the audit).
 */
import { connect as connectNats } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { startSettleWorkers } from '../../issuer/queue/settle-queue.ts';
import { createTestDatabases, type TestShardDatabases } from '../../issuer/shards/test-shards.ts';
import { createHash, randomBytes as nodeRandomBytes } from 'node:crypto';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { currency, type Currency } from '../../core/amount.ts';
import { fromBase64url, toBase64url, toHex } from '../../core/bytes.ts';
import { signerFromSecret, type Signer, type SuiteName } from '../../core/crypto/suite.ts';
import { signRequest } from '../../issuer/client/request-auth.ts';
import type { Database } from '../../issuer/db/database.ts';
import { dropPostgresSchema, openPostgres } from '../../issuer/db/postgres.ts';
import { createIssuerApp, type SchemeModule } from '../../issuer/http/app.ts';
import { BODY_BYTES_MAX, type DeviceLimits } from '../../issuer/http/context.ts';
import { formatMinor } from '../../issuer/http/json.ts';
import { defaultDeviceLimits, openNode } from '../../issuer/services.ts';
import type { Certificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';

/** The currency of bench nodes. */
export const BENCH_CURRENCY: Currency = currency('EUR', 2);

/** How to open a bench node. */
export interface BenchNodeOptions {
  /** The schemes the node serves (their issuer modules). */
  readonly schemes: readonly SchemeModule[];
  /** PGlite by default; PostgreSQL needs the harness's PostgreSQL URL. */
  readonly database?: 'pglite' | 'postgres' | undefined;
  /** The node's limits for devices, from the defaults of the bench currency. */
  readonly deviceLimits?: ((defaults: DeviceLimits) => DeviceLimits) | undefined;
  /** The suite of the node's own keys (root, intermediary, issuer node); Ed25519 by default. */
  readonly suite?: SuiteName | undefined;
  /** Settlement through NATS JetStream in shards, with a worker per shard in the node's process. */
  /** With `shardDatabases` (PostgreSQL only): a database of its own per shard, made on the server and dropped at stop, with the relay's receivers and sweep in the node's process. */
  readonly settle?: { readonly natsUrl: string; readonly shards: number; readonly shardDatabases?: boolean | undefined } | undefined;
  /**
   * On PGlite: the folder of a new, closed PGlite cluster (what PGlite.create makes on an empty
   * folder) to copy as the node's database, rather than the node running initdb in its new folder
   * (seconds of CPU, none of it measured by a row). The tests pass one made once for their run.
   */
  readonly pgliteCluster?: string | undefined;
}

/** A request body encoded ahead of time, with its SHA-256: what a request signature covers. */
export interface PreparedBody {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly sha256: Uint8Array;
}

/** A registered account holder. */
export interface BenchUser {
  readonly signer: Signer;
  readonly keyId: string;
  readonly account: string;
  /** The user (client) certificate. */
  readonly certificate: Uint8Array;
}

/** An OEM enrolled with the node: what attests the bench's secure elements. */
export interface BenchOem {
  readonly signer: Signer;
  readonly keyId: string;
}

/** A running bench node. */
export interface BenchNode {
  readonly url: string;
  readonly database: 'pglite' | 'postgres';
  readonly currency: Currency;
  /** The node's hierarchy: the central bank's root, the intermediary, the issuer node. */
  readonly certificates: { readonly root: Certificate; readonly intermediary: Certificate; readonly issuerNode: Certificate };
  readonly deviceLimits: DeviceLimits;
  /** The node's limit on a request body. */
  readonly bodyBytesMax: number;
  /** Sends a request (signed by `who`, or with the operator token) and answers its JSON. @throws Error on any status from 300 up */
  call(who: Signer | 'operator', method: string, path: string, body?: unknown): Promise<unknown>;
  /** The same, answering the raw response. */
  send(who: Signer | 'operator', method: string, path: string, body?: unknown): Promise<Response>;
  /** A JSON body encoded once with its SHA-256 (node:crypto), to send later for the cost of a signature. */
  prepare(body: unknown): PreparedBody;
  /** Sends a prepared body signed by `who` over its precomputed hash, answering the raw response. */
  sendPrepared(who: Signer, method: string, path: string, body: PreparedBody): Promise<Response>;
  /** Minor units as the node writes amounts. */
  amount(minor: bigint): string;
  /** Registers an account holder with a fresh key of `suite` (Ed25519 by default). */
  registerUser(suite?: SuiteName): Promise<BenchUser>;
  /** Enrols a bench OEM and allows `measurement` for `scheme`. */
  enrolOem(scheme: string, measurement: Uint8Array): Promise<BenchOem>;
  /** Mints `minor` to an account (operator). */
  mint(account: string, minor: bigint): Promise<void>;
  /** Asserts the audit balances; answers each offline-float account's holding, minor units. @throws Error when it does not */
  assertBalanced(): Promise<Map<string, bigint>>;
  stop(): Promise<void>;
}

/** Minor units from the node's decimal string in the bench currency. */
function parseMinor(text: string): bigint {
  const [whole = '0', fraction = ''] = text.split('.');
  return BigInt(whole) * 10n ** BigInt(BENCH_CURRENCY.decimals) + BigInt(fraction.padEnd(BENCH_CURRENCY.decimals, '0') || '0');
}

/** What a served bench node tells its clients: where it listens, and what a client needs to sign and check. */
export interface BenchNodeServed {
  readonly url: string;
  readonly database: 'pglite' | 'postgres';
  /** The operator's bearer token. */
  readonly operatorToken: string;
  readonly certificates: BenchNode['certificates'];
  readonly deviceLimits: DeviceLimits;
  /** Closes the server and the node, drops the PostgreSQL schema and removes the data folder. */
  stop(): Promise<void>;
}

/**
 * Opens a node with `options.schemes` and serves it on a loopback port, without a client: what a
 * node process runs (node-child.ts), and what openBenchNode puts a client on.
 * @throws RangeError for PostgreSQL without a URL
 */
export async function serveBenchNode(options: BenchNodeOptions & { postgresUrl?: string | undefined }): Promise<BenchNodeServed> {
  const database = options.database ?? 'pglite';
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-bench-node-'));
  let db: Database | undefined;
  let dropSchema = async () => {};
  if (database === 'postgres') {
    const url = options.postgresUrl;
    if (url === undefined) throw new RangeError('postgres: set DATABASE_URL or TEST_DATABASE_URL to a PostgreSQL URL');
    const schema = `tally_bench_${process.pid}_${nodeRandomBytes(4).toString('hex')}`;
    db = await openPostgres(url, { schema, poolSize: 20 });
    dropSchema = () => dropPostgresSchema(url, schema);
  }
  const deviceLimits = (options.deviceLimits ?? ((d) => d))(defaultDeviceLimits(BENCH_CURRENCY));
  let node: Awaited<ReturnType<typeof openNode>>;
  let shardDatabases: TestShardDatabases | undefined;
  try {
    if (options.settle?.shardDatabases === true) {
      if (options.postgresUrl === undefined || database !== 'postgres') throw new RangeError('shard databases are PostgreSQL databases: run the node on PostgreSQL');
      shardDatabases = await createTestDatabases(options.postgresUrl, options.settle.shards);
    }
    // Without a database given, openNode opens PGlite in the data folder: on disk, as a node runs.
    if (database === 'pglite' && options.pgliteCluster !== undefined) await cp(options.pgliteCluster, join(dataDir, 'pglite'), { recursive: true });
    node = await openNode({
      dataDir,
      db,
      provider: nodeProvider,
      currency: BENCH_CURRENCY,
      suite: options.suite,
      deviceLimits,
      schemes: options.schemes,
      env: { TALLY_NODE_PASSPHRASE: 'bench passphrase' },
      settle: options.settle === undefined ? undefined : { natsUrl: options.settle.natsUrl, shards: options.settle.shards, shardDatabases: shardDatabases?.urls },
    });
  } catch (e) {
    await shardDatabases?.drop();
    await dropSchema();
    await rm(dataDir, { recursive: true, force: true });
    throw e;
  }
  const handlers = new Map(options.schemes.flatMap((scheme) => [...(scheme.settleHandlers?.(node.services) ?? [])]));
  const workers = node.intake === undefined ? undefined : await startSettleWorkers(node.intake, handlers, { log: (line, fields) => process.stderr.write(`bench node: ${line} ${JSON.stringify(fields ?? {})}\n`) });
  // With shard databases: receivers for every place, and the relay's sweep, as `tally node start` runs them.
  const ledgers = node.services.shardLedgers;
  const receivers = node.credits === undefined || ledgers === undefined ? undefined : await node.credits.receive(ledgers.parties);
  const credits = node.credits;
  const sweeping = credits === undefined ? undefined : setInterval(() => void credits.sweep().catch(() => undefined), 2_000);
  // A bench request the node fails on is an error of the run: its cause goes to stderr.
  const app = createIssuerApp(node.services, options.schemes, {
    onInternalError: (error, request) => process.stderr.write(`bench node: internal error on ${request.method} ${request.path}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`),
  });
  const server = await new Promise<ReturnType<typeof serve>>((ready, fail) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => ready(s));
    s.once('error', fail);
  });
  const { identity } = node.services;
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    database,
    operatorToken: identity.operatorToken,
    certificates: { root: identity.root.certificate, intermediary: identity.intermediary.certificate, issuerNode: identity.issuerNode.certificate },
    deviceLimits,
    async stop() {
      await new Promise<void>((done) => server.close(() => done()));
      await workers?.stop();
      if (sweeping !== undefined) clearInterval(sweeping);
      await receivers?.stop();
      const stream = node.intake?.stream;
      const creditStream = node.credits?.stream;
      await node.close();
      // The bench's streams go with its node (work queues left empty, but kept on the server's disk).
      if (stream !== undefined && options.settle !== undefined) await deleteStream(options.settle.natsUrl, stream);
      if (creditStream !== undefined && options.settle !== undefined) await deleteStream(options.settle.natsUrl, creditStream);
      await shardDatabases?.drop();
      await dropSchema();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Sends a request again, signed afresh under the same idempotency key, when the connection failed
 * before an answer (a kept-alive socket the server closed as it was reused) or the HTTP server
 * answered 408: the node answers a request it already took with its stored answer, so a retry
 * never does the work twice.
 */
export async function retried(send: () => Promise<Response>): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    let response: Response;
    try {
      response = await send();
    } catch (e) {
      if (attempt >= SEND_ATTEMPTS_MAX) throw e;
      continue;
    }
    // 408 comes from the HTTP server, not the node: the request was not taken whole. Sent again under
    // the same idempotency key, it is judged once either way.
    if (response.status !== 408 || attempt >= SEND_ATTEMPTS_MAX) return response;
    await response.body?.cancel();
  }
}

/** Attempts of one request whose connection fails or that the HTTP server timed out (408). */
const SEND_ATTEMPTS_MAX = 3;

/** A client of a served node (in this process or another): signed requests, users, the OEM, minting, the audit. */
export function benchNodeClient(served: Omit<BenchNodeServed, 'stop'>, stop: () => Promise<void>): BenchNode {
  const { url, database, operatorToken } = served;
  let calls = 0;
  const idempotencyKey = () => `bench-${process.pid}-${++calls}`;
  const send = (who: Signer | 'operator', method: string, path: string, body?: unknown): Promise<Response> => {
    const text = body === undefined ? '' : JSON.stringify(body);
    const key = idempotencyKey();
    return retried(() => {
      const auth =
        who === 'operator'
          ? { authorization: `Bearer ${operatorToken}` }
          : signRequest({ signer: who, keyId: toHex(keyId(who.publicKey)), method, path, body: text, timestamp: Date.now() });
      const headers: Record<string, string> = { 'content-type': 'application/json', ...auth };
      if (method !== 'GET') headers['idempotency-key'] = key;
      return fetch(`${url}${path}`, { method, headers, ...(method === 'GET' ? {} : { body: text }) });
    });
  };
  const call = async (who: Signer | 'operator', method: string, path: string, body?: unknown): Promise<unknown> => {
    const response = await send(who, method, path, body);
    const text = await response.text();
    if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return JSON.parse(text) as unknown;
  };
  const fresh = (suite: SuiteName): Signer => {
    const s = nodeProvider.suites[suite];
    return signerFromSecret(s, s.generateSecretKey());
  };
  return {
    url,
    database,
    currency: BENCH_CURRENCY,
    certificates: served.certificates,
    deviceLimits: served.deviceLimits,
    bodyBytesMax: BODY_BYTES_MAX,
    send,
    call,
    prepare(body) {
      const bytes = Buffer.from(JSON.stringify(body), 'utf8');
      return { bytes, sha256: createHash('sha256').update(bytes).digest() };
    },
    sendPrepared(who, method, path, body) {
      const key = idempotencyKey();
      return retried(() => {
        const auth = signRequest({ signer: who, keyId: toHex(keyId(who.publicKey)), method, path, body: body.bytes, bodyHash: body.sha256, timestamp: Date.now() });
        const headers: Record<string, string> = { 'content-type': 'application/json', 'idempotency-key': key, ...auth };
        return fetch(`${url}${path}`, { method, headers, body: body.bytes });
      });
    },
    amount: (minor) => formatMinor(BENCH_CURRENCY, minor),
    async registerUser(suite = 'ed25519') {
      const signer = fresh(suite);
      const body = (await call(signer, 'POST', '/v1/users', { publicKey: { suite, key: toBase64url(signer.publicKey.key) } })) as { keyId: string; account: string; certificate: string };
      return { signer, keyId: body.keyId, account: body.account, certificate: fromBase64url(body.certificate) };
    },
    async enrolOem(scheme, measurement) {
      const signer = fresh('ed25519');
      const enrolled = (await call('operator', 'POST', '/v1/operator/oems', { name: `Bench OEM (${scheme})`, publicKey: { suite: 'ed25519', key: toBase64url(signer.publicKey.key) } })) as { keyId: string };
      await call('operator', 'POST', '/v1/operator/measurements', { measurement: toHex(measurement), scheme, description: 'bench build' });
      return { signer, keyId: enrolled.keyId };
    },
    async mint(account, minor) {
      await call('operator', 'POST', '/v1/operator/mint', { account, amount: formatMinor(BENCH_CURRENCY, minor) });
    },
    async assertBalanced() {
      const audit = (await call('operator', 'GET', '/v1/audit')) as { balanced: boolean; currencies: Array<{ offlineFloat: Array<{ account: string; amount: string }> }> };
      if (audit.balanced !== true) throw new Error(`${database}: the audit is not balanced (ledger or offline exposure)`);
      return new Map((audit.currencies[0]?.offlineFloat ?? []).map((f) => [f.account, parseMinor(f.amount)]));
    },
    stop,
  };
}

/**
 * Opens a node with `options.schemes`, serves it on a loopback port in this process, and answers a client of it.
 * @throws RangeError for PostgreSQL without a URL
 */
export async function openBenchNode(options: BenchNodeOptions & { postgresUrl?: string | undefined }): Promise<BenchNode> {
  const served = await serveBenchNode(options);
  return benchNodeClient(served, () => served.stop());
}

/** Deletes a stream the bench made on a NATS server. */
async function deleteStream(url: string, stream: string): Promise<void> {
  const connection = await connectNats({ servers: url, timeout: 5_000 });
  try {
    await (await jetstreamManager(connection)).streams.delete(stream).catch(() => false);
  } finally {
    await connection.close();
  }
}
