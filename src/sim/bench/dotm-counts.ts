/**
 * Signatures and verifications of one DOT-M transaction, against Table 3 of §4.2, and the
 * cryptographic floor they set:
 * - counted, not listed by hand: both wallets' secure elements run in this process over a provider
 *   that records every sign and verify, split by the phase of §3.3.3 they happen in (the TA's
 *   usk and wsk are derived through the host's provider, so their signatures are counted too);
 * - Table 3's figures for the same n_b and n_d;
 * - the floor: one sign and one verify of a record-sized message, timed with the suite the secure
 *   element uses, times our counts; and the transaction's own signatures and verifications (the
 *   same keys, messages of the real sizes) replayed and timed.
 */
import { performance } from 'node:perf_hooks';
import { randomBytes } from '../../core/crypto/hash.ts';
import type { CryptoProvider, SignatureSuite, SuiteName } from '../../core/crypto/suite.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { PHASES, type Phase } from './dotm-payment.ts';
import { quantile } from './stats.ts';

/** Signatures and verifications. */
export interface CryptoCounts {
  signs: number;
  verifies: number;
}

/** Counts in all and per phase. */
export interface PhaseCounts extends CryptoCounts {
  byPhase: Record<Phase, CryptoCounts>;
}

function zeroByPhase(): Record<Phase, CryptoCounts> {
  return Object.fromEntries(PHASES.map((p) => [p, { signs: 0, verifies: 0 }])) as Record<Phase, CryptoCounts>;
}

/**
 * Table 3 (§4.2) for n_b blocks with n_d records: signatures 2 (step 1) + 1 + n_b (step 3) + 1
 * (step 6); verifications 2 (step 2) + 1 + n_b + n_d (step 4) + 1 (step 7).
 */
export function table3Counts(nb: number, nd: number): PhaseCounts {
  const byPhase = zeroByPhase();
  byPhase['step 1'] = { signs: 2, verifies: 0 };
  byPhase['steps 2-3'] = { signs: 1 + nb, verifies: 2 };
  byPhase['steps 4-6'] = { signs: 1, verifies: 1 + nb + nd };
  byPhase['steps 7-8'] = { signs: 0, verifies: 1 };
  return { signs: 4 + nb, verifies: 4 + nb + nd, byPhase };
}

/** One operation as the provider saw it, to replay. */
type Operation =
  | { readonly kind: 'sign'; readonly suite: SignatureSuite; readonly secretKey: Uint8Array; readonly message: Uint8Array }
  | { readonly kind: 'verify'; readonly suite: SignatureSuite; readonly publicKey: Uint8Array; readonly signature: Uint8Array; readonly message: Uint8Array };

/** Counts what passes through a provider while armed, by the phase it is told. */
export class CryptoMeter {
  private phase: Phase = 'step 1';
  private armed = false;
  private byPhase = zeroByPhase();
  private operations: Operation[] = [];
  /** A provider over `base` whose suites report to this meter. */
  readonly provider: CryptoProvider;

  constructor(base: CryptoProvider = nodeProvider) {
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

  /** Starts counting from zero. */
  arm(): void {
    this.armed = true;
    this.phase = 'step 1';
    this.byPhase = zeroByPhase();
    this.operations = [];
  }

  /** Stops counting; answers what was counted. */
  disarm(): { counts: PhaseCounts; replay: Replay } {
    this.armed = false;
    const byPhase = this.byPhase;
    const signs = PHASES.reduce((n, p) => n + byPhase[p].signs, 0);
    const verifies = PHASES.reduce((n, p) => n + byPhase[p].verifies, 0);
    return { counts: { signs, verifies, byPhase }, replay: new Replay(this.operations) };
  }

  /** Where the next operations happen. */
  enter(phase: Phase): void {
    this.phase = phase;
  }
}

/** A transaction's signatures and verifications, to be timed again. */
export class Replay {
  constructor(private readonly operations: readonly Operation[]) {}

  /** Runs every operation once. @throws Error when a recorded verification fails */
  once(): void {
    for (const op of this.operations) {
      if (op.kind === 'sign') op.suite.sign(op.secretKey, op.message);
      else if (!op.suite.verify(op.publicKey, op.signature, op.message)) throw new Error('a recorded verification failed to verify on replay');
    }
  }

  /** The median time of `iterations` replays after one untimed, ms. */
  medianMs(iterations: number): number {
    this.once();
    const samples: number[] = [];
    for (let i = 0; i < Math.max(1, iterations); i++) {
      const start = performance.now();
      this.once();
      samples.push(performance.now() - start);
    }
    return quantile(samples.sort((a, b) => a - b), 0.5);
  }

  /** Bytes signed and verified in all (the suites hash whole messages). */
  get messageBytes(): number {
    return this.operations.reduce((n, op) => n + op.message.length, 0);
  }
}

/** One sign and one verify with a suite, ms each (medians). */
export interface OperationTimes {
  readonly suite: SuiteName;
  readonly provider: string;
  readonly messageBytes: number;
  readonly signMs: number;
  readonly verifyMs: number;
}

/** About the bytes one record signature covers: two user certificates, a link, an amount, a time. */
const RECORD_MESSAGE_BYTES = 640;

/** Times one sign and one verify of a record-sized message with the Node provider's `suite`. */
export function measureOperations(suite: SuiteName, iterations: number): OperationTimes {
  const s = nodeProvider.suites[suite];
  const secretKey = s.generateSecretKey();
  const publicKey = s.publicKey(secretKey);
  const message = randomBytes(RECORD_MESSAGE_BYTES);
  const signature = s.sign(secretKey, message);
  const median = (run: () => void): number => {
    for (let i = 0; i < Math.min(50, iterations); i++) run();
    const samples: number[] = [];
    // Batches of 16 so the timer's resolution does not dominate a 20-microsecond operation.
    for (let i = 0; i < Math.max(1, Math.ceil(iterations / 16)); i++) {
      const start = performance.now();
      for (let j = 0; j < 16; j++) run();
      samples.push((performance.now() - start) / 16);
    }
    return quantile(samples.sort((a, b) => a - b), 0.5);
  };
  const signMs = median(() => s.sign(secretKey, message));
  const verifyMs = median(() => {
    if (!s.verify(publicKey, signature, message)) throw new Error('benchmark signature failed to verify');
  });
  return { suite, provider: nodeProvider.name, messageBytes: RECORD_MESSAGE_BYTES, signMs, verifyMs };
}
