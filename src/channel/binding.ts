/**
 * Certificate binding: after the Noise handshake each side proves, inside the encrypted session,
 * that the holder of its certificate's signing key chose this session's static key. The signature
 * covers the handshake hash (this session and no other) and the signer's own static key (so it
 * cannot be presented by a peer holding another key). How certificates themselves are checked
 * (chains, roles, revocation) is the scheme's verifier's business, not the channel's. Pure.
 */
import { equalBytes, toHex } from '../core/bytes.ts';
import { bytes, optional, record, type Codec } from '../core/codec.ts';
import { signRecord, verifyRecord } from '../core/crypto/record.ts';
import type { CryptoProvider, PublicKey, Signer } from '../core/crypto/suite.ts';
import { TallyError } from '../core/errors.ts';
import { HANDSHAKE_HASH_BYTES, STATIC_KEY_BYTES, type NoiseSession } from './noise.ts';

/** Domain tag of binding signatures. */
export const BINDING_TAG = 'tally/channel/binding/v1';
/** Largest certificate (or chain) a binding carries, in bytes. */
export const CERTIFICATE_BYTES_MAX = 16 * 1024;
/** Largest binding signature, in bytes (every suite's fits). */
export const BINDING_SIGNATURE_BYTES_MAX = 128;

/** What this side proves: its certificate bytes and a signer for the key the certificate names. */
export interface ChannelIdentity {
  readonly certificate: Uint8Array;
  readonly signer: Signer;
}

/** How this side judges a peer's certificate. */
export interface PeerTrust {
  /** Verifies binding signatures. */
  readonly provider: CryptoProvider;
  /**
   * Checks the certificate the scheme's way and answers the key it certifies; throws to refuse it.
   * The thrown error becomes the `cause` of a PEER_UNTRUSTED error.
   */
  verify(certificate: Uint8Array): PublicKey | Promise<PublicKey>;
}

/** One side's binding, as sent. */
export interface Binding {
  readonly certificate: Uint8Array;
  /** The sender's own Noise static public key. */
  readonly staticKey: Uint8Array;
  readonly handshakeHash: Uint8Array;
  /** Over BINDING_TAG and `{ handshakeHash, staticKey }`, by the certificate's key. */
  readonly signature: Uint8Array;
}

/** Decodes a binding. */
export const bindingCodec: Codec<Binding> = record({
  certificate: bytes({ min: 1, max: CERTIFICATE_BYTES_MAX }),
  staticKey: bytes({ length: STATIC_KEY_BYTES }),
  handshakeHash: bytes({ length: HANDSHAKE_HASH_BYTES }),
  signature: bytes({ min: 1, max: BINDING_SIGNATURE_BYTES_MAX }),
});

/** The first message each side sends in a secure link: its binding, or none when anonymous. */
export interface Hello {
  readonly binding?: Binding | undefined;
}

/** Decodes a hello. */
export const helloCodec: Codec<Hello> = record({ binding: optional(bindingCodec) });

/** The record a binding signature covers. */
export function bindingRecord(handshakeHash: Uint8Array, staticKey: Uint8Array): { handshakeHash: Uint8Array; staticKey: Uint8Array } {
  return { handshakeHash, staticKey };
}

/** Signs this side's binding for a session. */
export function createBinding(identity: ChannelIdentity, session: Pick<NoiseSession, 'handshakeHash' | 'localStaticKey'>): Binding {
  const signature = signRecord(identity.signer, BINDING_TAG, bindingRecord(session.handshakeHash, session.localStaticKey));
  return { certificate: identity.certificate, staticKey: session.localStaticKey, handshakeHash: session.handshakeHash, signature };
}

function untrusted(reason: string, message: string, cause?: unknown): TallyError<'PEER_UNTRUSTED'> {
  return new TallyError('PEER_UNTRUSTED', `certificate binding: ${message}`, { reason }, { cause });
}

function short(bytes: Uint8Array): string {
  return `${toHex(bytes.subarray(0, 8))}…`;
}

/**
 * Checks the peer's binding against this session and answers the key its certificate names.
 * @throws TallyError PEER_UNTRUSTED when the binding names another static key or session, the
 * verifier refuses the certificate, or the signature does not verify under the certificate's key
 */
export async function verifyBinding(
  binding: Binding,
  session: Pick<NoiseSession, 'handshakeHash' | 'remoteStaticKey'>,
  trust: PeerTrust,
): Promise<PublicKey> {
  if (!equalBytes(binding.staticKey, session.remoteStaticKey)) {
    throw untrusted(
      'binding names another static key',
      `expected the peer's static key ${short(session.remoteStaticKey)}, got ${short(binding.staticKey)} (a binding from another session?)`,
    );
  }
  if (!equalBytes(binding.handshakeHash, session.handshakeHash)) {
    throw untrusted('binding is for another session', `expected this session's handshake hash ${short(session.handshakeHash)}, got ${short(binding.handshakeHash)}`);
  }
  let publicKey: PublicKey;
  try {
    publicKey = await trust.verify(binding.certificate);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw untrusted('certificate refused', `the verifier refused the peer's certificate: ${why}`, e);
  }
  let valid: boolean;
  try {
    valid = verifyRecord(trust.provider, publicKey, BINDING_TAG, bindingRecord(session.handshakeHash, session.remoteStaticKey), binding.signature);
  } catch (e) {
    // An unknown suite or a malformed key from the verifier: nothing verifies under it.
    throw untrusted('binding signature invalid', `expected a signature by the certificate's ${publicKey.suite} key, got one that cannot be checked: ${e instanceof Error ? e.message : String(e)}`, e);
  }
  if (!valid) {
    throw untrusted('binding signature invalid', `expected a signature by the certificate's ${publicKey.suite} key over this session, got one that does not verify`);
  }
  return publicKey;
}
