/**
 * The link runner: a wallet's side of a peer link over TCP with the secure session (Noise XX), bound
 * to its user certificate, with the scheme's prologue, and the trust it puts in the peer.
 */
import type { PublicKey, Signer } from '../core/crypto/suite.ts';
import { connectTcp, listenTcp } from '../channel/tcp.ts';
import { openSecureLink, type SecureLink } from '../channel/secure-link.ts';
import type { ByteStream } from '../channel/stream.ts';
import type { nodeProvider } from '../providers/node-crypto.ts';

/** A link's identity and trust: the wallet's user certificate and key, and the peers it accepts (neither, for anonymous payments). */
export interface LinkSide {
  /** Noise prologue and scheme name of the link hello (a peer of another scheme is refused). */
  readonly prologue: Uint8Array;
  readonly scheme: string;
  /** The wallet's certificate and key shown to the peer; none for an anonymous side. */
  readonly identity?: { certificate: Uint8Array; signer: Signer } | undefined;
  /** How a peer's certificate is checked; none when the peer is anonymous. */
  readonly trust?: { provider: typeof nodeProvider; verify(certificate: Uint8Array): PublicKey } | undefined;
}

/**
 * The payee side of a link: listens on `port`, takes one peer (waiting at most `timeoutMs`), and
 * runs the secure session's handshake as responder.
 */
export async function listenLink(side: LinkSide, options: { port: number; host: string; timeoutMs: number; onListening?: ((port: number) => void) | undefined }): Promise<SecureLink> {
  const server = await listenTcp(options.port, options.host);
  let stream: ByteStream;
  try {
    options.onListening?.(server.port);
    stream = await server.accept({ timeoutMs: options.timeoutMs });
  } finally {
    await server.close();
  }
  // The payer's handshake is bounded like every other wait of the session.
  return openSecureLink(stream, { role: 'responder', prologue: side.prologue, scheme: side.scheme, handshakeTimeoutMs: options.timeoutMs, identity: side.identity, trust: side.trust });
}

/** The payer side of a link: connects (retried while nobody listens yet) and runs the handshake, all within `timeoutMs`. */
export async function connectLink(side: LinkSide, host: string, port: number, timeoutMs: number): Promise<SecureLink> {
  const started = Date.now();
  const stream = await connectTcp(host, port, { timeoutMs, retryRefused: true });
  const handshakeTimeoutMs = Math.max(1, timeoutMs - (Date.now() - started));
  return openSecureLink(stream, { role: 'initiator', prologue: side.prologue, scheme: side.scheme, handshakeTimeoutMs, identity: side.identity, trust: side.trust });
}
