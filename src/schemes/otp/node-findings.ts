/**
 * Accountable anonymity on the node (escrow.ts): when a serial comes back after it was spent, the
 * second copy is kept as evidence, and when the first was deposited the node opens both copies'
 * escrow tags where their chains part. The device that signed both branches paid the coin twice:
 * it is named in a finding and its certificate revoked. `GET /v1/otp/operator/findings` lists them.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { array } from '../../core/codec.ts';
import type { PublicKey } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { keyId } from '../../pki/key-id.ts';
import { bigintColumn, requireOperator, revokeCertificate, type IssuerEnv, type IssuerServices, type TransactionHandle } from '../../issuer/plugin.ts';
import { attribute, sealedTagCodec, TAGS_MAX, type SealedTag } from './escrow.ts';
import { answer } from './node-common.ts';
import { otpBankKeys } from './node-keys.ts';

/** Most findings the operator's list answers, newest first. */
export const FINDINGS_LISTED_MAX = 1000;

const tagsCodec = array(sealedTagCodec, { max: TAGS_MAX });

/** The stored form of a coin's tags. */
export function encodeTags(tags: readonly SealedTag[]): Uint8Array {
  return encodeCbor(tags);
}

/** A coin's tags from their stored form. @throws TallyError DECODE_FAILED for bytes that are not */
export function decodeTags(stored: Uint8Array, path: string): SealedTag[] {
  return tagsCodec.decode(decodeCbor(new Uint8Array(stored)), path);
}

/** A finding: the device named for paying `serial` twice, at `hop`. */
export interface OtpFinding {
  readonly serial: string;
  readonly hop: number;
  readonly device: string;
  /** The revocation list version that revoked the device; null when it is not a device of this node. */
  readonly revocationVersion: number | null;
  readonly reason: FindingReason;
}

/** Why a device is named: it paid a coin twice, or signed a tag for a coin it never held. */
export type FindingReason = 'paid-twice' | 'tag-without-coin';

/**
 * Records a second copy of a spent serial and, when the first copy was deposited with tags or
 * refunded to a claim with tags, names and revokes the device that signed both branches. Answers
 * the finding, or null when the tags do not name one (the same copy twice, a refund recorded before
 * claims carried tags, or tags that do not open and check).
 */
export async function recordDoubleSpend(
  tx: TransactionHandle,
  services: IssuerServices,
  spent: { serial: Uint8Array; account: string; tags: readonly SealedTag[] },
): Promise<OtpFinding | null> {
  const now = services.now();
  const at = new Date(now).toISOString();
  await tx.query('INSERT INTO otp_double_spends (serial, tags, account_id, at) VALUES ($1, $2, $3, $4)', [spent.serial, encodeTags(spent.tags), spent.account, at]);
  const first = await tx.query<{ tags: Uint8Array | null }>('SELECT tags FROM otp_spent WHERE serial = $1', [spent.serial]);
  // A refunded coin's first copy is the claim that won it (none for a refund recorded before claims carried tags).
  const won = await tx.query<{ tags: Uint8Array | null }>('SELECT tags FROM otp_claims WHERE serial = $1 AND won', [spent.serial]);
  const stored = first.rows[0]?.tags ?? won.rows[0]?.tags;
  if (stored === undefined || stored === null) return null;
  const firstTags = decodeTags(stored, 'otp_spent.tags');
  let named: ReturnType<typeof attribute>;
  try {
    named = attribute(services.provider, otpBankKeys(services).escrow.privateKey, spent.serial, firstTags, spent.tags);
  } catch (e) {
    // A tag that does not open or check names nobody: the evidence stays in otp_double_spends.
    if (isTallyError(e)) return null;
    throw e;
  }
  if (named === null) return null;
  return nameDevice(tx, services, spent.serial, named);
}

/**
 * Names the device escrow tags found paying `serial` twice at `hop` (`paid-twice`), or signing tag
 * `hop` for a coin it never held (`tag-without-coin`, node-key-holders.ts): revokes it when it is a
 * device of this node and records the finding.
 */
export async function nameDevice(tx: TransactionHandle, services: IssuerServices, serial: Uint8Array, named: { hop: number; device: PublicKey }, reason: FindingReason = 'paid-twice'): Promise<OtpFinding> {
  const now = services.now();
  const at = new Date(now).toISOString();
  const device = toHex(keyId(named.device));
  const { rows } = await tx.query<{ serial: Uint8Array }>('SELECT serial FROM devices WHERE key_id = $1', [device]);
  const certificate = rows[0];
  let revocationVersion: number | null = null;
  if (certificate !== undefined) {
    const why = reason === 'paid-twice' ? `otp double spend: serial ${toHex(serial)} paid twice at hop ${named.hop}` : `otp escrow tag ${named.hop} of serial ${toHex(serial)} signed for a coin the device never held`;
    const outcome = await revokeCertificate(tx, services.identity.intermediary.signer, { serial: new Uint8Array(certificate.serial), subjectKeyId: device, role: 'device', reason: why }, now);
    revocationVersion = outcome.version;
  }
  await tx.query(
    'INSERT INTO otp_findings (serial, device_key_id, hop, revocation_version, at, reason) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (serial, device_key_id) DO NOTHING',
    [serial, device, named.hop, revocationVersion === null ? null : BigInt(revocationVersion), at, reason],
  );
  return { serial: toHex(serial), hop: named.hop, device, revocationVersion, reason };
}

const findingJson = z.object({ serial: z.string(), hop: z.number(), device: z.string(), reason: z.enum(['paid-twice', 'tag-without-coin']), revocationVersion: z.number().nullable(), at: z.string() });

const disputeJson = z.object({ serial: z.string(), hop: z.number(), devices: z.array(z.string()), at: z.string() });

const findingsRoute = createRoute({
  method: 'get',
  path: '/operator/findings',
  description: 'The devices escrow tags named, for paying a coin twice or for signing a tag for a coin they never held, and the coins in flight whose claims could not be settled, newest first (operator token).',
  responses: {
    200: answer(
      'Findings',
      z.object({
        findings: z.array(findingJson),
        disputes: z.array(disputeJson).describe('coins in flight whose claims part at a hop signed by two devices: one signed a tag for a coin it never held; nobody was refunded'),
      }),
    ),
  },
});

/** Adds `GET /operator/findings`. */
export function registerFindings(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(findingsRoute);
  app.get(findingsRoute.path, async (c) => {
    requireOperator(c.get('caller'));
    const { rows } = await services.db.query<{ serial: Uint8Array; device_key_id: string; hop: number; reason: FindingReason; revocation_version: bigint | null; at: Date }>(
      'SELECT serial, device_key_id, hop, reason, revocation_version, at FROM otp_findings ORDER BY at DESC, serial LIMIT $1',
      [FINDINGS_LISTED_MAX],
    );
    const findings = rows.map((r) => ({
      serial: toHex(new Uint8Array(r.serial)),
      hop: r.hop,
      device: r.device_key_id,
      reason: r.reason,
      revocationVersion: r.revocation_version === null ? null : Number(bigintColumn(r, 'revocation_version')),
      at: r.at.toISOString(),
    }));
    const disputed = await services.db.query<{ serial: Uint8Array; hop: number; devices: string[]; at: Date }>('SELECT serial, hop, devices, at FROM otp_claim_disputes ORDER BY at DESC, serial LIMIT $1', [FINDINGS_LISTED_MAX]);
    const disputes = disputed.rows.map((r) => ({ serial: toHex(new Uint8Array(r.serial)), hop: r.hop, devices: r.devices, at: r.at.toISOString() }));
    return c.json({ findings, disputes });
  });
}
