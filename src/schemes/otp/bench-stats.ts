/**
 * The statistics of `bench otp`: mean and sample standard deviation per count (the paper's
 * Figures 7–10 plot these), and the least-squares line through every sample (time against the
 * number of OTPs), whose slope is the time per OTP the paper reads off its ramp.
 */

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
