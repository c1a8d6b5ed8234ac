/**
 * Codecs for what a wallet keeps: the entries of its inbox, sent list, step journal, retired
 * secure elements and history, and the legacy wallet.json as a whole. Everything read back from
 * the store or from an old file goes through these, so a damaged row is an error naming its field.
 */
import { array, boolean, decodeFailure, describeValue, literal, oneOf, optional, record, text, uint, type Codec, type Infer } from '../../core/codec.ts';
import { sealedAccountKeyCodec } from '../account-key.ts';
import { base64urlText, decimalText, hexText, keyIdHex, nullable, prose, timestampMs } from '../../core/fields.ts';

/** Longest certificate, revocation list or payment kept as base64url text. */
export const BLOB_CHARS_MAX = 256 * 1024;
/** Longest revocation list kept (base64url). */
export const CRL_CHARS_MAX = 8 * 1024 * 1024;
/** Longest free-text field (a reason, a memo, a history detail). */
export const PROSE_CHARS_MAX = 64 * 1024;
/** Longest history detail (one may list the blocks of a DOT-M issue cut short). */
export const HISTORY_DETAIL_CHARS_MAX = 16 * 1024 * 1024;
/** Most entries in any one list of a legacy wallet.json accepted on migration. */
export const LEGACY_LIST_MAX = 10_000_000;

const blob = base64urlText({ max: BLOB_CHARS_MAX });
const amount = decimalText();
const id = hexText(16);
const digest = hexText(32);

/** A received payment. */
export const inboxEntryCodec = record({
  digest,
  sender: keyIdHex,
  index: decimalText({ digits: 20 }),
  amount,
  payment: blob,
  at: timestampMs,
  state: oneOf(['accepted', 'collected', 'claimed', 'refused', 'retired'] as const),
  reason: optional(prose(PROSE_CHARS_MAX)),
  waiting: optional(prose(PROSE_CHARS_MAX)),
  credited: optional(text({ min: 1, max: 64 })),
  /** Two tiers: the id of the interbank claim the node presented for it to the payer's bank (it stays accepted until that claim is settled or refused). */
  claim: optional(digest),
});

/** A payment this wallet made. */
export const sentEntryCodec = record({
  digest,
  receiver: keyIdHex,
  index: decimalText({ digits: 20 }),
  amount,
  payment: blob,
  at: timestampMs,
  confirmed: boolean,
  request: optional(text({ min: 1, max: 128, pattern: /^[0-9a-f]*$/, describe: 'a request nonce in hex' })),
});

/** Longest journal step, as JSON (a block issue cut short names its blocks). */
export const STEP_CHARS_MAX = 4 * 1024 * 1024;

const stepKind = text({ min: 1, max: 64, pattern: /^[a-z][a-z0-9-]*$/, describe: 'a step kind' });

/** A step of the journal: its kind and id, and the fields its scheme keeps (each scheme reads them with its own format). */
export type PendingStep = { readonly kind: string; readonly id: string; readonly [field: string]: unknown };

/** A step of the journal: kind and id checked, the rest kept as it is for the scheme, bounded in size. */
export const pendingStepCodec: Codec<PendingStep> = {
  expected: 'a journal step (a kind, an id and the fields of its scheme)',
  decode(value: unknown, path: string): PendingStep {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return decodeFailure(path, this.expected, describeValue(value));
    const fields: Record<string, unknown> = { ...value };
    const kind = stepKind.decode(fields['kind'], `${path}.kind`);
    const stepId = id.decode(fields['id'], `${path}.id`);
    const size = JSON.stringify(fields).length;
    if (size > STEP_CHARS_MAX) return decodeFailure(path, `a step of at most ${STEP_CHARS_MAX} characters of JSON`, `${size}`);
    return { ...fields, kind, id: stepId };
  },
};

/** A secure element retired by `tally wallet recover`. */
export const retiredCodec = record({
  device: text({ min: 1, max: 128 }),
  at: timestampMs,
  folder: text({ min: 1, max: 4096 }),
  releaseAt: optional(text({ min: 1, max: 64 })),
  released: optional(boolean),
});

/** Longest report a secure element gives of itself (JSON). */
export const SE_REPORT_CHARS_MAX = 16 * 1024;

/**
 * What the wallet's secure element last said of itself (its balance and limits, as its scheme
 * words them: JSON text), the device that said it, and when: written when a session with the SE
 * ends, removed before the SE next starts (see WalletShell).
 */
export const seReportCodec = record({
  device: text({ min: 1, max: 128 }),
  at: timestampMs,
  /** The SE's files when the report was taken (se-report.ts): the record holds only while they do. */
  files: hexText(32),
  report: text({ min: 2, max: SE_REPORT_CHARS_MAX }),
});

