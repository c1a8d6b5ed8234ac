/**
 * The certificate-bound part of the OPS TA's state, present once CertInit ran: T.cert, vk_S, and
 * the pinned root and intermediary with the revocation list, decoded only by the commands that read
 * them (Collect, the ack) and remembered by their bytes, so that a TA does not decode the same few
 * certificates again on every command. Decoding is a function of the bytes: a remembered value is
 * exactly what decoding them again would give. Pure.
 */
import { equalBytes } from '../../core/bytes.ts';
import type { PublicKey } from '../../core/crypto/suite.ts';
import { decodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { acceptedListChecker, decodeRevocationList, type RevocationChecker, type RevocationList } from '../../pki/revocation.ts';
import type { OpsState } from './trusted-app-state.ts';

/** The certificate-bound part of the state. */
export interface Certified {
  readonly cert: Uint8Array;
  readonly serverKey: PublicKey;
  /** The pinned root, decoded. */
  root(): Certificate;
  /** The intermediary between T.cert and the root, decoded. */
  intermediary(): Certificate;
}

/** Decoded certificates remembered: a TA holds two (its root and intermediary), a process a few TAs. */
const CERTIFICATES_REMEMBERED_MAX = 8;
const certificates: { readonly bytes: Uint8Array; readonly certificate: Certificate }[] = [];
let list: { readonly bytes: Uint8Array; readonly list: RevocationList } | null = null;

/** decodeCertificate, remembered by the bytes (copied, so a caller's later change to its array cannot alter the entry). */
export function decodeHeldCertificate(bytes: Uint8Array): Certificate {
  const hit = certificates.find((e) => equalBytes(e.bytes, bytes));
  if (hit !== undefined) return hit.certificate;
  const certificate = decodeCertificate(bytes);
  certificates.unshift({ bytes: bytes.slice(), certificate });
  if (certificates.length > CERTIFICATES_REMEMBERED_MAX) certificates.pop();
  return certificate;
}

/** The state's certificate-bound part, or null before CertInit. */
export function certified(state: OpsState): Certified | null {
  const { root, intermediary, cert, serverKey } = state;
  if (root === undefined || cert === undefined || intermediary === undefined || serverKey === undefined) return null;
  return { cert, serverKey, root: () => decodeHeldCertificate(root), intermediary: () => decodeHeldCertificate(intermediary) };
}

/** The revocation list the TA holds, decoded (the latest one remembered by its bytes). */
export function heldList(state: OpsState): RevocationList | null {
  const bytes = state.crl;
  if (bytes === undefined) return null;
  if (list === null || !equalBytes(list.bytes, bytes)) list = { bytes: bytes.slice(), list: decodeRevocationList(bytes) };
  return list.list;
}

/** A revocation checker over the held list, if any. */
export function checkerOf(held: RevocationList | null): RevocationChecker | undefined {
  return held === null ? undefined : acceptedListChecker(held);
}
