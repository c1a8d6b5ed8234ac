/**
 * `tally node start`: runs an issuer node. On first start it creates the data folder (keys,
 * certificates, operator token, schema); later starts reuse it. When a scheme it serves settles on
 * an Ethereum chain it starts its embedded anvil (or uses the endpoint given). Ctrl-C (SIGINT) or
 * SIGTERM stop it cleanly: the listener closes, in-flight requests finish, the chain and the
 * database close.
 */
import { serve } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { currency as makeCurrency, type Currency } from '../core/amount.ts';
import type { SuiteName } from '../core/crypto/suite.ts';
import { TallyError } from '../core/errors.ts';
import { toHex } from '../core/bytes.ts';
import { keyId } from '../pki/key-id.ts';
import type { Database } from '../issuer/db/database.ts';
import { createIssuerApp } from '../issuer/http/app.ts';
import { sweepExpired } from '../issuer/maintenance.ts';
import { openNode } from '../issuer/services.ts';
import { startSettleWorkers, type SettleHandler, type SettleWorkers } from '../issuer/queue/settle-queue.ts';
import { CREDIT_REDELIVER_AFTER_MS, CREDIT_SWEEP_AGE_MS, type CreditReceivers } from '../issuer/queue/credit-relay.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { SCHEMES, type Scheme } from '../schemes/index.ts';
import type { Logger } from './log.ts';

/** Options of `tally node start`. */
export interface NodeStartOptions {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl?: string | undefined;
  /** An already open database (benchmarks, tests); wins over `databaseUrl`. */
  db?: Database | undefined;
  /** The passphrase environment; `process.env` by default. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  currency: Currency;
  /** The suite of a new node's keys; Ed25519 by default. */
  suite?: SuiteName | undefined;
  logger: Logger;
  /** Prints the one-time operator token (stdout), or a JSON line with `--json`. */
  print: (text: string) => void;
  /** The node's clock, Unix milliseconds (tests move it); the system clock by default. */
  now?: (() => number) | undefined;
  /** The schemes it serves; the registry's by default. */
  schemes?: readonly Scheme[] | undefined;
  /** Another EVM JSON-RPC endpoint instead of the embedded anvil (`--eth-rpc`, $TALLY_ETH_RPC). */
  ethRpc?: string | undefined;
  /** The deployment on that chain to settle on, made by another intermediary (`--chain-contract`): a scheme joins it instead of deploying its own. */
  chainContract?: `0x${string}` | undefined;
  /** Settlement through NATS JetStream (`--nats URL --shards N`), with a worker per shard in this process. */
  settle?: { readonly natsUrl: string; readonly shards: number; readonly localWorkers?: boolean | undefined; readonly shardDatabases?: readonly string[] | undefined } | undefined;
  /** How often an intermediary syncs with its central bank on its own (TIER_SYNC_INTERVAL_MS by default); 0: only when asked (tests). */
  tierSyncMs?: number | undefined;
  /** `central-bank` makes (or insists on) a central bank, which serves no scheme; the folder's role otherwise. */
  role?: 'standalone' | 'central-bank' | undefined;
}

/** The chain a running node uses, as it says so at start. */
export interface RunningChain {
  /** The endpoint, without credentials. */
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly embedded: boolean;
  /** The central bank's address on the chain. */
  readonly bankAddress: string;
}

/** A running node. */
export interface RunningNode {
  readonly url: string;
  /** The operator's bearer token. */
  readonly operatorToken: string;
  /** What the node is in the two tiers. */
  readonly role: 'standalone' | 'central-bank' | 'intermediary';
  /** The central bank's root key id (hex): what an intermediary pins when it enrols. */
  readonly rootKeyId: string;
  /** Its Ethereum chain, when it runs one. */
  readonly chain?: RunningChain | undefined;
  /** Its settlement intake, when started with `--nats`. */
  readonly settle?: { readonly stream: string; readonly shards: number; readonly credits?: string | undefined; readonly databases?: number | undefined } | undefined;
  /** Stops accepting, lets in-flight requests finish, stops the chain, closes the database. */
  stop(): Promise<void>;
}

/** How often a running node drops expired nonces and idempotent answers. */
export const SWEEP_INTERVAL_MS = 10 * 60 * 1000;
/** How often an intermediary syncs with its central bank on its own. */
export const TIER_SYNC_INTERVAL_MS = 5_000;

