/** The machine a benchmark ran on, and the warning when its own ratios say the run was too noisy. */
import { cpus, loadavg, totalmem } from 'node:os';

/** Where a run was measured. */
export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly platform: string;
  /** The 1-minute load average when the bench started: other work on the machine shows here. */
  readonly loadAverage: number;
  readonly date: string;
}

/** This machine, now. */
export function thisMachine(): Machine {
  const all = cpus();
  return {
    cpu: all[0]?.model.trim() ?? 'unknown',
    cores: all.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadAverage: loadavg()[0] ?? Number.NaN,
    date: new Date().toISOString().slice(0, 10),
  };
}

/** The `Machine:` line every report starts with. */
export function machineLine(m: Machine): string {
  return `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.platform}; ${m.date}; load average ${m.loadAverage.toFixed(1)} at the start`;
}

/** A ratio of a measurement to its floor (or to a baseline that cannot be faster than it). */
export interface FloorRatio {
  /** What was divided by what, for the warning. */
  readonly what: string;
  readonly value: number;
}

/**
 * Warnings for ratios below 1: something measured faster than its own floor means the floor's
 * measurement (or the other's) was disturbed, so the run's figures cannot be trusted.
 */
export function noiseWarnings(ratios: readonly FloorRatio[]): string[] {
  const low = ratios.filter((r) => Number.isFinite(r.value) && r.value < 1);
  if (low.length === 0) return [];
  const listed = low.map((r) => `${r.what} = ${r.value.toFixed(2)}x`).join('; ');
  return [`WARNING: ${low.length} ratio(s) below 1 (${listed}): a measurement came out faster than its floor, so the machine was too noisy to trust this run; run it again on a quiet machine`];
}
