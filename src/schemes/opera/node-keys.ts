/**
 * The OPERA bank's escrow key (escrow.ts): the ODWs seal their tokens' tags to its public half,
 * which the signed parameters carry; the node opens tags with the private half only when a serial
 * is deposited twice. The key comes from a random seed the node makes once and keeps in its
 * database (`opera_secrets`), so the database's access control and backups protect it, on any root
 * suite.
 */
import { deriveKeyPair, type HpkeKeyPair } from '../../core/crypto/hpke.ts';
import { TallyError } from '../../core/errors.ts';
import { storedSecret, type IssuerServices } from '../../issuer/plugin.ts';

const ESCROW_SEED = 'escrow';
const held = new WeakMap<IssuerServices['db'], HpkeKeyPair>();

/** Makes (once, under the row's uniqueness) or reads the escrow key of this node's database (at start: `prepare`). */
export async function loadOperaEscrowKey(services: Pick<IssuerServices, 'db'>): Promise<HpkeKeyPair> {
  const known = held.get(services.db);
  if (known !== undefined) return known;
  const seed = await storedSecret(services.db, 'opera_secrets', ESCROW_SEED);
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
