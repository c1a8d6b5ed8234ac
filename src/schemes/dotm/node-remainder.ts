/**
 * The operator settles a revoked DOT-M wallet's honest remainder (`POST /v1/operator/settle`): the
 * value the node's tree shows the wallet's user still holds and has not spent goes to the wallet's
 * account, once. The paper leaves this open (§3.3.5: value on a device that breaks down "may be
 * lost for its user temporarily"; the central bank "periodically summarizes the global data" to
 * recover it); the tree of every serial is that summary.
 *
 * The node only knows what wallets uploaded: the wallet may have paid offline since its last
 * upload, and its payees upload later. So the first call holds (nothing moves; the value stays in
 * `float:dotm`) for REMAINDER_HOLD_MS, while the wallet's payments surface and its own redemptions
 * are still credited as usual; the call after the hold credits, copy by copy, what is then still
 * unspent at each node the user holds, within what every node of its path may still credit (as a
 * redemption is), and gives that value up at the node. A copy so settled pays out nothing again:
 * the wallet's later redemption of it, or a payment from it, over-spends its node and names the
 * wallet's user (§3.4.4).
 */
import { toHex } from '../../core/bytes.ts';
import {
  bigintColumn,
  formatMinor,
  type IssuerServices,
  type JsonValue,
  refusal,
  type StoredResponse,
  transfer,
  transferJson,
  type TransactionHandle,
} from '../../issuer/plugin.ts';
import { DOTM_FLOAT_ACCOUNT } from './node-settlement-model.ts';
import { addPending, giveUp, lockSerials, viewNode, writeCredits } from './node-tree.ts';

/** How long the node waits, after the first call, for the wallet's payments to surface: 30 days, as for an OPS device. */
export const REMAINDER_HOLD_MS = 30 * 24 * 3600 * 1000;

interface RemainderRow {
  held: bigint;
  releaseAt: number;
  released: boolean;
  credited: bigint | null;
  copies: number | null;
}

/** A node of the tree held by the wallet's user, with what is still unspent there. */
interface HeldCopy {
  readonly digest: Uint8Array;
  readonly free: bigint;
}

/** The remainder as the API shows it. */
function remainderJson(services: IssuerServices, wallet: string, row: RemainderRow, refund: { [key: string]: JsonValue } | null): { [key: string]: JsonValue } {
  return {
    device: wallet,
    scheme: 'dotm',
    status: row.released ? 'released' : 'held',
    escrow: formatMinor(services.currency, row.held),
    currency: services.currency.code,
    releaseAt: new Date(row.releaseAt).toISOString(),
    ...(row.credited === null ? {} : { credited: formatMinor(services.currency, row.credited), copies: row.copies ?? 0 }),
    ...(refund === null ? {} : { refund }),
  };
}

async function readRemainder(tx: TransactionHandle, wallet: string): Promise<RemainderRow | null> {
  const { rows } = await tx.query<{ held: bigint; release_at: bigint; released: boolean; credited: bigint | null; copies: number | null }>(
    'SELECT held, release_at, released, credited, copies FROM dotm_remainders WHERE wallet_key_id = $1',
    [wallet],
  );
  const row = rows[0];
  if (row === undefined) return null;
  return { held: bigintColumn(row, 'held'), releaseAt: Number(bigintColumn(row, 'release_at')), released: row.released, credited: row.credited === null ? null : bigintColumn(row, 'credited'), copies: row.copies };
}

/** Every node the user holds with value left on it, the serials locked first (in one order, as settlement locks them). */
async function heldCopies(tx: TransactionHandle, userKeyId: string): Promise<HeldCopy[]> {
  const { rows } = await tx.query<{ digest: Uint8Array; serial: Uint8Array }>('SELECT digest, serial FROM dotm_nodes WHERE holder_key_id = $1 ORDER BY serial, digest', [userKeyId]);
  await lockSerials(tx, rows.map((row) => new Uint8Array(row.serial)));
  const copies: HeldCopy[] = [];
  for (const row of rows) {
    const digest = new Uint8Array(row.digest);
    const node = await viewNode(tx, digest);
    const free = node.received - node.spent;
    if (free > 0n) copies.push({ digest, free });
  }
  return copies;
}

/** The digests from the serial's root down to `digest`. */
async function pathTo(tx: TransactionHandle, digest: Uint8Array): Promise<Uint8Array[]> {
  const { rows } = await tx.query<{ digest: Uint8Array }>(
    `WITH RECURSIVE up (digest, prev, depth) AS (
       SELECT digest, prev, 0 FROM dotm_nodes WHERE digest = $1
       UNION ALL
       SELECT n.digest, n.prev, up.depth + 1 FROM dotm_nodes n JOIN up ON n.digest = up.prev
     )
     SELECT digest FROM up ORDER BY depth DESC`,
    [digest],
  );
  return rows.map((row) => new Uint8Array(row.digest));
}

