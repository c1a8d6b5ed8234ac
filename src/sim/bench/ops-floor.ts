/**
 * The floors `bench ops` holds its payments against, measured in the same run:
 * - the cryptographic floor: the signatures one offline payment cannot do without (the payer TA's
 *   signature over the payment; PayVerify in the payee's wallet; PayVerify again in the payee TA's
 *   Collect), timed directly with the Node provider;
 * - the persistence floor: the two secure-element commits one payment makes (Pay in the payer's
 *   TA, Collect in the payee's), each a sealed write, fsync, rename and file-counter increment.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { signedBytes } from '../../core/crypto/record.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import type { CryptoProvider, SignatureSuite, SuiteName } from '../../core/crypto/suite.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { paymentSigned, PAYMENT_TAG, type Payment } from '../../schemes/ops/messages.ts';
import { verifyPayment } from '../../schemes/ops/pay-verify.ts';
import { FileCounter } from '../../secure-element/counter-file.ts';
import { FileStorage } from '../../secure-element/storage-file.ts';
import type { Pinned } from './ops-payment.ts';
import { summarise, type Latency } from './stats.ts';

/** One signature check as PayVerify asks the provider for it. */
interface Verification {
  readonly suite: SignatureSuite;
  readonly publicKey: Uint8Array;
  readonly signature: Uint8Array;
  readonly message: Uint8Array;
}

/**
 * The signature checks PayVerify makes for `payment`, read off a provider that records them: the
 * sender's chain (root, intermediary, device certificate), the payment's signature, the receiver's
 * chain. Recorded rather than listed by hand, so the floor follows the code if PayVerify changes.
 */
function payVerifyChecks(payment: Payment, pinned: Pinned, receiver: Uint8Array): Verification[] {
  const checks: Verification[] = [];
  const recording = (suite: SignatureSuite): SignatureSuite => ({
    ...suite,
    verify(publicKey, signature, message) {
      checks.push({ suite, publicKey, signature, message });
      return suite.verify(publicKey, signature, message);
    },
  });
  const suites = Object.fromEntries(Object.entries(nodeProvider.suites).map(([name, suite]) => [name, recording(suite)])) as Record<SuiteName, SignatureSuite>;
  const provider: CryptoProvider = { name: 'recording', suites };
  verifyPayment({ provider, payment, trustAnchors: [pinned.root], intermediaries: [pinned.intermediary], now: Date.now(), currency: pinned.currency, receiver });
  return checks;
}

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
 * Times, `iterations` times, one Ed25519 signature over `payment`'s signed record (with a key of
 * its own: the TA's stays in its process) and PayVerify's checks twice.
 * @throws Error when a recorded check does not verify: the floor would not be the payment's
 */
export function measureCryptoFloor(options: { payment: Payment; pinned: Pinned; receiver: Uint8Array; iterations: number }): CryptoFloor {
  const checks = payVerifyChecks(options.payment, options.pinned, options.receiver);
  const signer = nodeProvider.suites.ed25519;
  const secretKey = signer.generateSecretKey();
  const message = signedBytes(PAYMENT_TAG, paymentSigned(options.payment));
  const once = () => {
    signer.sign(secretKey, message);
    for (let pass = 0; pass < 2; pass++) {
      for (const c of checks) if (!c.suite.verify(c.publicKey, c.signature, c.message)) throw new Error('a recorded PayVerify check failed to verify');
    }
  };
  for (let i = 0; i < Math.min(50, options.iterations); i++) once();
  const samples: number[] = [];
  for (let i = 0; i < options.iterations; i++) {
    const start = performance.now();
    once();
    samples.push(performance.now() - start);
  }
  return { signs: 1, verifies: 2 * checks.length, latency: summarise(samples) };
}

/** The persistence floor of one payment. */
export interface PersistenceFloor {
  /** Sizes of the sealed states written: the payer TA's and the payee TA's. */
  readonly sealedBytes: readonly [number, number];
  readonly latency: Latency;
}

/**
 * Times, `iterations` times, the two commits of one payment as a host makes them: a sealed blob of
 * each TA's size written to a temp file with fsync, renamed over the state with a directory fsync,
 * and a file-counter increment.
 */
export async function measurePersistenceFloor(options: { dir: string; sealedBytes: readonly [number, number]; iterations: number }): Promise<PersistenceFloor> {
  const sides = await Promise.all(
    options.sealedBytes.map(async (size, k) => {
      const dir = join(options.dir, `floor-${k}`);
      await mkdir(dir, { recursive: true });
      const counter = new FileCounter(join(dir, 'counter'));
      await counter.open();
      return { storage: new FileStorage(dir), counter, blob: randomBytes(size) };
    }),
  );
  try {
    const commitBoth = async () => {
      for (const side of sides) {
        await side.storage.writeTemp('floor', side.blob);
        await side.storage.replace('floor');
        await side.counter.increment();
      }
    };
    for (let i = 0; i < 5; i++) await commitBoth();
    const samples: number[] = [];
    for (let i = 0; i < options.iterations; i++) {
      const start = performance.now();
      await commitBoth();
      samples.push(performance.now() - start);
    }
    return { sealedBytes: options.sealedBytes, latency: summarise(samples) };
  } finally {
    for (const side of sides) await side.counter.close();
  }
}
