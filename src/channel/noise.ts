/**
 * The secure session: a Noise XX handshake (Noise_XX_25519_ChaChaPoly_BLAKE2b, through the
 * noise-handshake package) over a frame channel, then a frame channel whose every frame is one
 * Noise transport message. Tampered, replayed, reordered or dropped frames fail decryption, and
 * the first failure closes the link. Who the peer is (its certificate) is bound afterwards, in
 * binding.ts. Pure apart from the package's own sodium/b4a dependencies, which are loaded by the
 * first handshake (a command that opens no link never loads them).
 */
import type NoiseState from 'noise-handshake';
import type CipherState from 'noise-handshake/cipher.js';
import { concatBytes } from '../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { literal, record, text } from '../core/codec.ts';
import { checkSize, isTallyError, TallyError } from '../core/errors.ts';
import { FRAME_BYTES_MAX } from './frame.ts';
import { Inbox, timeoutError } from './inbox.ts';
import { ReceiverSlot, sendOnClosed, type DuplexReceiver, type FrameChannel } from './stream.ts';
import type { StaticKeyPair } from './static-key.ts';

export type { StaticKeyPair } from './static-key.ts';

/** The Noise protocol name both sides run. */
export const NOISE_PROTOCOL = 'Noise_XX_25519_ChaChaPoly_BLAKE2b';
/** How long a handshake (and, in openSecureLink, the binding exchange after it) may take by default. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Largest Noise message (Noise spec §3): a transport frame's ciphertext. */
export const NOISE_MESSAGE_BYTES_MAX = 65_535;
/** Largest message a secure channel carries; longer ones are split over several Noise messages. */
export const SECURE_MESSAGE_BYTES_MAX = FRAME_BYTES_MAX;
/**
 * Most transport messages per direction. noise-handshake writes the nonce counter as 32 bits, so
 * more would reuse a nonce: the session refuses instead (open a new one).
 */
export const SESSION_MESSAGES_MAX = 0xffff_ffff;
/** Size of an X25519 static public key. */
export const STATIC_KEY_BYTES = 32;
/** Size of the handshake hash (BLAKE2b). */
export const HANDSHAKE_HASH_BYTES = 64;

const PROLOGUE_TAG = 'tally/channel/noise/v1';
/** What the plaintext hello before the handshake says it is. */
const LINK_HELLO = 'tally/link/v1';
const linkHelloCodec = record({
  hello: literal(LINK_HELLO),
  scheme: text({ min: 1, max: 40, pattern: /^[a-z0-9][a-z0-9-]*$/, describe: 'a scheme name' }),
});
const HELLO_STEP = "the peer's link hello (naming its scheme)";
const AEAD_TAG_BYTES = 16;
// Each transport plaintext starts with one byte saying whether more fragments of the message follow.
const FRAGMENT_BYTES_MAX = NOISE_MESSAGE_BYTES_MAX - AEAD_TAG_BYTES - 1;
const LAST_FRAGMENT = 0;
const MORE_FRAGMENTS = 1;

/** Which side of the handshake: the initiator speaks first. */
export type NoiseRole = 'initiator' | 'responder';


/** How to run a handshake. */
export interface HandshakeOptions {
  role: NoiseRole;
  /** This side's static key (default: a fresh one for this session). */
  staticKeyPair?: StaticKeyPair | undefined;
  /** Context both sides must agree on (a scheme name and version); a mismatch fails the handshake. */
  prologue?: Uint8Array | undefined;
  /** Longest wait for the whole handshake (default HANDSHAKE_TIMEOUT_MS). */
  handshakeTimeoutMs?: number | undefined;
  /**
   * The scheme this side runs ("ops", "dotm"). When given, each side first sends a plaintext
   * hello naming it, so that two sides of different schemes fail with SCHEME_MISMATCH naming both
   * instead of a failed handshake. Both sides must give one. The hello is not authenticated: the
   * prologue still binds the session to the scheme.
   */
  scheme?: string | undefined;
}

/** A completed handshake: the encrypted channel and what the handshake established. */
export interface NoiseSession {
  /** Frames in, frames out; encrypted and authenticated on the wire. */
  readonly channel: FrameChannel;
  readonly role: NoiseRole;
  /** The Noise handshake hash: names this session, both sides hold the same. */
  readonly handshakeHash: Uint8Array;
  readonly localStaticKey: Uint8Array;
  /** The peer's static key, as the handshake proved it holds it. */
  readonly remoteStaticKey: Uint8Array;
}

