/**
 * The state of the OPS trusted app (Figure 4's variables and what Tally adds), with its codec and
 * bounds: kept apart from the commands so each file holds one concept.
 */
import { array, bytes, optional, record, text, uint, type Infer } from '../../core/codec.ts';
import { publicKeyCodec } from '../../core/crypto/suite.ts';
import {
  amountCodec,
  balanceCodec,
  certificateBytesCodec,
  collectedEntryCodec,
  counterCodec,
  keyIdBytesCodec,
  paidEntryCodec,
  REPORT_ENTRIES_MAX,
} from './messages.ts';

/**
 * Most entries in T.inPaymentLog; past it, Collect waits for a sync to prune. The log lives in the
 * secure element's append-only records (see `opsLogs`), so a Collect does not pay for its length.
 */
export const IN_PAYMENT_LOG_MAX = 8192;
/** Largest revocation list the TA keeps, encoded. */
export const TA_CRL_BYTES_MAX = 64 * 1024;

/**
 * Most other intermediaries a TA holds (with one revocation list each): in two tiers, the banks whose
 * devices it takes payments from offline.
 */
export const PEERS_MAX = 16;
/** Largest root-signed list of revoked intermediaries the TA keeps, encoded. */
export const TA_ROOT_CRL_BYTES_MAX = 16 * 1024;
/** Largest revocation list of one other intermediary the TA keeps, encoded. */
export const TA_PEER_CRL_BYTES_MAX = 16 * 1024;

/** How many of its latest withdrawals a TA can sign again (with its current counters) for the node. */
export const WITHDRAWALS_KEPT_MAX = 8;

/** A withdrawal the TA made: its operation number and amount. */
export const withdrawnEntryCodec = record({ i: counterCodec, amount: amountCodec });

/** An entry of T.inPaymentLog. */
export const logEntryCodec = record({ sender: keyIdBytesCodec, index: counterCodec, notAfter: uint({ max: Number.MAX_SAFE_INTEGER }) });
/** An entry of T.inPaymentLog. */
export type LogEntry = Infer<typeof logEntryCodec>;

/** The TA's state (Figure 4's variables, and what Tally adds for limits and sync). */
export const opsStateCodec = record({
  /** The pinned root certificate (set by Init). */
  root: optional(certificateBytesCodec),
  /** Key id of the account holder this TA was registered for. */
  owner: optional(keyIdBytesCodec),
  /** T.cert. */
  cert: optional(certificateBytesCodec),
  /** The intermediary certificate between T.cert and the root. */
  intermediary: optional(certificateBytesCodec),
  /** vk_S: the issuer node's key, which signs deposits and acks. */
  serverKey: optional(publicKeyCodec),
  /** T.bal. */
  bal: balanceCodec,
  /** T.i: deposits and withdrawals. */
  i: counterCodec,
  /** T.j: payments. */
  j: counterCodec,
  /** Collects, numbered for sync. */
  collectSeq: counterCodec,
  currency: text({ max: 12 }),
  holdingLimit: balanceCodec,
  offlinePaymentsMax: uint({ max: 2 ** 32 - 1 }),
  /** T.inPaymentLog, as (sender key id, index) with the sender certificate's end, for pruning. */
  inPaymentLog: array(logEntryCodec, { max: IN_PAYMENT_LOG_MAX }),
  /** Payments made since the last ack. */
  paid: array(paidEntryCodec, { max: REPORT_ENTRIES_MAX }),
  /** Payments collected since the last ack. */
  collected: array(collectedEntryCodec, { max: REPORT_ENTRIES_MAX }),
  /** The latest withdrawals, so that a confirmation can be signed again with current counters. */
  withdrawals: optional(array(withdrawnEntryCodec, { max: WITHDRAWALS_KEPT_MAX })),
  /** The intermediary's latest revocation list, encoded. */
  crl: optional(bytes({ max: TA_CRL_BYTES_MAX })),
  /**
   * Other intermediaries' certificates, each verified under the pinned root when it was taken
   * (two tiers: a payer's chain may reach the root through one of them).
   */
  peers: optional(array(certificateBytesCodec, { max: PEERS_MAX })),
  /** The root-signed list of revoked intermediaries, encoded (never replaced by an older one). */
  rootCrl: optional(bytes({ max: TA_ROOT_CRL_BYTES_MAX })),
  /** Each peer's own revocation list of its users and devices, encoded, at most one per peer (never replaced by an older one). */
  peerCrls: optional(array(bytes({ max: TA_PEER_CRL_BYTES_MAX }), { max: PEERS_MAX })),
  /** The latest time vouched for by the issuer node (certificate start, ack times). */
  trustedTime: uint({ max: Number.MAX_SAFE_INTEGER }),
});
/** The TA's state. */
export type OpsState = Infer<typeof opsStateCodec>;

/**
 * The state's logs, which the secure element host keeps in append-only records rather than in the
 * state it reseals on every command: T.inPaymentLog, and what was paid and collected since the
 * last ack (a sync drops the oldest of those).
 */
export const opsLogs = {
  inPaymentLog: { entry: logEntryCodec, max: IN_PAYMENT_LOG_MAX },
  paid: { entry: paidEntryCodec, max: REPORT_ENTRIES_MAX },
  collected: { entry: collectedEntryCodec, max: REPORT_ENTRIES_MAX },
} as const;
