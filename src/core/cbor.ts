/**
 * Deterministic CBOR (RFC 8949 §4.2.1 core deterministic encoding), written and read by hand.
 *
 * The data model is deliberately small: null, booleans, integers (number or bigint), text, byte
 * strings, arrays and records with text keys. Floats, undefined values, tags and indefinite
 * lengths are refused, so one value has exactly one encoding.
 *
 * The encoder writes each value once into a growing buffer and sorts a record's entries by the
 * bytes of their encoded keys. The decoder checks canonical form as it reads (shortest heads,
 * keys in order and unique, valid UTF-8), so a document is never encoded again to be checked.
 */
export { CBOR_BYTES_MAX, type CborEncodable, type CborValue } from './cbor-model.ts';
export { encodeCbor } from './cbor-encode.ts';
export { decodeCbor } from './cbor-decode.ts';
