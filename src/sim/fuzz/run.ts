/**
 * The fuzzing loop: for one target, draws inputs (valid ones, mutated bytes, mutated values, random
 * bytes, inputs over the limit), feeds each, times it, and keeps the findings with their input.
 * Seeded: the same seed and count give the same inputs.
 */
import fc from 'fast-check';
import { toHex } from '../../core/bytes.ts';
import { mutateBytes, mutateValue } from './mutate.ts';
import { Rng } from './random.ts';
import { describeThrown, type FuzzTarget, type Outcome } from './target.ts';

/** Valid inputs drawn from the arbitrary at a time. */
const POOL_SIZE = 64;
/** Distinct findings kept per target (further ones are counted). */
const FINDINGS_KEPT_MAX = 5;
/** Longest input shown in full in a finding, in bytes (a longer one is shown by its head and its hash). */
export const SHOWN_BYTES_MAX = 4096;

/** How an input was made. */
export type InputKind = 'valid' | 'mutated-bytes' | 'mutated-value' | 'random' | 'oversized';

/** One finding: what went wrong, on which input. */
export interface Finding {
  readonly target: string;
  readonly kind: InputKind;
  readonly message: string;
  /** The input, hex. */
  readonly inputHex: string;
  readonly inputBytes: number;
  /** Which input of the run it was (1 for the first): `--seed` and `--inputs` of that many make it again. */
  readonly index: number;
}

/** What one target's run did. */
export interface TargetReport {
  readonly target: string;
  readonly group: string;
  readonly tried: number;
  readonly accepted: number;
  readonly rejected: number;
  readonly seconds: number;
  /** Distinct findings, at most FINDINGS_KEPT_MAX. */
  readonly findings: readonly Finding[];
  /** All findings, distinct or not. */
  readonly findingCount: number;
  /** Slowest input, milliseconds. */
  readonly slowestMs: number;
}

/** How long and how hard to run a target. */
export interface RunOptions {
  readonly seed: number;
  /** Stop after this many inputs. */
  readonly inputs?: number | undefined;
  /** Stop after this many seconds. */
  readonly seconds?: number | undefined;
  /** Called now and then with the inputs tried so far. */
  readonly progress?: ((tried: number) => void) | undefined;
}

/** Draws inputs for a target. */
class InputSource {
  private pool: Uint8Array[] = [];
  private batch = 0;
  private used = 0;

  constructor(
    private readonly target: FuzzTarget,
    private readonly seed: number,
    private readonly rng: Rng,
  ) {}

  private valid(): Uint8Array {
    if (this.used >= this.pool.length) {
      this.pool = fc.sample(this.target.valid, { seed: (this.seed + 7919 * ++this.batch) | 0, numRuns: POOL_SIZE });
      this.used = 0;
    }
    return this.pool[this.used++] as Uint8Array;
  }

  /** The next input and how it was made. */
  next(): { kind: InputKind; input: Uint8Array } {
    const rng = this.rng;
    const roll = rng.below(100);
    if (roll < 20) return { kind: 'valid', input: this.valid() };
    if (roll < 65) return { kind: 'mutated-bytes', input: mutateBytes(this.valid(), rng, this.valid()) };
    if (roll < 88 && this.target.structure !== undefined) {
      const { toValue, fromValue } = this.target.structure;
      try {
        return { kind: 'mutated-value', input: fromValue(mutateValue(toValue(this.valid()), rng)) };
      } catch {
        // A mutated value the encoder refuses (a lone surrogate): mutate the bytes instead.
        return { kind: 'mutated-bytes', input: mutateBytes(this.valid(), rng, this.valid()) };
      }
    }
    if (roll < 97) return { kind: 'random', input: rng.bytes(rng.below(rng.chance(0.9) ? 64 : 2048)) };
    // Over the declared limit: a valid input padded past it (a stream without one gets its length headers mutated instead).
    const valid = this.valid();
    if (!Number.isFinite(this.target.bytesMax)) return { kind: 'mutated-bytes', input: mutateBytes(valid, rng, valid) };
    const over = new Uint8Array(this.target.bytesMax + 1 + rng.below(64));
    over.set(valid.subarray(0, Math.min(valid.length, over.length)));
    return { kind: 'oversized', input: over };
  }
}

