/**
 * Retiring an OPS device on the node: its owner retires a device whose secure element is lost or
 * refuses to run. The node revokes it and holds what it can vouch the device held in escrow; the
 * device's payments that surface meanwhile are paid from it, and the rest goes to the owner, once,
 * when the hold is over.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { ApiProblem, errorBody, formatMinor, idempotent, isSubjectRevoked, json, keyIdHex, refusal, requireUser, revokeCertificate, transfer, transferJson, validBody, type IssuerEnv, type IssuerServices, type JsonValue, type StoredResponse, type TransactionHandle } from '../../issuer/plugin.ts';
import { OPS_SCHEME } from './messages.ts';
import { knownHolding, lockOpsDevice, retirementOf, retirementValue, type OpsDeviceRow, type RetirementRow } from './node-settlement.ts';
import { OPS_FLOAT_ACCOUNT, answer, ownDevice } from './node-common.ts';

/**
 * How long the node holds a retired device's value before it goes to the owner: the payments the
 * device made offline and nobody reported yet surface meanwhile (a payee claims, or its TA's collect
 * is reported) and are paid from it.
 */
export const RETIREMENT_HOLD_MS = 30 * 24 * 3600 * 1000;

const retireBody = z.strictObject({ reason: z.string().max(200).regex(/^[^\p{Cc}\p{Cs}]*$/u, 'text without control characters').optional() });

/** A retired device's escrow as the API shows it. */
function retirementJson(services: IssuerServices, device: string, held: { escrow: bigint; releaseAt: number; released: boolean }, transferred: { [key: string]: JsonValue } | null): { [key: string]: JsonValue } {
  return {
    device,
    status: held.released ? 'released' : 'held',
    escrow: formatMinor(services.currency, held.escrow),
    currency: services.currency.code,
    releaseAt: new Date(held.releaseAt).toISOString(),
    ...(transferred === null ? {} : { refund: transferred }),
  };
}

const retireRoute = createRoute({
  method: 'post',
  path: '/devices/{keyId}/retire',
  description:
    'The owner retires a device whose secure element is lost or refuses to run: the node revokes it and holds what it knows the device held in escrow; the device\'s payments that surface are paid from it, and the rest goes to the owner when the same call is made after the hold.',
  request: { params: z.object({ keyId: keyIdHex }), body: json(retireBody) },
  responses: { 200: answer('Retired (held), or released', z.object({ device: z.string(), status: z.string(), escrow: z.string(), releaseAt: z.string() }).passthrough()), 403: { description: 'Revoked', ...errorBody } },
});

/** The owner's online account (what a retired or settled device's remainder goes to). */
async function ownerAccount(tx: TransactionHandle, owner: string): Promise<string | null> {
  const { rows } = await tx.query<{ account_id: string }>('SELECT account_id FROM users WHERE key_id = $1', [owner]);
  return rows[0]?.account_id ?? null;
}

/**
 * Puts what the node can vouch the device holds in escrow until the hold is over. For a device
 * settlement caught (`capped`), also never more than the node's own account of its flow
 * (deposits, withdrawals, payments and collects it knows of), so that value a broken device paid
 * away twice is not given back.
 */
async function holdEscrow(tx: TransactionHandle, services: IssuerServices, device: string, row: OpsDeviceRow, capped: boolean): Promise<{ escrow: bigint; releaseAt: number; released: boolean }> {
  let value = await retirementValue(tx, device, row);
  if (capped) {
    const known = await knownHolding(tx, device);
    if (known < value) value = known;
  }
  if (value < 0n) value = 0n;
  const releaseAt = services.now() + RETIREMENT_HOLD_MS;
  await tx.query('UPDATE ops_devices SET retired_at = now(), escrow = $2, release_at = $3 WHERE device_key_id = $1', [device, value, releaseAt]);
  return { escrow: value, releaseAt, released: false };
}

/**
 * After the hold, what is left of the escrow goes to `account`, once, as the device's last
 * operation (a counter operation, so the exposure check sees the device's value leave the float).
 */
