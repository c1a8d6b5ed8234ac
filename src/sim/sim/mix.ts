/**
 * A mixed population: the simulations of several schemes in one run, on one issuer node serving all
 * of them (one database, one ledger), one simulated clock and one seeded random source. Each
 * scheme's own SimPlugin runs unchanged; the plugins' `run` loops are started together, but only
 * the one that holds the turn runs: at each `world.step()` the invariants are checked and the turn
 * goes to a plugin drawn from the random source (the same one again, or another). So the schemes'
 * steps interleave in an order the seed fixes, and one seed replays one mixed run exactly.
 *
 * Each plugin sees the node as if it were its own: its `audit()` is the scheme's part of the
 * ledger (what the issuance account moved into its holders' accounts and its float, what those
 * accounts hold, its own float), so a scheme's conservation check (issued = online + float) holds
 * for its money alone. The mix adds its own invariant over the whole node: the audit balances,
 * everything issued went into some scheme's accounts or float, every user account with money
 * belongs to one scheme, and for each scheme what was issued to it is what its accounts and its
 * float hold (no money crossed from one scheme into another).
 */
import { performance } from 'node:perf_hooks';
import type { SchemeModule } from '../../issuer/plugin.ts';
import type { Scheme } from '../../schemes/scheme.ts';
import { SimViolation, type SimAudit, type SimNode, type SimParameters, type SimPlugin, type SimWorld } from './plugin.ts';
import { buildReport, replayCommand, type SimReport } from './run.ts';
import { makeWorld, network, Recorder, SIM_CLOCK_START, type MixNode } from './world.ts';

/** The name the mix's own invariant is reported under. */
export const MIX_INVARIANT = 'mix-conservation';

/** What the node's ledger holds at the end of a mixed run, minor units as decimal strings. */
export interface MixAudit {
  readonly balanced: boolean;
  readonly issuedMinor: string;
  readonly onlineMinor: string;
  /** Per float account. */
  readonly floats: Readonly<Record<string, string>>;
  /** Per scheme: what was issued into its holders' accounts and float, what they hold online, what its float holds. */
  readonly schemes: Readonly<Record<string, { readonly mintedMinor: string; readonly onlineMinor: string; readonly floatMinor: string }>>;
}

/** The report of a mixed run. */
export interface MixReport {
  /** The schemes of the mix, in the order given. */
  readonly mix: readonly string[];
  readonly seed: number;
  readonly params: SimReport['params'];
  readonly ok: boolean;
  /** The violation, with the scheme whose invariant broke (or `mix` for the mix's own). */
  readonly violation: (NonNullable<SimReport['violation']> & { readonly scheme: string }) | null;
  /** Steps of every scheme together. */
  readonly steps: number;
  readonly simulatedMs: number;
  /** Each scheme's part, as the report of a run of it alone (its own steps; its CPU: what ran while it held the turn, and its wall time that share of the run's). */
  readonly schemes: readonly SimReport[];
  /** The sums over the schemes: counters, faults, attacks by kind, loss and bound, bytes. */
  readonly total: SimReport;
  /** The node's ledger at the end (null when the run stopped before the node opened). */
  readonly audit: MixAudit | null;
  readonly timings: SimReport['timings'];
}

/** The name a mix is spelt with on the command line: its schemes joined by commas. */
export function mixName(schemes: readonly string[]): string {
  return schemes.join(',');
}

/** Thrown into the plugins still waiting for their turn when the run stops. */
class MixStopped extends Error {
  constructor() {
    super('the mixed run stopped');
    this.name = 'MixStopped';
  }
}

/** One scheme's place in a mixed run. */
interface Part {
  readonly scheme: string;
  readonly plugin: SimPlugin;
  readonly recorder: Recorder;
  readonly invariants: Array<{ name: string; check: () => Promise<string | null> }>;
  module: SchemeModule | null;
  steps: number;
  done: boolean;
  cpuMs: number;
}

/**
 * Runs the simulations of `schemes` as one mixed population with `params` (each scheme with
 * `params.devices` holders making `params.payments` payments); a broken invariant of any scheme, or
 * of the mix, stops the whole run and is reported with the command that replays the mix.
 * @throws RangeError when fewer than two schemes are given, one is given twice or one has no simulation
 */
