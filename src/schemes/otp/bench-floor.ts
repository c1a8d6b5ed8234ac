/**
 * The cryptographic floor of one OTP in `bench otp`, in two parts measured in the same run:
 * - what the harness's metering provider sees: the signatures and verifications of a payment made
 *   between two in-process secure elements whose keys work through it (the payer TA's escrow-tag
 *   signature and its check of the payee's exchange key, per coin), counted and replayed;
 * - what it cannot see, timed here on the same primitives the trusted app calls, with a coin of the
 *   bank's real class program and a real escrow tag for sizes: the RSA blind-signature verification
 *   of the coin (RSASSA-PSS, 2048 bits; the payer's TA before it pays and the payee's after it
 *   opens), the two HPKE seals of the payer (the escrow tag to the bank's escrow key, the coin to the
 *   payee's exchange key) and the payee's HPKE open.
 * Hashes, CBOR, the ACK's HMAC and the HPKE exporter are left out: the floor is a lower bound.
 */
import { randomBytes } from '../../core/crypto/hash.ts';
import { signerFromSecret, type CryptoProvider } from '../../core/crypto/suite.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { throughput, type CryptoCounts, type Replay } from '../../sim/bench/plugin.ts';
import { blind, finalize, verify } from './blind-rsa.ts';
import { preparedCoinMessage, SERIAL_BYTES } from './coin.ts';
import { appendTag } from './escrow.ts';
import { exchangeKeyId } from './exchange-key.ts';
import { generateKeyPair, setupBaseR, setupBaseS } from '../../core/crypto/hpke.ts';
import type { ClassEntry, Params } from './messages.ts';
import { blindSign, generateRsaKey, rsaPublicKeyOf } from './node-rsa.ts';

/** The floor of one OTP, ms, with what makes it up. */
export interface OtpFloor {
  /** Signatures and verifications per OTP, as the metering provider counted them. */
  readonly metered: CryptoCounts;
  /** The metered operations of one OTP replayed, ms. */
  readonly meteredMs: number;
  /** One RSA-2048 PSS verification of a coin, ms (twice per OTP). */
  readonly rsaVerifyMs: number;
  /** One HPKE setup and seal of the coin (its CBOR bytes given), ms. */
  readonly hpkeSealCoinMs: number;
  /** One HPKE setup and seal of an escrow tag, ms. */
  readonly hpkeSealTagMs: number;
  /** One HPKE setup and open of the coin, ms. */
  readonly hpkeOpenCoinMs: number;
  /** The sizes sealed: a carried coin with its first tag, and a tag's content, bytes. */
  readonly coinBytes: number;
  readonly tagBytes: number;
  /** The sum: metered + 2 RSA verifications + 2 seals + 1 open, ms. */
  readonly perOtpMs: number;
}

const msPer = (operation: () => void, budgetMs: number) => 1000 / throughput(operation, budgetMs);

/**
 * Times the unmetered primitives of one OTP and adds the metered operations of a counted payment
 * of `coins` coins (`replay`, `counts`).
 */
export function measureFloor(options: { provider: CryptoProvider; params: Params; unit: ClassEntry; replay: Replay; counts: CryptoCounts; coins: number; budgetMs: number }): OtpFloor {
  const { provider, params, unit, replay, coins, budgetMs } = options;
  // A coin signed blindly by a fresh 2048-bit key (the bank's size and exponent), with the bank's program.
  const key = generateRsaKey();
  const publicKey = rsaPublicKeyOf(key);
  const coin = { serial: randomBytes(SERIAL_BYTES), classId: unit.coinClass.classId, prefix: randomBytes(32) };
  const prepared = preparedCoinMessage(coin);
  const blinded = blind(publicKey, prepared, randomBytes);
  const signature = finalize(publicKey, prepared, blindSign(key, blinded.blindedMessage, publicKey), blinded.inverse);
  const suite = provider.suites.ed25519;
  const device = signerFromSecret(suite, suite.generateSecretKey());
  const payee = generateKeyPair();
  const tags = appendTag({ serial: coin.serial, tags: [], payee: exchangeKeyId(payee.publicKey), device, escrowPublicKey: params.body.escrowKey });
  const coinBytes = encodeCbor({ coin: { ...coin, program: unit.program, signature }, tags }).length;
  const tagBytes = (tags[0]?.ciphertext.length ?? 16) - 16;
  const coinPlain = randomBytes(coinBytes);
  const tagPlain = randomBytes(tagBytes);
  const info = randomBytes(32);
  const sealed = setupBaseS({ recipientPublicKey: payee.publicKey, info });
  const box = sealed.seal(coinPlain, coin.classId);

  const rsaVerifyMs = msPer(() => {
    if (!verify(publicKey, prepared, signature)) throw new Error('the floor coin failed to verify');
  }, budgetMs);
  const hpkeSealCoinMs = msPer(() => setupBaseS({ recipientPublicKey: payee.publicKey, info }).seal(coinPlain, coin.classId), budgetMs);
  const hpkeSealTagMs = msPer(() => setupBaseS({ recipientPublicKey: params.body.escrowKey, info }).seal(tagPlain), budgetMs);
  const hpkeOpenCoinMs = msPer(() => setupBaseR({ recipientPrivateKey: payee.privateKey, enc: sealed.enc, info }).open(box, coin.classId), budgetMs);
  const iterations = Math.max(5, Math.round(budgetMs / 10));
  const meteredMs = replay.medianMs(iterations) / coins;
  const metered = { signs: options.counts.signs / coins, verifies: options.counts.verifies / coins };
  return {
    metered,
    meteredMs,
    rsaVerifyMs,
    hpkeSealCoinMs,
    hpkeSealTagMs,
    hpkeOpenCoinMs,
    coinBytes,
    tagBytes,
    perOtpMs: meteredMs + 2 * rsaVerifyMs + hpkeSealCoinMs + hpkeSealTagMs + hpkeOpenCoinMs,
  };
}