/** What may still be credited at the end of `path`: the least, over its nodes, of what each received minus what was credited at or below it. */
async function headroom(tx: TransactionHandle, path: readonly Uint8Array[], pending: ReadonlyMap<string, bigint>): Promise<bigint> {
  let room: bigint | undefined;
  for (const digest of path) {
    const node = await viewNode(tx, digest);
    const left = node.received - node.creditedBelow - (pending.get(toHex(digest)) ?? 0n);
    room = room === undefined || left < room ? left : room;
  }
  return room ?? 0n;
}

/** After the hold: credits what is still unspent, copy by copy, and gives it up at its node. */
async function release(tx: TransactionHandle, services: IssuerServices, wallet: { walletKeyId: string; userKeyId: string; accountId: string }, held: RemainderRow): Promise<StoredResponse> {
  const pending = new Map<string, bigint>();
  let credited = 0n;
  let copies = 0;
  for (const copy of await heldCopies(tx, wallet.userKeyId)) {
    const path = await pathTo(tx, copy.digest);
    const room = await headroom(tx, path, pending);
    const amount = copy.free < room ? copy.free : room;
    if (amount <= 0n) continue;
    await giveUp(tx, [{ digest: copy.digest, amount }]);
    addPending(pending, path, amount);
    credited += amount;
    copies += 1;
  }
  let refund: { [key: string]: JsonValue } | null = null;
  if (credited > 0n) {
    const moved = await transfer(tx, {
      idempotencyKey: `dotm-remainder:${wallet.walletKeyId}`,
      debit: DOTM_FLOAT_ACCOUNT,
      credit: wallet.accountId,
      amount: credited,
      kind: 'dotm-remainder',
      reference: { wallet: wallet.walletKeyId, copies },
    });
    if (!moved.ok) return refusal(moved.code, moved.message);
    await writeCredits(tx, pending);
    refund = transferJson(services.currency, moved.transfer);
  }
  await tx.query('UPDATE dotm_remainders SET released = true, credited = $2, copies = $3 WHERE wallet_key_id = $1', [wallet.walletKeyId, credited, copies]);
  return { status: 200, body: remainderJson(services, wallet.walletKeyId, { ...held, released: true, credited, copies }, refund) };
}

/**
 * The operator's settlement of a DOT-M wallet named by its wallet key or its user key: the first
 * call on a revoked wallet holds its known remainder for REMAINDER_HOLD_MS (`held`); a call during
 * the hold answers the same; the call after it credits what is still unspent (`released`); a later
 * call is ALREADY_SETTLED. A wallet that is not revoked is DEVICE_NOT_REVOKED. Answers null for a
 * key that names no DOT-M wallet.
 */
export async function settleDotmRemainder(tx: TransactionHandle, services: IssuerServices, id: string): Promise<StoredResponse | null> {
  const { rows } = await tx.query<{ wallet_key_id: string; user_key_id: string; account_id: string; revoked: boolean }>(
    'SELECT wallet_key_id, user_key_id, account_id, revoked FROM dotm_wallets WHERE wallet_key_id = $1 OR user_key_id = $1 FOR UPDATE',
    [id],
  );
  const row = rows[0];
  if (row === undefined) return null;
  const wallet = { walletKeyId: row.wallet_key_id, userKeyId: row.user_key_id, accountId: row.account_id };
  if (!row.revoked) {
    return refusal(
      'DEVICE_NOT_REVOKED',
      `DOT-M wallet ${wallet.walletKeyId} is not revoked: its holder redeems its blocks (tally wallet withdraw); for a lost or stolen wallet, revoke it first (tally operator revoke ${wallet.walletKeyId})`,
      { wallet: wallet.walletKeyId },
    );
  }
  const held = await readRemainder(tx, wallet.walletKeyId);
  if (held === null) {
    const known = (await heldCopies(tx, wallet.userKeyId)).reduce((sum, copy) => sum + copy.free, 0n);
    const now = services.now();
    const started: RemainderRow = { held: known, releaseAt: now + REMAINDER_HOLD_MS, released: false, credited: null, copies: null };
    await tx.query('INSERT INTO dotm_remainders (wallet_key_id, held, held_at, release_at) VALUES ($1, $2, $3, $4)', [wallet.walletKeyId, known, now, started.releaseAt]);
    return { status: 200, body: remainderJson(services, wallet.walletKeyId, started, null) };
  }
  if (held.released) return refusal('ALREADY_SETTLED', `DOT-M wallet ${wallet.walletKeyId}'s remainder was already credited`, { wallet: wallet.walletKeyId });
  if (services.now() < held.releaseAt) return { status: 200, body: remainderJson(services, wallet.walletKeyId, held, null) };
  return release(tx, services, wallet, held);
}
