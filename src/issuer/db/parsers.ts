/**
 * The type parsers both backends install, so a ledger query reads the same JavaScript values on
 * PGlite and on PostgreSQL: exact bigints for money, never a float that silently rounds.
 */

/** PostgreSQL type oids the parsers replace. */
export const PG_TYPE = { INT8: 20, NUMERIC: 1700 } as const;

const INTEGRAL = /^-?[0-9]+$/;

/** int8 text to bigint (both drivers would otherwise give a string or a rounded number). */
export function parseInt8(text: string): bigint {
  return BigInt(text);
}

/**
 * numeric text to bigint when it is integral, as `sum(int8)` is; a fraction or NaN stays its exact
 * text, since a number would round it.
 */
export function parseNumeric(text: string): bigint | string {
  return INTEGRAL.test(text) ? BigInt(text) : text;
}

/** The parsers by oid, in the shape both drivers accept. */
export const TYPE_PARSERS: Readonly<Record<number, (text: string) => unknown>> = {
  [PG_TYPE.INT8]: parseInt8,
  [PG_TYPE.NUMERIC]: parseNumeric,
};
