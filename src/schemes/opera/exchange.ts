/**
 * What two ODWs say to each other (paper Figure 4), as their trusted apps encode it. The wallet
 * apps only carry these: the Stage 1 offer in the clear (an ephemeral key and an anonymous proof),
 * everything after it sealed between the two trusted apps.
 *
 * Stage 1 (anonymous authentication and secure mount):
 *   offer   each side: an ephemeral X25519 key and a proof of its maker's credential, bound to the
 *           link's handshake hash, its role and that key
 *   hello   each side, sealed under a key of the mount's SEED: its SN and device key, the
 *           transaction its log holds (if any) and how its latest transactions ended
 * Stage 2 (token transaction), each message sealed under its own one-time key (otk.ts):
 *   2-1  A → B  AMT, N_A (a new transaction: its id and token count too; or a resumed one: how far A got)
 *   2-2  B → A  N'_A (and, resuming, how far B got)
 *   2-3  A → B  {Token}PTK_A, C_A, N_A           one per token
 *   2-4  B → A  C_B, N'_A                        one per token
 * Change (when A's tokens are worth AMT + c): B's own Stage 2 in the other direction, before Stage 3:
 *   2-5  A → B  N_A, how many change tokens A holds (B sends the next)
 *   2-6  B → A  {Token}PTK_B, C'_B, N'_A         one per change token
 *   2-7  A → B  C'_A, N_A                         one per change token but the last (3-1 answers it)
 * Stage 3 (verification and unmount):
 *   3-1  A → B  PTK_A, C_A, SN_A, A's signature
 *   3-2  B → A  C_B, SN_B, B's signature (and PTK_B, with change)
 *   FIN  A → B
 *
 * Pure: codecs.
 */
import { array, bytes, oneOf, optional, record, taggedUnion, uint, type Infer } from '../../core/codec.ts';
import { publicKeyCodec } from '../../core/crypto/suite.ts';
import { CREDENTIAL_PROOF_BYTES } from '../../pki/anonymous-credential.ts';
import { amountCodec, changeAmountCodec, MAKERS_MAX, MODES, nonceCodec, signatureCodec, snCodec, TOKENS_PER_MESSAGE_MAX, txidCodec } from './messages.ts';
import { SEALED_TAG_BYTES_MAX } from '../../pki/escrow-tags.ts';
import { BOX_OVERHEAD_BYTES, PTK_BYTES } from './otk.ts';
import { TOKEN_TAGS_MAX } from './token.ts';

/** Bytes of an X25519 key. */
export const EPHEMERAL_BYTES = 32;
/** Most finished transactions a hello reports. */
export const FINISHED_REPORTED_MAX = 16;
/** The largest token box: a token's CBOR is under 256 bytes, and its escrow tags (at most TOKEN_TAGS_MAX) ride with it. */
export const TOKEN_BOX_MAX = 256 + TOKEN_TAGS_MAX * SEALED_TAG_BYTES_MAX + 16 + BOX_OVERHEAD_BYTES;
/** The largest sealed chain message (a 2-3 with its token box is the largest). */
export const CHAIN_BOX_MAX = TOKEN_BOX_MAX + 256;
/** The largest sealed hello. */
export const HELLO_BOX_MAX = 1024;

const counter = uint({ max: TOKENS_PER_MESSAGE_MAX });
const flag = uint({ max: 1 });
const changeCount = uint({ min: 1, max: TOKENS_PER_MESSAGE_MAX });

/** The roles of a mount. */
export const ROLES = ['payer', 'payee'] as const;
export type Role = (typeof ROLES)[number];

/** Stage 1's first message: what a wallet app sends for its ODW, in the clear. */
export const offerCodec = record({
  ephemeral: bytes({ length: EPHEMERAL_BYTES }),
  /** Which of the bank's makers issued the credential (an index into the parameters' list). */
  maker: uint({ max: MAKERS_MAX - 1 }),
  proof: bytes({ length: CREDENTIAL_PROOF_BYTES }),
});
export type Offer = Infer<typeof offerCodec>;

/** How a transaction ended at an ODW: the payee took the tokens, or they went back to the payer (never taken). */
export const ENDINGS = ['paid', 'returned'] as const;
export type Ending = (typeof ENDINGS)[number];

/** Stage 1's sealed hello. */
export const helloCodec = record({
  sn: snCodec,
  device: publicKeyCodec,
  /** The transaction this ODW's log holds, if any. */
  pending: optional(record({ txid: txidCodec, mode: oneOf(MODES), settling: flag })),
  /** How this ODW's latest transactions ended, newest first. */
  finished: array(record({ txid: txidCodec, ending: oneOf(ENDINGS) }), { max: FINISHED_REPORTED_MAX }),
});
export type Hello = Infer<typeof helloCodec>;

/** The messages of Stages 2 and 3, each sealed under its one-time key. */
export const chainMessageCodec = taggedUnion('msg', {
  /** `change`: the payer's tokens are worth `amount + change`, and the payee gives `change` back. */
  '2-1': { txid: txidCodec, amount: amountCodec, count: uint({ min: 1, max: TOKENS_PER_MESSAGE_MAX }), nonce: nonceCodec, change: optional(changeAmountCodec) },
  '2-1r': { txid: txidCodec, nonce: nonceCodec, sent: counter, released: flag },
  /** `change`: how many tokens the change takes; `refused`: the payee cannot make the change (nothing moves); `ptk`: PTK_B, once it took the tokens. */
  '2-2': { nonce: nonceCodec, received: counter, accepted: flag, accept: optional(signatureCodec), change: optional(changeCount), refused: optional(flag), ptk: optional(bytes({ length: PTK_BYTES })) },
  '2-3': { token: bytes({ min: BOX_OVERHEAD_BYTES, max: TOKEN_BOX_MAX }), counter: uint({ min: 1, max: TOKENS_PER_MESSAGE_MAX }), nonce: nonceCodec },
  '2-4': { counter: uint({ min: 1, max: TOKENS_PER_MESSAGE_MAX }), nonce: nonceCodec },
  '2-5': { nonce: nonceCodec, received: counter },
  '2-6': { token: bytes({ min: BOX_OVERHEAD_BYTES, max: TOKEN_BOX_MAX }), counter: changeCount, nonce: nonceCodec },
  '2-7': { counter: changeCount, nonce: nonceCodec },
  '3-1': { ptk: bytes({ length: PTK_BYTES }), counter: uint({ min: 1, max: TOKENS_PER_MESSAGE_MAX }), sn: snCodec, signature: signatureCodec },
  '3-2': { counter: uint({ min: 1, max: TOKENS_PER_MESSAGE_MAX }), sn: snCodec, signature: signatureCodec, ptk: optional(bytes({ length: PTK_BYTES })) },
  fin: {},
});
export type ChainMessage = Infer<typeof chainMessageCodec>;

/** `N'_A = N_A XOR 0xFF…` (Table 1 flips the low bits of N_A; here every byte). */
export function flipNonce(nonce: Uint8Array): Uint8Array {
  return nonce.map((b) => b ^ 0xff);
}
