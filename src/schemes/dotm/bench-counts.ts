/**
 * Signatures and verifications of one DOT-M transaction against Table 3 of §4.2, and the
 * per-operation floor they set. The counting itself is the harness's metering provider: both
 * wallets' secure elements run in this process over it, and the roles tell it which phase of
 * §3.3.3 they are in.
 */
import { randomBytes } from '../../core/crypto/hash.ts';
import type { CryptoProvider, SuiteName } from '../../core/crypto/suite.ts';
import { quantile, type CryptoCounts, type PhaseCounts } from '../../sim/bench/plugin.ts';
import { PHASES, type Phase } from './bench-payment.ts';

/** Table 3's counts, or ours, by the phases of §3.3.3. */
export type DotmCounts = PhaseCounts<Phase>;

function zeroByPhase(): Record<Phase, CryptoCounts> {
  return Object.fromEntries(PHASES.map((p) => [p, { signs: 0, verifies: 0 }])) as Record<Phase, CryptoCounts>;
}

/**
 * Table 3 (§4.2) for n_b blocks with n_d records: signatures 2 (step 1) + 1 + n_b (step 3) + 1
 * (step 6); verifications 2 (step 2) + 1 + n_b + n_d (step 4) + 1 (step 7).
 */
export function table3Counts(nb: number, nd: number): DotmCounts {
  const byPhase = zeroByPhase();
  byPhase['step 1'] = { signs: 2, verifies: 0 };
  byPhase['steps 2-3'] = { signs: 1 + nb, verifies: 2 };
  byPhase['steps 4-6'] = { signs: 1, verifies: 1 + nb + nd };
  byPhase['steps 7-8'] = { signs: 0, verifies: 1 };
  return { signs: 4 + nb, verifies: 4 + nb + nd, byPhase };
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

/** Times one sign and one verify of a record-sized message with `provider`'s `suite`. */
export function measureOperations(provider: CryptoProvider, suite: SuiteName, iterations: number): OperationTimes {
  const s = provider.suites[suite];
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
  return { suite, provider: provider.name, messageBytes: RECORD_MESSAGE_BYTES, signMs, verifyMs };
}
