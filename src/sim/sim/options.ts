/** The options `tally sim` and `npm run sim` share, checked: clear errors for bad input. */
import type { SimParameters } from './plugin.ts';

/** Defaults of a run, and of a `--quick` one. */
export const SIM_DEFAULTS = { devices: 20, payments: 2_000, attackers: 0.1, faults: 0.05, checkEvery: 1 } as const;
export const SIM_QUICK = { devices: 8, payments: 150 } as const;

/** The raw flags, as parseArgs gives them. */
export interface SimFlags {
  readonly seed?: string | undefined;
  readonly devices?: string | undefined;
  readonly payments?: string | undefined;
  readonly attackers?: string | undefined;
  readonly faults?: string | undefined;
  readonly 'check-every'?: string | undefined;
  readonly quick?: boolean | undefined;
}

/** The parseArgs options of those flags. */
export const SIM_FLAGS = {
  scheme: { type: 'string' },
  seed: { type: 'string' },
  devices: { type: 'string' },
  payments: { type: 'string' },
  attackers: { type: 'string' },
  faults: { type: 'string' },
  'check-every': { type: 'string' },
  quick: { type: 'boolean', default: false },
  svg: { type: 'string' },
} as const;

/** Largest population and run a command line may ask for. */
const DEVICES_MAX = 100_000;
const PAYMENTS_MAX = 100_000_000;

function whole(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(v) || v < min || v > max) throw new RangeError(`--${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`);
  return v;
}

function share(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (!/^\d*\.?\d+$/.test(text) || !(v >= 0 && v <= 1)) throw new RangeError(`--${name} must be a share from 0 to 1, got ${JSON.stringify(text)}`);
  return v;
}

/** The parameters of a run from the flags; `seed` when --seed is absent. @throws RangeError for a bad value */
export function simParameters(flags: SimFlags, seed?: number): SimParameters {
  const quick = flags.quick === true;
  return {
    seed: whole('seed', flags.seed, seed ?? 1, 0, 2 ** 32 - 1),
    devices: whole('devices', flags.devices, quick ? SIM_QUICK.devices : SIM_DEFAULTS.devices, 2, DEVICES_MAX),
    payments: whole('payments', flags.payments, quick ? SIM_QUICK.payments : SIM_DEFAULTS.payments, 1, PAYMENTS_MAX),
    attackers: share('attackers', flags.attackers, SIM_DEFAULTS.attackers),
    faults: share('faults', flags.faults, SIM_DEFAULTS.faults),
    checkEvery: whole('check-every', flags['check-every'], SIM_DEFAULTS.checkEvery, 1, PAYMENTS_MAX),
  };
}

/** The help lines of the shared flags. */
export const SIM_OPTION_HELP: ReadonlyArray<readonly [string, string]> = [
  ['--devices D', `account holders with a device (default ${SIM_DEFAULTS.devices}; ${SIM_QUICK.devices} with --quick); one payee without a device for every five`],
  ['--payments P', `payments to make (default ${SIM_DEFAULTS.payments}; ${SIM_QUICK.payments} with --quick)`],
  ['--attackers F', `the share of holders that attack: clone, roll back, replay, forge, relay (default ${SIM_DEFAULTS.attackers})`],
  ['--faults F', `how likely each fault is at each chance of it: SE crash, message dropped / duplicated / delayed, sync cut (default ${SIM_DEFAULTS.faults}); a node restart at F/50 a step`],
  ['--check-every K', 'check the invariants after every K steps instead of every step (large runs); always at the end'],
  ['--quick', 'a small population and run'],
];
