/**
 * A token, OPERA's unit of self-verifiable cash (paper §3.1, Table 1): `{SN ‖ value ‖ issue date}`
 * signed by the central bank's key `SK_c`. Here the bank's key is the issuer node's certified key,
 * which a wallet's trusted app checks to the root it pinned at provisioning; a token also names its
 * currency. Tokens come in the bank's denominations, so a payment moves few of them.
 *
 * Pure: the codec, the bank's signing, the check a trusted app makes of every token it takes.
 */
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { equalBytes, toHex } from '../../core/bytes.ts';
import { array, bigint, bytes, optional, record, text, type Infer } from '../../core/codec.ts';
import type { CryptoProvider, PublicKey, Signer } from '../../core/crypto/suite.ts';
import { checkSignedWith, signedWith } from '../../core/crypto/record.ts';
import { TallyError } from '../../core/errors.ts';
import { timestampMs } from '../../core/fields.ts';
import { sealedTagCodec, type SealedTag } from '../../pki/escrow-tags.ts';

/** The domain tag of the bank's signature on a token. */
export const TOKEN_TAG = 'tally/opera/token/v1';
/** Bytes of a token's serial number, drawn by the bank. */
export const TOKEN_SERIAL_BYTES = 16;
/** Most escrow tags a token carries (escrow.ts): one per payment, and the deposit's. */
export const TOKEN_TAGS_MAX = 8;

export const currencyCodec = text({ min: 3, max: 3, pattern: /^[A-Z]{3}$/, describe: 'an ISO 4217 code' });
export const tokenValueCodec = bigint({ min: 1n, max: AMOUNT_MINOR_MAX });

/** What the bank signs: the serial, the value in minor units, the currency and the issue date. */
export const tokenBodyCodec = record({
  serial: bytes({ length: TOKEN_SERIAL_BYTES }),
  value: tokenValueCodec,
  currency: currencyCodec,
  /** When the bank issued it (ms since the epoch). */
  issued: timestampMs,
});
export type TokenBody = Infer<typeof tokenBodyCodec>;

/**
 * A token: its body and the bank's signature, and, once it was paid offline, the chain of escrow
 * tags its payers appended (escrow.ts; outside what the bank signs, opened only by the bank).
 */
export const tokenCodec = record({ body: tokenBodyCodec, signature: bytes({ min: 32, max: 128 }), tags: optional(array(sealedTagCodec, { min: 1, max: TOKEN_TAGS_MAX })) });
export type Token = Infer<typeof tokenCodec>;

/** The escrow tags a token carries (none before its first payment). */
export function tagsOf(token: Token): readonly SealedTag[] {
  return token.tags ?? [];
}

/** The token as the bank signed it, without its escrow tags. */
export function bare(token: Token): Token {
  return { body: token.body, signature: token.signature };
}

/** The bank signs a token. */
export function signToken(bank: Signer, body: TokenBody): Token {
  return signedWith(tokenBodyCodec, bank, TOKEN_TAG, body);
}

/**
 * Checks a token's signature against the bank's key and its currency.
 * @throws TallyError OPERA_TOKEN_INVALID naming the serial and what is wrong
 */
export function checkToken(provider: CryptoProvider, bank: PublicKey, currency: string, token: Token): TokenBody {
  let body: TokenBody;
  try {
    body = checkSignedWith(provider, bank, tokenBodyCodec, TOKEN_TAG, token);
  } catch (e) {
    throw new TallyError('OPERA_TOKEN_INVALID', `token ${toHex(token.body.serial)} does not carry the bank's signature`, { serial: toHex(token.body.serial), reason: 'signature' }, { cause: e });
  }
  if (body.currency !== currency) throw new TallyError('OPERA_TOKEN_INVALID', `token ${toHex(body.serial)} is in ${body.currency}, not ${currency}`, { serial: toHex(body.serial), reason: 'currency' });
  return body;
}

/** The total value of tokens. */
export function valueOf(tokens: readonly Token[]): bigint {
  return tokens.reduce((sum, t) => sum + t.body.value, 0n);
}

/** True when two tokens carry the same serial. */
export function sameSerial(a: Token, b: Token): boolean {
  return equalBytes(a.body.serial, b.body.serial);
}
