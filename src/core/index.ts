export { Amount, amountCodec, AMOUNT_MINOR_MAX, currency, type Currency } from './amount.ts';
export { assert, assertUnreachable } from './assert.ts';
export { compareBytes, concatBytes, copyBytes, equalBytes, fromBase64url, fromHex, toBase64url, toHex, utf8 } from './bytes.ts';
export { CBOR_BYTES_MAX, decodeCbor, encodeCbor, type CborEncodable } from './cbor.ts';
export * as c from './codec.ts';
export type { Codec, Infer, OptionalCodec, RecordOf } from './codec.ts';
export * from './crypto/index.ts';
export { checkSize, errorFromWire, isErrorCode, isTallyError, TallyError, tallyError, type ErrorCode, type ErrorDetailMap } from './errors.ts';
export { decodeText, encodeText, TEXT_CHARS_MAX, TEXT_PREFIX } from './text.ts';
