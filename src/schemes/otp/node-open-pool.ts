/**
 * The deposit's coin opening off the request thread: a pool of `worker_threads` (one per core),
 * each running node-open-worker.ts over its share of a deposit's coins, so that a deposit of many
 * coins keeps both cores busy while the request thread decodes bodies and writes the ledger. The
 * X25519, the AEAD and the class key's RSA-PSS check of each coin are most of the node's work in a
 * deposit (docs/benchmarks.md).
 *
 * A worker answers what openSealedCoin answers on the request thread, from the same inputs (the
 * deposit key, the live and foreign classes, the time), given with each job; it keeps nothing but
 * its key objects. A deposit of fewer than POOL_FROM coins is opened on the request thread (a
 * round trip to a worker costs more than a coin). A worker that fails (it did not start, it exited,
 * or opening threw there) has its coins opened on the request thread instead, so the answer never
 * depends on the workers; a pool whose workers could not start is not tried again.
 *
 * One pool per process, shared by every node in it (a job carries all it needs), started on the
 * first large deposit. Its workers hold the process only while they have jobs.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { openSealedCoin, type DepositKeys, type OpenedCoin, type OpeningClasses } from './node-open.ts';
import type { OpeningJob } from './node-open-worker.ts';

/** Deposits of at least this many coins are opened in the workers. */
export const POOL_FROM = 8;

// The worker's module next to this one: the compiled file in dist/ when the node runs the build;
// the TypeScript source when it runs its sources, loaded through tsx's loader, which the worker
// registers first (a worker on Node 20 does not take the loader the process got with --import).
const FROM_SOURCES = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(FROM_SOURCES ? './node-open-worker.ts' : './node-open-worker.js', import.meta.url);

function startWorker(): Worker {
  if (!FROM_SOURCES) return new Worker(WORKER_URL);
  const api = import.meta.resolve('tsx/esm/api');
  return new Worker(`import(${JSON.stringify(api)}).then((tsx) => tsx.register()).then(() => import(${JSON.stringify(WORKER_URL.href)}))`, { eval: true });
}

type Answer = { id: number; opened: OpenedCoin[] } | { id: number; error: string };

/** One worker and its jobs. */
class OpeningWorker {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (opened: OpenedCoin[] | undefined) => void }>();
  #failed = false;

  constructor() {
    this.#worker = startWorker();
    this.#worker.on('message', (answer: Answer) => {
      const job = this.#pending.get(answer.id);
      this.#pending.delete(answer.id);
      if (this.#pending.size === 0) this.#worker.unref();
      job?.resolve('opened' in answer ? answer.opened : undefined);
    });
    const fail = (why: unknown) => {
      this.#failed = true;
      this.reason ??= why instanceof Error ? why.message : `it exited with code ${String(why)}`;
      for (const job of this.#pending.values()) job.resolve(undefined);
      this.#pending.clear();
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', fail);
    // An answer that cannot be read names no job: the worker is given up, its jobs go back to the request thread.
    this.#worker.on('messageerror', (e) => {
      fail(e);
      void this.#worker.terminate();
    });
    this.#worker.unref();
  }

  /** Why the worker failed, when it did. */
  reason: string | undefined;

  get failed(): boolean {
    return this.#failed;
  }

  /** The opened coins, or undefined when this worker could not open them. */
  open(job: OpeningJob): Promise<OpenedCoin[] | undefined> {
    if (this.#failed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.#pending.set(job.id, { resolve });
      this.#worker.ref();
      try {
        this.#worker.postMessage(job, [job.bytes.buffer as ArrayBuffer]);
      } catch {
        // A job that cannot be sent is opened on the request thread.
        this.#pending.delete(job.id);
        if (this.#pending.size === 0) this.#worker.unref();
        resolve(undefined);
      }
    });
  }

  terminate(): Promise<number> {
    return this.#worker.terminate();
  }
}

let workers: OpeningWorker[] | undefined;
/** Some worker answered once: a worker failing later is replaced rather than the pool given up. */
let answered = false;
/** The workers failed before any answered (they cannot start here): opening stays on this thread. */
let givenUp = false;
let nextId = 1;
let inWorkers = 0;

/** How many coins the workers have opened in this process (for tests). */
export function coinsOpenedInWorkers(): number {
  return inWorkers;
}

function pool(): OpeningWorker[] | undefined {
  if (givenUp) return undefined;
  if (workers === undefined) workers = Array.from({ length: Math.max(1, availableParallelism()) }, () => new OpeningWorker());
  else if (workers.some((w) => w.failed)) {
    if (!answered) {
      givenUp = true;
      // Said once: deposits still settle, on the request thread, with the same answers.
      process.emitWarning(`the OTP opening workers could not start (${workers.find((w) => w.failed)?.reason ?? 'unknown'}): deposits are opened on the request thread`);
      workers = undefined;
      return undefined;
    }
    workers = workers.map((w) => (w.failed ? new OpeningWorker() : w));
  }
  return workers;
}

/** Coins packed into one buffer for a worker (the body's buffers may be views into larger ones). */
function pack(coins: readonly Uint8Array[]): { bytes: Uint8Array; ends: number[] } {
  const bytes = new Uint8Array(coins.reduce((n, c) => n + c.length, 0));
  const ends: number[] = [];
  let at = 0;
  for (const coin of coins) {
    bytes.set(coin, at);
    at += coin.length;
    ends.push(at);
  }
  return { bytes, ends };
}

/**
 * Opens and checks a deposit's coins, in order: in the workers when there are POOL_FROM or more,
 * on this thread otherwise or for the share of a worker that failed.
 * @throws what openSealedCoin throws on this thread (a fault of the node, not of a coin)
 */
export async function openCoins(raws: readonly Uint8Array[], keys: DepositKeys, classes: OpeningClasses, now: number): Promise<OpenedCoin[]> {
  const here = (coins: readonly Uint8Array[]) => coins.map((raw) => openSealedCoin(raw, keys, classes, now));
  const lanes = raws.length >= POOL_FROM ? pool() : undefined;
  if (lanes === undefined) return here(raws);
  const share = Math.ceil(raws.length / lanes.length);
  const parts = lanes.map((lane, k) => ({ lane, coins: raws.slice(k * share, (k + 1) * share) })).filter((p) => p.coins.length > 0);
  const answers = await Promise.all(parts.map(({ lane, coins }) => lane.open({ id: nextId++, ...pack(coins), keys, classes, now })));
  for (const [k, a] of answers.entries()) if (a !== undefined) inWorkers += (parts[k] as { coins: readonly Uint8Array[] }).coins.length;
  if (answers.some((a) => a !== undefined)) answered = true;
  return parts.flatMap(({ coins }, k) => answers[k] ?? here(coins));
}

/** Stops the workers (tests); the next large deposit starts them again. */
export async function closeOpeningPool(): Promise<void> {
  const stopping = workers ?? [];
  workers = undefined;
  answered = false;
  givenUp = false;
  await Promise.all(stopping.map((w) => w.terminate()));
}
