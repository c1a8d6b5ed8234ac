/**
 * The intermediary's revocation list, kept in the database: every revoked certificate is a row, and
 * every change signs a new list version in the same transaction. The node's first list (version 1,
 * empty, created with its identity) seeds the table. Revoking takes a lock, so two revocations at
 * once produce two consecutive versions rather than two lists with the same number.
 */
import { toHex } from '../../core/bytes.ts';
import type { Signer } from '../../core/crypto/suite.ts';
import { decodeRevocationList, encodeRevocationList, issueRevocationList, type RevocationList } from '../../pki/revocation.ts';
import type { Queryable, TransactionHandle } from '../db/database.ts';
import { bigintColumn } from '../db/database.ts';

/** Roles whose certificates the intermediary issues, and so may revoke. */
export type RevocableRole = 'user' | 'device';

/** The current list: its version, its encoding as served, and the list itself. */
export interface CurrentRevocationList {
  readonly version: number;
  readonly encoded: Uint8Array;
  readonly list: RevocationList;
}

/** What a revocation did. */
export interface RevocationOutcome {
  /** The first list version naming the certificate. */
  readonly version: number;
  /** True when the certificate was already revoked: nothing changed. */
  readonly already: boolean;
}

/** A certificate to revoke: its serial, whose key it certifies, that key's role, and why. */
export interface RevocationRequest {
  readonly serial: Uint8Array;
  readonly subjectKeyId: string;
  readonly role: RevocableRole;
  readonly reason: string;
}

const LOCK = `SELECT pg_advisory_xact_lock(hashtext('tally/revocations/' || coalesce(current_schema(), '')))`;

/** Stores `list` as the first version when the table is empty (at every start; a no-op after the first). */
export async function seedRevocationList(q: Queryable, list: RevocationList): Promise<void> {
  await q.query(
    `INSERT INTO revocation_lists (version, encoded, issued_at)
     SELECT $1::bigint, $2, to_timestamp($3::bigint / 1000.0)
     WHERE NOT EXISTS (SELECT 1 FROM revocation_lists)`,
    [BigInt(list.body.version), encodeRevocationList(list), BigInt(list.body.issuedAt)],
  );
}

/**
 * The highest version stored.
 * @throws Error when no list was ever seeded (the node did not open through openNode)
 */
export async function currentRevocationList(q: Queryable): Promise<CurrentRevocationList> {
  const { rows } = await q.query<{ version: bigint; encoded: Uint8Array }>('SELECT version, encoded FROM revocation_lists ORDER BY version DESC LIMIT 1');
  const row = rows[0];
  if (row === undefined) throw new Error('no revocation list is stored: the node seeds one when it opens');
  const encoded = new Uint8Array(row.encoded);
  return { version: Number(bigintColumn(row, 'version')), encoded, list: decodeRevocationList(encoded) };
}

/** True when a certificate of the key `subjectKeyId` is revoked. */
export async function isSubjectRevoked(q: Queryable, subjectKeyId: string): Promise<boolean> {
  const { rowCount } = await q.query('SELECT 1 FROM revoked_certificates WHERE subject_key_id = $1 LIMIT 1', [subjectKeyId]);
  return rowCount > 0;
}

/**
 * Revokes a certificate inside `tx`: records it and signs the next list version with `issuer`
 * (the intermediary), at `now`. Revoking a revoked certificate changes nothing.
 * @throws TallyError CRL_INVALID when the list would pass REVOKED_SERIALS_MAX
 */
export async function revokeCertificate(tx: TransactionHandle, issuer: Signer, request: RevocationRequest, now: number): Promise<RevocationOutcome> {
  await tx.query(LOCK);
  const existing = await tx.query<{ list_version: bigint }>('SELECT list_version FROM revoked_certificates WHERE serial = $1', [request.serial]);
  const held = existing.rows[0];
  if (held !== undefined) return { version: Number(bigintColumn(held, 'list_version')), already: true };
  const current = await currentRevocationList(tx);
  const version = current.version + 1;
  const list = issueRevocationList({ issuer, version, issuedAt: Math.max(now, current.list.body.issuedAt), revoked: [...current.list.body.revoked, request.serial] });
  await tx.query('INSERT INTO revocation_lists (version, encoded, issued_at) VALUES ($1, $2, to_timestamp($3::bigint / 1000.0))', [
    BigInt(version),
    encodeRevocationList(list),
    BigInt(list.body.issuedAt),
  ]);
  await tx.query('INSERT INTO revoked_certificates (serial, subject_key_id, role, reason, list_version) VALUES ($1, $2, $3, $4, $5)', [
    request.serial,
    request.subjectKeyId,
    request.role,
    request.reason,
    BigInt(version),
  ]);
  return { version, already: false };
}

/** A revoked certificate as the registry lists it. */
export interface RevokedEntry {
  readonly serial: string;
  readonly subjectKeyId: string;
  readonly role: RevocableRole;
  readonly reason: string;
  readonly version: number;
  readonly revokedAt: Date;
}

/** Every revoked certificate, oldest first. */
export async function revokedCertificates(q: Queryable): Promise<RevokedEntry[]> {
  const { rows } = await q.query<{ serial: Uint8Array; subject_key_id: string; role: RevocableRole; reason: string; list_version: bigint; revoked_at: Date }>(
    'SELECT serial, subject_key_id, role, reason, list_version, revoked_at FROM revoked_certificates ORDER BY list_version',
  );
  return rows.map((r) => ({
    serial: toHex(new Uint8Array(r.serial)),
    subjectKeyId: r.subject_key_id,
    role: r.role,
    reason: r.reason,
    version: Number(bigintColumn(r, 'list_version')),
    revokedAt: r.revoked_at,
  }));
}
