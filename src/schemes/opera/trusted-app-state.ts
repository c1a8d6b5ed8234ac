/**
 * The state of the ODW's trusted app (paper Figure 3): the token repository (the ORM's store, read
 * once: a token read moves out), the payer's output of the running transaction, the payee's
 * transaction buffer (tokens received, still sealed under the payer's PTK, unusable), the
 * transaction log of Figure 4 / §4.1 (mode, partner SN, TR_k, TR_n, FLG, and what resuming or
 * settling it needs), the mount of Stage 1 with its one-time-key chain, how the latest
 * transactions ended, the anonymous credential, the bank's parameters and key, and the other banks
 * whose tokens it takes.
 *
 * The output holds the tokens this ODW pays in the running transaction (the payer's, or the payee's
 * change); the buffer those it receives, sealed (the payee's, or the payer's change).
 *
 * The repository, the output and the buffer are the host's append-only logs: a token received or
 * sent costs its own record, not a reseal of every token held.
 */
import { array, bytes, oneOf, optional, record, uint, type Infer } from '../../core/codec.ts';
import { publicKeyCodec } from '../../core/crypto/suite.ts';
import { CREDENTIAL_BYTES, CREDENTIAL_HOLDER_BYTES, CREDENTIAL_PUBLIC_KEY_BYTES } from '../../pki/anonymous-credential.ts';
import { EPHEMERAL_BYTES, ENDINGS, ROLES, TOKEN_BOX_MAX } from './exchange.ts';
import { amountCodec, changeAmountCodec, MAKERS_MAX, makerCodec, MODES, nonceCodec, paramsBodyCodec, signatureCodec, snCodec, TOKENS_PER_MESSAGE_MAX, tokenCountCodec, txidCodec, DENOMINATIONS_MAX } from './messages.ts';
import { PTK_BYTES, SEED_BYTES } from './otk.ts';
import { tokenCodec } from './token.ts';

/** Most tokens an ODW holds. */
export const REPOSITORY_MAX = 4096;
/** How many finished transactions an ODW remembers (what its hellos report of them). */
export const FINISHED_MAX = 64;

const flag = uint({ max: 1 });
const key32 = bytes({ length: 32 });

/** A token of the transaction buffer: its position and its box. */
export const bufferedCodec = record({ counter: uint({ min: 1, max: TOKENS_PER_MESSAGE_MAX }), box: bytes({ max: TOKEN_BOX_MAX }) });
export type Buffered = Infer<typeof bufferedCodec>;

/** The change leg of a transaction in the log. */
export const changeLogCodec = record({
  amount: changeAmountCodec,
  count: uint({ max: TOKENS_PER_MESSAGE_MAX }),
  done: uint({ max: TOKENS_PER_MESSAGE_MAX }),
  ptk: optional(bytes({ length: PTK_BYTES })),
});
export type ChangeLog = Infer<typeof changeLogCodec>;

/** The transaction log (Figure 4): one transaction at a time. */
export const logCodec = record({
  txid: txidCodec,
  mode: oneOf(MODES),
  /** The partner's SN and device key (from its hello). */
  partner: snCodec,
  partnerKey: publicKeyCodec,
  amount: amountCodec,
  /** TR_n, TR_k, FLG. */
  count: uint({ min: 1, max: TOKENS_PER_MESSAGE_MAX }),
  done: uint({ max: TOKENS_PER_MESSAGE_MAX }),
  flag,
  /** The payer's token key. */
  ptk: optional(bytes({ length: PTK_BYTES })),
  /** The payer sent Msg 3-1; the payee took the tokens. */
  released: flag,
  accepted: flag,
  /** Reported to the bank for settlement online: never finished offline any more. */
  settling: flag,
  /** The payee's copy of the payer's release signature (Msg 3-1), and its own acceptance (Msg 3-2). */
  release: optional(signatureCodec),
  accept: optional(signatureCodec),
  /**
   * The change leg, when the payer's tokens are worth amount + change: the payee's own Stage 2 in
   * the other direction (its change tokens in its output, sealed under its PTK_B; the payer's
   * buffer). `count`: the change's tokens (0 until the payer learns it from Msg 2-2); `done`: those
   * sent (payee) or received (payer).
   */
  change: optional(changeLogCodec),
});
export type TxLog = Infer<typeof logCodec>;

