/**
 * The records an ODW's trusted app and the bank sign for each other, as CBOR: the bank's
 * parameters (currency, denominations, the OTK hash, the makers whose anonymous credentials a
 * genuine ODW holds, the escrow key of the tokens' tags), charging tokens into an ODW from an account and its answer, depositing tokens
 * back and its receipt, and the settlement online of a transaction two ODWs never finished: the
 * report each side uploads and the bank's answer. Each is signed under its own domain tag; the
 * bank's key is the issuer node's certified key; an ODW signs with its registered device key.
 *
 * Pure: codecs, and the signing helpers of the core.
 */
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { array, bigint, bytes, oneOf, optional, record, uint, type Infer } from '../../core/codec.ts';
import { timestampMs } from '../../core/fields.ts';
import { CREDENTIAL_PUBLIC_KEY_BYTES } from '../../pki/anonymous-credential.ts';
import { OTK_HASHES } from './otk.ts';
import { currencyCodec, TOKEN_SERIAL_BYTES, tokenCodec, tokenValueCodec } from './token.ts';

/** The scheme's name, in routes and wallet folders. */
export const OPERA_SCHEME = 'opera';
/** The label of a genuine ODW's anonymous credential. */
export const ODW_CREDENTIAL_LABEL = 'tally/opera/odw/v1';
/** Most tokens in one charge, one deposit, one payment or one report (the paper's Figure 8 goes to 1,000). */
export const TOKENS_PER_MESSAGE_MAX = 1024;
/**
 * Most bytes of a signed request carrying tokens with their escrow tags (a deposit): what fits the
 * node's largest body as base64url. An ODW deposits fewer tokens at a time when theirs would not.
 */
export const TOKENS_REQUEST_BYTES_MAX = 760 * 1024;
/** Most denominations the bank publishes. */
export const DENOMINATIONS_MAX = 32;
/** Most makers (OEMs) whose credentials the bank lists. */
export const MAKERS_MAX = 16;
/** Bytes of a nonce an ODW draws for a request it wants a fresh answer to. */
export const NONCE_BYTES = 16;
/** Bytes of an ODW's serial number (SN): the first bytes of SHA-256 of its device key. */
export const SN_BYTES = 16;
/** Bytes of a transaction id. */
export const TXID_BYTES = 16;

/** The domain tags of the scheme's signed records. */
export const PARAMS_TAG = 'tally/opera/params/v1';
export const CHARGE_REQUEST_TAG = 'tally/opera/charge-request/v1';
export const CHARGE_TAG = 'tally/opera/charge/v1';
export const DEPOSIT_REQUEST_TAG = 'tally/opera/deposit-request/v1';
export const DEPOSIT_RECEIPT_TAG = 'tally/opera/deposit-receipt/v1';
export const SETTLE_REPORT_TAG = 'tally/opera/settle-report/v1';
export const SETTLED_TAG = 'tally/opera/settled/v1';
/** What the payer signs in Msg 3-1 (releasing its token key) and the payee in Msg 3-2. */
export const RELEASE_TAG = 'tally/opera/release/v1';
export const ACCEPT_TAG = 'tally/opera/accept/v1';

export const signatureCodec = bytes({ min: 32, max: 128 });
export const nonceCodec = bytes({ length: NONCE_BYTES });
export const snCodec = bytes({ length: SN_BYTES });
export const txidCodec = bytes({ length: TXID_BYTES });
export const amountCodec = bigint({ min: 0n, max: AMOUNT_MINOR_MAX });
/** The change a payee gives back when the payer's tokens are worth more than the amount: positive. */
export const changeAmountCodec = bigint({ min: 1n, max: AMOUNT_MINOR_MAX });
const tokens = array(tokenCodec, { min: 1, max: TOKENS_PER_MESSAGE_MAX });
const flag = uint({ max: 1 });

/** A maker whose credentials mark genuine ODWs: its credential key and the reference PCR value of the ODW build it attests. */
export const makerCodec = record({
  publicKey: bytes({ length: CREDENTIAL_PUBLIC_KEY_BYTES }),
  reference: bytes({ length: 32 }),
});
export type Maker = Infer<typeof makerCodec>;

