/**
 * A bench node in a process of its own: the same issuer node as node.ts, served over HTTP on
 * loopback from a child process (node-child.ts), so that its CPU is its own and a load generator
 * in this process does not share its event loop. The child finds the schemes' node parts through
 * the registry by name; the parent holds a client of it (the same BenchNode) and asks the child for
 * its CPU time over the IPC channel.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SUITE_NAMES, type SuiteName } from '../../core/crypto/suite.ts';
import { array, boolean, bytes, oneOf, optional, taggedUnion, text, uint } from '../../core/codec.ts';
import type { DeviceLimits } from '../../issuer/http/context.ts';
import { defaultDeviceLimits } from '../../issuer/services.ts';
import { CERTIFICATE_BYTES_MAX, decodeCertificate, encodeCertificate } from '../../pki/certificate.ts';
import { BENCH_CURRENCY, benchNodeClient, type BenchNode } from './node.ts';

/** How long the child may take to load the sources and open its node. */
const START_TIMEOUT_MS = 120_000;
/** How long the child may take to answer a question or to stop. */
const ANSWER_TIMEOUT_MS = 60_000;
/** Longest scheme name, error message and URL on the channel. */
const NAME_CHARS_MAX = 64;
const MESSAGE_CHARS_MAX = 4096;

/** How to open a node process. */
export interface BenchProcessNodeOptions {
  /** The schemes the node serves, by their names in the registry. */
  readonly schemes: readonly string[];
  /** PGlite (on disk, inside the node process) by default; PostgreSQL needs the harness's URL. */
  readonly database?: 'pglite' | 'postgres' | undefined;
  /** The node's limits for devices, from the defaults of the bench currency. */
  readonly deviceLimits?: ((defaults: DeviceLimits) => DeviceLimits) | undefined;
  /** The suite of the node's own keys; Ed25519 by default. */
  readonly suite?: SuiteName | undefined;
  /** Settlement through NATS JetStream in shards, with a worker per shard in the node process; with `shardDatabases`, a PostgreSQL database per shard too. */
  readonly settle?: { readonly natsUrl: string; readonly shards: number; readonly shardDatabases?: boolean | undefined } | undefined;
  /** On PGlite: a new cluster's folder to copy as the node's database instead of its initdb (node.ts, BenchNodeOptions). */
  readonly pgliteCluster?: string | undefined;
}

/** A bench node running in its own process. */
export interface BenchProcessNode extends BenchNode {
  /** The node process's id (its CPU in /proc/PID/stat). */
  readonly pid: number;
  /** The node process's CPU time so far (user + system, process.cpuUsage in the child), ms. */
  cpuMs(): Promise<number>;
}

const schemeName = text({ min: 1, max: NAME_CHARS_MAX, pattern: /^[a-z0-9-]+$/, describe: 'a scheme name' });
const certificateBytes = bytes({ max: CERTIFICATE_BYTES_MAX });
const counter = uint({ max: Number.MAX_SAFE_INTEGER });

/** What the parent sends the child: open the node (once), its CPU time, stop. */
export const parentMessageCodec = taggedUnion('kind', {
  open: {
    schemes: array(schemeName, { min: 1, max: 16 }),
    database: oneOf(['pglite', 'postgres']),
    holdingLimitMinor: text({ min: 1, max: 40, pattern: /^[0-9]+$/, describe: 'minor units' }),
    offlinePaymentsMax: counter,
    suite: optional(oneOf(SUITE_NAMES)),
    postgresUrl: optional(text({ min: 1, max: MESSAGE_CHARS_MAX })),
    natsUrl: optional(text({ min: 1, max: MESSAGE_CHARS_MAX })),
    shards: optional(uint({ min: 1, max: 64 })),
    shardDatabases: optional(boolean),
    pgliteCluster: optional(text({ min: 1, max: MESSAGE_CHARS_MAX })),
  },
  cpu: { id: counter },
  stop: {},
});

/** A message from the parent. */
export type ParentMessage = ReturnType<typeof parentMessageCodec.decode>;

