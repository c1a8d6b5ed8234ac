/**
 * Attested registration of a secure element, shared by every scheme (OPS §3.2 TA registration;
 * DOT-M §3.3.1's wallet key): the proof of possession of the key, the OEM that attests it (enrolled
 * by the central bank and not removed), the trusted-app build (a measurement the operator allowed
 * for the scheme), and a key that was never revoked. The generic `POST /v1/devices` and a scheme's
 * own registration route (DOT-M's `POST /v1/dotm/wallets`) both go through here.
 */
import { isTallyError } from '../../core/errors.ts';
import type { PublicKey } from '../../core/crypto/suite.ts';
import { decodeAttestation, verifyAttestation, type OemAttestation } from '../../pki/attestation.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { verifyRegistrationProof } from '../../pki/registration.ts';
import type { Queryable } from '../db/database.ts';
import type { StoredResponse } from '../ledger/idempotency.ts';
import { isSubjectRevoked } from '../registry/revocations.ts';
import type { IssuerServices } from './context.ts';
import { ApiProblem } from './problem.ts';
import { refusal } from './validate.ts';

/** How long a user certificate is valid. */
export const USER_CERTIFICATE_VALIDITY_MS = 2 * 365 * 24 * 3600 * 1000;
/** How long a device certificate is valid (it ends earlier if the intermediary's does). */
export const DEVICE_CERTIFICATE_VALIDITY_MS = 365 * 24 * 3600 * 1000;

/** A proof of possession: the key's signature over `[owner, scheme]` (pki/registration.ts). */
export interface PossessionProof {
  readonly owner: Uint8Array;
  readonly scheme: string;
  readonly proof: Uint8Array;
  /** What the key is called in the refusal (`the device key`, `the wallet key`). */
  readonly label: string;
}

/** What a secure element presents to register. */
export interface AttestedKey {
  /** The scheme whose allowed measurements apply. */
  readonly scheme: string;
  /** The secure element's key that the OEM attested. */
  readonly publicKey: PublicKey;
  /** Key id of the OEM. */
  readonly oem: string;
  /** The OEM attestation, deterministic CBOR. */
  readonly attestation: Uint8Array;
  /** Proofs of possession to check first (the attested key's; a scheme may add others). */
  readonly proofs: readonly (PossessionProof & { readonly publicKey: PublicKey })[];
}

/** Decodes an attestation field. @throws ApiProblem ATTESTATION_INVALID */
export function decodeAttestationField(bytes: Uint8Array): OemAttestation {
  try {
    return decodeAttestation(bytes);
  } catch (e) {
    if (isTallyError(e, 'ATTESTATION_INVALID') || isTallyError(e, 'TOO_LARGE')) throw new ApiProblem('ATTESTATION_INVALID', e.message, { reason: e.message });
    throw e;
  }
}

/**
 * Checks everything about a registration that needs no transaction: the proofs of possession, the
 * OEM (enrolled, not removed), its attestation of the key and an allowed measurement for the scheme.
 * Answers the decoded attestation.
 * @throws ApiProblem SIGNATURE_INVALID, OEM_UNKNOWN, OEM_REMOVED, ATTESTATION_INVALID
 */
export async function verifyAttestedKey(services: IssuerServices, key: AttestedKey): Promise<OemAttestation> {
  const attestation = decodeAttestationField(key.attestation);
  for (const p of key.proofs) {
    if (!verifyRegistrationProof(services.provider, p.publicKey, { owner: p.owner, scheme: p.scheme }, p.proof)) {
      throw new ApiProblem('SIGNATURE_INVALID', `the proof of possession of ${p.label} does not verify for this owner and scheme`, {});
    }
  }
  const oemRow = (await services.db.query<{ certificate: Uint8Array; removed_at: Date | null }>('SELECT certificate, removed_at FROM oems WHERE key_id = $1', [key.oem])).rows[0];
  if (oemRow === undefined) throw new ApiProblem('OEM_UNKNOWN', `no OEM with key ${key.oem} is enrolled with this node`, { oem: key.oem });
  if (oemRow.removed_at !== null) throw new ApiProblem('OEM_REMOVED', `OEM ${key.oem} was removed by the operator: the node takes no new device it attests`, { oem: key.oem });
  const allowed = await services.db.query<{ measurement: Uint8Array }>('SELECT measurement FROM ta_measurements WHERE scheme = $1', [key.scheme]);
  try {
    verifyAttestation({
      provider: services.provider,
      attestation,
      oemCertificate: decodeCertificate(new Uint8Array(oemRow.certificate)),
      trustAnchors: [services.identity.root.certificate],
      // At an intermediary enrolled at a central bank, its own key certified the OEM.
      ...(services.identity.root.signer === undefined ? { chain: [services.identity.intermediary.certificate] } : {}),
      sePublicKey: key.publicKey,
      allowedMeasurements: allowed.rows.map((r) => new Uint8Array(r.measurement)),
      now: services.now(),
    });
  } catch (e) {
    if (isTallyError(e, 'ATTESTATION_INVALID')) throw new ApiProblem('ATTESTATION_INVALID', e.message, { reason: e.details.reason });
    throw e;
  }
  return attestation;
}

/**
 * The part of a registration inside its transaction: the OEM is still enrolled (it may have been
 * removed since the checks above) and none of the keys was ever revoked. Answers the refusal, or null.
 */
export async function registrationRefusal(tx: Queryable, oem: string, keyIds: readonly string[]): Promise<StoredResponse | null> {
  const held = await tx.query<{ removed_at: Date | null }>('SELECT removed_at FROM oems WHERE key_id = $1 FOR SHARE', [oem]);
  if (held.rows[0] === undefined || held.rows[0].removed_at !== null) return refusal('OEM_REMOVED', `OEM ${oem} was removed by the operator: the node takes no new device it attests`);
  for (const id of keyIds) {
    if (await isSubjectRevoked(tx, id)) return refusal('CERT_REVOKED', `key ${id} was revoked and cannot register again`);
  }
  return null;
}
