/** What the CBOR encoder and decoder share: the data model's types, its bound on depth and the bytes of its heads. */

/** How deep values nest: the top value is at depth 0, so 65 nested arrays are one too many. */
export const DEPTH_MAX = 64;

/** A value CBOR can carry; objects may also offer `toCbor()` to give their wire form. */
export type CborValue = null | boolean | number | bigint | string | Uint8Array | readonly CborValue[] | { readonly [key: string]: CborValue | undefined };

/** An object that knows its own wire form (e.g. `Amount`). */
export interface CborEncodable {
  toCbor(): unknown;
}

export const MAJOR_UINT = 0x00;
export const MAJOR_NEGINT = 0x20;
export const MAJOR_BYTES = 0x40;
export const MAJOR_TEXT = 0x60;
export const MAJOR_ARRAY = 0x80;
export const MAJOR_MAP = 0xa0;
export const FALSE = 0xf4;
export const TRUE = 0xf5;
export const NULL = 0xf6;
export const TWO_32 = 4294967296;
/** The largest CBOR document decoded unless a caller sets a smaller bound. */
export const CBOR_BYTES_MAX = 1024 * 1024;
