import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nobleProvider } from '../core/crypto/noble.ts';
import { keyId } from './key-id.ts';
import { signRegistrationProof, verifyRegistrationProof } from './registration.ts';
import { signer } from './test-fixtures.ts';

describe('device registration proof', () => {
  const device = signer('registration/se');
  const owner = keyId(signer('registration/owner').publicKey);
  const proof = signRegistrationProof(device, { owner, scheme: 'ops' });

  it('verifies for the claim the device signed', () => {
    assert.equal(verifyRegistrationProof(nobleProvider, device.publicKey, { owner, scheme: 'ops' }, proof), true);
  });

  it('fails for another owner, another scheme, another device or altered bytes', () => {
    const other = keyId(signer('registration/thief').publicKey);
    assert.equal(verifyRegistrationProof(nobleProvider, device.publicKey, { owner: other, scheme: 'ops' }, proof), false);
    assert.equal(verifyRegistrationProof(nobleProvider, device.publicKey, { owner, scheme: 'dotm' }, proof), false);
    assert.equal(verifyRegistrationProof(nobleProvider, signer('registration/other-se').publicKey, { owner, scheme: 'ops' }, proof), false);
    const flipped = proof.slice();
    flipped[10] = (flipped[10] as number) ^ 1;
    assert.equal(verifyRegistrationProof(nobleProvider, device.publicKey, { owner, scheme: 'ops' }, flipped), false);
  });

  it('refuses an owner that is not a key id', () => {
    assert.throws(() => signRegistrationProof(device, { owner: new Uint8Array(31), scheme: 'ops' }), RangeError);
  });
});
