/**
 * What the OPS routes on the node share: the float account, the caller's device, decoding a CBOR
 * field of a body, opening fraud cases, and a sender's offline-limit check.
 */
import { z } from '@hono/zod-openapi';
import { decodeCbor } from '../../core/cbor.ts';
import type { Codec } from '../../core/codec.ts';
import type { PublicKey, SuiteName } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { decodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { ApiProblem, decodeField, isSubjectRevoked, refusal, type IssuerServices, type TransactionHandle } from '../../issuer/plugin.ts';
import { OPS_SCHEME } from './messages.ts';
import { checkOfflineLimit, lockOpsDevice, openFraudCase, type FraudFinding } from './node-settlement.ts';

/** The ledger account holding what is out on OPS devices. */
export const OPS_FLOAT_ACCOUNT = 'float:ops';

export const answer = (description: string, schema: z.ZodType) => ({ description, content: { 'application/json': { schema } } });

interface DeviceRow {
  suite: SuiteName;
  public_key: Uint8Array;
  owner_key_id: string;
  scheme: string;
  certificate: Uint8Array;
}

/**
 * The caller's OPS device, or a stored refusal. A revoked device is refused unless `allowRevoked`
 * (its sync reports are still evidence).
 */
export async function ownDevice(
  tx: TransactionHandle,
  device: string,
  owner: string,
  options: { allowRevoked?: boolean } = {},
): Promise<{ key: PublicKey; certificate: Certificate } | { refused: ReturnType<typeof refusal> }> {
  const { rows } = await tx.query<DeviceRow>('SELECT suite, public_key, owner_key_id, scheme, certificate FROM devices WHERE key_id = $1', [device]);
  const row = rows[0];
  if (row === undefined || row.owner_key_id !== owner) return { refused: refusal('DEVICE_UNKNOWN', `the caller has no device ${device}`) };
  if (row.scheme !== OPS_SCHEME) return { refused: refusal('DEVICE_UNKNOWN', `device ${device} is registered for ${row.scheme}, not ${OPS_SCHEME}`) };
  if (options.allowRevoked !== true && (await isSubjectRevoked(tx, device))) return { refused: refusal('CERT_REVOKED', `device ${device} is revoked`) };
  return { key: { suite: row.suite, key: new Uint8Array(row.public_key) }, certificate: decodeCertificate(new Uint8Array(row.certificate)) };
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

/** Opens the findings as fraud cases (each revokes its device); answers those newly opened. */
export async function openCases(tx: TransactionHandle, services: IssuerServices, findings: readonly FraudFinding[]): Promise<FraudFinding[]> {
  const opened: FraudFinding[] = [];
  for (const finding of findings) {
    const done = await openFraudCase(tx, services.identity.intermediary.signer, services.now(), finding);
    if (done !== null) opened.push(done);
  }
  return opened;
}

/** The offline payment limit in a device's certificate. */
async function limitOf(tx: TransactionHandle, device: string): Promise<number | null> {
  const { rows } = await tx.query<{ certificate: Uint8Array }>('SELECT certificate FROM devices WHERE key_id = $1', [device]);
  if (rows[0] === undefined) return null;
  return decodeCertificate(new Uint8Array(rows[0].certificate)).body.extensions.offlinePaymentsMax ?? null;
}

/** The offline-limit check for a payment's sender, against the sender's own last report. */
export async function senderLimitFinding(tx: TransactionHandle, sender: string): Promise<FraudFinding | null> {
  const limit = await limitOf(tx, sender);
  if (limit === null) return null;
  const row = await lockOpsDevice(tx, sender);
  return checkOfflineLimit(tx, sender, row.reportedJ, limit);
}
