/** DOT-M double-spending detection (§3.4.4): a node of the tree spent past what its holder received names the holder, whose certificates are revoked. */
import { fromHex, toHex } from '../../core/bytes.ts';
import { revokeCertificate, type Queryable, type TransactionHandle } from '../../issuer/plugin.ts';
import type { DotmFinding, FindingKind, SettlementContext } from './node-settlement-model.ts';
import { viewNodes, type NodeView } from './node-tree.ts';

/** Revokes ucert and wcert of the wallet of `userKeyId` (if registered here); answers its key id. */
async function revokeUser(tx: TransactionHandle, ctx: SettlementContext, userKeyId: string, reason: string): Promise<string | null> {
  const { rows } = await tx.query<{ wallet_key_id: string; ucert_serial: Uint8Array; wcert_serial: Uint8Array }>(
    'SELECT wallet_key_id, ucert_serial, wcert_serial FROM dotm_wallets WHERE user_key_id = $1',
    [userKeyId],
  );
  const row = rows[0];
  if (row === undefined) return null;
  await revokeCertificate(tx, ctx.intermediary, { serial: new Uint8Array(row.ucert_serial), subjectKeyId: userKeyId, role: 'user', reason }, ctx.now);
  await revokeCertificate(tx, ctx.intermediary, { serial: new Uint8Array(row.wcert_serial), subjectKeyId: row.wallet_key_id, role: 'device', reason }, ctx.now);
  await tx.query('UPDATE dotm_wallets SET revoked = true WHERE wallet_key_id = $1', [row.wallet_key_id]);
  return row.wallet_key_id;
}

/** Records a finding once and revokes its culprit; answers it, or null when it was already known. */
export async function openFinding(tx: TransactionHandle, ctx: SettlementContext, finding: Omit<DotmFinding, 'wallet'>): Promise<DotmFinding | null> {
  const evidence = {
    received: finding.received?.toString() ?? null,
    spent: finding.spent?.toString() ?? null,
    records: [...finding.records],
    reason: finding.reason,
  };
  const opened = await tx.query(
    `INSERT INTO dotm_findings (kind, subject, serial, culprit_key_id, evidence) VALUES ($1, $2, $3, $4, $5::text::jsonb)
     ON CONFLICT DO NOTHING RETURNING id`,
    [finding.kind, fromHex(finding.subject), finding.serial === null ? null : fromHex(finding.serial), finding.culprit, JSON.stringify(evidence)],
  );
  if (opened.rowCount === 0) return null;
  const wallet = await revokeUser(tx, ctx, finding.culprit, `dotm fraud: ${finding.kind}`);
  if (wallet !== null) await tx.query('UPDATE dotm_findings SET culprit_wallet = $2 WHERE id = $1', [(opened.rows[0] as { id: bigint }).id, wallet]);
  return { ...finding, wallet };
}

/** §3.4.4: checks spent(x) ≤ received(x) at one node; a break names x's holder. */
export async function checkNode(tx: TransactionHandle, ctx: SettlementContext, digest: Uint8Array): Promise<DotmFinding | null> {
  return (await checkNodes(tx, ctx, [digest]))[0] ?? null;
}

/** checkNode at several nodes, read in one statement; answers the findings made, in the nodes' order. */
export async function checkNodes(tx: TransactionHandle, ctx: SettlementContext, digests: readonly Uint8Array[]): Promise<DotmFinding[]> {
  return findingsAt(tx, ctx, await viewNodes(tx, digests), digests);
}

/**
 * checkNode at several nodes from views already read (viewNodes, after every write that touched
 * them); answers the findings made, in the nodes' order. A digest without a view is skipped.
 */
export async function findingsAt(tx: TransactionHandle, ctx: SettlementContext, views: ReadonlyMap<string, NodeView>, digests: readonly Uint8Array[]): Promise<DotmFinding[]> {
  const findings: DotmFinding[] = [];
  const seen = new Set<string>();
  for (const digest of digests) {
    const key = toHex(digest);
    const node = views.get(key);
    if (node === undefined || seen.has(key)) continue;
    seen.add(key);
    if (node.spent <= node.received) continue;
    const how = node.live
      ? 'it signed payments and redemptions worth more than it received'
      : 'it spent or redeemed value from a payment it rolled back, or that its payer withdrew before any success message';
    const found = await openFinding(tx, ctx, {
      kind: 'overspent',
      subject: key,
      serial: toHex(node.serial),
      culprit: node.holder,
      received: node.received,
      spent: node.spent,
      records: node.counted.map((c) => toHex(c.digest)),
      reason: `the holder of this node double spent: ${how}`,
    });
    if (found !== null) findings.push(found);
  }
  return findings;
}

/** Every finding, oldest first. */
export async function listFindings(q: Queryable): Promise<DotmFinding[]> {
  const { rows } = await q.query<{ kind: FindingKind; subject: Uint8Array; serial: Uint8Array | null; culprit_key_id: string; culprit_wallet: string | null; evidence: { received: string | null; spent: string | null; records: string[]; reason: string } }>(
    'SELECT kind, subject, serial, culprit_key_id, culprit_wallet, evidence FROM dotm_findings ORDER BY id',
  );
  return rows.map((r) => ({
    kind: r.kind,
    subject: toHex(new Uint8Array(r.subject)),
    serial: r.serial === null ? null : toHex(new Uint8Array(r.serial)),
    culprit: r.culprit_key_id,
    wallet: r.culprit_wallet,
    received: r.evidence.received === null ? null : BigInt(r.evidence.received),
    spent: r.evidence.spent === null ? null : BigInt(r.evidence.spent),
    records: r.evidence.records,
    reason: r.evidence.reason,
  }));
}

/**
 * What the node knows each DOT-M holder has left, from the tree of every serial: at each node, what
 * its holder received (0 for a record that is not live) minus its live children and what it gave up
 * to be credited online. A node below zero was spent twice (settlement names its holder). The float
 * must also cover redemptions and refunds given up at a node but withheld, which it still holds.
 */