export async function runMix(schemes: ReadonlyArray<Pick<Scheme, 'name' | 'sim'>>, params: SimParameters, onStep: (step: number, payments: number) => void = () => {}): Promise<MixReport> {
  const names = schemes.map((s) => s.name);
  if (schemes.length < 2) throw new RangeError(`a mix needs two schemes or more, got ${names.join(', ')}`);
  if (new Set(names).size !== names.length) throw new RangeError(`a mix names each scheme once, got ${names.join(', ')}`);
  const plugins: SimPlugin[] = [];
  for (const scheme of schemes) {
    if (scheme.sim === undefined) throw new RangeError(`scheme ${scheme.name} has no simulation yet`);
    plugins.push(await scheme.sim());
  }
  const name = mixName(names);
  let steps = 0;
  const base = makeWorld(params, () => undefined);
  const { random, clock } = base;
  const parts: Part[] = plugins.map((plugin, k) => ({ scheme: names[k] as string, plugin, recorder: new Recorder(clock), invariants: [], module: null, steps: 0, done: false, cpuMs: 0 }));
  /** The sums over the schemes, and the series of the whole mix. */
  const total = new Recorder(clock);
  const owners = new WeakMap<SimViolation, string>();
  /** Which scheme registered each user account. */
  const accounts = new Map<string, Part>();
  let node: MixNode | null = null;

  // The turn: exactly one plugin runs; every other live one waits on its own promise.
  const waiting = new Map<Part, { resolve: () => void; reject: (e: Error) => void }>();
  let stopped = false;
  let holder: Part | null = null;
  let heldSince = process.cpuUsage();
  const wait = (part: Part) => new Promise<void>((resolve, reject) => waiting.set(part, { resolve, reject }));
  const give = (part: Part) => {
    if (holder !== null) {
      const used = process.cpuUsage(heldSince);
      holder.cpuMs += (used.user + used.system) / 1000;
    }
    heldSince = process.cpuUsage();
    holder = part;
    const w = waiting.get(part);
    waiting.delete(part);
    w?.resolve();
  };
  const stop = () => {
    stopped = true;
    for (const [, w] of waiting) w.reject(new MixStopped());
    waiting.clear();
  };
  const live = () => parts.filter((p) => !p.done);
  /** Hands the turn to `next` and waits until it comes back. @throws MixStopped when the run stopped meanwhile */
  async function handOver(self: Part, next: Part): Promise<void> {
    if (next === self) return;
    const back = wait(self);
    give(next);
    await back;
    if (stopped) throw new MixStopped();
  }

  /** The audit of the whole node during a check (null outside one: a step's own audits are always fresh). */
  let checkAudit: Seen | null = null;
  async function wholeAudit(): Promise<Seen> {
    return checkAudit ?? seeNode(node as MixNode);
  }
  const figures = (part: Part, seen: Seen) => schemeFigures(part, seen, accounts);

  /** The mix's invariant over the whole node. */
  async function mixConservation(): Promise<string | null> {
    const seen = await wholeAudit();
    const { whole, balances } = seen;
    if (!whole.balanced) return "the node's audit does not balance";
    if (whole.settlement !== 0n) return `${whole.settlement} sits in settlement between steps`;
    const floats = [...whole.floats.values()].reduce((s, f) => s + f, 0n);
    if (whole.issued !== whole.online + floats) return `issued ${whole.issued} ≠ online ${whole.online} + floats ${floats}`;
    const minted = parts.reduce((s, p) => s + figures(p, seen).minted, 0n);
    if (whole.issued !== minted) return `issued ${whole.issued} ≠ what was issued into the schemes' accounts and floats, ${minted}`;
    for (const [account, balance] of balances) if (balance !== 0n && !accounts.has(account)) return `account ${account} holds ${balance} and belongs to no scheme of the mix`;
    const ownFloats = new Set(parts.map((p) => p.module?.floatAccount));
    for (const [account, amount] of whole.floats) if (amount !== 0n && !ownFloats.has(account)) return `float ${account} holds ${amount} and belongs to no scheme of the mix`;
    for (const part of parts) {
      const { minted: own, online, float } = figures(part, seen);
      if (online + float !== own) return `${part.scheme}: issued ${own} ≠ its holders' accounts ${online} + its float ${float}: money crossed between schemes`;
    }
    return null;
  }

  /** The checks after a step: the mix's invariant, then every scheme's (a finished one's too: its books must hold while the others run). */
  async function check(): Promise<void> {
    const open = node as MixNode;
    checkAudit = await seeNode(open);
    try {
      const broken = await mixConservation();
      if (broken !== null) {
        const v = new SimViolation(MIX_INVARIANT, broken, steps, clock.now());
        owners.set(v, 'mix');
        throw v;
      }
      for (const part of parts) {
        for (const { name: invariant, check: run } of part.invariants) {
          const what = await run();
          if (what !== null) {
            const v = new SimViolation(invariant, `${part.scheme}: ${what}`, steps, clock.now());
            owners.set(v, part.scheme);
            throw v;
          }
        }
      }
    } finally {
      checkAudit = null;
    }
    for (const part of parts) part.recorder.sample();
    total.series.push({ at: clock.now(), loss: parts.reduce((s, p) => s + p.recorder.lost, 0n), bound: parts.reduce((s, p) => s + p.recorder.bound(), 0n), detected: parts.reduce((s, p) => s + p.recorder.attacks.filter((a) => a.outcome === 'detected').length, 0) });
  }

  function nodeFor(part: Part, open: MixNode): SimNode {
    return {
      certificates: open.certificates,
      deviceLimits: open.deviceLimits,
      amount: (minor) => open.amount(minor),
      request: (who, method, path, body, options) => open.request(who, method, path, body, options),
      async registerUser() {
        const user = await open.registerUser();
        accounts.set(user.account, part);
        return user;
      },
      enrolOem: (scheme, measurement) => open.enrolOem(scheme, measurement),
      registerDevice: (user, oem, device) => open.registerDevice(user, oem, device),
      mint: (account, minor) => open.mint(account, minor),
      async audit() {
        // The scheme's part of the ledger: what was issued into its accounts and float, what its holders' accounts hold, its own float.
        const seen = await wholeAudit();
        const { minted, online, float } = figures(part, seen);
        const account = part.module?.floatAccount;
        return { balanced: seen.whole.balanced, issued: minted, online, settlement: seen.whole.settlement, floats: new Map(account === undefined ? [] : [[account, float]]) };
      },
      restart: () => open.restart(),
    };
  }

  function worldFor(part: Part): SimWorld {
    const world: SimWorld = {
      params,
      random,
      clock,
      provider: base.provider,
      recorder: part.recorder,
      async openNode(module) {
        part.module = module;
        // The node opens once every scheme has named its part: until then the turn goes round in the mix's order.
        const missing = live().find((p) => p.module === null);
        if (missing !== undefined) await handOver(part, missing);
        else node = await base.openNodeOf(parts.map((p) => p.module as SchemeModule));
        return nodeFor(part, node as MixNode);
      },
      chain: () => base.chain(),
      element: (app) => base.element(app),
      network: () => network(random, clock, part.recorder, params.faults),
      async step(force = false) {
        if (stopped) throw new MixStopped();
        steps++;
        part.steps++;
        onStep(steps, parts.reduce((s, p) => s + (p.recorder.counters.get('payments') ?? 0), 0));
        if (force || steps % params.checkEvery === 0) await check();
        const others = live();
        await handOver(part, others[random.below(others.length)] as Part);
      },
      invariant(invariant, run) {
        part.invariants.push({ name: invariant, check: run });
      },
      violated(invariant, what): never {
        const v = new SimViolation(invariant, `${part.scheme}: ${what}`, steps, clock.now());
        owners.set(v, part.scheme);
        throw v;
      },
    };
    return world;
  }

  const started = performance.now();
  const cpu = process.cpuUsage();
  let failure: unknown = null;
  let violation: MixReport['violation'] = null;
  const runs = parts.map(async (part) => {
    const world = worldFor(part);
    try {
      await wait(part);
      await part.plugin.run(world);
      part.done = true;
      const others = live();
      if (others.length > 0) {
        // A finished scheme leaves the turn; its invariants are still checked while the others run.
        await check();
        give(others[random.below(others.length)] as Part);
      }
    } catch (e) {
      if (e instanceof MixStopped) return;
      part.done = true;
      if (e instanceof SimViolation) {
        const scheme = owners.get(e) ?? part.scheme;
        violation = { scheme, invariant: e.invariant, message: e.message, step: e.step, atMs: e.at - SIM_CLOCK_START, replay: replayCommand(name, params) };
      } else {
        failure = e;
      }
      stop();
    }
  });
  give(parts[0] as Part);
  try {
    await Promise.all(runs);
    if (failure === null && violation === null) {
      // Every scheme has finished: one more look at the whole node and every scheme's books.
      try {
        if (node !== null) await check();
      } catch (e) {
        if (!(e instanceof SimViolation)) throw e;
        violation = { scheme: owners.get(e) ?? 'mix', invariant: e.invariant, message: e.message, step: e.step, atMs: e.at - SIM_CLOCK_START, replay: replayCommand(name, params) };
      }
    }
  } finally {
    if (holder !== null) {
      const used = process.cpuUsage(heldSince);
      (holder as Part).cpuMs += (used.user + used.system) / 1000;
    }
  }
  let audit: MixAudit | null = null;
  try {
    if (node !== null) audit = await endAudit(node, parts, accounts);
  } finally {
    await base.close();
  }
  if (failure !== null) throw failure;
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const cpuMs = (used.user + used.system) / 1000;
  const simulatedMs = clock.now() - SIM_CLOCK_START;
  const found = violation as MixReport['violation'];
  const reports = parts.map((part) => {
    const payments = part.recorder.counters.get('payments') ?? 0;
    const share = cpuMs === 0 ? 0 : part.cpuMs / cpuMs;
    return buildReport({ scheme: part.scheme, params, recorder: part.recorder, steps: part.steps, simulatedMs, violation: found !== null && found.scheme === part.scheme ? found : null, wallMs: payments === 0 ? 0 : wallMs * share, cpuMs: part.cpuMs });
  });
  for (const part of parts) {
    for (const [counter, n] of part.recorder.counters) total.count(counter, n);
    total.attacks.push(...part.recorder.attacks);
    total.bytes(part.recorder.bytesSent);
  }
  total.loss(parts.reduce((s, p) => s + p.recorder.lost, 0n));
  const totalReport = buildReport({ scheme: names.join('+'), params, recorder: total, steps, simulatedMs, violation: found, wallMs, cpuMs });
  return { mix: names, seed: params.seed, params: totalReport.params, ok: found === null, violation: found, steps, simulatedMs, schemes: reports, total: totalReport, audit, timings: totalReport.timings };
}