/** What the child answers: its node is ready (where, and what a client needs), or failed; its CPU time; stopped. */
export const childMessageCodec = taggedUnion('kind', {
  ready: {
    url: text({ max: NAME_CHARS_MAX, pattern: /^http:\/\/127\.0\.0\.1:[0-9]+$/, describe: 'a loopback URL' }),
    database: oneOf(['pglite', 'postgres']),
    operatorToken: text({ min: 1, max: 256 }),
    root: certificateBytes,
    intermediary: certificateBytes,
    issuerNode: certificateBytes,
  },
  failed: { message: text({ max: MESSAGE_CHARS_MAX }) },
  cpu: { id: counter, microseconds: counter },
  stopped: {},
});

/** A message from the child. */
export type ChildMessage = ReturnType<typeof childMessageCodec.decode>;

/** The ready message's certificates, encoded for the channel. */
export function encodeReady(served: { url: string; database: 'pglite' | 'postgres'; operatorToken: string; certificates: BenchNode['certificates'] }): ChildMessage {
  const { root, intermediary, issuerNode } = served.certificates;
  return {
    kind: 'ready',
    url: served.url,
    database: served.database,
    operatorToken: served.operatorToken,
    root: encodeCertificate(root),
    intermediary: encodeCertificate(intermediary),
    issuerNode: encodeCertificate(issuerNode),
  };
}

/**
 * The child's script, in the form this module runs in: compiled, the compiled child beside it.
 * From the sources (through tsx), the child runs the bundle of dist/bundle/ when the build is fresh
 * (built from the sources as they are now: scripts/build-state.mjs, the check `tally` makes), as
 * the secure element's children do (host-isolated.ts): the very code the sources compile to,
 * without tsx compiling a few hundred modules in every node process (seconds of CPU, before any row
 * is measured). Without a fresh build, the sources through tsx.
 */
const COMPILED = import.meta.url.endsWith('.js');
const BUNDLED_CHILD = new URL('../../../dist/bundle/sim.bench.node-child.js', import.meta.url);
const CHILD: { readonly script: string; readonly tsx: boolean } = COMPILED
  ? { script: fileURLToPath(new URL('./node-child.js', import.meta.url)), tsx: false }
  : (await freshBundle())
    ? { script: fileURLToPath(BUNDLED_CHILD), tsx: false }
    : { script: fileURLToPath(new URL('./node-child.ts', import.meta.url)), tsx: true };

/** Whether dist/ holds a fresh build with the node child's bundle; false when that cannot be told. */
async function freshBundle(): Promise<boolean> {
  try {
    const check: unknown = (await import(new URL('../../../scripts/build-state.mjs', import.meta.url).href)).buildState;
    if (typeof check !== 'function') return false;
    const state: unknown = check();
    return typeof state === 'object' && state !== null && Reflect.get(state, 'state') === 'fresh' && existsSync(BUNDLED_CHILD);
  } catch {
    return false;
  }
}

