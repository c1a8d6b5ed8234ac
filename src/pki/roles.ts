/**
 * Roles in the two-tier hierarchy (OPS §1.2, §3.1): the central bank is the root certificate
 * authority, intermediaries are the second tier, and they certify the keys that act for users.
 * Who may certify whom is a table, read by issuing and by chain verification alike.
 */
import { oneOf, type Codec } from '../core/codec.ts';

/** Every role a certificate can give its subject. */
export const ROLES = ['root', 'intermediary', 'issuer-node', 'user', 'device', 'oem'] as const;
/** A certificate's role: what its subject key may do. */
export type Role = (typeof ROLES)[number];

/** Decodes a role name. */
export const roleCodec: Codec<Role> = oneOf(ROLES);

/**
 * The roles each role may certify. The central bank enrols intermediaries and OEMs; an
 * intermediary certifies its issuer nodes, its users and their secure elements (OPS §3.2: "the
 * server ... certifies the key"), and, when it runs below a central bank of its own, the OEMs
 * whose devices it registers (an OEM's certificate only ever gates the registrations of the node
 * that issued it, which certifies those devices itself anyway). An OEM attests secure elements
 * but issues no certificates.
 */
export const CERTIFIABLE_ROLES: Readonly<Record<Role, readonly Role[]>> = {
  root: ['intermediary', 'oem'],
  intermediary: ['issuer-node', 'user', 'device', 'oem'],
  'issuer-node': [],
  user: [],
  device: [],
  oem: [],
};

/** The roles whose certificates are self-signed trust anchors (only the central bank's). */
export const SELF_SIGNED_ROLES: readonly Role[] = ['root'];

/** True when a certificate of `issuerRole` may certify a subject of `subjectRole`. */
export function mayCertify(issuerRole: Role, subjectRole: Role): boolean {
  return CERTIFIABLE_ROLES[issuerRole].includes(subjectRole);
}

/** True when certificates of `role` are self-signed (trust anchors). */
export function isSelfSignedRole(role: Role): boolean {
  return SELF_SIGNED_ROLES.includes(role);
}