/** A received payment, as the payee's log keeps it (wallet-data.ts's InboxEntry). */
export type InboxEntry = Infer<typeof inboxEntryCodec>;
/** A payment this wallet made (wallet-data.ts's SentEntry). */
export type SentEntry = Infer<typeof sentEntryCodec>;
/** A retired secure element. */
export type RetiredEntry = Infer<typeof retiredCodec>;
/** What the secure element last reported of itself (see seReportCodec). */
export type SeReport = Infer<typeof seReportCodec>;

/** A line of history. */
export const historyEventCodec = record({
  at: timestampMs,
  kind: text({ min: 1, max: 64 }),
  amount: optional(text({ min: 1, max: 64 })),
  detail: optional(prose(HISTORY_DETAIL_CHARS_MAX)),
});

/** The header every wallet has, whatever its scheme. */
export const headerCodec = record({
  name: text({ min: 1, max: 32, pattern: /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/, describe: 'a wallet name' }),
  scheme: text({ min: 1, max: 32, pattern: /^[a-z][a-z0-9-]*$/, describe: 'a scheme name' }),
  node: text({ min: 1, max: 2048 }),
  currency: record({ code: text({ min: 1, max: 12 }), decimals: uint({ max: 18 }) }),
  createdAt: timestampMs,
});

/** A line of history (wallet-data.ts's HistoryEvent). */
export type HistoryEvent = Infer<typeof historyEventCodec>;
/** The header of a wallet store. */
export type StoreHeader = Infer<typeof headerCodec>;

/** The trust anchors a wallet checks certificates against. */
export const certificatesCodec = record({ root: blob, intermediary: blob, issuerNode: blob });

/** The certificates a wallet keeps. */
export type StoreCertificates = Infer<typeof certificatesCodec>;

/** The account of a wallet: its key (in hex, or sealed), key id, account id and user certificate. */
export const accountCodec = record({
  /** The key in the clear, as wallet.json of earlier versions kept it (sealed when it moves into the store). */
  secret: optional(hexText(32)),
  /** A scheme's own sealed key file (DOT-M: under the payment password). */
  sealed: optional(base64urlText({ max: 2048 })),
  /** The key sealed by the wallet's secure element host, or under the wallet passphrase (account.ts). */
  held: optional(sealedAccountKeyCodec),
  keyId: keyIdHex,
  account: text({ min: 1, max: 128 }),
  certificate: blob,
});

/** A wallet's secure element as the node certified it. */
export const deviceCodec = record({ keyId: keyIdHex, certificate: blob });

/** Longest slot of a scheme, as JSON. */
export const SLOT_CHARS_MAX = 1024 * 1024;

const slotCodec: Codec<unknown> = {
  expected: 'the data of the wallet\'s scheme (a JSON record)',
  decode(value: unknown, path: string): unknown {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return decodeFailure(path, this.expected, describeValue(value));
    const size = JSON.stringify(value).length;
    if (size > SLOT_CHARS_MAX) return decodeFailure(path, `at most ${SLOT_CHARS_MAX} characters of JSON`, `${size}`);
    return value;
  },
};

/** The fields of a legacy wallet.json (format 1). */
export const walletFileShape = {
  format: literal(1),
  name: text({ min: 1, max: 32, pattern: /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/, describe: 'a wallet name' }),
  scheme: text({ min: 2, max: 32, pattern: /^[a-z][a-z0-9-]{1,31}$/, describe: 'a scheme name' }),
  node: text({ min: 1, max: 2048 }),
  currency: record({ code: text({ min: 1, max: 12 }), decimals: uint({ max: 18 }) }),
  createdAt: timestampMs,
  user: accountCodec,
  device: nullable(deviceCodec),
  /** What the scheme's wallet keeps besides these fields (the scheme reads it with its own format). */
  slot: optional(slotCodec),
  certificates: certificatesCodec,
  crl: nullable(base64urlText({ max: CRL_CHARS_MAX })),
  inbox: array(inboxEntryCodec, { max: LEGACY_LIST_MAX }),
  sent: array(sentEntryCodec, { max: LEGACY_LIST_MAX }),
  pending: array(pendingStepCodec, { max: LEGACY_LIST_MAX }),
  retired: optional(array(retiredCodec, { max: 1024 })),
};

/** Decodes a legacy wallet.json (format 1) whole, naming the field of any damage. */
export const walletFileCodec = record(walletFileShape);

/** A legacy wallet.json (wallet-data.ts's WalletData), as decoded. */
export type LegacyWallet = Infer<typeof walletFileCodec>;