/** The bank's parameters, signed. */
export const paramsBodyCodec = record({
  currency: currencyCodec,
  /** Token values, ascending. */
  denominations: array(tokenValueCodec, { min: 1, max: DENOMINATIONS_MAX }),
  /** The hash of the one-time-key chain (Equation 1). */
  hash: oneOf(OTK_HASHES),
  makers: array(makerCodec, { max: MAKERS_MAX }),
  /** The bank's escrow key (X25519): the tags of tokens paid offline are sealed to it (escrow.ts). */
  escrowKey: bytes({ length: 32 }),
  /** When the bank signed these. */
  at: timestampMs,
});
export type ParamsBody = Infer<typeof paramsBodyCodec>;
export const paramsCodec = record({ body: paramsBodyCodec, signature: signatureCodec });
export type Params = Infer<typeof paramsCodec>;

/** How many tokens of a value. */
export const tokenCountCodec = record({ value: tokenValueCodec, count: uint({ min: 1, max: TOKENS_PER_MESSAGE_MAX }) });
export type TokenCount = Infer<typeof tokenCountCodec>;

/** An ODW asks to be charged: the tokens it wants, by value, for `amount` taken from its holder's account. */
export const chargeRequestBodyCodec = record({ nonce: nonceCodec, amount: amountCodec, tokens: array(tokenCountCodec, { min: 1, max: DENOMINATIONS_MAX }) });
export type ChargeRequestBody = Infer<typeof chargeRequestBodyCodec>;
export const chargeRequestCodec = record({ body: chargeRequestBodyCodec, signature: signatureCodec });
export type ChargeRequest = Infer<typeof chargeRequestCodec>;

/** The bank's answer to a charge: the tokens, bound to the request's nonce. */
export const chargeBodyCodec = record({ nonce: nonceCodec, tokens });
export type ChargeBody = Infer<typeof chargeBodyCodec>;
export const chargeCodec = record({ body: chargeBodyCodec, signature: signatureCodec });
export type Charge = Infer<typeof chargeCodec>;

/**
 * What a bank publishes of OPERA to the other banks (through the central bank's directory, signed
 * by its intermediary key): its issuer node's certificate, whose key signs its tokens, and its
 * signed parameters. A wallet of another bank checks the certificate to the root it pinned, through
 * the bank's intermediary certificate, and the parameters under the certificate's key.
 */
export const publicationBodyCodec = record({ issuerNode: bytes({ max: 4096 }), params: paramsCodec });
export type PublicationBody = Infer<typeof publicationBodyCodec>;

/**
 * The evidence of an interbank claim on one token (at most CLAIM_EVIDENCE_BYTES_MAX): the token as
 * the holder's ODW deposited it at the payee's bank, with its escrow tags, and the key id of that
 * ODW, which the issuing bank records as the token's depositor.
 */
export const interbankEvidenceCodec = record({ token: tokenCodec, depositor: bytes({ length: 32 }) });
export type InterbankEvidence = Infer<typeof interbankEvidenceCodec>;

/** An ODW deposits tokens back to its holder's account (they left its repository). */
export const depositRequestBodyCodec = record({ nonce: nonceCodec, tokens });
export type DepositRequestBody = Infer<typeof depositRequestBodyCodec>;
export const depositRequestCodec = record({ body: depositRequestBodyCodec, signature: signatureCodec });
export type DepositRequest = Infer<typeof depositRequestCodec>;

/**
 * What the bank did with each token of a deposit. `presented`: a token of another bank, presented
 * to that bank as an interbank claim; the holder is credited once the claim is settled.
 */
export const DEPOSIT_OUTCOMES = ['credited', 'double-spend', 'refused', 'presented'] as const;
export type DepositOutcome = (typeof DEPOSIT_OUTCOMES)[number];