/** Starts a node and returns once it listens. */
export async function startNode(options: NodeStartOptions): Promise<RunningNode> {
  const dataDir = resolve(options.dataDir);
  // Every scheme of the registry; their node parts load only here. A central bank serves none.
  const schemes = options.role === 'central-bank' ? [] : await Promise.all((options.schemes ?? SCHEMES).map((scheme) => scheme.node()));
  const node = await openNode({
    dataDir,
    databaseUrl: options.databaseUrl,
    db: options.db,
    env: options.env,
    provider: nodeProvider,
    currency: options.currency,
    suite: options.suite,
    role: options.role,
    schemes,
    chain: { rpcUrl: options.ethRpc, contract: options.chainContract },
    settle: options.settle,
    now: options.now,
    log: (line) => options.logger.log('warn', line),
  });
  const chainService = node.services.chain;
  const chain: RunningChain | undefined =
    chainService === undefined ? undefined : { rpcUrl: chainService.publicRpcUrl, chainId: chainService.chainId, embedded: chainService.embedded, bankAddress: chainService.bankAddress };
  for (const warning of node.warnings) options.logger.log('warn', warning);
  if (node.created) {
    options.print(
      `Created a new ${node.services.identity.role === 'central-bank' ? 'central bank' : node.services.identity.role === 'intermediary' ? 'intermediary node' : 'issuer node'} in ${dataDir}.\nOperator token (shown once; also in ${node.services.identity.operatorTokenFile}):\n${node.services.identity.operatorToken}\n`,
    );
  }
  // A worker per shard in this process: it settles the parts routes publish to the stream.
  let workers: SettleWorkers | undefined;
  if (node.intake !== undefined && options.settle?.localWorkers !== false) {
    const handlers = new Map(schemes.flatMap((scheme) => [...(scheme.settleHandlers?.(node.services) ?? new Map<string, SettleHandler>())]));
    try {
      workers = await startSettleWorkers(node.intake, handlers, { log: (line, fields) => options.logger.log('warn', line, fields) });
    } catch (e) {
      await node.close();
      throw e;
    }
  }
  // Credits between the node's databases: received here for its own database, and for the shards'
  // when it runs their workers; what a crash left unpublished is published again every few seconds.
  let receivers: CreditReceivers | undefined;
  let creditSweeper: ReturnType<typeof setInterval> | undefined;
  let creditReconciler: ReturnType<typeof setInterval> | undefined;
  let creditSweep: Promise<unknown> = Promise.resolve();
  if (node.credits !== undefined) {
    const credits = node.credits;
    const places = options.settle?.localWorkers === false ? (['home'] as const) : (node.services.shardLedgers?.parties ?? []);
    try {
      receivers = await credits.receive(places);
    } catch (e) {
      await workers?.stop();
      await node.close();
      throw e;
    }
    creditSweeper = setInterval(() => {
      creditSweep = creditSweep.then(() => credits.sweep()).catch((e: unknown) => options.logger.log('warn', 'publishing credits between shard databases failed; tried again soon', { error: e instanceof Error ? e.message : String(e) }));
    }, CREDIT_SWEEP_AGE_MS);
    creditSweeper.unref();
    // What was published and never received (a stream that lost it, a message id taken first by
    // someone else) is looked up at its receiver and published again, every half minute.
    creditReconciler = setInterval(() => {
      creditSweep = creditSweep.then(() => credits.reconcile()).catch((e: unknown) => options.logger.log('warn', 'looking up undelivered credits between shard databases failed; tried again soon', { error: e instanceof Error ? e.message : String(e) }));
    }, CREDIT_REDELIVER_AFTER_MS);
    creditReconciler.unref();
  }
  const app = createIssuerApp(node.services, schemes, {
    onInternalError: (error, request) => options.logger.log('error', 'internal error', { ...request, error: errorFields(error) }),
  });
  const inFlight = new Set<Promise<unknown>>();
  const fetch = (request: Request): Promise<Response> => {
    const started = Date.now();
    const answer = Promise.resolve(app.fetch(request));
    inFlight.add(answer);
    void answer.then(
      (response) => options.logger.log('info', 'request', { method: request.method, path: new URL(request.url).pathname, status: response.status, ms: Date.now() - started }),
      (error: unknown) => options.logger.log('error', 'request failed', { method: request.method, path: new URL(request.url).pathname, error: errorFields(error) }),
    ).finally(() => inFlight.delete(answer));
    return answer;
  };
  let server: Server;
  try {
    server = await listen(fetch, options.host, options.port);
  } catch (e) {
    // Nothing listens: let go of the database and the data folder, so the process can end.
    clearInterval(creditSweeper);
    clearInterval(creditReconciler);
    await creditSweep;
    await receivers?.stop();
    await workers?.stop();
    await node.close();
    throw listenFailed(e, options.host, options.port);
  }
  const address = server.address() as AddressInfo;
  const url = `http://${options.host}:${address.port}`;
  // Housekeeping: expired nonces and old idempotent answers, now and every SWEEP_INTERVAL_MS.
  let sweeping: Promise<void> = Promise.resolve();
  const sweep = () => {
    sweeping = sweepExpired(node.services.db, Date.now()).then(
      (report) => {
        if (report.nonces + report.idempotency > 0) options.logger.log('info', 'swept expired rows', { ...report });
      },
      (e: unknown) => options.logger.log('warn', 'sweeping expired rows failed', { error: e instanceof Error ? e.message : String(e) }),
    );
  };
  sweep();
  const sweeper = setInterval(sweep, SWEEP_INTERVAL_MS);
  sweeper.unref();
  // An intermediary keeps its books in step with its reserve at the central bank, now and every
  // TIER_SYNC_INTERVAL_MS; a central bank that cannot be reached is logged, and tried again.
  const tierSyncMs = options.tierSyncMs ?? TIER_SYNC_INTERVAL_MS;
  const link = tierSyncMs > 0 ? node.services.tier : undefined;
  let linking: Promise<void> = Promise.resolve();
  let linkDown = false;
  const syncLink = () => {
    if (link === undefined) return;
    linking = link.sync().then(
      (report) => {
        if (report.recorded > 0 || linkDown) options.logger.log('info', 'synced with the central bank', { centralBank: link.centralBank, recorded: report.recorded, cursor: report.cursor, revoked: report.revoked });
        linkDown = false;
      },
      (e: unknown) => {
        if (!linkDown) options.logger.log('warn', 'cannot sync with the central bank', { centralBank: link.centralBank, error: e instanceof Error ? e.message : String(e) });
        linkDown = true;
      },
    );
  };
  syncLink();
  const linker = link === undefined ? undefined : setInterval(syncLink, tierSyncMs);
  linker?.unref();
  options.logger.log('info', 'issuer node listening', { url, role: node.services.identity.role, database: node.services.db.kind, dataDir, currency: options.currency.code, ...(chain === undefined ? {} : { chain: { ...chain } }), ...(node.intake === undefined ? {} : { settle: settleInfo(node) }) });
  let stopping: Promise<void> | null = null;
  return {
    url,
    operatorToken: node.services.identity.operatorToken,
    role: node.services.identity.role,
    rootKeyId: toHex(keyId(node.services.identity.root.certificate.body.subject)),
    ...(chain === undefined ? {} : { chain }),
    ...(node.intake === undefined ? {} : { settle: settleInfo(node) }),
    stop() {
      stopping ??= (async () => {
        options.logger.log('info', 'shutting down', { inFlight: inFlight.size });
        clearInterval(sweeper);
        if (linker !== undefined) clearInterval(linker);
        await new Promise<void>((done) => server.close(() => done()));
        await Promise.allSettled([...inFlight, sweeping, linking]);
        clearInterval(creditSweeper);
        clearInterval(creditReconciler);
        await creditSweep;
        await receivers?.stop();
        await workers?.stop();
        await node.close();
        options.logger.log('info', 'stopped');
      })();
      return stopping;
    },
  };
}

