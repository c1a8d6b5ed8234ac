/**
 * The OPERA bank's escrow key (escrow.ts): the ODWs seal their tokens' tags to its public half,
 * which the signed parameters carry; the node opens tags with the private half only when a serial
 * is deposited twice. The key comes from a random seed the node makes once and keeps in its
 * database (`opera_secrets`), so the database's access control and backups protect it, on any root
 * suite.
 */
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { deriveKeyPair, type HpkeKeyPair } from '../../core/crypto/hpke.ts';
import { TallyError } from '../../core/errors.ts';
import type { IssuerServices } from '../../issuer/plugin.ts';

const ESCROW_SEED = 'escrow';
const held = new WeakMap<IssuerServices['db'], HpkeKeyPair>();

/** Makes (once, under the row's uniqueness) or reads the escrow key of this node's database (at start: `prepare`). */
export async function loadOperaEscrowKey(services: Pick<IssuerServices, 'db'>): Promise<HpkeKeyPair> {
  const known = held.get(services.db);
  if (known !== undefined) return known;
  const seed = await services.db.transaction(async (tx) => {
    await tx.query('INSERT INTO opera_secrets (name, secret) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [ESCROW_SEED, new Uint8Array(nodeRandomBytes(32))]);
    const { rows } = await tx.query<{ secret: Uint8Array }>('SELECT secret FROM opera_secrets WHERE name = $1', [ESCROW_SEED]);
    const row = rows[0];
    if (row === undefined) throw new TallyError('ASSERTION_FAILED', 'the OPERA escrow seed was stored', {});
    return new Uint8Array(row.secret);
  });
  const keys = deriveKeyPair(seed);
  held.set(services.db, keys);
  return keys;
}

/**
 * The escrow key, made at start by loadOperaEscrowKey.
 * @throws TallyError ASSERTION_FAILED when the node part's prepare has not run
 */
export function operaEscrowKey(services: Pick<IssuerServices, 'db'>): HpkeKeyPair {
  const known = held.get(services.db);
  if (known === undefined) throw new TallyError('ASSERTION_FAILED', "the OPERA escrow key is made by the node part's prepare, which has not run", {});
  return known;
}
