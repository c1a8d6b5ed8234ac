/**
 * What an intermediary signs to be enrolled at a central bank: its name, the currency, the root it
 * asks to be certified under and its own public key. The signature is the proof of possession: the
 * central bank certifies only a key that signed its own request, for this root and this currency,
 * so a request cannot be replayed to another central bank or another currency. Pure: the
 * intermediary and the central bank share it.
 */
import { fromHex } from '../../core/bytes.ts';
import { signRecord, verifyRecord } from '../../core/crypto/record.ts';
import type { CryptoProvider, PublicKey, Signer } from '../../core/crypto/suite.ts';

/** Domain tag of an enrolment request. */
export const ENROLMENT_TAG = 'tally/tier/enrolment/v1';
/** Longest intermediary name. */
export const INTERMEDIARY_NAME_LENGTH_MAX = 100;

/** What an enrolment request states. */
export interface EnrolmentRequest {
  /** The intermediary's name, as its certificate will carry it. */
  readonly name: string;
  /** The currency code. */
  readonly currency: string;
  /** The key id (hex) of the central bank's root the request is for. */
  readonly rootKeyId: string;
  /** The key to certify. */
  readonly subject: PublicKey;
}

function signed(request: EnrolmentRequest): unknown {
  return { name: request.name, currency: request.currency, root: fromHex(request.rootKeyId), subject: { suite: request.subject.suite, key: request.subject.key } };
}

/** The intermediary's proof of possession over its request. */
export function signEnrolment(signer: Signer, request: EnrolmentRequest): Uint8Array {
  return signRecord(signer, ENROLMENT_TAG, signed(request));
}

/** True when `proof` is the request's subject's signature over the request. */
export function verifyEnrolment(provider: CryptoProvider, request: EnrolmentRequest, proof: Uint8Array): boolean {
  try {
    return verifyRecord(provider, request.subject, ENROLMENT_TAG, signed(request), proof);
  } catch {
    return false;
  }
}
