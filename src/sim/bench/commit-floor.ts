/**
 * The persistence floor of secure-element commits, for any scheme: what the host's commit costs
 * without the trusted app's work, a sealed blob of a given size written to a temp file with fsync,
 * renamed over the state with a directory fsync, and a file-counter increment.
 *
 * A disk's fsync latency drifts over seconds on a shared machine (here, by 2x and more between
 * runs a minute apart), so a floor timed before or after the measurement it stands under can come
 * from another regime. A `CommitFloor` is timed one round at a time, so that a benchmark can
 * interleave its rounds with what it measures and both see the same disk.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from '../../core/crypto/hash.ts';
import { FileCounter } from '../../secure-element/counter-file.ts';
import { FileStorage } from '../../secure-element/storage-file.ts';
import { summarise, type Latency } from './stats.ts';

/** Untimed commits of a new side before its first timed one (file creation, the page cache). */
const WARMUP_COMMITS = 5;

/** Commits timed a round at a time; side k of a round is a secure element's folder and counter of its own. */
export interface CommitFloor {
  /**
   * Times one commit of each size in `sealedBytes` in turn, the k-th by side k: the round's
   * milliseconds (0 for no commit). @throws RangeError for a size that is not a positive integer
   */
  round(sealedBytes: readonly number[]): Promise<number>;
  /** Waits for the counters' calls in flight. */
  close(): Promise<void>;
}

interface Side {
  readonly storage: FileStorage;
  readonly counter: FileCounter;
}

/** A floor whose sides are folders of `dir`, each made (and warmed up) by the first round that uses it. */
export function openCommitFloor(options: { dir: string }): CommitFloor {
  const sides: Side[] = [];
  let blob: Uint8Array = new Uint8Array(0);
  const commit = async (side: Side, size: number) => {
    if (size > blob.length) blob = randomBytes(size);
    await side.storage.writeTemp('floor', blob.subarray(0, size));
    await side.storage.replace('floor');
    await side.counter.increment();
  };
  const sideOf = async (k: number, size: number): Promise<Side> => {
    const existing = sides[k];
    if (existing !== undefined) return existing;
    const dir = join(options.dir, `floor-${k}`);
    await mkdir(dir, { recursive: true });
    const side = { storage: new FileStorage(dir), counter: new FileCounter(join(dir, 'counter')) };
    await side.counter.open();
    for (let i = 0; i < WARMUP_COMMITS; i++) await commit(side, size);
    sides[k] = side;
    return side;
  };
  return {
    async round(sealedBytes) {
      if (!sealedBytes.every((n) => Number.isSafeInteger(n) && n > 0)) throw new RangeError(`commit floor: expected positive sizes, got ${JSON.stringify(sealedBytes)}`);
      if (sealedBytes.length === 0) return 0;
      const ready = [];
      for (const [k, size] of sealedBytes.entries()) ready.push(await sideOf(k, size));
      const start = performance.now();
      for (const [k, side] of ready.entries()) await commit(side, sealedBytes[k] ?? 0);
      return performance.now() - start;
    },
    async close() {
      for (const side of sides) await side.counter.close();
    },
  };
}

/**
 * Times, `iterations` times, one commit of each size in `sealedBytes` in turn (one state folder
 * and counter per size, in `dir`), after five untimed commits of each, one round after another.
 */
export async function measureCommits(options: { dir: string; sealedBytes: readonly number[]; iterations: number }): Promise<Latency> {
  const floor = openCommitFloor(options);
  try {
    const samples: number[] = [];
    for (let i = 0; i < options.iterations; i++) samples.push(await floor.round(options.sealedBytes));
    return summarise(samples);
  } finally {
    await floor.close();
  }
}
