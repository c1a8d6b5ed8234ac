/**
 * Two tiers, the wallet's side: the other intermediaries a wallet takes payments from, with the
 * root's list of revoked intermediaries and each intermediary's own list of revoked users and
 * devices. The wallet gets them from its own bank, but takes nothing on its word: each certificate
 * must be an intermediary certificate the wallet's root signed, in its currency; the root's list
 * must be the root's, each other list its intermediary's; no list replaces a newer one held. A
 * secure element's trusted app checks the same again inside (its scheme's own command). Pure.
 */
import { toHex } from '../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { array, bytes, optional, record, type Infer } from '../core/codec.ts';
import type { CryptoProvider } from '../core/crypto/suite.ts';
import { TallyError } from '../core/errors.ts';
import { decodeCertificate, type Certificate } from '../pki/certificate.ts';
import { verifyChain } from '../pki/chain.ts';
import { keyId } from '../pki/key-id.ts';
import { decodeRevocationList, RevocationStore } from '../pki/revocation.ts';

/** Most other intermediaries a wallet keeps. */
export const WALLET_PEERS_MAX = 16;
/** Largest encoded list of one issuer a wallet keeps here. */
const PEER_LIST_BYTES_MAX = 16 * 1024;

/** What a wallet keeps of the other intermediaries (and passes to its trusted app): encoded certificates and lists. */
export const peerSetCodec = record({
  intermediaries: array(bytes({ min: 1, max: 4096 }), { max: WALLET_PEERS_MAX }),
  rootCrl: optional(bytes({ max: PEER_LIST_BYTES_MAX })),
  crls: array(bytes({ max: PEER_LIST_BYTES_MAX }), { max: WALLET_PEERS_MAX }),
});
/** The other intermediaries, encoded. */
export type PeerSet = Infer<typeof peerSetCodec>;

/** Encodes a peer set as CBOR. */
export function encodePeerSet(set: PeerSet): Uint8Array {
  return encodeCbor({ intermediaries: set.intermediaries, ...(set.rootCrl === undefined ? {} : { rootCrl: set.rootCrl }), crls: set.crls });
}

/** Decodes a peer set (not yet verified: see verifyPeerSet). @throws TallyError DECODE_FAILED */
export function decodePeerSet(encoded: Uint8Array): PeerSet {
  return peerSetCodec.decode(decodeCbor(encoded, { maxBytes: 1024 * 1024 }), 'peers');
}

/** A verified peer set: the certificates, decoded, and the lists taken into `revocations`. */
export interface VerifiedPeers {
  readonly certificates: readonly Certificate[];
  /** The set to keep: what was held merged with what was offered. */
  readonly set: PeerSet;
}

/**
 * Verifies `offered` against the wallet's root and merges it into `held`: certificates by key id
 * (the set only grows), the newest list of each issuer. Each list is taken into `revocations`
 * (which refuses an older one than it holds: CRL_ROLLBACK).
 * @throws TallyError CERT_* for a certificate the root did not sign (or another currency), CRL_INVALID,
 *   CRL_ROLLBACK, TOO_LARGE past WALLET_PEERS_MAX peers
 */
export function verifyPeerSet(options: {
  provider: CryptoProvider;
  root: Certificate;
  own: Certificate;
  currency: string;
  now: number;
  revocations: RevocationStore;
  held: PeerSet | null;
  offered: PeerSet;
}): VerifiedPeers {
  const { provider, root, own, revocations } = options;
  const ownId = toHex(keyId(own.body.subject));
  const certificates = new Map<string, { bytes: Uint8Array; certificate: Certificate }>();
  for (const bytesOf of [...(options.held?.intermediaries ?? []), ...options.offered.intermediaries]) {
    const certificate = decodeCertificate(bytesOf);
    verifyChain({ provider, chain: [certificate], trustAnchors: [root], now: Math.max(options.now, certificate.body.notBefore), leafRoles: ['intermediary'] });
    if (certificate.body.extensions.currency !== options.currency) {
      throw new TallyError('CERT_CHAIN_INVALID', `intermediary ${toHex(keyId(certificate.body.subject))} holds ${certificate.body.extensions.currency ?? '(no currency)'}, not ${options.currency}`, { reason: 'another currency' });
    }
    const id = toHex(keyId(certificate.body.subject));
    if (id !== ownId) certificates.set(id, { bytes: bytesOf, certificate });
  }
  if (certificates.size > WALLET_PEERS_MAX) throw new TallyError('TOO_LARGE', `more than ${WALLET_PEERS_MAX} other intermediaries`, { what: 'peers', size: certificates.size, max: WALLET_PEERS_MAX });
  const lists = new Map<string, Uint8Array>();
  let rootCrl = options.held?.rootCrl;
  for (const [encoded, isRoot] of [
    ...(options.held?.rootCrl === undefined ? [] : [[options.held.rootCrl, true] as const]),
    ...(options.offered.rootCrl === undefined ? [] : [[options.offered.rootCrl, true] as const]),
    ...(options.held?.crls ?? []).map((l) => [l, false] as const),
    ...options.offered.crls.map((l) => [l, false] as const),
  ]) {
    const list = decodeRevocationList(encoded);
    const issuer = toHex(list.body.issuer);
    const peer = certificates.get(issuer);
    if (isRoot) {
      revocations.accept(list, root.body.subject);
      rootCrl = encoded;
      continue;
    }
    // The wallet's own bank's list comes with its sync, not here.
    if (issuer === ownId) continue;
    if (peer === undefined) throw new TallyError('CRL_INVALID', `a revocation list of ${issuer}, which is no other intermediary held`, { reason: 'unknown issuer' });
    revocations.accept(list, peer.certificate.body.subject);
    lists.set(issuer, encoded);
  }
  return {
    certificates: [...certificates.values()].map((c) => c.certificate),
    set: { intermediaries: [...certificates.values()].map((c) => c.bytes), ...(rootCrl === undefined ? {} : { rootCrl }), crls: [...lists.values()] },
  };
}
