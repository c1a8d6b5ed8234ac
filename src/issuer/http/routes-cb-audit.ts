/**
 * The central bank's view of the whole system (operator): every intermediary with its status, its
 * reserve here and its last report of its own books, and the system's audit — the interbank ledger
 * balanced, issuance equal to the reserves, and each bank's report current and agreeing with its
 * reserve.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Queryable } from '../db/database.ts';
import { audit } from '../ledger/audit.ts';
import { positionBody, type PositionReport } from '../tier/position.ts';
import { requireOperator } from './auth.ts';
import type { IssuerEnv, IssuerServices } from './context.ts';
import { formatMinor } from './json.ts';
import { enrolmentJson, INTERMEDIARY_COLUMNS, lastMovement, requireCentralBank, reserveAccount, type IntermediaryRow } from './routes-central-bank.ts';
import { parseAmount } from './validate.ts';

/** One intermediary's line of the system audit. */
const intermediaryAudit = z.object({
  keyId: z.string(),
  name: z.string(),
  status: z.string(),
  reserve: z.string(),
  reported: positionBody.nullable(),
  reportedAt: z.string().nullable(),
  /** The report covers every movement of the reserve, agrees with it, and its books balance. */
  current: z.boolean(),
  balanced: z.boolean(),
  problem: z.string().optional(),
});
type IntermediaryAudit = z.infer<typeof intermediaryAudit>;

/** An intermediary not (or no longer) enrolled: asked, or refused. */
const enrolmentLine = z.object({ keyId: z.string(), name: z.string(), status: z.string(), reserve: z.string(), certificate: z.string().optional(), reason: z.string().optional() });

const getIntermediaries = createRoute({
  method: 'get',
  path: '/v1/cb/intermediaries',
  description: 'Every intermediary that asked to be enrolled, with its status, reserve and last report (operator).',
  responses: { 200: { description: 'The intermediaries', content: { 'application/json': { schema: z.object({ intermediaries: z.array(z.union([intermediaryAudit, enrolmentLine])) }) } } } },
});

const getSystemAudit = createRoute({
  method: 'get',
  path: '/v1/cb/audit',
  description: "The system's audit (operator): the interbank ledger balanced, and each intermediary's last report of its books agreeing with its reserve here.",
  responses: {
    200: {
      description: 'The audit',
      content: {
        'application/json': {
          schema: z.object({
            balanced: z.boolean(),
            ledgerBalanced: z.boolean(),
            currency: z.string(),
            issued: z.string(),
            reserves: z.string(),
            reportedReserves: z.string(),
            intermediaries: z.array(intermediaryAudit),
          }),
        },
      },
    },
  },
});

/** Each enrolled (or revoked) intermediary's line of the audit, oldest enrolment first. */
async function intermediaryAudits(services: IssuerServices, q: Queryable): Promise<IntermediaryAudit[]> {
  const money = (minor: bigint) => formatMinor(services.currency, minor);
  const { rows } = await q.query<IntermediaryRow & { balance: bigint | null; report: PositionReport | null; cursor: bigint | null; reported_at: Date | null }>(
    `SELECT i.key_id, i.name, i.suite, i.public_key, i.status, i.certificate, i.reason, a.balance, p.report, p.cursor, p.reported_at
     FROM cb_intermediaries i LEFT JOIN accounts a ON a.id = 'reserve:' || i.key_id LEFT JOIN cb_positions p ON p.key_id = i.key_id
     WHERE i.status IN ('approved', 'revoked') ORDER BY i.requested_at, i.key_id`,
  );
  const out: IntermediaryAudit[] = [];
  for (const r of rows) {
    const reserve = r.balance === null ? 0n : BigInt(r.balance);
    const last = await lastMovement(q, reserveAccount(r.key_id));
    let problem: string | undefined;
    if (r.report === null || r.cursor === null) problem = reserve === 0n ? undefined : 'has not reported its books yet';
    else if (BigInt(r.cursor) < last) problem = `its last report covers movements up to ${r.cursor}, the reserve moved up to ${last}`;
    else if (parseAmount(services, r.report.reserve).minor !== reserve) problem = `reports a reserve of ${r.report.reserve}, the central bank holds ${money(reserve)}`;
    else if (!r.report.ledgerBalanced) problem = 'reports that its own ledger does not balance';
    out.push({
      keyId: r.key_id,
      name: r.name,
      status: r.status,
      reserve: money(reserve),
      reported: r.report,
      reportedAt: r.reported_at === null ? null : r.reported_at.toISOString(),
      current: problem === undefined,
      balanced: problem === undefined,
      ...(problem === undefined ? {} : { problem }),
    });
  }
  return out;
}

/** Adds the central bank's list of intermediaries and the system's audit. */
export function registerSystemAuditRoutes(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  const { currency } = services;
  const money = (minor: bigint) => formatMinor(currency, minor);

  app.openapi(getIntermediaries, async (c) => {
    requireOperator(c.get('caller'));
    requireCentralBank(services);
    const listed = await intermediaryAudits(services, services.db);
    const pending = (await services.db.query<IntermediaryRow>(`SELECT ${INTERMEDIARY_COLUMNS} FROM cb_intermediaries WHERE status IN ('pending', 'refused') ORDER BY requested_at, key_id`)).rows;
    const asked = pending.map((r) => {
      const e = enrolmentJson(r);
      return { keyId: r.key_id, name: r.name, status: r.status, reserve: money(0n), ...(e['certificate'] === undefined ? {} : { certificate: e['certificate'] }), ...(e['reason'] === undefined ? {} : { reason: e['reason'] }) };
    });
    return c.json({ intermediaries: [...listed, ...asked] }, 200);
  });

  app.openapi(getSystemAudit, async (c) => {
    requireOperator(c.get('caller'));
    requireCentralBank(services);
    const found = await services.db.transaction(async (tx) => ({ ledger: await audit(tx), intermediaries: await intermediaryAudits(services, tx) }), { isolation: 'serializable' });
    const cur = found.ledger.currencies.find((x) => x.currency === currency.code);
    const issued = cur?.totalIssued ?? 0n;
    const reserves = cur?.totalReserves ?? 0n;
    const reported = found.intermediaries.reduce((sum, i) => sum + (i.reported === null ? 0n : parseAmount(services, i.reported.reserve).minor), 0n);
    const balanced = found.ledger.balanced && issued === reserves && found.intermediaries.every((i) => i.balanced);
    return c.json(
      { balanced, ledgerBalanced: found.ledger.balanced, currency: currency.code, issued: money(issued), reserves: money(reserves), reportedReserves: money(reported), intermediaries: found.intermediaries },
      200,
    );
  });
}
