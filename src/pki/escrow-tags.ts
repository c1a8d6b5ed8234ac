/**
 * Escrow tags: accountable anonymity for cash that moves offline from device to device. Each time a
 * device's trusted app pays a unit of cash (a coin, a token) it appends a tag naming itself, signed
 * by its device key, chained to the tag before it and sealed (HPKE, core/crypto/hpke.ts) to an escrow
 * key of the central bank. Nobody opens tags in normal operation. When one serial is deposited twice,
 * the bank opens the two copies' tags where their chains part: the device that signed the first
 * differing tag of both copies paid the same unit twice, and is named.
 *
 * A tag's content is signed and chained to the tag before it, so a later holder cannot rewrite who
 * paid earlier without breaking the chain. Each scheme uses its own domain (the signature's tag and
 * the HPKE info label), so a tag made for one scheme neither opens nor checks as another's.
 */
import { encodeCbor, decodeCbor } from '../core/cbor.ts';
import { bytes, oneOf, record, uint, type Codec, type Infer } from '../core/codec.ts';
import { equalBytes } from '../core/bytes.ts';
import { sha256 } from '../core/crypto/hash.ts';
import { HPKE_ENC_BYTES, setupBaseR, setupBaseS, type RandomSource } from '../core/crypto/hpke.ts';
import { signRecord, verifyRecord } from '../core/crypto/record.ts';
import { SUITE_NAMES, type CryptoProvider, type PublicKey, type Signer } from '../core/crypto/suite.ts';
import { TallyError } from '../core/errors.ts';

/** Bytes of a tag's payee field (the id of what the unit was paid to). */
export const ESCROW_PAYEE_BYTES = 16;
/** Most bytes of a sealed tag's ciphertext. */
export const ESCROW_CIPHERTEXT_BYTES_MAX = 1024;
/** Most bytes of one sealed tag as CBOR (its enc, its ciphertext and their keys). */
export const SEALED_TAG_BYTES_MAX = HPKE_ENC_BYTES + ESCROW_CIPHERTEXT_BYTES_MAX + 32;

/** A sealed tag as the unit carries it. */
export const sealedTagCodec = record({
  enc: bytes({ length: HPKE_ENC_BYTES }),
  ciphertext: bytes({ min: 16, max: ESCROW_CIPHERTEXT_BYTES_MAX }),
});
export type SealedTag = Infer<typeof sealedTagCodec>;

