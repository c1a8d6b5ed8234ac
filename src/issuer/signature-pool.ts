/**
 * Ed25519 signature checks off the request thread: a pool of `worker_threads`, one per core, each
 * checking its share of a batch with `node:crypto` (OpenSSL) and answering one byte per signature.
 * The settlement routes hand it the one signature a payment carries once the certificate chains
 * behind it are known good (a chain is checked once per device, not per payment), so that a batch
 * of a thousand payments keeps both cores busy while the request thread decodes and writes.
 *
 * A worker answers only what OpenSSL answers: `[S]B = R + [k]A`. A signature it refuses may still
 * pass the strict cofactored check that the node's provider falls back to (see
 * providers/node-crypto.ts), so the caller checks a refused one again with its provider before
 * refusing the payment; an accepted one needs no second look. A key the worker is given must
 * already be known good (a point of the curve, not of small order): the caller's chain check
 * decided that when it verified the certificate carrying it.
 *
 * The workers start on first use (a node that settles nothing starts none) and stop with the node.
 * Their code is a short script over `node:crypto` alone, evaluated in the worker, so that it runs
 * the same from the TypeScript sources and from the build; it takes its modules with
 * `process.getBuiltinModule`, which works whether the evaluated code is read as CommonJS or as an
 * ES module (`--input-type`).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** One signature to check: an Ed25519 public key (32 bytes), the message, the signature (64 bytes). */
export interface SignatureCheck {
  readonly publicKey: Uint8Array;
  readonly message: Uint8Array;
  readonly signature: Uint8Array;
}

/** Checks batches of Ed25519 signatures in worker threads. */
export interface SignaturePool {
  /** The number of worker threads (one per core unless told otherwise). */
  readonly size: number;
  /**
   * Answers, for each check in order, whether OpenSSL accepts the signature. A key that is not 32
   * bytes or a signature that is not 64 is answered false without being sent.
   */
  verifyEd25519(checks: readonly SignatureCheck[]): Promise<boolean[]>;
  /** Stops the workers; a later call starts them again. */
  close(): Promise<void>;
}

/**
 * The worker: takes `{ id, keys, sigs, msgs, ends }` (keys 32 bytes each, signatures 64 each, the
 * messages concatenated with their end offsets) and answers `{ id, ok }`, one byte per check. Key
 * objects are kept, a bounded number, since making one costs about as much as a check.
 */
const WORKER_SOURCE = `
const { parentPort } = process.getBuiltinModule('node:worker_threads');
const { createPublicKey, verify } = process.getBuiltinModule('node:crypto');
const { Buffer } = process.getBuiltinModule('node:buffer');
const KEYS_MAX = 65536;
const keys = new Map();
function keyOf(raw) {
  const id = raw.toString('latin1');
  let key = keys.get(id);
  if (key === undefined) {
    // As a JWK: made from the raw bytes, several times faster than decoding SPKI DER.
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
    if (keys.size >= KEYS_MAX) keys.delete(keys.keys().next().value);
    keys.set(id, key);
  }
  return key;
}
parentPort.on('message', (job) => {
  const keyBytes = Buffer.from(job.keys.buffer, job.keys.byteOffset, job.keys.byteLength);
  const sigBytes = Buffer.from(job.sigs.buffer, job.sigs.byteOffset, job.sigs.byteLength);
  const msgBytes = Buffer.from(job.msgs.buffer, job.msgs.byteOffset, job.msgs.byteLength);
  const n = job.ends.length;
  const ok = new Uint8Array(n);
  let start = 0;
  for (let k = 0; k < n; k++) {
    const end = job.ends[k];
    try {
      ok[k] = verify(null, msgBytes.subarray(start, end), keyOf(keyBytes.subarray(32 * k, 32 * k + 32)), sigBytes.subarray(64 * k, 64 * k + 64)) ? 1 : 0;
    } catch {
      ok[k] = 0;
    }
    start = end;
  }
  parentPort.postMessage({ id: job.id, ok }, [ok.buffer]);
});
`;

/** Below this many checks a batch goes to one worker: splitting it costs more than it saves. */
const SPLIT_BELOW = 64;

interface Pending {
  readonly resolve: (ok: Uint8Array) => void;
  readonly reject: (e: Error) => void;
}

/** One worker and the jobs it has been given. */
class PoolWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private failed: Error | undefined;

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, { eval: true });
    this.worker.on('message', (answer: { id: number; ok: Uint8Array }) => {
      const job = this.pending.get(answer.id);
      this.pending.delete(answer.id);
      if (this.pending.size === 0) this.worker.unref();
      job?.resolve(answer.ok);
    });
    const fail = (e: Error) => {
      this.failed = e;
      for (const job of this.pending.values()) job.reject(e);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`a signature worker exited (code ${code})`)));
    // Held (ref) only while it has jobs: an idle pool does not keep the node's process alive. After
    // the listeners, since adding one refs the worker's port.
    this.worker.unref();
  }

  get broken(): boolean {
    return this.failed !== undefined;
  }

  run(id: number, checks: readonly SignatureCheck[]): Promise<Uint8Array> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    const keys = new Uint8Array(32 * checks.length);
    const sigs = new Uint8Array(64 * checks.length);
    const ends = new Uint32Array(checks.length);
    let total = 0;
    for (const c of checks) total += c.message.length;
    const msgs = new Uint8Array(total);
    let at = 0;
    checks.forEach((c, k) => {
      keys.set(c.publicKey, 32 * k);
      sigs.set(c.signature, 64 * k);
      msgs.set(c.message, at);
      at += c.message.length;
      ends[k] = at;
    });
    return new Promise<Uint8Array>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, keys, sigs, msgs, ends }, [keys.buffer, sigs.buffer, msgs.buffer, ends.buffer]);
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/**
 * A pool of `size` workers (one per core by default), started on first use.
 * @throws RangeError for a size that is not a positive integer
 */
export function createSignaturePool(size: number = availableParallelism()): SignaturePool {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`signature pool size: expected a positive integer, got ${size}`);
  let workers: PoolWorker[] = [];
  let jobs = 0;
  const live = (): PoolWorker[] => {
    // A worker that died (killed, out of memory) is replaced at the next batch; its jobs were refused.
    workers = workers.filter((w) => !w.broken);
    while (workers.length < size) workers.push(new PoolWorker());
    return workers;
  };
  return {
    size,
    async verifyEd25519(checks) {
      const answer = new Array<boolean>(checks.length).fill(false);
      const sendable: number[] = [];
      checks.forEach((c, k) => {
        if (c.publicKey.length === 32 && c.signature.length === 64) sendable.push(k);
      });
      if (sendable.length === 0) return answer;
      const pool = live();
      const parts = sendable.length < SPLIT_BELOW ? 1 : pool.length;
      const share = Math.ceil(sendable.length / parts);
      const runs: Array<Promise<void>> = [];
      for (let p = 0; p < parts; p++) {
        const slice = sendable.slice(p * share, (p + 1) * share);
        if (slice.length === 0) continue;
        const worker = pool[(jobs + p) % pool.length] as PoolWorker;
        runs.push(
          worker.run(++jobs, slice.map((k) => checks[k] as SignatureCheck)).then((ok) => {
            slice.forEach((k, j) => {
              answer[k] = ok[j] === 1;
            });
          }),
        );
      }
      await Promise.all(runs);
      return answer;
    },
    async close() {
      const stopping = workers;
      workers = [];
      await Promise.all(stopping.map((w) => w.close()));
    },
  };
}
