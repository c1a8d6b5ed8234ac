/**
 * Publications between the tiers: an intermediary posts what its schemes publish (signed with its
 * own key) to the central bank, whose directory carries each bank's latest; every intermediary
 * serves the other banks it knows, with their certificates and verified publications, to its
 * wallets at `GET /v1/interbank/peers`. The wallets verify both again: the certificate under
 * their root, the record under the certificate.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toBase64url } from '../../core/bytes.ts';
import { TallyError } from '../../core/errors.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { PUBLICATION_BYTES_MAX, verifyPublication } from '../../pki/publication.ts';
import type { Queryable } from '../db/database.ts';
import type { IssuerEnv, IssuerServices } from './context.ts';
import { ApiProblem } from './problem.ts';
import { PUBLICATIONS_PER_BANK_MAX } from '../tier/publications.ts';
import { requireIntermediary } from './routes-central-bank.ts';
import { base64urlOf, decodeField, errorBody, json, validBody } from './validate.ts';

const RECORD_CHARS_MAX = Math.ceil((PUBLICATION_BYTES_MAX * 4) / 3);
const publicationBody = z.strictObject({ record: base64urlOf(RECORD_CHARS_MAX).min(1) });

const postPublication = createRoute({
  method: 'post',
  path: '/v1/cb/publications',
  description: "An intermediary publishes one scheme's public parameters (signed by the intermediary, in a record signed with the same key): kept when newer than the one held, and carried in the directory.",
  request: { body: json(publicationBody) },
  responses: {
    200: { description: 'The version now held', content: { 'application/json': { schema: z.object({ scheme: z.string(), version: z.number().int() }) } } },
    400: { description: 'Malformed', ...errorBody },
    403: { description: 'Not signed by the calling intermediary, or it is revoked', ...errorBody },
  },
});

const getPeers = createRoute({
  method: 'get',
  path: '/v1/interbank/peers',
  description:
    "Intermediary (public): the other intermediaries the central bank certified, as this bank last synced them: each one's certificate (verify it under the root), whether it is revoked, and its publications per scheme (verify each under the certificate).",
  responses: {
    200: {
      description: 'The other banks',
      content: {
        'application/json': {
          schema: z.object({
            peers: z.array(z.object({ keyId: z.string(), name: z.string(), certificate: z.string(), revoked: z.boolean(), publications: z.record(z.string(), z.string()) })),
            rootList: z.string().optional().describe("the root-signed list of revoked intermediaries, as this bank last synced it (verify it under the root; never take an older one)"),
          }),
        },
      },
    },
  },
});

/** Each intermediary's latest publication records at the central bank, base64url, by key id. */
export async function publicationsByBank(q: Queryable): Promise<Map<string, string[]>> {
  const { rows } = await q.query<{ key_id: string; record: Uint8Array }>('SELECT key_id, record FROM cb_publications ORDER BY key_id, scheme');
  const by = new Map<string, string[]>();
  for (const r of rows) by.set(r.key_id, [...(by.get(r.key_id) ?? []), toBase64url(new Uint8Array(r.record))]);
  return by;
}

/** Adds the central bank's publication route. */
export function registerCentralBankPublications(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(postPublication);
  app.post(postPublication.path, async (c) => {
    const bank = requireIntermediary(c.get('caller'));
    if (bank.revoked) throw new ApiProblem('CERT_REVOKED', `intermediary ${bank.keyId} is revoked: it publishes nothing`, {});
    const record = decodeField('body.record', validBody(c, publicationBody).record);
    const row = (await services.db.query<{ certificate: Uint8Array }>("SELECT certificate FROM cb_intermediaries WHERE key_id = $1 AND status = 'approved'", [bank.keyId])).rows[0];
    if (row === undefined) throw new ApiProblem('FORBIDDEN', `intermediary ${bank.keyId} is not approved`, {});
    let body;
    try {
      body = verifyPublication(services.provider, record, decodeCertificate(new Uint8Array(row.certificate)));
    } catch (e) {
      if (e instanceof TallyError && e.code === 'SIGNATURE_INVALID') throw new ApiProblem('FORBIDDEN', `the record is not signed by the calling intermediary: ${e.message}`, {});
      if (e instanceof TallyError) throw new ApiProblem('BODY_INVALID', `body.record: ${e.message}`, {});
      throw e;
    }
    // One record a scheme, and no more schemes than a bank can serve: the directory stays small.
    const held = (await services.db.query<{ scheme: string }>('SELECT scheme FROM cb_publications WHERE key_id = $1', [bank.keyId])).rows;
    if (!held.some((h) => h.scheme === body.scheme) && held.length >= PUBLICATIONS_PER_BANK_MAX) {
      throw new ApiProblem('BODY_INVALID', `intermediary ${bank.keyId} already publishes for ${held.length} schemes, the most there may be`, {});
    }
    await services.db.query(
      `INSERT INTO cb_publications (key_id, scheme, version, record) VALUES ($1, $2, $3, $4)
       ON CONFLICT (key_id, scheme) DO UPDATE SET version = EXCLUDED.version, record = EXCLUDED.record, published_at = now()
       WHERE cb_publications.version < EXCLUDED.version`,
      [bank.keyId, body.scheme, BigInt(body.version), record],
    );
    const now = (await services.db.query<{ version: bigint }>('SELECT version FROM cb_publications WHERE key_id = $1 AND scheme = $2', [bank.keyId, body.scheme])).rows[0];
    return c.json({ scheme: body.scheme, version: Number(now?.version ?? body.version) }, 200);
  });
}

/** Adds an intermediary's public list of the other banks it knows. */
export function registerPeerRoutes(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openapi(getPeers, async (c) => {
    if (services.identity.role !== 'intermediary') throw new ApiProblem('ROLE_MISMATCH', `this node is ${services.identity.role === 'central-bank' ? 'a central bank' : 'a standalone node'}: only an intermediary knows other banks`, { role: services.identity.role });
    const { rows } = await services.db.query<{ key_id: string; name: string; certificate: Uint8Array; revoked: boolean }>('SELECT key_id, name, certificate, revoked FROM tier_peers ORDER BY key_id');
    const published = (await services.db.query<{ key_id: string; scheme: string; record: Uint8Array }>('SELECT key_id, scheme, record FROM tier_peer_publications ORDER BY key_id, scheme')).rows;
    const peers = rows.map((r) => ({
      keyId: r.key_id,
      name: r.name,
      certificate: toBase64url(new Uint8Array(r.certificate)),
      revoked: r.revoked,
      publications: Object.fromEntries(published.filter((p) => p.key_id === r.key_id).map((p) => [p.scheme, toBase64url(new Uint8Array(p.record))])),
    }));
    const root = (await services.db.query<{ root_list: Uint8Array | null }>('SELECT root_list FROM tier_link WHERE one')).rows[0];
    return c.json({ peers, ...(root?.root_list == null ? {} : { rootList: toBase64url(new Uint8Array(root.root_list)) }) }, 200);
  });
}
