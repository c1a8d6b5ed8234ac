/**
 * PayVerify's checks: both chains, the payment's signature, and what the one memo of a payment's
 * two chains may skip (the root's and the intermediary's signatures and keys, checked once per
 * payment) and may not (each leaf, every window and revocation, and the next payment's checks).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nobleProvider } from '../../core/crypto/noble.ts';
import { signRecord } from '../../core/crypto/record.ts';
import type { CryptoProvider } from '../../core/crypto/suite.ts';
import { isTallyError, type ErrorCode } from '../../core/errors.ts';
import { decodeCertificate, encodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { acceptedListChecker, issueRevocationList } from '../../pki/revocation.ts';
import { certify, hierarchy, signer, DAY, NOW, T0 } from '../../pki/test-fixtures.ts';
import { paymentSigned, PAYMENT_TAG, type Payment } from './messages.ts';
import { verifyPayment, type PayVerifyOptions } from './pay-verify.ts';

/** nobleProvider, counting signature checks and public-key validations. */
function counting(): { provider: CryptoProvider; verifies: () => number; keyChecks: () => number } {
  let verifies = 0;
  let keyChecks = 0;
  const suites = Object.fromEntries(
    Object.entries(nobleProvider.suites).map(([name, s]) => [
      name,
      { ...s, verify: (k: Uint8Array, sig: Uint8Array, m: Uint8Array) => (verifies++, s.verify(k, sig, m)), isValidPublicKey: (k: Uint8Array) => (keyChecks++, s.isValidPublicKey(k)) },
    ]),
  );
  return { provider: { ...nobleProvider, suites } as typeof nobleProvider, verifies: () => verifies, keyChecks: () => keyChecks };
}

function code(expected: ErrorCode) {
  return (e: unknown) => isTallyError(e, expected);
}

const h = hierarchy('ed25519', 'pay-verify');
const payer = h.device;
const payee = signer('pay-verify/payee');
const opsDevice = { scheme: 'ops', holdingLimit: 50_000n, currency: 'EUR', offlinePaymentsMax: 100 } as const;
const receiverCert = certify({ issuer: h.intermediary, issuerRole: 'intermediary', role: 'device', subject: payee, extensions: opsDevice });

function pay(receiver: Certificate = receiverCert, index = 1n): Payment {
  const body = { amount: 10n, sender: encodeCertificate(h.deviceCert), receiver: encodeCertificate(receiver), index };
  return { ...body, signature: signRecord(payer, PAYMENT_TAG, paymentSigned(body)) };
}

function options(provider: CryptoProvider, payment: Payment, extra: Partial<PayVerifyOptions> = {}): PayVerifyOptions {
  return { provider, payment, trustAnchors: [h.rootCert], intermediaries: [h.intermediaryCert], now: NOW, currency: 'EUR', ...extra };
}

describe('verifyPayment', () => {
  it('checks the root and the intermediary once per payment, each leaf and the payment itself in full, and every payment afresh', () => {
    const { provider, verifies, keyChecks } = counting();
    verifyPayment(options(provider, pay()));
    // Root, intermediary, sender certificate, the payment, receiver certificate; four distinct keys.
    assert.equal(verifies(), 5);
    assert.equal(keyChecks(), 4);
    // Nothing is remembered from one payment to the next.
    verifyPayment(options(provider, pay(receiverCert, 2n)));
    assert.equal(verifies(), 10);
    assert.equal(keyChecks(), 8);
  });

  it('refuses a forged receiver certificate even though its issuer was checked for the sender', () => {
    const altered = decodeCertificate(encodeCertificate(receiverCert));
    const forged: Certificate = { ...altered, body: { ...altered.body, extensions: { ...opsDevice, holdingLimit: 90_000n } } };
    assert.throws(() => verifyPayment(options(nobleProvider, pay(forged))), (e) => isTallyError(e, 'PAYMENT_INVALID') && /receiver certificate/.test(e.message));
  });

  it('refuses a receiver certificate with a key that is no curve point, a revoked receiver and an expired one', () => {
    // Signed by the intermediary, so only the key check can refuse it (0xff... is no Ed25519 point).
    const noPoint = { ...payee, publicKey: { suite: 'ed25519' as const, key: new Uint8Array(32).fill(0xff) } };
    const bad = certify({ issuer: h.intermediary, issuerRole: 'intermediary', role: 'device', subject: noPoint, extensions: opsDevice });
    assert.throws(() => verifyPayment(options(nobleProvider, pay(bad))), (e) => isTallyError(e, 'PAYMENT_INVALID') && /not a valid ed25519 public key/.test(e.message));
    const list = issueRevocationList({ issuer: h.intermediary, version: 1, issuedAt: NOW, revoked: [receiverCert.body.serial] });
    assert.throws(() => verifyPayment(options(nobleProvider, pay(), { revocations: acceptedListChecker(list) })), code('CERT_REVOKED'));
    const short = certify({ issuer: h.intermediary, issuerRole: 'intermediary', role: 'device', subject: payee, extensions: opsDevice, notAfter: T0 + DAY });
    assert.throws(() => verifyPayment(options(nobleProvider, pay(short))), (e) => isTallyError(e, 'PAYMENT_INVALID') && /expired/.test(e.message));
  });

  it('refuses a payment whose signature does not cover what it says', () => {
    const payment = pay();
    assert.throws(() => verifyPayment(options(nobleProvider, { ...payment, amount: 11n })), (e) => isTallyError(e, 'PAYMENT_INVALID') && /signature/.test(e.message));
  });
});
