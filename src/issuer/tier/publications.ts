/**
 * An intermediary's publications, both ways: at each sync it signs what each of its schemes
 * publishes and posts it to the central bank when it changed; from the central bank's directory it
 * keeps each other bank's latest publications that verify under that bank's certificate (itself
 * verified under the root by syncDirectory). Schemes read their peers' bodies with
 * `peerPublications` (interbank.ts).
 */
import { fromBase64url, toBase64url, toHex } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { TallyError } from '../../core/errors.ts';
import type { Certificate } from '../../pki/certificate.ts';
import { signPublication, verifyPublication, PUBLICATION_BODY_BYTES_MAX } from '../../pki/publication.ts';
import { bigintColumn } from '../db/database.ts';
import type { InterbankContext } from './interbank-sync.ts';

/** Most publications one directory entry may carry (one a scheme). */
export const PUBLICATIONS_PER_BANK_MAX = 16;

/**
 * Signs and posts each scheme's publication that differs from what the central bank last
 * acknowledged; answers how many were posted. A scheme with nothing to publish yet is skipped; one
 * whose body is too large is skipped and said in the log, so that the rest of the sync goes on.
 */
export async function publishSchemes(ctx: InterbankContext, log: (line: string) => void = () => undefined): Promise<number> {
  const services = ctx.services();
  if (services === undefined) return 0;
  let posted = 0;
  for (const scheme of ctx.schemes) {
    if (scheme.publication === undefined) continue;
    const body = await scheme.publication(services);
    if (body === undefined) continue;
    if (body.length === 0 || body.length > PUBLICATION_BODY_BYTES_MAX) {
      log(`the ${scheme.name} publication of ${body.length} bytes is not published: 1 to ${PUBLICATION_BODY_BYTES_MAX} bytes`);
      continue;
    }
    const digest = toHex(sha256(body));
    const held = (await ctx.db.query<{ digest: string; version: bigint }>('SELECT digest, version FROM tier_published WHERE scheme = $1', [scheme.name])).rows[0];
    if (held?.digest === digest) continue;
    // The version is the time it is signed, and always past the last one.
    const version = Math.max(ctx.now(), held === undefined ? 0 : Number(bigintColumn(held, 'version')) + 1);
    const record = signPublication(ctx.identity.intermediary.signer, { scheme: scheme.name, version, body });
    await ctx.call('POST', '/v1/cb/publications', { body: { record: toBase64url(record) }, idempotencyKey: `publication-${scheme.name}-${version}` });
    await ctx.db.query(
      `INSERT INTO tier_published (scheme, digest, version) VALUES ($1, $2, $3)
       ON CONFLICT (scheme) DO UPDATE SET digest = EXCLUDED.digest, version = EXCLUDED.version`,
      [scheme.name, digest, BigInt(version)],
    );
    posted += 1;
  }
  return posted;
}

/**
 * Keeps the publications of one directory entry that verify under `peer` (already verified under
 * the root) and are newer than the one held; a record that does not verify is dropped and counted.
 */
export async function keepPeerPublications(ctx: InterbankContext, peerKeyId: string, peer: Certificate, records: unknown): Promise<{ kept: number; dropped: number }> {
  let kept = 0;
  let dropped = 0;
  if (!Array.isArray(records)) return { kept, dropped };
  for (const entry of records.slice(0, PUBLICATIONS_PER_BANK_MAX)) {
    if (typeof entry !== 'string') {
      dropped += 1;
      continue;
    }
    let body;
    let record: Uint8Array;
    try {
      record = fromBase64url(entry);
      body = verifyPublication(ctx.provider, record, peer);
    } catch (e) {
      if (e instanceof TallyError) {
        dropped += 1;
        continue;
      }
      throw e;
    }
    await ctx.db.query(
      `INSERT INTO tier_peer_publications (key_id, scheme, version, record, body) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (key_id, scheme) DO UPDATE SET version = EXCLUDED.version, record = EXCLUDED.record, body = EXCLUDED.body
       WHERE tier_peer_publications.version < EXCLUDED.version`,
      [peerKeyId, body.scheme, BigInt(body.version), record, body.body],
    );
    kept += 1;
  }
  return { kept, dropped };
}
