/**
 * The payee's signed request: what a payer accepts, and every way a relay could change the
 * receiver (swapped, re-signed by another user, signature forged), a device the payee does not
 * own, a genuine request relayed to a payer who means to pay someone else, and a request from the
 * future or too old.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { toHex } from '../../core/bytes.ts';
import { isTallyError } from '../../core/errors.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { certify, hierarchy, NOW, signer } from '../../pki/test-fixtures.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { checkMeantPayee, REQUEST_AGE_MAX_MS, REQUEST_CLOCK_SKEW_MS, signRequest, verifyRequest, type SignedRequest } from './request.ts';

const pki = hierarchy('ed25519', 'ops-request');
const user = (label: string, name?: string) => {
  const key = signer(`ops-request/${label}`);
  return { key, cert: encodeCertificate(certify({ issuer: pki.intermediary, issuerRole: 'intermediary', role: 'user', subject: key, ...(name === undefined ? {} : { extensions: { name } }) })) };
};
const device = (owner: ReturnType<typeof user>, label: string) => {
  const key = signer(`ops-request/${label}`);
  return encodeCertificate(certify({ issuer: pki.intermediary, issuerRole: 'intermediary', role: 'device', subject: key, extensions: { scheme: 'ops', currency: 'EUR', holdingLimit: 50_000n, offlinePaymentsMax: 100, owner: keyId(owner.key.publicKey) } }));
};
const bob = user('bob', 'Bob');
const bobDevice = device(bob, 'bob-device');
const mallory = user('mallory');
const malloryDevice = device(mallory, 'mallory-device');

const verify = (request: SignedRequest, now = NOW) => verifyRequest({ provider: nodeProvider, request, trustAnchors: [pki.rootCert], intermediaries: [pki.intermediaryCert], now });
const fromBob = (fields: Partial<SignedRequest> = {}): SignedRequest =>
  signRequest(bob.key, { amount: 250n, receiver: bobDevice, memo: 'beans', payee: bob.cert, nonce: new Uint8Array(16).fill(7), created: NOW, ...fields });
const refusedAs = (reason: string) => (e: unknown) => isTallyError(e, 'PAYMENT_INVALID') && e.details.reason === reason;

describe('OPS signed payment request', () => {
  test('a request signed by its payee names the payee and the device it owns', () => {
    const verified = verify(fromBob());
    assert.deepEqual(verified.payee.subjectKeyId, keyId(bob.key.publicKey));
    assert.equal(verified.payee.extensions.name, 'Bob');
    assert.equal(verified.receiver.role, 'device');
    // A payee without a secure element is its own receiver.
    const direct = signRequest(bob.key, { amount: 1n, receiver: bob.cert, nonce: new Uint8Array(16), created: NOW });
    assert.equal(verify(direct).receiver.role, 'user');
  });

  test('a relay that swaps the receiver is refused, whether it keeps the signature, re-signs, or forges one', () => {
    const genuine = fromBob();
    assert.throws(() => verify({ ...genuine, receiver: malloryDevice }), refusedAs('signature'), 'swapped, signature kept');
    assert.throws(() => verify({ ...genuine, amount: 251n }), refusedAs('signature'), 'amount changed');
    const { signature: _s, ...fields } = genuine;
    assert.throws(() => verify(signRequest(mallory.key, { ...fields, receiver: malloryDevice })), refusedAs('signature'), 're-signed by another user, naming bob');
    assert.throws(() => verify(signRequest(mallory.key, { ...fields, payee: mallory.cert })), refusedAs('owner'), "mallory's request to bob's device");
    assert.throws(() => verify({ ...genuine, signature: new Uint8Array(64).fill(1) }), refusedAs('signature'), 'forged');
    assert.throws(() => verify({ ...genuine, payee: malloryDevice }), refusedAs('payee'), 'a device certificate as the payee');
  });

  test('a genuine request relayed to a payer who means to pay another user is refused; the payee it names passes', () => {
    const verified = verify(signRequest(mallory.key, { amount: 250n, receiver: malloryDevice, payee: mallory.cert, nonce: new Uint8Array(16), created: NOW }));
    const bobId = toHex(keyId(bob.key.publicKey));
    const malloryId = toHex(keyId(mallory.key.publicKey));
    assert.throws(() => checkMeantPayee(verified, bobId), refusedAs('payee'), "mallory's request, the payer meaning bob");
    assert.throws(() => checkMeantPayee(verified, bobId.slice(0, 8)), refusedAs('payee'), 'the same by a short key id');
    assert.doesNotThrow(() => checkMeantPayee(verified, malloryId));
    assert.doesNotThrow(() => checkMeantPayee(verified, malloryId.slice(0, 8)));
  });

  test('a request from the future or older than the limit is refused', () => {
    assert.throws(() => verify(fromBob({ created: NOW + REQUEST_CLOCK_SKEW_MS + 1 })), refusedAs('time'));
    assert.doesNotThrow(() => verify(fromBob({ created: NOW + REQUEST_CLOCK_SKEW_MS })));
    assert.throws(() => verify(fromBob({ created: NOW - REQUEST_AGE_MAX_MS - 1 })), refusedAs('time'));
  });
});