async function releaseEscrow(tx: TransactionHandle, services: IssuerServices, device: string, row: OpsDeviceRow, held: RetirementRow, account: string): Promise<StoredResponse> {
  const refund = held.escrow > 0n ? held.escrow : 0n;
  let moved: { [key: string]: JsonValue } | null = null;
  if (refund > 0n) {
    const i = row.i + 1n;
    const done = await transfer(tx, { idempotencyKey: `ops-retire:${device}`, debit: OPS_FLOAT_ACCOUNT, credit: account, amount: refund, kind: 'ops-retire', reference: { device, i: i.toString() } });
    if (!done.ok) return refusal(done.code, done.message);
    await tx.query('INSERT INTO ops_counter_ops (device_key_id, i, kind, amount) VALUES ($1, $2, $3, $4)', [device, i, 'retire', refund]);
    await tx.query('UPDATE ops_devices SET i = $2 WHERE device_key_id = $1', [device, i]);
    moved = transferJson(services.currency, done.transfer);
  }
  await tx.query('UPDATE ops_devices SET released = true, escrow = escrow - $2 WHERE device_key_id = $1', [device, refund]);
  return { status: 200, body: retirementJson(services, device, { escrow: held.escrow, releaseAt: held.releaseAt, released: true }, moved) };
}

/** Adds `POST /devices/{keyId}/retire`. */
export function registerRetire(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  const { identity } = services;
  app.openAPIRegistry.registerPath(retireRoute);
  app.post('/devices/:keyId/retire', async (c) => {
    const user = requireUser(c.get('caller'));
    const device = c.req.param('keyId');
    if (!/^[0-9a-f]{64}$/.test(device)) throw new ApiProblem('BODY_INVALID', 'path.keyId: expected 64 lower-case hex digits', {});
    const body = validBody(c, retireBody);
    return idempotent(services, c, 'ops/retire', user.keyId, async (tx) => {
      const owned = await ownDevice(tx, device, user.keyId, { allowRevoked: true });
      if ('refused' in owned) return owned.refused;
      const row = await lockOpsDevice(tx, device);
      const held = await retirementOf(tx, device);
      if (held === null) {
        // A device settlement caught (or the operator revoked) is not retired on its owner's word:
        // the operator settles its remainder (settleOpsRemainder).
        if (await isSubjectRevoked(tx, device)) return refusal('CERT_REVOKED', `device ${device} is revoked: a revoked device is not retired with a refund`);
        const escrow = await holdEscrow(tx, services, device, row, false);
        const serial = (await tx.query<{ serial: Uint8Array }>('SELECT serial FROM devices WHERE key_id = $1', [device])).rows[0]?.serial;
        if (serial !== undefined) await revokeCertificate(tx, identity.intermediary.signer, { serial: new Uint8Array(serial), subjectKeyId: device, role: 'device', reason: `ops retired by its owner${body.reason === undefined ? '' : `: ${body.reason}`}` }, services.now());
        return { status: 200, body: retirementJson(services, device, escrow, null) };
      }
      if (held.released || services.now() < held.releaseAt) return { status: 200, body: retirementJson(services, device, held, null) };
      return releaseEscrow(tx, services, device, row, held, user.accountId);
    });
  });
}

/**
 * The operator settles a revoked OPS device's honest remainder (`POST /v1/operator/settle`), as a
 * retirement the owner could not ask for: the first call holds what the node can vouch the device
 * held (at most its own account of the device's flow) in escrow for RETIREMENT_HOLD_MS, during
 * which the device's payments made before its revocation that surface are paid from it; a call
 * after the hold gives the rest to the owner's account, once; a later call is ALREADY_SETTLED.
 * Answers null for a key that is not an OPS device.
 */
export async function settleOpsRemainder(tx: TransactionHandle, services: IssuerServices, device: string): Promise<StoredResponse | null> {
  const { rows } = await tx.query<{ owner_key_id: string; scheme: string }>('SELECT owner_key_id, scheme FROM devices WHERE key_id = $1', [device]);
  const registered = rows[0];
  if (registered === undefined || registered.scheme !== OPS_SCHEME) return null;
  if (!(await isSubjectRevoked(tx, device))) {
    return refusal('DEVICE_NOT_REVOKED', `device ${device} is not revoked: its owner withdraws its value, or retires it (POST /v1/ops/devices/${device}/retire)`);
  }
  const account = await ownerAccount(tx, registered.owner_key_id);
  if (account === null) return refusal('ACCOUNT_UNKNOWN', `the owner of device ${device} has no account`);
  const row = await lockOpsDevice(tx, device);
  const held = await retirementOf(tx, device);
  if (held === null) return { status: 200, body: retirementJson(services, device, await holdEscrow(tx, services, device, row, true), null) };
  if (held.released) return refusal('ALREADY_SETTLED', `device ${device}'s remainder was already given back`);
  if (services.now() < held.releaseAt) return { status: 200, body: retirementJson(services, device, held, null) };
  return releaseEscrow(tx, services, device, row, held, account);
}
