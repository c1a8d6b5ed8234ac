/**
 * The one way benchmarks count and time the cryptographic floor: a metering provider. Code runs
 * over `meter.provider` (a wallet's check, an in-process secure element whose keys derive through
 * it); while armed, every sign and verify is counted under the phase it is told and recorded, and
 * the recorded operations can be replayed and timed: the floor is the operations the code really
 * made, with their keys and messages, never a hand list.
 */
import type { CryptoProvider, SignatureSuite, SuiteName } from '../../core/crypto/suite.ts';
import { summarise, type Latency } from './stats.ts';

/** Signatures and verifications. */
export interface CryptoCounts {
  signs: number;
  verifies: number;
}

/** Counts in all and per phase. */
export interface PhaseCounts<P extends string = string> extends CryptoCounts {
  byPhase: Record<P, CryptoCounts>;
}

/** One operation as the provider saw it, to replay. */
type Operation =
  | { readonly kind: 'sign'; readonly suite: SignatureSuite; readonly secretKey: Uint8Array; readonly message: Uint8Array }
  | { readonly kind: 'verify'; readonly suite: SignatureSuite; readonly publicKey: Uint8Array; readonly signature: Uint8Array; readonly message: Uint8Array };

function zero<P extends string>(phases: readonly P[]): Record<P, CryptoCounts> {
  return Object.fromEntries(phases.map((p) => [p, { signs: 0, verifies: 0 }])) as Record<P, CryptoCounts>;
}

/** What one armed stretch counted and recorded. */
export interface Metered<P extends string = string> {
  readonly counts: PhaseCounts<P>;
  readonly replay: Replay;
}

/** Counts what passes through a provider while armed, by the phase it is told. */
export class CryptoMeter<P extends string = string> {
  private phase: P;
  private armed = false;
  private byPhase: Record<P, CryptoCounts>;
  private operations: Operation[] = [];
  /** A provider over `base` whose suites report to this meter. */
  readonly provider: CryptoProvider;

  /** @throws RangeError without a phase */
  constructor(
    base: CryptoProvider,
    private readonly phases: readonly [P, ...P[]],
  ) {
    this.phase = phases[0];
    this.byPhase = zero(phases);
    const metered = (suite: SignatureSuite): SignatureSuite => ({
      ...suite,
      sign: (secretKey, message) => {
        if (this.armed) {
          this.byPhase[this.phase].signs++;
          this.operations.push({ kind: 'sign', suite, secretKey, message });
        }
        return suite.sign(secretKey, message);
      },
      verify: (publicKey, signature, message) => {
        if (this.armed) {
          this.byPhase[this.phase].verifies++;
          this.operations.push({ kind: 'verify', suite, publicKey, signature, message });
        }
        return suite.verify(publicKey, signature, message);
      },
    });
    const suites = Object.fromEntries(Object.entries(base.suites).map(([name, suite]) => [name, metered(suite)])) as Record<SuiteName, SignatureSuite>;
    this.provider = { name: `metered ${base.name}`, suites };
  }

  /** Starts counting from zero, in the first phase. */
  arm(): void {
    this.armed = true;
    this.phase = this.phases[0];
    this.byPhase = zero(this.phases);
    this.operations = [];
  }

  /** Stops counting; answers what was counted. */
  disarm(): Metered<P> {
    this.armed = false;
    const byPhase = this.byPhase;
    const signs = this.phases.reduce((n, p) => n + byPhase[p].signs, 0);
    const verifies = this.phases.reduce((n, p) => n + byPhase[p].verifies, 0);
    return { counts: { signs, verifies, byPhase }, replay: new Replay(this.operations) };
  }

  /** Where the next operations happen. */
  enter(phase: P): void {
    this.phase = phase;
  }

  /** Counts what `run` does, all in the first phase. */
  async measure(run: () => unknown): Promise<Metered<P>> {
    this.arm();
    try {
      await run();
    } finally {
      this.armed = false;
    }
    return this.disarm();
  }
}

/** Recorded signatures and verifications, to be timed again. */
export class Replay {
  constructor(private readonly operations: readonly Operation[]) {}

  /** Runs every operation `times` times. @throws Error when a recorded verification fails */
  once(times = 1): void {
    for (let k = 0; k < times; k++) {
      for (const op of this.operations) {
        if (op.kind === 'sign') op.suite.sign(op.secretKey, op.message);
        else if (!op.suite.verify(op.publicKey, op.signature, op.message)) throw new Error('a recorded verification failed to verify on replay');
      }
    }
  }

  /** Latency of `iterations` replays (each of `times` passes) after a short untimed warm-up. */
  latency(iterations: number, times = 1): Latency {
    return summarise(this.samples(iterations, times));
  }

  /** The median time of `iterations` replays, ms. */
  medianMs(iterations: number): number {
    return this.latency(iterations).p50Ms;
  }

  /** The fastest of `iterations` replays, ms: a floor that load on the machine can only raise by slowing every replay. */
  fastestMs(iterations: number): number {
    return Math.min(...this.samples(iterations));
  }

  /** The times of `iterations` replays after a short untimed warm-up, ms. */
  private samples(iterations: number, times = 1): number[] {
    for (let i = 0; i < Math.min(50, Math.max(1, iterations)); i++) this.once(times);
    const samples: number[] = [];
    for (let i = 0; i < Math.max(1, iterations); i++) {
      const start = performance.now();
      this.once(times);
      samples.push(performance.now() - start);
    }
    return samples;
  }

  /** How many signatures and verifications were recorded. */
  get counts(): CryptoCounts {
    const signs = this.operations.filter((op) => op.kind === 'sign').length;
    return { signs, verifies: this.operations.length - signs };
  }

  /** Bytes signed and verified in all (the suites hash whole messages). */
  get messageBytes(): number {
    return this.operations.reduce((n, op) => n + op.message.length, 0);
  }
}
