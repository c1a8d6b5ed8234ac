/**
 * What the OTP routes on the node share: the float account, the periods the bank runs on (epochs,
 * the deposit grace, the exchange keys' validity), the caller's OTP device, and decoding a CBOR
 * field of a body.
 */
import type { KeyObject } from 'node:crypto';
import { z } from '@hono/zod-openapi';
import { decodeCbor } from '../../core/cbor.ts';
import type { Codec } from '../../core/codec.ts';
import type { PublicKey, SuiteName } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { ApiProblem, decodeField, isSubjectRevoked, refusal, type StoredResponse, type TransactionHandle } from '../../issuer/plugin.ts';
import { OTP_SCHEME } from './messages.ts';

/** The ledger account holding the value of every OTP coin withdrawn and not yet deposited or refunded. */
export const OTP_FLOAT_ACCOUNT = 'float:otp';
/** The length of an epoch (ms): each epoch has its own signing classes. */
export const EPOCH_MS = 30 * 86_400_000;
/** How long after its last payment day a coin may still be deposited (ms). */
export const DEPOSIT_GRACE_MS = 7 * 86_400_000;
/** The offline transfers a coin allows (its program's checkMaxHops). */
export const HOPS = 8;
/** How long an exchange key the bank signs is valid (ms). */
export const EXCHANGE_KEY_VALIDITY_MS = 30 * 86_400_000;
/** The smallest and largest denominations the bank issues, in minor units (0.01 and 500.00 with two decimals). */
export const DENOMINATION_MIN = 1n;
export const DENOMINATION_MAX = 50_000n;

/** The periods of an OTP bank; tests shorten them to move through epochs with the node's clock. */
export interface OtpNodeOptions {
  readonly epochMs: number;
  readonly hops: number;
  readonly depositGraceMs: number;
  /** Where a new class's RSA key comes from (a fresh 2048-bit key each by default; tests share a few). */
  readonly classKey?: (() => Promise<KeyObject>) | undefined;
}

/** The periods of the scheme as deployed. */
export const OTP_NODE_DEFAULTS: OtpNodeOptions = { epochMs: EPOCH_MS, hops: HOPS, depositGraceMs: DEPOSIT_GRACE_MS };

/** An OpenAPI answer of `schema`. */
export const answer = (description: string, schema: z.ZodType) => ({ description, content: { 'application/json': { schema } } });

interface DeviceRow {
  suite: SuiteName;
  public_key: Uint8Array;
  owner_key_id: string;
  scheme: string;
}

/**
 * The caller's OTP device, or a stored refusal: DEVICE_UNKNOWN when the caller has no such device
 * or it is another scheme's, CERT_REVOKED when its certificate is revoked.
 */
export async function ownOtpDevice(tx: TransactionHandle, device: string, owner: string): Promise<{ key: PublicKey } | { refused: StoredResponse }> {
  const { rows } = await tx.query<DeviceRow>('SELECT suite, public_key, owner_key_id, scheme FROM devices WHERE key_id = $1', [device]);
  const row = rows[0];
  if (row === undefined || row.owner_key_id !== owner) return { refused: refusal('DEVICE_UNKNOWN', `the caller has no device ${device}`) };
  if (row.scheme !== OTP_SCHEME) return { refused: refusal('DEVICE_UNKNOWN', `device ${device} is registered for ${row.scheme}, not ${OTP_SCHEME}`) };
  if (await isSubjectRevoked(tx, device)) return { refused: refusal('CERT_REVOKED', `device ${device} is revoked`) };
  return { key: { suite: row.suite, key: new Uint8Array(row.public_key) } };
}

/** Decodes base64url CBOR with `codec`, or throws the codec's error. @throws TallyError DECODE_FAILED, CBOR_*, TOO_LARGE */
export function decodeCborBytes<T>(bytes: Uint8Array, codec: Codec<T>, max: number, path: string): T {
  return codec.decode(decodeCbor(bytes, { maxBytes: max }), path);
}

/** Decodes a base64url CBOR field of the body with `codec`. @throws ApiProblem BODY_INVALID, TOO_LARGE */
export function decodeCborField<T>(field: string, text: string, codec: Codec<T>, max: number): T {
  const bytes = decodeField(`body.${field}`, text);
  if (bytes.length > max) throw new ApiProblem('TOO_LARGE', `body.${field} of ${bytes.length} bytes is over the limit of ${max}`, { max });
  try {
    return decodeCborBytes(bytes, codec, max, field);
  } catch (e) {
    if (isTallyError(e)) throw new ApiProblem('BODY_INVALID', `body.${field}: ${e.message}`, {});
    throw e;
  }
}