/** Waits for the child's next message of `kind` that `accept` takes, or fails when it exits or takes too long. */
function nextMessage<K extends ChildMessage['kind']>(child: ChildProcess, kind: K, timeoutMs: number, accept: (m: Extract<ChildMessage, { kind: K }>) => boolean = () => true): Promise<Extract<ChildMessage, { kind: K }>> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (raw: unknown) => {
      let message: ChildMessage;
      try {
        message = childMessageCodec.decode(raw, 'message');
      } catch (e) {
        done();
        reject(e);
        return;
      }
      if (message.kind === 'failed') {
        done();
        reject(new Error(`bench node process: ${message.message}`));
        return;
      }
      if (message.kind !== kind) return;
      const typed = message as Extract<ChildMessage, { kind: K }>;
      if (!accept(typed)) return;
      done();
      resolve(typed);
    };
    const onExit = (code: number | null, signal: string | null) => {
      done();
      reject(new Error(`bench node process exited (${signal ?? `code ${code}`}) while waiting for ${kind}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`bench node process: no ${kind} within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/**
 * Starts a node process serving `options.schemes` and answers a client of it.
 * @throws RangeError for PostgreSQL without a URL; Error when the child cannot open its node
 */
export async function openProcessNode(options: BenchProcessNodeOptions & { postgresUrl?: string | undefined }): Promise<BenchProcessNode> {
  const database = options.database ?? 'pglite';
  if (database === 'postgres' && options.postgresUrl === undefined) throw new RangeError('postgres: set DATABASE_URL or TEST_DATABASE_URL to a PostgreSQL URL');
  const deviceLimits = (options.deviceLimits ?? ((d) => d))(defaultDeviceLimits(BENCH_CURRENCY));
  // The child runs the bundle or the sources through tsx (CHILD); its stdout goes to our stderr, so that --json output stays clean.
  // TALLY_CHILD_PROFILE=dir writes a CPU profile of the node process there when it stops.
  const profile = process.env['TALLY_CHILD_PROFILE'];
  const execArgv = [...(profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profile]), ...(CHILD.tsx ? ['--import', import.meta.resolve('tsx')] : [])];
  const child = fork(CHILD.script, [], { execArgv, serialization: 'advanced', stdio: ['ignore', 2, 2, 'ipc'] });
  const pid = child.pid;
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  if (pid === undefined) {
    kill();
    throw new Error('bench node process: no process id (spawn failed)');
  }
  const request: ParentMessage = {
    kind: 'open',
    schemes: [...options.schemes],
    database,
    holdingLimitMinor: deviceLimits.holdingLimitMinor.toString(),
    offlinePaymentsMax: deviceLimits.offlinePaymentsMax,
    suite: options.suite,
    postgresUrl: options.postgresUrl,
    natsUrl: options.settle?.natsUrl,
    shards: options.settle?.shards,
    shardDatabases: options.settle?.shardDatabases,
    pgliteCluster: options.pgliteCluster,
  };
  let ready: Extract<ChildMessage, { kind: 'ready' }>;
  try {
    const answered = nextMessage(child, 'ready', START_TIMEOUT_MS);
    child.send(request);
    ready = await answered;
  } catch (e) {
    kill();
    throw e;
  }
  let questions = 0;
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // The child answers `stopped` and leaves, or `failed`; its exit with 0 says the same when the answer and the exit cross.
      const outcome = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`bench node process: not stopped within ${ANSWER_TIMEOUT_MS} ms`)), ANSWER_TIMEOUT_MS);
        const finish = (error?: Error) => {
          clearTimeout(timer);
          child.off('message', onMessage);
          child.off('exit', onExit);
          if (error === undefined) resolve();
          else reject(error);
        };
        const onMessage = (raw: unknown) => {
          const message = childMessageCodec.decode(raw, 'message');
          if (message.kind === 'stopped') finish();
          else if (message.kind === 'failed') finish(new Error(`bench node process: ${message.message}`));
        };
        const onExit = (code: number | null, signal: string | null) => finish(code === 0 ? undefined : new Error(`bench node process exited (${signal ?? `code ${code}`}) while stopping`));
        child.on('message', onMessage);
        child.once('exit', onExit);
      });
      const exited = new Promise<void>((done) => child.once('exit', () => done()));
      try {
        child.send({ kind: 'stop' } satisfies ParentMessage);
        await outcome;
      } finally {
        await Promise.race([exited, new Promise((done) => setTimeout(done, 5_000))]);
        kill();
        if (child.exitCode === null && child.signalCode === null) await exited;
      }
    })();
    return stopped;
  };
  const client = benchNodeClient(
    {
      url: ready.url,
      database: ready.database,
      operatorToken: ready.operatorToken,
      certificates: { root: decodeCertificate(ready.root), intermediary: decodeCertificate(ready.intermediary), issuerNode: decodeCertificate(ready.issuerNode) },
      deviceLimits,
    },
    stop,
  );
  return {
    ...client,
    pid,
    async cpuMs() {
      const id = ++questions;
      const answered = nextMessage(child, 'cpu', ANSWER_TIMEOUT_MS, (m) => m.id === id);
      child.send({ kind: 'cpu', id } satisfies ParentMessage);
      return (await answered).microseconds / 1000;
    },
  };
}
