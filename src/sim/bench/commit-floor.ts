/**
 * The persistence floor of secure-element commits, for any scheme: what the host's commit costs
 * without the trusted app's work, a sealed blob of a given size written to a temp file with fsync,
 * renamed over the state with a directory fsync, and a file-counter increment.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from '../../core/crypto/hash.ts';
import { FileCounter } from '../../secure-element/counter-file.ts';
import { FileStorage } from '../../secure-element/storage-file.ts';
import { summarise, type Latency } from './stats.ts';

/**
 * Times, `iterations` times, one commit of each size in `sealedBytes` in turn (one state folder
 * and counter per size, in `dir`), after five untimed rounds.
 */
export async function measureCommits(options: { dir: string; sealedBytes: readonly number[]; iterations: number }): Promise<Latency> {
  const sides = await Promise.all(
    options.sealedBytes.map(async (size, k) => {
      const dir = join(options.dir, `floor-${k}`);
      await mkdir(dir, { recursive: true });
      const counter = new FileCounter(join(dir, 'counter'));
      await counter.open();
      return { storage: new FileStorage(dir), counter, blob: randomBytes(size) };
    }),
  );
  try {
    const commitAll = async () => {
      for (const side of sides) {
        await side.storage.writeTemp('floor', side.blob);
        await side.storage.replace('floor');
        await side.counter.increment();
      }
    };
    for (let i = 0; i < 5; i++) await commitAll();
    const samples: number[] = [];
    for (let i = 0; i < options.iterations; i++) {
      const start = performance.now();
      await commitAll();
      samples.push(performance.now() - start);
    }
    return summarise(samples);
  } finally {
    for (const side of sides) await side.counter.close();
  }
}
