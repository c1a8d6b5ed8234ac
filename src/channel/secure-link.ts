/**
 * Opening a secure link: Noise XX handshake, then each side's hello (its certificate binding, or
 * none when anonymous) as the first encrypted message, then typed messages. The link is handed to
 * the scheme only after the peer's binding verified. Pure.
 */
import type { PublicKey } from '../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { createBinding, helloCodec, verifyBinding, type Binding, type ChannelIdentity, type Hello, type PeerTrust } from './binding.ts';
import { timeoutError } from './inbox.ts';
import { Link, toFrames, type LinkOptions } from './link.ts';
import { HANDSHAKE_TIMEOUT_MS, noiseHandshake, type HandshakeOptions } from './noise.ts';
import type { ByteStream, FrameChannel } from './stream.ts';

/** How to open a secure link. */
export interface SecureLinkOptions extends HandshakeOptions, LinkOptions {
  /** What this side proves; absent: this side stays anonymous (sends no binding). */
  identity?: ChannelIdentity | undefined;
  /** How to judge the peer's certificate; absent: the peer must be anonymous (a binding is refused). */
  trust?: PeerTrust | undefined;
}

/** What this side learnt about the peer. */
export interface PeerInfo {
  /** The peer's Noise static key. */
  readonly staticKey: Uint8Array;
  /** Names this session; both sides hold the same. */
  readonly handshakeHash: Uint8Array;
  /** The peer's verified binding (its certificate and signature), unless the peer is anonymous. */
  readonly binding?: Binding | undefined;
  /** The key the verifier read from the peer's certificate, unless the peer is anonymous. */
  readonly publicKey?: PublicKey | undefined;
}

/** An open secure link and its peer. */
export interface SecureLink {
  readonly link: Link;
  readonly peer: PeerInfo;
}

/**
 * Runs the handshake and the binding exchange, within `handshakeTimeoutMs` in all. On failure the
 * link is closed with the error thrown. The peer may already have its link when this side refuses
 * it: it then sees LINK_CLOSED on its next receive.
 * @throws TallyError TIMEOUT, HANDSHAKE_FAILED, LINK_CLOSED, FRAME_INVALID (see noiseHandshake);
 * PEER_UNTRUSTED when the peer's binding is missing though required, or does not verify
 * @throws RangeError for a static key pair whose keys are not 32 bytes
 */
export async function openSecureLink(carrier: ByteStream | FrameChannel, options: SecureLinkOptions): Promise<SecureLink> {
  const timeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const started = Date.now();
  const session = await noiseHandshake(toFrames(carrier), options);
  const link = new Link(session.channel, options);
  try {
    link.send({ binding: options.identity === undefined ? undefined : createBinding(options.identity, session) });
    const what = 'hello (certificate binding)';
    let hello: Hello;
    try {
      hello = await link.receive(helloCodec, { timeoutMs: Math.max(0, timeoutMs - (Date.now() - started)), what });
    } catch (e) {
      if (isTallyError(e, 'TIMEOUT')) throw timeoutError(what, timeoutMs);
      if (isTallyError(e, 'DECODE_FAILED')) throw new TallyError('HANDSHAKE_FAILED', e.message, { reason: 'malformed hello' }, { cause: e });
      throw e;
    }
    const peer = { staticKey: session.remoteStaticKey, handshakeHash: session.handshakeHash };
    if (hello.binding === undefined) {
      if (options.trust !== undefined) {
        throw new TallyError('PEER_UNTRUSTED', 'certificate binding: expected one from the peer, got none (anonymous peer)', { reason: 'no binding' });
      }
      return { link, peer };
    }
    if (options.trust === undefined) {
      throw new TallyError('HANDSHAKE_FAILED', 'certificate binding: expected none (this side takes anonymous peers only), got one', { reason: 'unexpected binding' });
    }
    const publicKey = await verifyBinding(hello.binding, session, options.trust);
    return { link, peer: { ...peer, binding: hello.binding, publicKey } };
  } catch (e) {
    const error = isTallyError(e) ? e : new TallyError('HANDSHAKE_FAILED', `certificate binding: ${e instanceof Error ? e.message : String(e)}`, { reason: 'binding failed' }, { cause: e });
    link.close(error);
    throw error;
  }
}
