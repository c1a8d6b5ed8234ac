/**
 * DOT-M on the issuer node, mounted under `/v1/dotm/`: registration of a wallet (§3.3.1,
 * node-register.ts), account synchronization (§3.3.2, node-issue.ts) and online data updating
 * (§3.3.4, node-events.ts, settled by node-settlement.ts). Value in currency blocks sits in
 * `float:dotm`: issuing moves it there from the holder's account, redemptions and the refunds of
 * exceptional situations 3 and 5 move it back out, as does the operator's settlement of a revoked
 * wallet's remainder (node-remainder.ts); offline payments leave it where it is.
 */
import { type IssuerServices, revokeCertificate, type SchemeModule, type SchemeRevocation, type TransactionHandle } from '../../issuer/plugin.ts';
import { DOTM_SCHEME } from './messages.ts';
import { DOTM_FLOAT_ACCOUNT, dotmHoldings } from './node-settlement.ts';
import { registerEvents, EVENTS_BODY_BYTES_MAX } from './node-events.ts';
import { registerIssue } from './node-issue.ts';
import { judgeDotmInterbankClaim } from './node-interbank.ts';
import { settleDotmRemainder } from './node-remainder.ts';
import { registerWallets } from './node-register.ts';
import { registerUnlock } from './node-unlock.ts';

export { DOTM_FLOAT_ACCOUNT } from './node-settlement.ts';
export { EVENT_BYTES_MAX, EVENTS_BODY_BYTES_MAX, EVENTS_UPLOAD_MAX } from './node-events.ts';
export { ISSUE_BLOCKS_MAX, splitValue } from './node-issue.ts';
export { REMAINDER_HOLD_MS } from './node-remainder.ts';

/**
 * The operator revokes a DOT-M wallet, named by its wallet key or its user key: both of its
 * certificates (wcert and ucert) are revoked, as settlement does for a culprit (§3.4.4), and the
 * node issues it no more blocks. Answers null for a key that names no DOT-M wallet.
 */
async function revokeWallet(tx: TransactionHandle, services: IssuerServices, id: string, reason: string): Promise<SchemeRevocation | null> {
  const { rows } = await tx.query<{ wallet_key_id: string; user_key_id: string; ucert_serial: Uint8Array; wcert_serial: Uint8Array }>(
    'SELECT wallet_key_id, user_key_id, ucert_serial, wcert_serial FROM dotm_wallets WHERE wallet_key_id = $1 OR user_key_id = $1 FOR UPDATE',
    [id],
  );
  const row = rows[0];
  if (row === undefined) return null;
  const signer = services.identity.intermediary.signer;
  const [ucert, wcert] = [new Uint8Array(row.ucert_serial), new Uint8Array(row.wcert_serial)];
  const user = await revokeCertificate(tx, signer, { serial: ucert, subjectKeyId: row.user_key_id, role: 'user', reason }, services.now());
  const wallet = await revokeCertificate(tx, signer, { serial: wcert, subjectKeyId: row.wallet_key_id, role: 'device', reason }, services.now());
  await tx.query('UPDATE dotm_wallets SET revoked = true WHERE wallet_key_id = $1', [row.wallet_key_id]);
  const named = id === row.wallet_key_id ? { role: 'device' as const, serial: wcert, outcome: wallet } : { role: 'user' as const, serial: ucert, outcome: user };
  return { role: named.role, serial: named.serial, version: Math.max(user.version, wallet.version), already: user.already && wallet.already };
}

/** The DOT-M scheme's part of the issuer node. */
export const dotmNodePart: SchemeModule = {
  name: DOTM_SCHEME,
  migrationsDir: new URL('./migrations/', import.meta.url),
  floatAccount: DOTM_FLOAT_ACCOUNT,
  bodyLimits: [{ method: 'POST', path: '/events', bytesMax: EVENTS_BODY_BYTES_MAX }],
  holdings: (q) => dotmHoldings(q),
  revokeKey: revokeWallet,
  settleRemainder: settleDotmRemainder,
  judgeInterbankClaim: judgeDotmInterbankClaim,

  register(app, services) {
    registerWallets(app, services);
    registerIssue(app, services);
    registerEvents(app, services);
    registerUnlock(app, services);
  },
};
