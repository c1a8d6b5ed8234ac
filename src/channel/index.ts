// The peer link, pure layers only (browser-safe). The TCP transport is Node-only: import it from './tcp.ts'.
export {
  BINDING_SIGNATURE_BYTES_MAX,
  BINDING_TAG,
  bindingCodec,
  bindingRecord,
  CERTIFICATE_BYTES_MAX,
  createBinding,
  helloCodec,
  verifyBinding,
  type Binding,
  type ChannelIdentity,
  type Hello,
  type PeerTrust,
} from './binding.ts';
export {
  FAULT_DELAY_MS,
  injectFaults,
  seededRandom,
  type DirectionFaults,
  type FaultPlan,
  type FaultSelector,
  type FaultStats,
  type FaultyDuplex,
} from './faults.ts';
export { encodeFrame, FRAME_BYTES_MAX, FRAME_HEADER_BYTES, FrameDecoder, framed, type DecodedChunk } from './frame.ts';
export { Inbox, INBOX_BYTES_MAX, INBOX_FRAMES_MAX, timeoutError, type InboxLimits, type WaitOptions } from './inbox.ts';
export { Link, MESSAGE_BYTES_MAX, openLink, RECEIVE_TIMEOUT_MS, toFrames, type LinkOptions, type ReceiveOptions } from './link.ts';
export { memoryPair, type MemoryPairOptions } from './memory.ts';
export { generateStaticKeyPair } from './static-key.ts';
export {
  HANDSHAKE_HASH_BYTES,
  HANDSHAKE_TIMEOUT_MS,
  NOISE_MESSAGE_BYTES_MAX,
  NOISE_PROTOCOL,
  noiseHandshake,
  SECURE_MESSAGE_BYTES_MAX,
  SESSION_MESSAGES_MAX,
  STATIC_KEY_BYTES,
  type HandshakeOptions,
  type NoiseRole,
  type NoiseSession,
  type StaticKeyPair,
} from './noise.ts';
export { openSecureLink, type PeerInfo, type SecureLink, type SecureLinkOptions } from './secure-link.ts';
export {
  CLOSED_BY_PEER,
  CLOSED_HERE,
  linkClosed,
  ReceiverSlot,
  sendOnClosed,
  type ByteStream,
  type Duplex,
  type DuplexReceiver,
  type FrameChannel,
  type UnitKind,
} from './stream.ts';
