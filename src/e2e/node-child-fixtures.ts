/**
 * An issuer node in a process of its own, for tests that kill it (SIGKILL) and start it again on
 * the same data: `node --import tsx node-child-fixtures.ts` (or its compiled form) with a JSON argument
 * `{ dataDir, schemes, postgres?: { url, schema }, offlinePaymentsMax?, holdingLimitMinor? }`. It
 * opens the node (PGlite in the data folder, or the PostgreSQL schema), serves it on a loopback
 * port and prints one JSON line: `{ url, operatorToken, root, intermediary, issuerNode }` (the
 * certificates in base64url). `startNodeChild` runs it and answers once it listens.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { serve } from '@hono/node-server';
import { currency } from '../core/amount.ts';
import { toBase64url } from '../core/bytes.ts';
import { openPostgres } from '../issuer/db/postgres.ts';
import { seedPgliteCluster } from '../issuer/db/test-pglite-cluster.ts';
import { createIssuerApp } from '../issuer/http/app.ts';
import { startSettleWorkers } from '../issuer/queue/settle-queue.ts';
import { defaultDeviceLimits, openNode } from '../issuer/services.ts';
import { encodeCertificate } from '../pki/certificate.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { SCHEMES } from '../schemes/index.ts';

/** What the child is started with. */
export interface NodeChildOptions {
  readonly dataDir: string;
  readonly schemes: readonly string[];
  readonly postgres?: { readonly url: string; readonly schema: string } | undefined;
  readonly offlinePaymentsMax?: number | undefined;
  readonly holdingLimitMinor?: string | undefined;
  /** Settlement through NATS JetStream, with a worker per shard in the child. */
  readonly settle?: { readonly natsUrl: string; readonly shards: number; readonly ackWaitMs?: number | undefined; readonly localWorkers?: boolean | undefined } | undefined;
}

/** What the child prints once it listens. */
export interface NodeChildReady {
  readonly url: string;
  readonly operatorToken: string;
  readonly root: string;
  readonly intermediary: string;
  readonly issuerNode: string;
  /** The settlement stream, with `settle`. */
  readonly stream?: string | undefined;
}

/** A running child node. */
export interface NodeChild extends NodeChildReady {
  readonly pid: number;
  /** SIGKILL: the process ends at once, mid-request, with nothing flushed or closed. */
  kill(): Promise<void>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
}

/** The currency of child nodes. */
export const CHILD_CURRENCY = currency('EUR', 2);

async function main(options: NodeChildOptions): Promise<void> {
  const modules = await Promise.all(SCHEMES.filter((s) => options.schemes.includes(s.name)).map((s) => s.node()));
  const defaults = defaultDeviceLimits(CHILD_CURRENCY);
  const db = options.postgres === undefined ? undefined : await openPostgres(options.postgres.url, { schema: options.postgres.schema, poolSize: 20 });
  const node = await openNode({
    dataDir: options.dataDir,
    db,
    provider: nodeProvider,
    currency: CHILD_CURRENCY,
    schemes: modules,
    deviceLimits: {
      holdingLimitMinor: options.holdingLimitMinor === undefined ? defaults.holdingLimitMinor : BigInt(options.holdingLimitMinor),
      offlinePaymentsMax: options.offlinePaymentsMax ?? defaults.offlinePaymentsMax,
    },
    env: { TALLY_NODE_PASSPHRASE: 'node child passphrase' },
    settle: options.settle,
  });
  const handlers = new Map(modules.flatMap((m) => [...(m.settleHandlers?.(node.services) ?? [])]));
  const workers = node.intake === undefined || options.settle?.localWorkers === false ? undefined : await startSettleWorkers(node.intake, handlers, { log: (line, fields) => process.stderr.write(`node child: ${line} ${JSON.stringify(fields)}\n`) });
  const app = createIssuerApp(node.services, modules);
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => {
    const { identity } = node.services;
    const ready: NodeChildReady = {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      operatorToken: identity.operatorToken,
      root: toBase64url(encodeCertificate(identity.root.certificate)),
      intermediary: toBase64url(encodeCertificate(identity.intermediary.certificate)),
      issuerNode: toBase64url(encodeCertificate(identity.issuerNode.certificate)),
      ...(node.intake === undefined ? {} : { stream: node.intake.stream }),
    };
    process.stdout.write(`${JSON.stringify(ready)}\n`);
  });
  process.on('SIGTERM', () => {
    server.close(() => void (workers?.stop() ?? Promise.resolve()).then(() => node.close()).then(() => process.exit(0)));
  });
}

/**
 * How the child runs this module: from the sources, its compiled form in dist/ when the build is
 * fresh (built from the sources as they are now: scripts/build-state.mjs, the check `tally` makes
 * before it runs dist/), the very code these sources compile to, loaded without tsx compiling a
 * few hundred modules at every start (seconds of CPU; a test here starts its node several times);
 * else these sources through tsx.
 */
async function childScript(): Promise<string[]> {
  const own = fileURLToPath(import.meta.url);
  if (own.endsWith('.js')) return [own];
  const compiled = fileURLToPath(new URL('../../dist/e2e/node-child-fixtures.js', import.meta.url));
  try {
    const { buildState } = (await import(new URL('../../scripts/build-state.mjs', import.meta.url).href)) as { buildState: () => { state: string } };
    if (buildState().state === 'fresh' && existsSync(compiled)) return [compiled];
  } catch {
    // The state cannot be told: the sources.
  }
  return ['--import', 'tsx', own];
}

/**
 * Starts a child node and waits until it listens. On PGlite, a new data folder first gets a copy
 * of the tests' new cluster (test-pglite-cluster.ts) instead of the child running initdb; a
 * restart finds its database there and keeps it.
 * @throws Error when it exits first or takes over 60 s
 */
export async function startNodeChild(options: NodeChildOptions): Promise<NodeChild> {
  if (options.postgres === undefined) await seedPgliteCluster(options.dataDir);
  const child = spawn(process.execPath, [...(process.env['TALLY_CHILD_PROFILE'] === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', process.env['TALLY_CHILD_PROFILE']]), ...(await childScript()), JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const ready = await new Promise<NodeChildReady>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the node did not listen within 60 s')), 60_000);
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      resolve(JSON.parse(line) as NodeChildReady);
    });
    void exited.then(() => reject(new Error('the node exited before it listened')));
  });
  return {
    ...ready,
    pid: child.pid as number,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(JSON.parse(process.argv[2] ?? '{}') as NodeChildOptions).catch((e: unknown) => {
    process.stderr.write(`node child: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