type Server = ReturnType<typeof serve>;

/** Listens on `host:port`; rejects with the server's error (EADDRINUSE, EACCES, ...). */
function listen(fetch: (request: Request) => Promise<Response>, host: string, port: number): Promise<Server> {
  return new Promise<Server>((ready, fail) => {
    const server = serve({ fetch, port, hostname: host }, () => ready(server));
    server.once('error', (e) => {
      server.close();
      fail(e);
    });
  });
}

/** A listen error as one sentence saying what to do. */
function listenFailed(e: unknown, host: string, port: number): TallyError<'LISTEN_FAILED'> {
  const address = `${host}:${port}`;
  const code = e instanceof Error && 'code' in e ? String(e.code) : '';
  const reason =
    code === 'EADDRINUSE'
      ? 'the address is already in use (another node or program listens there): stop it or choose another --port'
      : code === 'EACCES'
        ? 'permission denied (ports below 1024 need privileges): choose another --port'
        : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND'
          ? 'this machine has no such address: check --host'
          : e instanceof Error
            ? e.message
            : String(e);
  return new TallyError('LISTEN_FAILED', `cannot listen on ${address}: ${reason}`, { address, reason: code || reason }, { cause: e });
}

/** What a log line keeps of an error: its name, message, code (SQLSTATE, errno, Tally code), stack and cause. */
export function errorFields(error: unknown, depth = 0): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) };
  const fields: Record<string, unknown> = { name: error.name, message: error.message };
  const code: unknown = Reflect.get(error, 'code');
  if (typeof code === 'string' || typeof code === 'number') fields['code'] = code;
  const detail: unknown = Reflect.get(error, 'detail');
  if (typeof detail === 'string') fields['detail'] = detail;
  if (error.stack !== undefined) fields['stack'] = error.stack;
  if (error.cause !== undefined && depth < 3) fields['cause'] = errorFields(error.cause, depth + 1);
  return fields;
}

/** The default currency of a new node. */
export const DEFAULT_CURRENCY = makeCurrency('EUR', 2);

/** What the node says of its settlement intake: the stream, the shards, and its shard databases' credit stream. */
function settleInfo(node: { readonly intake?: { readonly stream: string; readonly shards: number } | undefined; readonly credits?: { readonly stream: string } | undefined; readonly services: { readonly shardLedgers?: { readonly parties: readonly string[] } | undefined } }) {
  if (node.intake === undefined) return undefined;
  const ledgers = node.services.shardLedgers;
  return { stream: node.intake.stream, shards: node.intake.shards, ...(node.credits === undefined || ledgers === undefined ? {} : { credits: node.credits.stream, databases: ledgers.parties.length - 1 }) };
}
