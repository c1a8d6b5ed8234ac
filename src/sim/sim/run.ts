/**
 * One simulated run of one scheme, and its report: what was made, the faults injected, the attacks
 * and what became of them, the money lost against its bound, bytes per payment; timings apart
 * (`timings`), since they are the only part of a report a seed does not fix.
 */
import { performance } from 'node:perf_hooks';
import type { Scheme } from '../../schemes/scheme.ts';
import { SimViolation, type SimParameters } from './plugin.ts';
import { SIM_DEFAULTS } from './options.ts';
import { makeWorld, SIM_CLOCK_START, type Recorder } from './world.ts';


/** What became of the attacks of one kind. */
export interface AttackLine {
  readonly kind: string;
  readonly attempted: number;
  readonly refusedOffline: number;
  readonly detected: number;
  readonly attributed: number;
  readonly harmless: number;
  /** Simulated ms from attack to detection, over the detected ones. */
  readonly detectionMs: { readonly mean: number; readonly max: number } | null;
}

/** The report of one run (JSON-ready: amounts as decimal strings of minor units). */
export interface SimReport {
  readonly scheme: string;
  readonly seed: number;
  readonly params: Omit<SimParameters, 'seed' | 'sabotage'>;
  readonly ok: boolean;
  readonly violation: { readonly invariant: string; readonly message: string; readonly step: number; readonly atMs: number; readonly replay: string } | null;
  readonly steps: number;
  readonly simulatedMs: number;
  readonly counters: Readonly<Record<string, number>>;
  readonly faults: Readonly<Record<string, number>>;
  readonly attacks: readonly AttackLine[];
  /** Value created offline by attacks that the float does not cover, and the bound the limits set on it (minor units). */
  readonly lossMinor: string;
  readonly boundMinor: string;
  readonly bytesPerPayment: number;
  /** Loss and detections over simulated time, for the figure. */
  readonly series: ReadonlyArray<{ readonly atMs: number; readonly lossMinor: string; readonly boundMinor: string; readonly detected: number }>;
  /** Wall-clock figures: the only part that differs between two runs of a seed. */
  readonly timings: { readonly wallMs: number; readonly cpuMs: number; readonly paymentsPerSecond: number; readonly cpuMsPerPayment: number };
}

/** The command that replays a run. */
export function replayCommand(scheme: string, params: SimParameters): string {
  const extra = [
    params.attackers === SIM_DEFAULTS.attackers ? '' : ` --attackers ${params.attackers}`,
    params.faults === SIM_DEFAULTS.faults ? '' : ` --faults ${params.faults}`,
    params.checkEvery === SIM_DEFAULTS.checkEvery ? '' : ` --check-every ${params.checkEvery}`,
  ].join('');
  return `tally sim --scheme ${scheme} --seed ${params.seed} --devices ${params.devices} --payments ${params.payments}${extra}`;
}

/** Series points kept in a report at most (evenly thinned). */
const SERIES_POINTS_MAX = 200;

/**
 * Runs `scheme`'s simulation with `params`; a broken invariant ends the run and is reported with
 * the command that replays it (any other error is thrown).
 * @throws RangeError when the scheme has no simulation
 */
export async function runSim(scheme: Scheme, params: SimParameters, onStep: (step: number, payments: number) => void = () => {}): Promise<SimReport> {
  if (scheme.sim === undefined) throw new RangeError(`scheme ${scheme.name} has no simulation yet`);
  const plugin = await scheme.sim();
  let world: ReturnType<typeof makeWorld> | undefined;
  world = makeWorld(params, (step) => onStep(step, world?.recorder.counters.get('payments') ?? 0));
  const started = performance.now();
  const cpu = process.cpuUsage();
  let violation: SimReport['violation'] = null;
  try {
    await plugin.run(world);
  } catch (e) {
    if (!(e instanceof SimViolation)) throw e;
    violation = { invariant: e.invariant, message: e.message, step: e.step, atMs: e.at - SIM_CLOCK_START, replay: replayCommand(scheme.name, params) };
  } finally {
    await world.close();
  }
  const used = process.cpuUsage(cpu);
  return buildReport({ scheme: scheme.name, params, recorder: world.recorder, steps: world.steps(), simulatedMs: world.clock.now() - SIM_CLOCK_START, violation, wallMs: performance.now() - started, cpuMs: (used.user + used.system) / 1000 });
}

/** What a report is made of: a run's (or one scheme's part of a mixed run's) recorder, steps and times. */
export interface ReportParts {
  readonly scheme: string;
  readonly params: SimParameters;
  readonly recorder: Recorder;
  readonly steps: number;
  readonly simulatedMs: number;
  readonly violation: SimReport['violation'];
  readonly wallMs: number;
  readonly cpuMs: number;
}

/** The report of a run from its recorder. */
export function buildReport(parts: ReportParts): SimReport {
  const { recorder, params, violation, wallMs, cpuMs } = parts;
  const counters = Object.fromEntries([...recorder.counters.entries()].sort(([a], [b]) => a.localeCompare(b)));
  const faults = Object.fromEntries(Object.entries(counters).filter(([k]) => k.startsWith('faults.')).map(([k, v]) => [k.slice('faults.'.length), v]));
  const kinds = [...new Set(recorder.attacks.map((a) => a.kind))].sort();
  const attacks: AttackLine[] = kinds.map((kind) => {
    const of = recorder.attacks.filter((a) => a.kind === kind);
    const delays = of.filter((a) => a.detectedAt !== null).map((a) => (a.detectedAt as number) - a.at);
    return {
      kind,
      attempted: of.length,
      refusedOffline: of.filter((a) => a.outcome === 'refused-offline').length,
      detected: of.filter((a) => a.outcome === 'detected').length,
      attributed: of.filter((a) => a.attributed).length,
      harmless: of.filter((a) => a.outcome === 'harmless').length,
      detectionMs: delays.length === 0 ? null : { mean: Math.round(delays.reduce((s, d) => s + d, 0) / delays.length), max: Math.max(...delays) },
    };
  });
  const payments = counters['payments'] ?? 0;
  const step = Math.max(1, Math.ceil(recorder.series.length / SERIES_POINTS_MAX));
  const { sabotage: _sabotage, seed, ...rest } = params;
  return {
    scheme: parts.scheme,
    seed,
    params: rest,
    ok: violation === null,
    violation,
    steps: parts.steps,
    simulatedMs: parts.simulatedMs,
    counters,
    faults,
    attacks,
    lossMinor: recorder.lost.toString(),
    boundMinor: recorder.bound().toString(),
    bytesPerPayment: payments === 0 ? 0 : Math.round(recorder.bytesSent / payments),
    series: recorder.series.filter((_p, k) => k % step === 0).map((p) => ({ atMs: p.at - SIM_CLOCK_START, lossMinor: p.loss.toString(), boundMinor: p.bound.toString(), detected: p.detected })),
    timings: { wallMs: Math.round(wallMs), cpuMs: Math.round(cpuMs), paymentsPerSecond: wallMs === 0 ? 0 : Math.round((payments / wallMs) * 1000), cpuMsPerPayment: payments === 0 ? 0 : Number((cpuMs / payments).toFixed(3)) },
  };
}

/** A report without its timings: what the same seed must reproduce exactly. */
export function withoutTimings(report: SimReport): Omit<SimReport, 'timings'> {
  const { timings: _timings, ...rest } = report;
  return rest;
}
