/**
 * The verification floor of settlement: Ed25519 verifications per second with node:crypto on every
 * core at once, one worker thread per core, each verifying one fixed signature over a message the
 * size of a payment for the same span. A node that checks one signature per settled payment can at
 * best settle this many payments a second on this machine.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** About the size of an OPS payment's signed record (its tag, amount, index and two certificates). */
const MESSAGE_BYTES = 736;
/** How long a worker may take to start and to answer beyond its span. */
const WORKER_SLACK_MS = 30_000;

/** What the floor measured. */
export interface VerifyFloor {
  /** Worker threads, one per core. */
  readonly threads: number;
  /** Verifications per second, all threads together. */
  readonly perSecond: number;
  /** Per thread, for a reader to see that each core did its share. */
  readonly perThread: readonly number[];
}

// The worker's code, plain JavaScript (no TypeScript loader in a worker): a key, a signature, then
// verify until the span ends, after the parent's go so that every thread runs at the same time.
const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const { generateKeyPairSync, randomBytes, sign, verify } = require('node:crypto');
const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const message = randomBytes(workerData.messageBytes);
const signature = sign(null, message, privateKey);
for (let i = 0; i < 200; i++) verify(null, message, publicKey, signature);
parentPort.once('message', () => {
  let count = 0;
  const start = performance.now();
  let now = start;
  while (now - start < workerData.spanMs) {
    for (let i = 0; i < 16; i++) if (!verify(null, message, publicKey, signature)) throw new Error('the floor signature does not verify');
    count += 16;
    now = performance.now();
  }
  parentPort.postMessage({ count, elapsedMs: now - start });
});
parentPort.postMessage('ready');
`;

function waitFor<T>(worker: Worker, accept: (value: unknown) => T | undefined, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`verification floor: a worker did not answer within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (value: unknown) => {
      const accepted = accept(value);
      if (accepted === undefined) return;
      clearTimeout(timer);
      worker.off('message', onMessage);
      resolve(accepted);
    };
    worker.on('message', onMessage);
    worker.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * Public-key operations other than Ed25519 that a settlement may not do without, each with a floor
 * of its own measured the same way (node:crypto, every core at once):
 * - `rsa2048-pss-verify`: one RSASSA-PSS verification (SHA-384, 48-byte salt, RFC 9474's) under a
 *   2048-bit key with e = 65537, of a 32-byte message;
 * - `x25519`: one X25519 key agreement (a fixed pair of keys: the ephemeral key's import, HKDF and
 *   the AEAD of an HPKE open are left out, so it is a lower bound).
 */
export const FLOOR_OPERATIONS = ['rsa2048-pss-verify', 'x25519'] as const;
export type FloorOperation = (typeof FLOOR_OPERATIONS)[number];

// Each operation's worker: its set-up, then `one()` until the span ends, as WORKER_CODE does.
const OPERATION_SETUP: Readonly<Record<FloorOperation, string>> = {
  'rsa2048-pss-verify': `
const { generateKeyPairSync, randomBytes, sign, verify, constants } = require('node:crypto');
const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537 });
const message = randomBytes(32);
const pss = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 };
const signature = sign('sha384', message, { key: privateKey, ...pss });
const one = () => verify('sha384', message, { key: publicKey, ...pss }, signature);`,
  x25519: `
const { generateKeyPairSync, diffieHellman } = require('node:crypto');
const ours = generateKeyPairSync('x25519');
const theirs = generateKeyPairSync('x25519');
const one = () => diffieHellman({ privateKey: ours.privateKey, publicKey: theirs.publicKey }).length === 32;`,
};

function operationWorker(operation: FloorOperation): string {
  return `
const { parentPort, workerData } = require('node:worker_threads');
${OPERATION_SETUP[operation]}
for (let i = 0; i < 50; i++) one();
parentPort.once('message', () => {
  let count = 0;
  const start = performance.now();
  let now = start;
  while (now - start < workerData.spanMs) {
    for (let i = 0; i < 4; i++) if (!one()) throw new Error('the floor operation failed');
    count += 4;
    now = performance.now();
  }
  parentPort.postMessage({ count, elapsedMs: now - start });
});
parentPort.postMessage('ready');
`;
}

/** Measures the floor for about `spanMs` on `threads` worker threads (one per core by default). */
export async function measureVerifyFloor(spanMs: number, threads = availableParallelism()): Promise<VerifyFloor> {
  return measureWorkers(WORKER_CODE, spanMs, threads);
}

/** The same for another operation: `operation`s a second on every core. */
export async function measureOperationFloor(operation: FloorOperation, spanMs: number, threads = availableParallelism()): Promise<VerifyFloor> {
  return measureWorkers(operationWorker(operation), spanMs, threads);
}

async function measureWorkers(code: string, spanMs: number, threads: number): Promise<VerifyFloor> {
  const workers = Array.from({ length: threads }, () => new Worker(code, { eval: true, workerData: { spanMs, messageBytes: MESSAGE_BYTES } }));
  try {
    await Promise.all(workers.map((w) => waitFor(w, (v) => (v === 'ready' ? true : undefined), WORKER_SLACK_MS)));
    const results = workers.map((w) =>
      waitFor(
        w,
        (v) => (typeof v === 'object' && v !== null && 'count' in v && 'elapsedMs' in v && typeof v.count === 'number' && typeof v.elapsedMs === 'number' ? { count: v.count, elapsedMs: v.elapsedMs } : undefined),
        spanMs + WORKER_SLACK_MS,
      ),
    );
    for (const w of workers) w.postMessage('go');
    const perThread = (await Promise.all(results)).map((r) => (r.count * 1000) / r.elapsedMs);
    return { threads, perSecond: perThread.reduce((s, x) => s + x, 0), perThread };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
