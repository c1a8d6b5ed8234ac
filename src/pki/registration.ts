/**
 * Proof of possession at device registration: the secure element signs the key id of the account
 * holder registering it and the scheme it serves. Without it, anyone who saw an attested public
 * key could register it under their own account first and lock its real owner out; with it, only
 * the holder of the secret key decides whose device it is.
 */
import { checkBytes, type CryptoProvider, type PublicKey, type Signer } from '../core/crypto/suite.ts';
import { signRecord, verifyRecord } from '../core/crypto/record.ts';
import { KEY_ID_BYTES } from './key-id.ts';

/** The domain tag a registration proof covers. */
export const DEVICE_REGISTRATION_DOMAIN_TAG = 'tally/pki/device-registration/v1';

/** What a device consents to: being registered under `owner` (a user key id) for `scheme`. */
export interface RegistrationClaim {
  readonly owner: Uint8Array;
  readonly scheme: string;
}

function signed(claim: RegistrationClaim): unknown[] {
  checkBytes('owner', claim.owner, KEY_ID_BYTES);
  return [claim.owner, claim.scheme];
}

/** Signs a registration claim with the device key (inside the trusted app). */
export function signRegistrationProof(device: Signer, claim: RegistrationClaim): Uint8Array {
  return signRecord(device, DEVICE_REGISTRATION_DOMAIN_TAG, signed(claim));
}

/** True when `proof` is the device key's signature over the claim. */
export function verifyRegistrationProof(provider: CryptoProvider, device: PublicKey, claim: RegistrationClaim, proof: Uint8Array): boolean {
  return verifyRecord(provider, device, DEVICE_REGISTRATION_DOMAIN_TAG, signed(claim), proof);
}
