/**
 * Payments across intermediaries, what the banks keep of them: the identity of a claim (the
 * hash of its scheme and evidence, so the same evidence is one claim however often it is
 * presented), the other intermediaries the central bank certified (so their customers'
 * certificates chain to the root here), and, at the payee's bank, the claims it presents for its
 * customers. A customer is credited only once the payer's bank accepted, the central bank moved the
 * reserves and that movement is recorded here (see link.ts); a refused claim credits nothing and
 * keeps its code and reason for the customer to read.
 */
import { toHex, utf8, concatBytes } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { decodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { bigintColumn, type Queryable, type TransactionHandle } from '../db/database.ts';
import type { IssuerServices } from '../http/context.ts';
import { ApiProblem } from '../http/problem.ts';
import { formatMinor } from '../http/json.ts';

/** Domain tag of a claim id. */
export const CLAIM_ID_TAG = 'tally/interbank/claim/v1';
/** Largest evidence of one claim, in bytes (an OPS payment with its two certificates fits four times over). */
export const CLAIM_EVIDENCE_BYTES_MAX = 8192;

/**
 * A claim's id: SHA-256 over the tag, the scheme and the evidence, hex. The central bank checks it,
 * so one piece of evidence cannot be presented as two claims.
 */
export function claimIdOf(scheme: string, evidence: Uint8Array): string {
  const head = utf8(`${CLAIM_ID_TAG}\n${scheme}\n`);
  return toHex(sha256(concatBytes(head, evidence)));
}

/** A claim presented to the payer's bank, as its scheme judges it. */
export interface InterbankClaim {
  readonly claimId: string;
  /** The key id (hex) of the presenting intermediary, as the central bank authenticated it. */
  readonly payeeBank: string;
  /** Minor units the payee's bank asks for; the scheme refuses evidence of another amount. */
  readonly amount: bigint;
  /** The scheme's own evidence (for OPS, the encoded payment). */
  readonly evidence: Uint8Array;
}

/** The payer's bank's judgement of a claim. */
export type InterbankJudgement =
  | { readonly accepted: true }
  | { readonly accepted: false; readonly code: string; readonly reason: string };

/** Another intermediary the central bank certified, as its directory answered at the last sync. */
export interface PeerIntermediary {
  readonly keyId: string;
  readonly name: string;
  readonly certificate: Certificate;
  /** Named in the root-signed list of revoked intermediaries: its customers' certificates are refused. */
  readonly revoked: boolean;
}

/** The other intermediaries known here (none at a standalone node or a central bank). */
export async function peerIntermediaries(services: IssuerServices, q: Queryable = services.db): Promise<PeerIntermediary[]> {
  if (services.identity.role !== 'intermediary') return [];
  const { rows } = await q.query<{ key_id: string; name: string; certificate: Uint8Array; revoked: boolean }>('SELECT key_id, name, certificate, revoked FROM tier_peers ORDER BY key_id');
  return rows.map((r) => ({ keyId: r.key_id, name: r.name, certificate: decodeCertificate(new Uint8Array(r.certificate)), revoked: r.revoked }));
}

/** Another bank's latest verified publication of one scheme. */
export interface PeerPublication extends PeerIntermediary {
  /** The scheme's own encoding of what that bank published. */
  readonly body: Uint8Array;
  readonly version: number;
}

/**
 * Every other bank's latest publication of `scheme` this bank has verified (at a standalone node
 * or a central bank, none). A revoked bank's is answered too, marked: the scheme refuses its money.
 */
export async function peerPublications(services: IssuerServices, scheme: string, q: Queryable = services.db): Promise<PeerPublication[]> {
  if (services.identity.role !== 'intermediary') return [];
  const { rows } = await q.query<{ key_id: string; name: string; certificate: Uint8Array; revoked: boolean; body: Uint8Array; version: bigint }>(
    `SELECT p.key_id, p.name, p.certificate, p.revoked, pp.body, pp.version FROM tier_peers p JOIN tier_peer_publications pp ON pp.key_id = p.key_id
     WHERE pp.scheme = $1 ORDER BY p.key_id`,
    [scheme],
  );
  return rows.map((r) => ({ keyId: r.key_id, name: r.name, certificate: decodeCertificate(new Uint8Array(r.certificate)), revoked: r.revoked, body: new Uint8Array(r.body), version: Number(bigintColumn(r, 'version')) }));
}

/** A claim of the payee's bank, as its customer reads it. */
export interface PresentedClaim {
  readonly claimId: string;
  readonly scheme: string;
  readonly payerBank: string;
  readonly amount: string;
  readonly currency: string;
  readonly status: 'pending' | 'presented' | 'accepted' | 'settled' | 'refused';
  readonly code?: string;
  readonly reason?: string;
}

interface ClaimRow {
  claim_id: string;
  scheme: string;
  payer_bank: string;
  amount: bigint;
  payee_account: string;
  payee_key_id: string;
  evidence: Uint8Array;
  status: PresentedClaim['status'];
  code: string | null;
  reason: string | null;
}

const CLAIM_COLUMNS = 'claim_id, scheme, payer_bank, amount, payee_account, payee_key_id, evidence, status, code, reason';

function presentedJson(services: IssuerServices, row: ClaimRow): PresentedClaim {
  return {
    claimId: row.claim_id,
    scheme: row.scheme,
    payerBank: row.payer_bank,
    amount: formatMinor(services.currency, bigintColumn(row, 'amount')),
    currency: services.currency.code,
    status: row.status,
    ...(row.code === null ? {} : { code: row.code }),
    ...(row.reason === null ? {} : { reason: row.reason }),
  };
}

/** One claim of the payee's bank, or undefined. */
export async function presentedClaim(services: IssuerServices, q: Queryable, claimId: string): Promise<(PresentedClaim & { payeeKeyId: string }) | undefined> {
  const row = (await q.query<ClaimRow>(`SELECT ${CLAIM_COLUMNS} FROM interbank_claims WHERE claim_id = $1`, [claimId])).rows[0];
  return row === undefined ? undefined : { ...presentedJson(services, row), payeeKeyId: row.payee_key_id };
}

/**
 * At the payee's bank: records a claim on the payer's bank for the customer `payee`, to be
 * presented to the central bank at the next sync. The same evidence again is the same claim: its
 * current state is answered and nothing changes.
 * @throws ApiProblem ROLE_MISMATCH at a node that is no intermediary; CLAIM_CONFLICT for the same evidence claimed by another customer
 */
export async function presentInterbankClaim(
  tx: TransactionHandle,
  services: IssuerServices,
  claim: { scheme: string; payerBank: string; amount: bigint; evidence: Uint8Array; payee: { keyId: string; accountId: string } },
): Promise<PresentedClaim> {
  if (services.identity.role !== 'intermediary') throw new ApiProblem('ROLE_MISMATCH', 'only an intermediary enrolled at a central bank presents claims on other intermediaries', { role: services.identity.role });
  const claimId = claimIdOf(claim.scheme, claim.evidence);
  await tx.query(
    `INSERT INTO interbank_claims (claim_id, scheme, payer_bank, amount, payee_account, payee_key_id, evidence)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (claim_id) DO NOTHING`,
    [claimId, claim.scheme, claim.payerBank, claim.amount, claim.payee.accountId, claim.payee.keyId, claim.evidence],
  );
  const row = (await tx.query<ClaimRow>(`SELECT ${CLAIM_COLUMNS} FROM interbank_claims WHERE claim_id = $1`, [claimId])).rows[0];
  if (row === undefined) throw new Error(`claim ${claimId} vanished`);
  if (row.payee_account !== claim.payee.accountId) throw new ApiProblem('CLAIM_CONFLICT', `claim ${claimId} was presented for another customer`, { claimId });
  return presentedJson(services, row);
}
