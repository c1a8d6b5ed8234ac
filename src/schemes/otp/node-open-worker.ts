/**
 * An opening worker (node-open-pool.ts): takes `{ id, bytes, ends, keys, classes, now }`, opens and checks
 * each coin with openSealedCoin, and answers `{ id, opened }`, or `{ id, error }` when opening
 * failed otherwise than by refusing a coin (the pool then opens those coins on the node's thread,
 * where the same fault shows as it would have without workers).
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { useSha256 } from '../../core/crypto/hash.ts';
import { openSealedCoin, type DepositKeys, type OpeningClasses } from './node-open.ts';

/** One job: some coins of one deposit, and what opening them needs. */
export interface OpeningJob {
  readonly id: number;
  /** The sealed coins one after another, each ending at its offset in `ends`. */
  readonly bytes: Uint8Array;
  readonly ends: readonly number[];
  readonly keys: DepositKeys;
  readonly classes: OpeningClasses;
  readonly now: number;
}

// The coins' digests through OpenSSL, as on the node's thread (its provider does the same).
useSha256((data) => new Uint8Array(createHash('sha256').update(data).digest()));

parentPort?.on('message', (job: OpeningJob) => {
  try {
    const opened = job.ends.map((end, k) => openSealedCoin(job.bytes.subarray(k === 0 ? 0 : job.ends[k - 1], end), job.keys, job.classes, job.now));
    parentPort?.postMessage({ id: job.id, opened });
  } catch (e) {
    parentPort?.postMessage({ id: job.id, error: e instanceof Error ? e.message : String(e) });
  }
});
