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

/** Decoded lists of other issuers (the root's, the peers'), remembered by their bytes as the certificates are. */
const LISTS_REMEMBERED_MAX = 20;
const lists: { readonly bytes: Uint8Array; readonly list: RevocationList }[] = [];

function decodeHeldList(bytes: Uint8Array): RevocationList {
  const hit = lists.find((e) => equalBytes(e.bytes, bytes));
  if (hit !== undefined) return hit.list;
  const decoded = decodeRevocationList(bytes);
  lists.unshift({ bytes: bytes.slice(), list: decoded });
  if (lists.length > LISTS_REMEMBERED_MAX) lists.pop();
  return decoded;
}

/** The other intermediaries the TA holds (each verified under the root when it was taken), decoded. */
export function peerCertificates(state: OpsState): Certificate[] {
  return (state.peers ?? []).map(decodeHeldCertificate);
}

/** The root's list of revoked intermediaries and the peers' own lists, decoded (each verified when it was taken). */
export function otherLists(state: OpsState): RevocationList[] {
  return [...(state.rootCrl === undefined ? [] : [state.rootCrl]), ...(state.peerCrls ?? [])].map(decodeHeldList);
}

/**
 * Every list the TA holds as one checker: its own intermediary's, the root's (which revokes
 * intermediaries) and each peer's (which revokes that peer's users and devices). Each list counts
 * only for certificates its own signer issued.
 */
export function heldChecker(state: OpsState): RevocationChecker | undefined {
  const all = [...(heldList(state) === null ? [] : [heldList(state) as RevocationList]), ...otherLists(state)];
  if (all.length === 0) return undefined;
  const checkers = all.map(acceptedListChecker);
  return { isRevoked: (issuer, serial) => checkers.some((c) => c.isRevoked(issuer, serial)) };
}
