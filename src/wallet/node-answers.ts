/**
 * Codecs for the issuer node's answers, one per route the wallet and the CLI call. Each reads the
 * fields its caller uses (others are ignored: a newer node may add some) and bounds every one, so a
 * malformed answer is a DECODE_FAILED naming the field (`answer.results[3].status`), never a crash
 * deep inside a step.
 */
import { array, boolean, decodeFailure, describeValue, oneOf, optional, text, uint, type Codec, type Infer } from '../core/codec.ts';
import { base64urlText, keyIdHex, looseRecord, textMap } from '../core/fields.ts';
import { SUITE_NAMES } from '../core/crypto/suite.ts';

/** Longest certificate or encoded message in an answer (base64url). */
const BLOB_CHARS_MAX = 256 * 1024;
/** Longest revocation list in an answer (base64url). */
const CRL_CHARS_MAX = 4 * 1024 * 1024;
/** Most results, findings or fraud cases in one answer. */
export const ANSWER_ITEMS_MAX = 100_000;

/** A certificate or encoded message in an answer (base64url). */
export const blob = base64urlText({ max: BLOB_CHARS_MAX });
/** A revocation list in an answer (base64url). */
export const crl = base64urlText({ max: CRL_CHARS_MAX });
/** An amount as the node writes it (decimal with the currency's fraction digits). */
export const amount = text({ min: 1, max: 64, pattern: /^-?[0-9]+(\.[0-9]+)?$/, describe: 'a decimal amount' });
/** A code or status word. */
export const word = text({ min: 1, max: 64 });
/** A message of the node. */
export const message = text({ max: 4096 });
const account = text({ min: 1, max: 128 });

/** GET /v1/info. */
export const infoAnswer = looseRecord({
  currency: looseRecord({ code: text({ min: 1, max: 12 }), decimals: uint({ max: 18 }) }),
  certificates: looseRecord({ root: blob, intermediary: blob, issuerNode: blob }),
  suites: array(oneOf(SUITE_NAMES), { max: 16 }),
  limits: looseRecord({ bodyBytesMax: uint({ max: 2 ** 40 }), requestWindowMs: uint({ max: 2 ** 40 }), holdingLimit: amount, offlinePaymentsMax: uint({ max: 2 ** 40 }) }),
  /** Every scheme the node serves, by name (what each shows of itself is read by its own wallet part). */
  schemes: optional(textMap(looseRecord({}), { max: 64, keyCharsMax: 32 })),
});
/** What /v1/info answers. */
export type InfoAnswer = Infer<typeof infoAnswer>;

/** POST /v1/users: the account registered for a user key. */
export const userAnswer = looseRecord({ account, keyId: keyIdHex, certificate: blob });

/** POST /v1/devices: a device's certificate. */
export const deviceAnswer = looseRecord({ keyId: keyIdHex, certificate: blob });

/** GET /v1/accounts/:id. */
export const accountAnswer = looseRecord({ balance: amount });

/** GET /v1/revocations. */
export const revocationsAnswer = looseRecord({ version: uint({ max: 2 ** 40 }), list: crl });

const transfer = looseRecord({ id: text({ min: 1, max: 128 }), amount, currency: text({ min: 1, max: 12 }) });

/** POST /v1/operator/mint. */
export const mintAnswer = looseRecord({ transfer });
/** POST of a mint to an on-chain address: who, how much, the transaction, whether gas was given. */
export const chainMintAnswer = looseRecord({ to: text({ min: 42, max: 42 }), amount, currency: text({ min: 3, max: 3 }), transaction: text({ min: 66, max: 66 }), gas: boolean });

/** An amount in the audit: a decimal, or `N minor units` for another currency. */
const auditMoney = text({ min: 1, max: 64 });

/** GET /v1/audit: the fields the CLI prints (the rest is ignored). */
export const auditAnswer = looseRecord({
  balanced: boolean,
  ledgerBalanced: boolean,
  currency: text({ min: 1, max: 12 }),
  currencies: array(looseRecord({
    currency: text({ min: 1, max: 12 }),
    totalIssued: auditMoney,
    totalOnline: auditMoney,
    // Absent from the answers of nodes older than the two tiers.
    totalSettlement: optional(auditMoney),
    totalReserves: optional(auditMoney),
    totalOfflineFloat: auditMoney,
    // Absent from the answers of nodes older than the shard databases.
    totalClearing: optional(auditMoney),
    balanced: boolean,
  }), { max: 64 }),
  exposure: array(looseRecord({
    scheme: word,
    floatAccount: account,
    float: auditMoney,
    expected: auditMoney,
    difference: auditMoney,
    attributed: auditMoney,
    unexplained: auditMoney,
    balanced: boolean,
    exposed: array(looseRecord({ device: text({ min: 1, max: 128 }), amount: auditMoney, fraud: boolean }), { max: ANSWER_ITEMS_MAX }),
  }), { max: 64 }),
  problemCount: uint({ max: 2 ** 40 }),
  transferCount: uint({ max: 2 ** 40 }),
  floatsUnchecked: optional(array(looseRecord({ account, amount: auditMoney }), { max: 64 })),
  schemes: optional(array(looseRecord({ scheme: word, balanced: boolean, lines: array(text({ max: 400 }), { max: 64 }) }), { max: 64 })),
  // A node with shard databases (tally node start --shard-database).
  shards: optional(looseRecord({
    balanced: boolean,
    places: array(looseRecord({ place: text({ min: 1, max: 8 }), balanced: boolean, online: auditMoney, offlineFloat: auditMoney, clearing: auditMoney }), { max: 65 }),
    inFlight: array(looseRecord({ from: text({ min: 1, max: 8 }), to: text({ min: 1, max: 8 }), count: uint({ max: 2 ** 40 }), amount: auditMoney }), { max: 65 * 64 }),
    problems: array(text({ max: 400 }), { max: 65 * 64 }),
  })),
});

/** A JSON record answer decoded by `inner`, with the record as it came (to pass through to `--json` unchanged). */
export function withRaw<T>(inner: Codec<T>): Codec<{ value: T; raw: Record<string, unknown> }> {
  return {
    expected: inner.expected,
    decode: (input, path = 'answer') => {
      const value = inner.decode(input, path);
      if (typeof input !== 'object' || input === null || Array.isArray(input)) return decodeFailure(path, 'a record', describeValue(input));
      return { value, raw: { ...input } };
    },
  };
}