/** The digest a tag's successor chains to. */
export function tagDigest(tag: SealedTag): Uint8Array {
  return sha256(encodeCbor(tag));
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

/** A scheme's escrow domain: its labels, the length of its serials and how many tags a unit carries. */
export interface EscrowDomain {
  /** The domain tag of the device's signature over a tag. */
  readonly signTag: string;
  /** The label of the HPKE info (bound with the serial and the hop). */
  readonly infoLabel: string;
  readonly serialBytes: number;
  /** Most tags (transfers) a unit carries. */
  readonly tagsMax: number;
}

/** What a tag says, sealed: the serial, the hop, the tag before it, the payee and the paying device, signed. */
export function tagContentCodecOf(domain: EscrowDomain) {
  return record({
    serial: bytes({ length: domain.serialBytes }),
    hop: uint({ min: 1, max: domain.tagsMax }),
    /** SHA-256 of the sealed tag before this one (32 zero bytes for the first). */
    previous: bytes({ length: 32 }),
    /** What the unit was paid to (an exchange key id, a device SN, the bank). */
    payee: bytes({ length: ESCROW_PAYEE_BYTES }),
    /** The paying device's public key. */
    device: record({ suite: oneOf(SUITE_NAMES), key: bytes({ min: 32, max: 133 }) }),
    signature: bytes({ min: 32, max: 256 }),
  });
}
export type TagContent = Infer<ReturnType<typeof tagContentCodecOf>>;

/** The operations of one scheme's escrow domain. */
export interface EscrowTags {
  readonly domain: EscrowDomain;
  readonly tagContentCodec: Codec<TagContent>;
  /**
   * The paying device: the tag of the transfer of unit `serial` (its `tags` so far) to `payee`,
   * signed by the device key and sealed to the bank's escrow key.
   * @throws RangeError past the domain's tagsMax
   */
  appendTag(options: { serial: Uint8Array; tags: readonly SealedTag[]; payee: Uint8Array; device: Signer; escrowPublicKey: Uint8Array; random?: RandomSource | undefined }): SealedTag[];
  /**
   * The bank (escrow holder): opens tag `hop` (1-based) of a unit and checks it: its place in the
   * chain, the serial, and the device's signature.
   * @throws TallyError AEAD_FAILED, DECODE_FAILED, SIGNATURE_INVALID
   */
  openTag(provider: CryptoProvider, escrowPrivateKey: Uint8Array, serial: Uint8Array, tags: readonly SealedTag[], hop: number): { content: TagContent; device: PublicKey };
  /**
   * The bank, on a serial deposited twice: the device that paid it twice. Both copies are opened at
   * the hop where their chains part; each tag must check, and both must name the same device.
   * Null when the copies do not part (the same copy twice, or one a prefix of the other) or their
   * tags at the fork name two devices.
   * @throws TallyError AEAD_FAILED, DECODE_FAILED, SIGNATURE_INVALID for a tag that does not check
   */
  attribute(provider: CryptoProvider, escrowPrivateKey: Uint8Array, serial: Uint8Array, a: readonly SealedTag[], b: readonly SealedTag[]): { hop: number; device: PublicKey } | null;
}

const NONE = new Uint8Array(32);

/** The escrow tags of one scheme's domain. */
export function escrowTags(domain: EscrowDomain): EscrowTags {
  const tagContentCodec = tagContentCodecOf(domain);
  const info = (serial: Uint8Array, hop: number) => encodeCbor([domain.infoLabel, serial, hop]);

  const appendTag: EscrowTags['appendTag'] = (options) => {
    const hop = options.tags.length + 1;
    if (hop > domain.tagsMax) throw new RangeError(`a unit carries at most ${domain.tagsMax} transfers`);
    const last = options.tags[options.tags.length - 1];
    const previous = last === undefined ? NONE : tagDigest(last);
    const body = { serial: options.serial, hop, previous, payee: options.payee, device: { suite: options.device.publicKey.suite, key: options.device.publicKey.key } };
    const content: TagContent = { ...body, signature: signRecord(options.device, domain.signTag, body) };
    const context = setupBaseS({ recipientPublicKey: options.escrowPublicKey, info: info(options.serial, hop), ...(options.random === undefined ? {} : { random: options.random }) });
    return [...options.tags, { enc: context.enc, ciphertext: context.seal(encodeCbor(content)) }];
  };

  const openTag: EscrowTags['openTag'] = (provider, escrowPrivateKey, serial, tags, hop) => {
    const tag = tags[hop - 1];
    if (tag === undefined) throw new RangeError(`no tag ${hop}`);
    const context = setupBaseR({ recipientPrivateKey: escrowPrivateKey, enc: tag.enc, info: info(serial, hop) });
    const content = tagContentCodec.decode(decodeCbor(context.open(tag.ciphertext)), 'escrow tag');
    const previous = hop === 1 ? NONE : tagDigest(tags[hop - 2] as SealedTag);
    if (content.hop !== hop || !equalBytes(content.serial, serial) || !equalBytes(content.previous, previous)) {
      throw new TallyError('SIGNATURE_INVALID', `escrow tag ${hop} is not chained to its place in the unit`, { tag: domain.signTag });
    }
    const device: PublicKey = { suite: content.device.suite, key: content.device.key };
    const { signature, ...body } = content;
    if (!verifyRecord(provider, device, domain.signTag, body, signature)) throw new TallyError('SIGNATURE_INVALID', `escrow tag ${hop} is not signed by the device it names`, { tag: domain.signTag });
    return { content, device };
  };

  const attribute: EscrowTags['attribute'] = (provider, escrowPrivateKey, serial, a, b) => {
    const hop = forkHop(a, b);
    if (hop === null) return null;
    const left = openTag(provider, escrowPrivateKey, serial, a, hop);
    const right = openTag(provider, escrowPrivateKey, serial, b, hop);
    if (left.device.suite !== right.device.suite || !equalBytes(left.device.key, right.device.key)) return null;
    return { hop, device: left.device };
  };

  return { domain, tagContentCodec, appendTag, openTag, attribute };
}
