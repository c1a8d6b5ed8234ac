/**
 * JSON values the ledger stores (transfer references, stored responses): plain data without
 * bigints, which JSON cannot carry exactly; put amounts in as decimal strings.
 */

/** A JSON value. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/** The JSON text of a value and its size in UTF-8 bytes. */
export function jsonText(value: JsonValue): { text: string; bytes: number } {
  const text = JSON.stringify(value);
  return { text, bytes: Buffer.byteLength(text, 'utf8') };
}
