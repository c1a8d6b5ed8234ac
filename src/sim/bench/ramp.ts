/**
 * What a ramp benchmark needs, for any scheme: payments of n items (OTPs, tokens) for several n,
 * repeated. The mean and sample standard deviation per count (what the papers plot), the
 * least-squares line through every sample (time against n: its slope is the time per item, its
 * intercept what a payment costs whatever its size), and the settings a run takes from the
 * environment (`<PREFIX>_REPS`, `<PREFIX>_COUNTS`, `<PREFIX>_SVG`).
 */
import type { Machine } from './machine.ts';

/** What every ramp's report says of its run. */
export interface RampRun {
  readonly machine: Machine;
  /** The 1-minute load average when the ramp started and when it ended. */
  readonly loadAverage: { readonly start: number; readonly end: number };
  readonly node: { readonly database: string };
  /** The link the payments took, in words. */
  readonly transport: string;
  readonly counts: readonly number[];
  readonly reps: number;
}

/** Mean and sample standard deviation. */
export interface MeanSd {
  readonly n: number;
  readonly mean: number;
  /** Sample standard deviation (n − 1); 0 for one sample. */
  readonly sd: number;
  readonly min: number;
  readonly max: number;
}

/** Mean and sample standard deviation of `values`. @throws RangeError for no values */
export function meanSd(values: readonly number[]): MeanSd {
  if (values.length === 0) throw new RangeError('mean of no values');
  const mean = values.reduce((s, x) => s + x, 0) / values.length;
  const variance = values.length < 2 ? 0 : values.reduce((s, x) => s + (x - mean) ** 2, 0) / (values.length - 1);
  return { n: values.length, mean, sd: Math.sqrt(variance), min: Math.min(...values), max: Math.max(...values) };
}

/** A fitted line y = intercept + slope · x, with its coefficient of determination. */
export interface Line {
  readonly slope: number;
  readonly intercept: number;
  readonly r2: number;
}

/** The least-squares line through the points. @throws RangeError for fewer than two distinct x */
export function fitLine(points: readonly (readonly [number, number])[]): Line {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  if (n < 2 || sxx === 0) throw new RangeError('a line needs points at two distinct x at least');
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const syy = points.reduce((s, [, y]) => s + (y - my) ** 2, 0);
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx, r2: syy === 0 ? 1 : (sxy * sxy) / (sxx * syy) };
}

/** The settings of a ramp that the environment may change. */
export interface RampSettings {
  /** Payments per count. */
  readonly reps: number;
  /** The counts of items per payment. */
  readonly counts: readonly number[];
  /** Where to write the figure; none when undefined. */
  readonly svgPath?: string | undefined;
}

/**
 * `base` with what the environment sets: `<prefix>_REPS` (payments per count, 1 to 1000),
 * `<prefix>_COUNTS` (comma-separated), `<prefix>_SVG` (a path, or `none`).
 * @throws RangeError for a number of repetitions out of range
 */
export function rampSettings<T extends RampSettings>(prefix: string, base: T, env: Readonly<Record<string, string | undefined>>): T {
  const repsText = env[`${prefix}_REPS`];
  const reps = repsText === undefined ? base.reps : Number(repsText);
  if (!Number.isInteger(reps) || reps < 1 || reps > 1000) throw new RangeError(`${prefix}_REPS: expected 1 to 1000, got ${repsText}`);
  const text = env[`${prefix}_COUNTS`];
  const counts = text === undefined || text === '' ? base.counts : text.split(',').map((s) => Number(s.trim()));
  const svg = env[`${prefix}_SVG`];
  return { ...base, reps, counts, svgPath: svg === 'none' ? undefined : (svg ?? base.svgPath) };
}