/** The bank's receipt of a deposit. */
export const depositReceiptBodyCodec = record({
  nonce: nonceCodec,
  tokens: array(record({ serial: bytes({ length: TOKEN_SERIAL_BYTES }), outcome: oneOf(DEPOSIT_OUTCOMES) }), { min: 1, max: TOKENS_PER_MESSAGE_MAX }),
  credited: amountCodec,
});
export type DepositReceiptBody = Infer<typeof depositReceiptBodyCodec>;
export const depositReceiptCodec = record({ body: depositReceiptBodyCodec, signature: signatureCodec });
export type DepositReceipt = Infer<typeof depositReceiptCodec>;

/**
 * What the payer signs when it releases its token key (Msg 3-1), and what the payee signs when it
 * took the tokens (Msg 3-2): the transaction, both ODWs, the amount, the count and the change the
 * payee gives back (the payer's tokens are worth amount + change). The payee keeps the payer's
 * release; the bank reads it in a settlement report as proof that Stage 3 reached it.
 */
export const transferClaimCodec = record({ txid: txidCodec, payer: snCodec, payee: snCodec, amount: amountCodec, count: uint({ min: 1, max: TOKENS_PER_MESSAGE_MAX }), change: optional(changeAmountCodec) });
export type TransferClaim = Infer<typeof transferClaimCodec>;

/** A side of a transaction, as the log records it (Figure 4, §4.1). */
export const MODES = ['send', 'receive'] as const;
export type Mode = (typeof MODES)[number];

/**
 * An ODW's report of a transaction it will no longer finish offline: from the moment it signs this,
 * it never releases its token key (payer) or takes the tokens (payee) of this transaction again.
 */
export const settleReportBodyCodec = record({
  nonce: nonceCodec,
  txid: txidCodec,
  mode: oneOf(MODES),
  /** This ODW's SN, and its partner's. */
  self: snCodec,
  partner: snCodec,
  amount: amountCodec,
  /** The change the payee gives back (the payer's tokens are worth amount + change). */
  change: optional(changeAmountCodec),
  /** TR_n: the tokens of the transaction; TR_k: those sent (payer) or received (payee); FLG: the last one's ACK delivered. */
  count: uint({ min: 1, max: TOKENS_PER_MESSAGE_MAX }),
  done: uint({ max: TOKENS_PER_MESSAGE_MAX }),
  flag,
  /** The payer sent Msg 3-1 (its token key): from then on it cannot know whether the payee took the tokens. */
  released: flag,
  /** The payee took the tokens (Msg 3-1 reached it). */
  accepted: flag,
  /** The tokens this ODW pays in the transaction: the payer's, or the payee's change (empty without change). */
  tokens: array(tokenCodec, { max: TOKENS_PER_MESSAGE_MAX }),
  /** The payee's copy of the payer's release signature, when it accepted. */
  release: optional(signatureCodec),
});
export type SettleReportBody = Infer<typeof settleReportBodyCodec>;
export const settleReportCodec = record({ body: settleReportBodyCodec, signature: signatureCodec });
export type SettleReport = Infer<typeof settleReportCodec>;

/**
 * How the bank settled a reported transaction, for the reporting side:
 * - `refunded`: the payer's tokens went back to its holder's account (their serials are spent);
 * - `paid`: the payee took the tokens; the transaction is over for this side;
 * - `abandoned`: the payee never took them and never will;
 * - `pending`: the payer released its key and the payee has not reported yet; report again later.
 */
export const SETTLED_OUTCOMES = ['refunded', 'paid', 'abandoned', 'pending'] as const;
export type SettledOutcome = (typeof SETTLED_OUTCOMES)[number];

/** The bank's answer to a settlement report, bound to the report's nonce. */
export const settledBodyCodec = record({ nonce: nonceCodec, txid: txidCodec, outcome: oneOf(SETTLED_OUTCOMES), credited: amountCodec });
export type SettledBody = Infer<typeof settledBodyCodec>;
export const settledCodec = record({ body: settledBodyCodec, signature: signatureCodec });
export type Settled = Infer<typeof settledCodec>;

/** An ODW's serial number: the first SN_BYTES of SHA-256 over its device public key's bytes. */
export { odwSerial } from './serial.ts';

// Signing and checking are the core's, shared by every scheme's signed records.
export { checkSignedWith as checkSigned, signedWith as signed } from '../../core/crypto/record.ts';