/** What the node's ledger says at one moment: its audit, every user account's balance, where money was issued. */
interface Seen {
  readonly whole: SimAudit;
  readonly balances: Map<string, bigint>;
  readonly issued: Map<string, bigint>;
}

async function seeNode(node: MixNode): Promise<Seen> {
  return { whole: await node.audit(), balances: await node.userBalances(), issued: await node.issuedTo() };
}

/** A scheme's money on the node: what was issued into its holders' accounts and its float, what those accounts hold, what its float holds. */
function schemeFigures(part: Part, seen: Seen, accounts: ReadonlyMap<string, Part>): { minted: bigint; online: bigint; float: bigint } {
  let online = 0n;
  let minted = 0n;
  for (const [account, balance] of seen.balances) if (accounts.get(account) === part) online += balance;
  const floatAccount = part.module?.floatAccount;
  for (const [account, net] of seen.issued) if (accounts.get(account) === part || account === floatAccount) minted += net;
  const float = floatAccount === undefined ? 0n : (seen.whole.floats.get(floatAccount) ?? 0n);
  return { minted, online, float };
}

/** The ledger at the end of a mixed run. */
async function endAudit(node: MixNode, parts: readonly Part[], accounts: ReadonlyMap<string, Part>): Promise<MixAudit> {
  const seen = await seeNode(node);
  const { whole } = seen;
  const schemes: Record<string, MixAudit['schemes'][string]> = {};
  for (const part of parts) {
    const { minted, online, float } = schemeFigures(part, seen, accounts);
    schemes[part.scheme] = { mintedMinor: minted.toString(), onlineMinor: online.toString(), floatMinor: float.toString() };
  }
  return {
    balanced: whole.balanced,
    issuedMinor: whole.issued.toString(),
    onlineMinor: whole.online.toString(),
    floats: Object.fromEntries([...whole.floats].sort(([a], [b]) => a.localeCompare(b)).map(([account, amount]) => [account, amount.toString()])),
    schemes,
  };
}

/** A mixed report without its timings (nor its schemes' and total's): what the same seed must reproduce exactly. */
export function mixWithoutTimings(report: MixReport): unknown {
  const { timings: _timings, schemes, total, ...rest } = report;
  const strip = ({ timings: _t, ...r }: SimReport) => r;
  return { ...rest, schemes: schemes.map(strip), total: strip(total) };
}
