/**
 * What the OPERA routes on the node share: the float account, the denominations, the bank's
 * options, the caller's ODW, decoding a CBOR field of a body, finding an ODW by its serial number,
 * and answering each ODW request once per nonce (node-answers.ts).
 */
import { z } from '@hono/zod-openapi';
import { equalBytes } from '../../core/bytes.ts';
import { decodeCbor } from '../../core/cbor.ts';
import type { Codec } from '../../core/codec.ts';
import type { PublicKey, SuiteName } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { ApiProblem, decodeField, isSubjectRevoked, type Queryable, type TransactionHandle } from '../../issuer/plugin.ts';
import { OPERA_SCHEME, odwSerial, TOKENS_REQUEST_BYTES_MAX } from './messages.ts';
import type { OtkHash } from './otk.ts';

/** The ledger account holding the value of every OPERA token issued and neither deposited nor refunded. */
export const OPERA_FLOAT_ACCOUNT = 'float:opera';

/**
 * The token values the bank issues, ascending, in minor units (0.01 to 500.00 with two decimals):
 * the 1-2-5 series of notes and coins, so that any amount takes few tokens (paper §3.1).
 */
export const DENOMINATIONS: readonly bigint[] = [1n, 2n, 5n, 10n, 20n, 50n, 100n, 200n, 500n, 1000n, 2000n, 5000n, 10_000n, 20_000n, 50_000n];

/** The bank's choices. */
export interface OperaNodeOptions {
  /** The hash of the ODWs' one-time-key chain (Equation 1): SHA-256, or the paper's SHA-1. */
  readonly hash: OtkHash;
}

/** The bank as deployed. */
export const OPERA_NODE_DEFAULTS: OperaNodeOptions = { hash: 'sha256' };

/**
 * Most bytes of one token on the wire without its escrow tags: a 16-byte serial, a value, a
 * currency, an issue date and a signature of at most 128 bytes, with their CBOR keys, fit in 256.
 */
export const TOKEN_WIRE_BYTES_MAX = 256;
/** Most bytes of a signed request carrying tokens (a deposit with the tokens' tags, a settlement report). */
export { TOKENS_REQUEST_BYTES_MAX } from './messages.ts';
/** Most base64url characters of such a request in a JSON body. */
export const TOKENS_REQUEST_CHARS_MAX = Math.ceil((TOKENS_REQUEST_BYTES_MAX * 4) / 3);

/** An OpenAPI answer of `schema`. */
export const answer = (description: string, schema: z.ZodType) => ({ description, content: { 'application/json': { schema } } });

interface DeviceRow {
  key_id: string;
  suite: SuiteName;
  public_key: Uint8Array;
  owner_key_id: string;
  scheme: string;
}

/**
 * The caller's ODW: its registered device key.
 * @throws ApiProblem DEVICE_UNKNOWN when the caller has no such device or it is another scheme's, CERT_REVOKED when its certificate is revoked
 */
export async function ownOdw(tx: TransactionHandle, device: string, owner: string): Promise<PublicKey> {
  const { rows } = await tx.query<DeviceRow>('SELECT key_id, suite, public_key, owner_key_id, scheme FROM devices WHERE key_id = $1', [device]);
  const row = rows[0];
  if (row === undefined || row.owner_key_id !== owner) throw new ApiProblem('DEVICE_UNKNOWN', `the caller has no device ${device}`);
  if (row.scheme !== OPERA_SCHEME) throw new ApiProblem('DEVICE_UNKNOWN', `device ${device} is registered for ${row.scheme}, not ${OPERA_SCHEME}`);
  if (await isSubjectRevoked(tx, device)) throw new ApiProblem('CERT_REVOKED', `device ${device} is revoked`);
  return { suite: row.suite, key: new Uint8Array(row.public_key) };
}

/**
 * The registered ODW whose serial number is `sn` (revoked or not: what it signed before stays its
 * own), or undefined. The SN is derived from the device key (serial.ts); the index finds it.
 */
export async function odwBySerial(q: Queryable, sn: Uint8Array): Promise<{ keyId: string; key: PublicKey } | undefined> {
  const { rows } = await q.query<DeviceRow>(
    // The scheme is written out so that the planner matches the partial index opera_devices_by_sn.
    `SELECT key_id, suite, public_key, owner_key_id, scheme FROM devices WHERE scheme = '${OPERA_SCHEME}' AND substring(sha256(public_key) FROM 1 FOR 16) = $1`,
    [sn],
  );
  for (const row of rows) {
    const key: PublicKey = { suite: row.suite, key: new Uint8Array(row.public_key) };
    if (equalBytes(odwSerial(key), sn)) return { keyId: row.key_id, key };
  }
  return undefined;
}

/** Decodes a base64url CBOR field of the body with `codec`. @throws ApiProblem BODY_INVALID, TOO_LARGE */
export function decodeCborField<T>(field: string, text: string, codec: Codec<T>, max: number): T {
  const bytes = decodeField(`body.${field}`, text);
  if (bytes.length > max) throw new ApiProblem('TOO_LARGE', `body.${field} of ${bytes.length} bytes is over the limit of ${max}`, { max });
  try {
    return codec.decode(decodeCbor(bytes, { maxBytes: max }), field);
  } catch (e) {
    if (isTallyError(e)) throw new ApiProblem('BODY_INVALID', `body.${field}: ${e.message}`, {});
    throw e;
  }
}

