/**
 * The certificate chains the node has already checked, so that a claim on a payment from a known
 * device to a known receiver costs one signature check instead of four. A chain is remembered only
 * after PayVerify passed on it in full; what it remembers is what never changes for that
 * certificate (its key, role, scheme, currency, offline limit, the bank that issued it) and the
 * window in which every certificate of the chain is valid, which is held against the clock at each
 * use. What can change is asked afresh by every request, never cached: whether the device is
 * revoked (the node's revocation table, read with the payment's sender row) and whether its bank
 * is still one the central bank certifies and has not revoked (the peer list of the request).
 */
import { Buffer } from 'node:buffer';
import type { SuiteName } from '../../core/crypto/suite.ts';
import type { VerifiedChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import { toHex } from '../../core/bytes.ts';

/** What a checked chain says of its leaf. */
export interface KnownChain {
  /** Key id of the leaf's subject key. */
  readonly keyId: Uint8Array;
  /** The same key id in hex, as the ledger names the device. */
  readonly keyIdHex: string;
  readonly suite: SuiteName;
  readonly publicKey: Uint8Array;
  readonly role: string;
  readonly scheme: string | undefined;
  readonly currency: string | undefined;
  /** The offline payment limit of a device certificate. */
  readonly offlinePaymentsMax: number | undefined;
  /** Key id (hex) of the intermediary that issued the leaf. */
  readonly bank: string;
  /** Every certificate of the chain is valid from `notBefore` to `notAfter` (Unix ms). */
  readonly notBefore: number;
  readonly notAfter: number;
}

/** How many chains a node keeps; the oldest is dropped first. */
export const KNOWN_CHAINS_MAX = 100_000;

/** The chains a node has checked, by the exact bytes of their leaf certificate. */
export class SenderChains {
  private readonly known = new Map<string, KnownChain>();

  constructor(private readonly max: number = KNOWN_CHAINS_MAX) {}

  /** The checked chain of `certificate` when it is known and valid at `now`. */
  get(certificate: Uint8Array, now: number): KnownChain | undefined {
    const chain = this.known.get(idOf(certificate));
    if (chain === undefined || now < chain.notBefore || now > chain.notAfter) return undefined;
    return chain;
  }

  /** Keeps a chain that PayVerify has just passed, under its leaf certificate's bytes. */
  remember(certificate: Uint8Array, chain: VerifiedChain): void {
    const issuer = chain.path[1];
    if (issuer === undefined || issuer.body.role !== 'intermediary') return;
    const id = idOf(certificate);
    if (this.known.has(id)) return;
    if (this.known.size >= this.max) this.known.delete(this.known.keys().next().value as string);
    this.known.set(id, {
      keyId: chain.subjectKeyId,
      keyIdHex: toHex(chain.subjectKeyId),
      suite: chain.subject.suite,
      publicKey: chain.subject.key,
      role: chain.role,
      scheme: chain.extensions.scheme,
      currency: chain.extensions.currency,
      offlinePaymentsMax: chain.extensions.offlinePaymentsMax,
      bank: toHex(keyId(issuer.body.subject)),
      notBefore: Math.max(...chain.path.map((c) => c.body.notBefore)),
      notAfter: Math.min(...chain.path.map((c) => c.body.notAfter)),
    });
  }

  get size(): number {
    return this.known.size;
  }
}

/** Whether two certificates are the same bytes: compared natively, and not in constant time, for certificates are public. */
export function sameCertificate(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** A map key for a certificate's bytes (one byte a character). */
function idOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}
