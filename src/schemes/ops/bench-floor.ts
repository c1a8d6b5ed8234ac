/**
 * The floors `bench ops` holds its payments against, measured in the same run:
 * - the cryptographic floor, read off the harness's metering provider: the payer TA's signature
 *   over the payment (made again with a key of its own: the TA's stays in its process) and
 *   PayVerify's checks twice (in the payee's wallet and in the payee TA's Collect), recorded as
 *   the code makes them and replayed, so the floor follows the code if PayVerify changes;
 * - the persistence floor: the two secure-element commits one payment makes (Pay in the payer's
 *   TA, Collect in the payee's), each a sealed write, fsync, rename and file-counter increment,
 *   timed by the harness's `CommitFloor` once after each timed payment (bench.ts).
 */
import { signedBytes } from '../../core/crypto/record.ts';
import type { BenchHarness, Latency } from '../../sim/bench/plugin.ts';
import { paymentSigned, PAYMENT_TAG, type Payment } from './messages.ts';
import { verifyPayment } from './pay-verify.ts';
import type { Pinned } from './bench-payment.ts';

/** The cryptographic floor of one payment. */
export interface CryptoFloor {
  /** Signatures made: the payer TA's, over the payment. */
  readonly signs: number;
  /** Signature checks: PayVerify's, twice (the payee's wallet and its TA's Collect). */
  readonly verifies: number;
  /** Time of all of them, per payment. */
  readonly latency: Latency;
}

/**
 * Records, through the metering provider, one Ed25519 signature over `payment`'s signed record and
 * PayVerify's checks twice, then times `iterations` replays of them.
 * @throws Error when a recorded check does not verify: the floor would not be the payment's
 */
export async function measureCryptoFloor(harness: BenchHarness, options: { payment: Payment; pinned: Pinned; receiver: Uint8Array; iterations: number }): Promise<CryptoFloor> {
  const meter = harness.meter(['payment'] as const);
  const suite = meter.provider.suites.ed25519;
  const secretKey = harness.provider.suites.ed25519.generateSecretKey();
  const message = signedBytes(PAYMENT_TAG, paymentSigned(options.payment));
  const { counts, replay } = await meter.measure(() => {
    suite.sign(secretKey, message);
    for (let pass = 0; pass < 2; pass++) {
      const { pinned } = options;
      verifyPayment({ provider: meter.provider, payment: options.payment, trustAnchors: [pinned.root], intermediaries: [pinned.intermediary], now: Date.now(), currency: pinned.currency, receiver: options.receiver });
    }
  });
  return { signs: counts.signs, verifies: counts.verifies, latency: replay.latency(options.iterations) };
}

/** The persistence floor of one payment. */
export interface PersistenceFloor {
  /** Sizes of the sealed states written: the payer TA's and the payee TA's. */
  readonly sealedBytes: readonly [number, number];
  readonly latency: Latency;
}