/** Feeds one input within the target's time bound. @throws the finding as an Error */
async function feedBounded(target: FuzzTarget, input: Uint8Array): Promise<{ outcome: Outcome; ms: number }> {
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  const fed = target.feed(input);
  let outcome: Outcome;
  if (typeof fed === 'string') {
    outcome = fed;
    // A decoder that answered at once ran on this thread all along: its time is the CPU it took. A
    // wall time over the bound with less CPU is a busy machine that kept the process waiting (a
    // nice'd campaign beside other work), not a slow input.
    const cpu = process.cpuUsage(cpuStart);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const ms = performance.now() - start;
    if (Math.min(ms, cpuMs) > target.timeoutMs) throw new Error(`took ${ms.toFixed(0)} ms (${cpuMs.toFixed(0)} ms of CPU), over the bound of ${target.timeoutMs} ms`);
    if (outcome === 'accepted' && input.length > target.bytesMax) throw new Error(`accepted ${input.length} bytes, over the declared limit of ${target.bytesMax}`);
    return { outcome, ms };
  } else {
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise<never>((_, fail) => {
      timer = setTimeout(() => fail(new Error(`no answer within ${target.timeoutMs} ms: a hang`)), target.timeoutMs);
    });
    try {
      outcome = await Promise.race([fed, hang]);
    } finally {
      clearTimeout(timer);
    }
  }
  const ms = performance.now() - start;
  if (ms > target.timeoutMs) throw new Error(`took ${ms.toFixed(0)} ms, over the bound of ${target.timeoutMs} ms`);
  if (outcome === 'accepted' && input.length > target.bytesMax) throw new Error(`accepted ${input.length} bytes, over the declared limit of ${target.bytesMax}`);
  return { outcome, ms };
}

/** The seed of one target in a run: the run's seed and the target's name, so a target draws alike whatever else runs. */
export function targetSeed(seed: number, name: string): number {
  let h = seed >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h & 0x7fffffff;
}

/** Runs one target until its count or its time is spent (the first of the two). */
export async function runTarget(target: FuzzTarget, options: RunOptions): Promise<TargetReport> {
  const seed = targetSeed(options.seed, target.name);
  const rng = new Rng(seed);
  const source = new InputSource(target, seed, rng);
  const findings: Finding[] = [];
  const seen = new Set<string>();
  let findingCount = 0;
  let tried = 0;
  let accepted = 0;
  let rejected = 0;
  let slowestMs = 0;
  const start = performance.now();
  const deadline = options.seconds === undefined ? Infinity : start + options.seconds * 1000;
  const limit = options.inputs ?? Infinity;
  while (tried < limit && performance.now() < deadline) {
    const { kind, input } = source.next();
    tried++;
    try {
      const { outcome, ms } = await feedBounded(target, input);
      if (outcome === 'accepted') accepted++;
      else rejected++;
      if (ms > slowestMs) slowestMs = ms;
    } catch (e) {
      findingCount++;
      const message = describeThrown(e);
      // One finding per message: the same defect met again is counted, not kept.
      const key = message.replace(/[0-9]+/g, 'N');
      if (!seen.has(key) && findings.length < FINDINGS_KEPT_MAX) {
        seen.add(key);
        findings.push({ target: target.name, kind, message, inputHex: toHex(input.subarray(0, SHOWN_BYTES_MAX)), inputBytes: input.length, index: tried });
      }
    }
    if ((tried & 0x3ff) === 0) options.progress?.(tried);
  }
  return { target: target.name, group: target.group, tried, accepted, rejected, seconds: (performance.now() - start) / 1000, findings, findingCount, slowestMs };
}
