/** Measurement helpers for benchmarks: throughput over a time budget, latency percentiles. */
import { performance } from 'node:perf_hooks';

/** Latency figures in milliseconds. */
export interface Latency {
  readonly samples: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
}

/** The q-quantile (0..1) of sorted samples, nearest-rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new RangeError('quantile of no samples');
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

/** Summarises latency samples (ms). */
export function summarise(samplesMs: readonly number[]): Latency {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const mean = sorted.reduce((sum, x) => sum + x, 0) / sorted.length;
  return { samples: sorted.length, p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99), meanMs: mean };
}

/** Runs a synchronous operation repeatedly for about `budgetMs` after a short warm-up; returns operations per second. */
export function throughput(operation: () => void, budgetMs: number): number {
  const warmEnd = performance.now() + Math.min(100, budgetMs / 5);
  while (performance.now() < warmEnd) operation();
  let count = 0;
  const start = performance.now();
  let now = start;
  while (now - start < budgetMs) {
    for (let i = 0; i < 16; i++) operation();
    count += 16;
    now = performance.now();
  }
  return (count * 1000) / (now - start);
}

/** Times `iterations` sequential runs of an async operation after `warmup` untimed runs. */
export async function latency(operation: (i: number) => Promise<unknown>, iterations: number, warmup = 5): Promise<Latency> {
  for (let i = 0; i < warmup; i++) await operation(-1 - i);
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const start = performance.now();
    await operation(i);
    samples.push(performance.now() - start);
  }
  return summarise(samples);
}

/** A wider summary of samples (ms): median, p90, mean and the extremes. */
export interface Spread {
  readonly samples: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly meanMs: number;
  readonly minMs: number;
  readonly maxMs: number;
}

/** Summarises samples (ms) with their median, p90 and extremes. @throws RangeError for no samples */
export function spread(samplesMs: readonly number[]): Spread {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return {
    samples: sorted.length,
    p50Ms: quantile(sorted, 0.5),
    p90Ms: quantile(sorted, 0.9),
    meanMs: sorted.reduce((s, x) => s + x, 0) / sorted.length,
    minMs: sorted[0] ?? Number.NaN,
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

/** The median of samples in any order. @throws RangeError for no samples */
export function median(values: readonly number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}