/** Where a mount is. */
export const MOUNT_STAGES = ['offered', 'met', 'greeted', 'chain'] as const;

/** The mount of Stage 1 and the one-time-key chain on it. */
export const mountCodec = record({
  role: oneOf(ROLES),
  stage: oneOf(MOUNT_STAGES),
  handshakeHash: bytes({ min: 32, max: 64 }),
  ephemeralPrivate: bytes({ length: EPHEMERAL_BYTES }),
  ephemeralPublic: bytes({ length: EPHEMERAL_BYTES }),
  /** The amount the payee expects, if it said. */
  expect: optional(amountCodec),
  seed: optional(bytes({ length: SEED_BYTES })),
  partner: optional(record({ sn: snCodec, device: publicKeyCodec })),
  /** After greet: a new transaction, or the one both logs hold. */
  plan: optional(oneOf(['new', 'resume'] as const)),
  /** The current one-time key and the index of the next message. */
  otk: optional(bytes({ min: 20, max: 32 })),
  index: uint({ max: 4 * TOKENS_PER_MESSAGE_MAX + 16 }),
  /** N_A of this mount. */
  nonce: optional(nonceCodec),
});
export type Mount = Infer<typeof mountCodec>;

/** The anonymous credential of a genuine ODW, as its maker issued it. */
export const heldCredentialCodec = record({
  maker: bytes({ length: CREDENTIAL_PUBLIC_KEY_BYTES }),
  reference: key32,
  holder: bytes({ length: CREDENTIAL_HOLDER_BYTES }),
  credential: bytes({ length: CREDENTIAL_BYTES }),
});
export type HeldCredential = Infer<typeof heldCredentialCodec>;

/** Most other banks whose tokens an ODW takes. */
export const PEERS_MAX = 32;

/**
 * Another bank of the same root whose tokens this ODW takes (docs/opera.md, "Several banks"): its
 * issuer node's key, checked to the pinned root, and the makers its signed parameters list.
 */
export const peerBankCodec = record({ bank: publicKeyCodec, makers: array(makerCodec, { max: MAKERS_MAX }) });
export type PeerBank = Infer<typeof peerBankCodec>;

/** The TA's state. */
export const operaStateCodec = record({
  root: optional(bytes({ max: 4096 })),
  owner: optional(key32),
  bank: optional(publicKeyCodec),
  params: optional(paramsBodyCodec),
  /** The other banks whose tokens and ODWs this ODW takes, as its latest sync gave them. */
  peers: optional(array(peerBankCodec, { max: PEERS_MAX })),
  credential: optional(heldCredentialCodec),
  /** A credential asked of the maker: the holder's secret and the key the credential comes sealed to. */
  credentialRequest: optional(record({ holder: bytes({ length: CREDENTIAL_HOLDER_BYTES }), boxPrivate: key32 })),
  repository: array(tokenCodec, { max: REPOSITORY_MAX }),
  outgoing: array(tokenCodec, { max: TOKENS_PER_MESSAGE_MAX }),
  buffer: array(bufferedCodec, { max: TOKENS_PER_MESSAGE_MAX }),
  log: optional(logCodec),
  mount: optional(mountCodec),
  finished: array(record({ txid: txidCodec, ending: oneOf(ENDINGS) }), { max: FINISHED_MAX }),
  charge: optional(record({ nonce: nonceCodec, amount: amountCodec, tokens: array(tokenCountCodec, { min: 1, max: DENOMINATIONS_MAX }) })),
  deposit: optional(record({ nonce: nonceCodec, tokens: array(tokenCodec, { min: 1, max: TOKENS_PER_MESSAGE_MAX }) })),
  /** The nonce of the latest settlement report, until the bank's answer. */
  settle: optional(nonceCodec),
});
export type OperaState = Infer<typeof operaStateCodec>;

/** The first state. */
export function initialState(): OperaState {
  return { repository: [], outgoing: [], buffer: [], finished: [] };
}

/** The host keeps these fields as append-only logs. */
export const OPERA_LOGS = {
  repository: { entry: tokenCodec, max: REPOSITORY_MAX },
  outgoing: { entry: tokenCodec, max: TOKENS_PER_MESSAGE_MAX },
  buffer: { entry: bufferedCodec, max: TOKENS_PER_MESSAGE_MAX },
} as const;
