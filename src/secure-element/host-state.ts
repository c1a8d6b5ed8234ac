/**
 * The trusted app's state as the host keeps it: the head seals the state with each declared log as
 * an empty list; the logs live in the records (host-records.ts) and are decoded entry by entry with
 * the app's own codecs. Also the environment a command runs in.
 */
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { assert } from '../core/assert.ts';
import { checkSize, TallyError } from '../core/errors.ts';
import type { HostOptions } from './host.ts';
import type { DeviceKeys } from './sealing.ts';
import type { CommandTable, TrustedApp, TrustedEnv } from './trusted-app.ts';

/** The state's bytes with each log as an empty list: what the head seals. */
export function splitState<S>(app: TrustedApp<S>, state: S): Uint8Array {
  const logs = app.logs;
  if (logs === undefined) return encodeCbor(state);
  const core: Record<string, unknown> = { ...(state as Record<string, unknown>) };
  for (const name of Object.keys(logs)) core[name] = [];
  return encodeCbor(core);
}

/** Decodes a head's state (its logs empty) with the app's codec, answering a copy the host may fill in. */
export function decodeCore<S>(app: TrustedApp<S>, core: Uint8Array): S {
  return { ...(decodeState(app, core) as Record<string, unknown>) } as S;
}

/** The log `name` of `state`. */
export function logOf<S>(app: TrustedApp<S>, state: S, name: string): readonly unknown[] {
  const value = (state as Record<string, unknown>)[name];
  assert(Array.isArray(value), `log ${name} of ${app.name} is a list`);
  return value as readonly unknown[];
}

/** Every declared log of `state`, by name. */
export function logsOf<S>(app: TrustedApp<S>, state: S): Record<string, readonly unknown[]> {
  return Object.fromEntries(Object.keys(app.logs ?? {}).map((name) => [name, logOf(app, state, name)]));
}

/** Decodes log entries with the app's codec; `already` entries precede them in the log. */
export function decodeEntries<S>(app: TrustedApp<S>, name: string, entries: readonly unknown[], already: number): unknown[] {
  const spec = app.logs?.[name];
  if (spec === undefined) throw new TallyError('STATE_CORRUPT', `records of ${app.name} hold a log ${JSON.stringify(name)} the app does not declare`, { reason: 'unknown log' });
  checkSize(`${app.name}.${name}`, already + entries.length, spec.max, { unit: 'entries', label: `the log ${name} of ${app.name}` });
  return entries.map((e, k) => spec.entry.decode(e, `${app.name}.state.${name}[${already + k}]`));
}

/** Decodes a whole state with the app's codec. */
export function decodeState<S>(app: TrustedApp<S>, stateBytes: Uint8Array): S {
  return app.state.decode(decodeCbor(stateBytes), `${app.name}.state`);
}

/** What a command of the app may use: the device's keys under the app's name, randomness, the provider. */
export function makeEnv<S, C extends CommandTable<S>>(options: HostOptions<S, C>, keys: DeviceKeys): TrustedEnv {
  const suite = options.suite ?? 'ed25519';
  return {
    provider: options.provider,
    deviceId: keys.deviceId,
    signer: (label, labelSuite) => keys.signer(options.app.name, label, labelSuite ?? suite),
    random: (length) => keys.sealing.randomBytes(length),
  };
}
