/**
 * What deposits and settlements find, for the operator: a token whose serial came back after it was
 * spent (both depositors named), the device its escrow tags name for paying it twice (node-escrow.ts:
 * `paid-twice`, with the hop, the device revoked), a refund asked
 * for a token already spent, and a payer whose report denies a release its payee holds. The last is
 * proof from the payer's own two signatures that its ODW broke: its certificate is revoked.
 * `GET /v1/opera/operator/findings` lists them.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toHex } from '../../core/bytes.ts';
import { bigintColumn, requireOperator, revokeCertificate, type IssuerEnv, type IssuerServices, type TransactionHandle } from '../../issuer/plugin.ts';
import { answer } from './node-common.ts';

/** Most findings the operator's list answers, newest first. */
export const FINDINGS_LISTED_MAX = 1000;

/** The kinds of finding (`paid-twice` is found by node-escrow.ts). */
export type FindingKind = 'double-spend' | 'refund-spent' | 'release-denied' | 'paid-twice';

/** A finding to record. */
export interface Finding {
  readonly kind: FindingKind;
  readonly serial?: Uint8Array | undefined;
  readonly txid?: Uint8Array | undefined;
  /** The device whose request found it. */
  readonly device: string;
  /** The device that spent the serial first, when known. */
  readonly first?: string | null | undefined;
  /** For `paid-twice`: the hop of the token's escrow chain where its two copies part. */
  readonly hop?: number | undefined;
}

/** Why a finding's device is revoked: a denied release, or a token its escrow tags show it paid twice; other kinds revoke no one. */
function revocationReason(finding: Finding): string | null {
  switch (finding.kind) {
    case 'release-denied':
      return `opera: released transaction ${toHex(finding.txid ?? new Uint8Array())} and reported it not released`;
    case 'paid-twice':
      return `opera: token ${toHex(finding.serial ?? new Uint8Array())} paid twice at hop ${finding.hop ?? 0}`;
    default:
      return null;
  }
}

/** Records a finding; a denied release or a token paid twice also revokes the device. Answers the revocation list version, or null. */
export async function recordFinding(tx: TransactionHandle, services: IssuerServices, finding: Finding): Promise<number | null> {
  const now = services.now();
  let version: number | null = null;
  const reason = revocationReason(finding);
  if (reason !== null) {
    const { rows } = await tx.query<{ serial: Uint8Array }>('SELECT serial FROM devices WHERE key_id = $1', [finding.device]);
    const certificate = rows[0];
    if (certificate !== undefined) {
      const revoked = await revokeCertificate(tx, services.identity.intermediary.signer, { serial: new Uint8Array(certificate.serial), subjectKeyId: finding.device, role: 'device', reason }, now);
      version = revoked.version;
    }
  }
  await tx.query(
    'INSERT INTO opera_findings (kind, serial, txid, device_key_id, first_key_id, hop, revocation_version, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
    [finding.kind, finding.serial ?? null, finding.txid ?? null, finding.device, finding.first ?? null, finding.hop ?? null, version === null ? null : BigInt(version), new Date(now).toISOString()],
  );
  return version;
}

const findingJson = z.object({
  kind: z.enum(['double-spend', 'refund-spent', 'release-denied', 'paid-twice']),
  serial: z.string().nullable(),
  txid: z.string().nullable(),
  device: z.string(),
  first: z.string().nullable(),
  /** For `paid-twice`: the hop of the token's escrow chain where its two copies part. */
  hop: z.number().nullable(),
  revocationVersion: z.number().nullable(),
  at: z.string(),
});

const findingsRoute = createRoute({
  method: 'get',
  path: '/operator/findings',
  description: 'Tokens spent twice, devices their escrow tags name for paying a token twice, refunds asked for spent tokens and payers that denied a release, newest first (operator token).',
  responses: { 200: answer('Findings', z.object({ findings: z.array(findingJson) })) },
});

interface FindingRow {
  kind: FindingKind;
  serial: Uint8Array | null;
  txid: Uint8Array | null;
  device_key_id: string;
  first_key_id: string | null;
  hop: number | null;
  revocation_version: bigint | null;
  at: Date;
}

/** Adds `GET /operator/findings`. */
export function registerFindings(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(findingsRoute);
  app.get(findingsRoute.path, async (c) => {
    requireOperator(c.get('caller'));
    const { rows } = await services.db.query<FindingRow>(
      'SELECT kind, serial, txid, device_key_id, first_key_id, hop, revocation_version, at FROM opera_findings ORDER BY id DESC LIMIT $1',
      [FINDINGS_LISTED_MAX],
    );
    const hex = (bytes: Uint8Array | null) => (bytes === null ? null : toHex(new Uint8Array(bytes)));
    const findings = rows.map((r) => ({
      kind: r.kind,
      serial: hex(r.serial),
      txid: hex(r.txid),
      device: r.device_key_id,
      first: r.first_key_id,
      hop: r.hop,
      revocationVersion: r.revocation_version === null ? null : Number(bigintColumn(r, 'revocation_version')),
      at: r.at.toISOString(),
    }));
    return c.json({ findings });
  });
}