/** A plain Uint8Array copy (the package answers Node Buffers, often views into shared memory). */
function own(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

function reasonOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A frame channel whose frames are Noise transport messages. */
class SecureChannel implements FrameChannel {
  readonly unit = 'frames' as const;
  private readonly slot = new ReceiverSlot();
  private readonly sender: CipherState;
  private readonly opener: CipherState;
  private sent = 0;
  private received = 0;
  private fragments: Uint8Array[] = [];
  private fragmentBytes = 0;
  private failed = false;
  /** Where the underlying channel's frames go once the handshake hands it over. */
  readonly fromInner: DuplexReceiver = {
    data: (frame) => this.open(frame),
    closed: (error) => this.slot.end(error),
  };

  constructor(
    private readonly inner: FrameChannel,
    sendKey: Uint8Array,
    receiveKey: Uint8Array,
    Cipher: typeof CipherState,
  ) {
    this.sender = new Cipher(own(sendKey));
    this.opener = new Cipher(own(receiveKey));
  }

  send(message: Uint8Array): void {
    checkSize('secure message', message.length, SECURE_MESSAGE_BYTES_MAX, { label: 'message' });
    const closed = this.inner.closeError;
    if (closed !== undefined) throw sendOnClosed(closed);
    const count = Math.max(1, Math.ceil(message.length / FRAGMENT_BYTES_MAX));
    if (this.sent + count > SESSION_MESSAGES_MAX) {
      const error = new TallyError('FRAME_INVALID', `session used all of its ${SESSION_MESSAGES_MAX} nonces; open a new session`, { reason: 'nonces exhausted' });
      this.inner.close(error);
      throw sendOnClosed(error);
    }
    for (let i = 0; i < count; i++) {
      const piece = message.subarray(i * FRAGMENT_BYTES_MAX, (i + 1) * FRAGMENT_BYTES_MAX);
      const plaintext = new Uint8Array(1 + piece.length);
      plaintext[0] = i === count - 1 ? LAST_FRAGMENT : MORE_FRAGMENTS;
      plaintext.set(piece, 1);
      this.inner.send(own(this.sender.encrypt(plaintext)));
      this.sent++;
    }
  }

  attach(receiver: DuplexReceiver): void {
    this.slot.attach(receiver);
  }

  close(error?: TallyError): void {
    this.inner.close(error);
  }

  get closeError(): TallyError | undefined {
    return this.inner.closeError;
  }

  private open(frame: Uint8Array): void {
    if (this.failed) return;
    const number = this.received + 1;
    if (this.received >= SESSION_MESSAGES_MAX) return this.fail(`transport message ${number}: expected at most ${SESSION_MESSAGES_MAX} per session, got more`, 'nonces exhausted');
    let plaintext: Uint8Array;
    try {
      plaintext = this.opener.decrypt(frame);
    } catch (e) {
      return this.fail(
        `transport message ${number}: expected ciphertext under this session's key, got ${frame.length} bytes that fail authentication (tampered, replayed, reordered or after a lost frame)`,
        'decryption failed',
        e,
      );
    }
    this.received++;
    const flag = plaintext[0];
    if (flag !== LAST_FRAGMENT && flag !== MORE_FRAGMENTS) {
      return this.fail(`transport message ${number}: expected a fragment flag 0 or 1, got ${flag ?? 'an empty plaintext'}`, 'bad fragment');
    }
    this.fragmentBytes += plaintext.length - 1;
    if (this.fragmentBytes > SECURE_MESSAGE_BYTES_MAX) {
      return this.fail(`secure message: expected at most ${SECURE_MESSAGE_BYTES_MAX} bytes, got more than ${this.fragmentBytes - plaintext.length + 1}`, 'oversized message');
    }
    this.fragments.push(own(plaintext.subarray(1)));
    if (flag === MORE_FRAGMENTS) return;
    const message = this.fragments.length === 1 ? (this.fragments[0] as Uint8Array) : concatBytes(...this.fragments);
    this.fragments = [];
    this.fragmentBytes = 0;
    this.slot.deliver(message);
  }

  private fail(message: string, reason: string, cause?: unknown): void {
    this.failed = true;
    this.inner.close(new TallyError('FRAME_INVALID', message, { reason }, { cause }));
  }
}

/**
 * Checks the peer's plaintext hello against this side's scheme.
 * @throws TallyError SCHEME_MISMATCH naming both schemes; HANDSHAKE_FAILED for a frame that is not a hello
 */
function checkHello(frame: Uint8Array, scheme: string): void {
  let hello: { scheme: string };
  try {
    hello = linkHelloCodec.decode(decodeCbor(frame, { maxBytes: 256 }), 'link hello');
  } catch (e) {
    throw new TallyError('HANDSHAKE_FAILED', `${HELLO_STEP}: expected ${LINK_HELLO} naming a scheme, got ${reasonOf(e)} (is the peer a Tally wallet of this version?)`, { reason: 'no link hello' }, { cause: e });
  }
  if (hello.scheme !== scheme) {
    throw new TallyError('SCHEME_MISMATCH', `the peer's wallet runs scheme ${hello.scheme}, this one ${scheme}: a payment needs two wallets of the same scheme`, { local: scheme, peer: hello.scheme });
  }
}

/** Step names, for errors: which handshake message was awaited or refused. */
const STEPS = ['Noise handshake message 1 (-> e)', 'Noise handshake message 2 (<- e, ee, s, es)', 'Noise handshake message 3 (-> s, se)'] as const;

/**
 * Runs a Noise XX handshake over a frame channel (taking its receiver) and answers the encrypted
 * channel. On any failure the channel is closed with the error thrown.
 * @throws TallyError TIMEOUT when the peer does not answer in time; HANDSHAKE_FAILED for a
 * message that does not verify (another prologue, tampering, not Noise); SCHEME_MISMATCH when
 * `scheme` is given and the peer's hello names another; LINK_CLOSED when the peer closes;
 * FRAME_INVALID when the peer floods or breaks framing
 * @throws RangeError for a static key pair whose keys are not 32 bytes
 */
export async function noiseHandshake(frames: FrameChannel, options: HandshakeOptions): Promise<NoiseSession> {
  const timeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const initiator = options.role === 'initiator';
  // The package (and X25519 for a fresh key) load with the first handshake; frames that arrive
  // meanwhile wait in the channel until the inbox below takes them.
  const [{ default: Noise }, { default: Cipher }] = await Promise.all([import('noise-handshake'), import('noise-handshake/cipher.js')]);
  const keyPair = options.staticKeyPair ?? (await import('./static-key.ts')).generateStaticKeyPair();
  for (const [name, key] of [['publicKey', keyPair.publicKey], ['secretKey', keyPair.secretKey]] as const) {
    if (key.length !== STATIC_KEY_BYTES) throw new RangeError(`staticKeyPair.${name}: expected ${STATIC_KEY_BYTES} bytes, got ${key.length}`);
  }
  const state: NoiseState = new Noise('XX', initiator, { publicKey: own(keyPair.publicKey), secretKey: own(keyPair.secretKey) });
  const inbox = new Inbox(frames);
  let what: string = STEPS[0];
  // One deadline for the whole handshake; closing the channel wakes the pending read with TIMEOUT.
  const timer = Number.isFinite(timeoutMs) ? setTimeout(() => frames.close(timeoutError(what, timeoutMs)), timeoutMs) : undefined;

  const write = (n: number) => {
    what = STEPS[n] as string;
    frames.send(own(state.send()));
  };
  const read = async (n: number) => {
    what = STEPS[n] as string;
    const message = await inbox.next({ timeoutMs: Infinity, what });
    let payload: Uint8Array;
    try {
      payload = state.recv(message);
    } catch (e) {
      throw new TallyError('HANDSHAKE_FAILED', `${STEPS[n]}: expected a valid ${NOISE_PROTOCOL} message, got one that fails: ${reasonOf(e)}`, { reason: reasonOf(e) }, { cause: e });
    }
    // Tally sends no handshake payloads; whatever a peer puts there is refused, not ignored.
    if (payload.length !== 0) {
      throw new TallyError('HANDSHAKE_FAILED', `${STEPS[n]}: expected an empty payload, got ${payload.length} bytes`, { reason: 'unexpected payload' });
    }
  };
  const scheme = options.scheme;
  const readHello = async () => {
    if (scheme === undefined) return;
    what = HELLO_STEP;
    checkHello(await inbox.next({ timeoutMs: Infinity, what }), scheme);
  };

  try {
    state.initialise(encodeCbor([PROLOGUE_TAG, options.prologue ?? new Uint8Array(0)]));
    // Both hellos leave before either side reads, so each side learns the other's scheme.
    if (scheme !== undefined) frames.send(encodeCbor({ hello: LINK_HELLO, scheme }));
    if (initiator) {
      write(0);
      await readHello();
      await read(1);
      write(2);
    } else {
      await readHello();
      await read(0);
      write(1);
      await read(2);
    }
  } catch (e) {
    const error = isTallyError(e) ? e : new TallyError('HANDSHAKE_FAILED', `${what}: ${reasonOf(e)}`, { reason: reasonOf(e) }, { cause: e });
    // A scheme mismatch closes in order: what this side sent (its hello) still reaches the peer.
    if (isTallyError(error, 'SCHEME_MISMATCH')) frames.close();
    else frames.close(error);
    throw error;
  } finally {
    clearTimeout(timer);
  }

  const { tx, rx, hash, rs } = state;
  if (!state.complete || tx === null || rx === null || hash === null || rs === null) {
    const error = new TallyError('HANDSHAKE_FAILED', 'handshake: expected a complete session, got an incomplete one', { reason: 'incomplete' });
    frames.close(error);
    throw error;
  }
  const channel = new SecureChannel(frames, tx, rx, Cipher);
  // Frames that came in right behind the last handshake message (the peer's first transport
  // messages) are already in the inbox: they go to the secure channel, in order.
  inbox.handOver(channel.fromInner);
  return { channel, role: options.role, handshakeHash: own(hash), localStaticKey: own(keyPair.publicKey), remoteStaticKey: own(rs) };
}
