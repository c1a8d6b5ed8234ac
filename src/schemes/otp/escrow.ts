/**
 * Accountable anonymity, beyond the OTP paper (which cannot name a double spender): each offline
 * transfer of a coin appends a tag naming the paying TA, sealed (HPKE, hpke.ts) to an escrow key of
 * the central bank. Nobody opens tags in normal operation. When one serial is deposited twice, the
 * node opens the tags of the two copies where their chains part: the TA that signed the first
 * differing tag of both copies paid the same coin twice, and is named (and revoked by the node).
 *
 * A tag's content is signed by the paying TA's device key and chained to the tag before it, so a
 * later holder cannot rewrite who paid earlier without breaking the chain.
 */
import { encodeCbor, decodeCbor } from '../../core/cbor.ts';
import { bytes, oneOf, record, uint, type Infer } from '../../core/codec.ts';
import { equalBytes } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { signRecord, verifyRecord } from '../../core/crypto/record.ts';
import { SUITE_NAMES, type CryptoProvider, type PublicKey, type Signer } from '../../core/crypto/suite.ts';
import { TallyError } from '../../core/errors.ts';
import { HPKE_ENC_BYTES, setupBaseR, setupBaseS, type RandomSource } from './hpke.ts';

/** The domain tag of a TA's signature over a transfer tag. */
export const ESCROW_TAG = 'tally/otp/escrow-tag/v1';
const INFO_LABEL = 'tally/otp/escrow/v1';
/** Most transfers a coin carries tags for (a coin past its hops must be deposited). */
export const TAGS_MAX = 64;

/** What a tag says, sealed: who paid (the paying TA's device key), to which exchange key, at which hop, after which tag. */
export const tagContentCodec = record({
  serial: bytes({ length: 32 }),
  hop: uint({ min: 1, max: TAGS_MAX }),
  /** SHA-256 of the sealed tag before this one (32 zero bytes for the first). */
  previous: bytes({ length: 32 }),
  /** The exchange key the coin was sealed to (its id). */
  payee: bytes({ length: 16 }),
  /** The paying TA's device public key. */
  device: record({ suite: oneOf(SUITE_NAMES), key: bytes({ min: 32, max: 133 }) }),
  signature: bytes({ min: 32, max: 256 }),
});
export type TagContent = Infer<typeof tagContentCodec>;

/** A sealed tag as the coin carries it. */
export const sealedTagCodec = record({
  enc: bytes({ length: HPKE_ENC_BYTES }),
  ciphertext: bytes({ min: 16, max: 1024 }),
});
export type SealedTag = Infer<typeof sealedTagCodec>;

function info(serial: Uint8Array, hop: number): Uint8Array {
  return encodeCbor([INFO_LABEL, serial, hop]);
}

/** The digest a tag's successor chains to. */
export function tagDigest(tag: SealedTag): Uint8Array {
  return sha256(encodeCbor(tag));
}

const NONE = new Uint8Array(32);

/**
 * The paying TA: the tag of the transfer of coin `serial` (its `tags` so far) to exchange key
 * `payee`, signed by the TA's device key and sealed to the bank's escrow key.
 * @throws RangeError past TAGS_MAX
 */
export function appendTag(options: { serial: Uint8Array; tags: readonly SealedTag[]; payee: Uint8Array; device: Signer; escrowPublicKey: Uint8Array; random?: RandomSource | undefined }): SealedTag[] {
  const hop = options.tags.length + 1;
  if (hop > TAGS_MAX) throw new RangeError(`a coin carries at most ${TAGS_MAX} transfers`);
  const last = options.tags[options.tags.length - 1];
  const previous = last === undefined ? NONE : tagDigest(last);
  const body = { serial: options.serial, hop, previous, payee: options.payee, device: { suite: options.device.publicKey.suite, key: options.device.publicKey.key } };
  const content: TagContent = { ...body, signature: signRecord(options.device, ESCROW_TAG, body) };
  const context = setupBaseS({ recipientPublicKey: options.escrowPublicKey, info: info(options.serial, hop), ...(options.random === undefined ? {} : { random: options.random }) });
  return [...options.tags, { enc: context.enc, ciphertext: context.seal(encodeCbor(content)) }];
}

/**
 * The node (escrow holder): opens tag `hop` (1-based) of a coin and checks it: its place in the
 * chain, the serial, and the device's signature.
 * @throws TallyError AEAD_FAILED, DECODE_FAILED, SIGNATURE_INVALID
 */
export function openTag(provider: CryptoProvider, escrowPrivateKey: Uint8Array, serial: Uint8Array, tags: readonly SealedTag[], hop: number): { content: TagContent; device: PublicKey } {
  const tag = tags[hop - 1];
  if (tag === undefined) throw new RangeError(`no tag ${hop}`);
  const context = setupBaseR({ recipientPrivateKey: escrowPrivateKey, enc: tag.enc, info: info(serial, hop) });
  const content = tagContentCodec.decode(decodeCbor(context.open(tag.ciphertext)), 'escrow tag');
  const previous = hop === 1 ? NONE : tagDigest(tags[hop - 2] as SealedTag);
  if (content.hop !== hop || !equalBytes(content.serial, serial) || !equalBytes(content.previous, previous)) {
    throw new TallyError('SIGNATURE_INVALID', `escrow tag ${hop} is not chained to its place in the coin`, { tag: ESCROW_TAG });
  }
  const device: PublicKey = { suite: content.device.suite, key: content.device.key };
  const { signature, ...body } = content;
  if (!verifyRecord(provider, device, ESCROW_TAG, body, signature)) throw new TallyError('SIGNATURE_INVALID', `escrow tag ${hop} is not signed by the device it names`, { tag: ESCROW_TAG });
  return { content, device };
}

/** The first hop (1-based) at which two copies' tag chains differ, or null when one is a prefix of the other. */
export function forkHop(a: readonly SealedTag[], b: readonly SealedTag[]): number | null {
  const shared = Math.min(a.length, b.length);
  for (let i = 0; i < shared; i++) {
    const x = a[i] as SealedTag;
    const y = b[i] as SealedTag;
    if (!equalBytes(x.enc, y.enc) || !equalBytes(x.ciphertext, y.ciphertext)) return i + 1;
  }
  return null;
}

/**
 * The node, on a serial deposited twice: the device that paid it twice. Both copies are opened at
 * the hop where their chains part; each tag must check, and both must name the same device (the
 * one that held the coin at that hop and sent it to two payees).
 * Null when the copies do not part (the same copy twice) or their tags at the fork name two devices.
 * @throws TallyError AEAD_FAILED, DECODE_FAILED, SIGNATURE_INVALID for a tag that does not check
 */
export function attribute(provider: CryptoProvider, escrowPrivateKey: Uint8Array, serial: Uint8Array, a: readonly SealedTag[], b: readonly SealedTag[]): { hop: number; device: PublicKey } | null {
  const hop = forkHop(a, b);
  if (hop === null) return null;
  const left = openTag(provider, escrowPrivateKey, serial, a, hop);
  const right = openTag(provider, escrowPrivateKey, serial, b, hop);
  if (left.device.suite !== right.device.suite || !equalBytes(left.device.key, right.device.key)) return null;
  return { hop, device: left.device };
}
