/** What DOT-M settlement works with: the float account, a registered wallet as the node holds it, the node's view for settlement, event results and findings. */
import { assert } from '../../core/assert.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { SUITE_NAMES, type CryptoProvider, type PublicKey, type Signer } from '../../core/crypto/suite.ts';
import type { MemoOfChecks } from '../../core/crypto/signature-memo.ts';
import { bigintColumn, type Queryable } from '../../issuer/plugin.ts';
import type { VerifiedBlock } from './block.ts';
import type { CurrencyBlock } from './messages.ts';
import { walletEventWire, type WalletEvent } from './online.ts';
import type { CertificateCache } from '../../pki/certificate-cache.ts';

/** The ledger account holding the value outstanding in currency blocks. */
export const DOTM_FLOAT_ACCOUNT = 'float:dotm';

/** A registered DOT-M wallet as the node keeps it. */
export interface DotmWallet {
  readonly walletKeyId: string;
  readonly userKeyId: string;
  readonly accountId: string;
  readonly walletKey: PublicKey;
  readonly lastSeq: number;
  readonly revoked: boolean;
}

/** What settlement needs from the node. */
export interface SettlementContext {
  readonly provider: CryptoProvider;
  /** verifyBlock with the node's root key as pk_C, its root and intermediary, its time, no revocations, and the node's memo of signatures. */
  readonly verify: (block: CurrencyBlock) => VerifiedBlock;
  /** The node's memo of signatures that verified (a bounded SignatureMemo): a block or notification seen in an earlier upload is not verified again. */
  readonly verifiedSignatures?: MemoOfChecks | undefined;
  /** The node's decoded user certificates, kept by their bytes: a user seen in an earlier upload is not decoded again. */
  readonly certificates?: CertificateCache | undefined;
  /** Key id (hex) of the key that signs this node's blocks when it is an intermediary; undefined at a standalone node (pk_C). */
  readonly issuer: string | undefined;
  /** The caller's account key id, under which a claim on another bank is presented for its wallet's redemption. */
  readonly accountKeyId?: string | undefined;
  /** The intermediary's key, which signs revocation lists. */
  readonly intermediary: Signer;
  readonly now: number;
}

/** What the node did with one uploaded event. */
export interface EventResult {
  readonly seq: number;
  readonly status: 'taken' | 'duplicate' | 'refused';
  readonly code?: string | undefined;
  readonly message?: string | undefined;
  /** For a redemption: what was credited to the wallet's account. */
  readonly credited?: bigint | undefined;
  /** For a transaction the payer reported sent and the payee rolled back: whether the payer was refunded now. */
  readonly refund?: 'credited' | 'withheld' | undefined;
  /** For a redemption of copies of other banks' blocks: the claims presented to those banks. */
  readonly claims?: readonly string[] | undefined;
}

/** The kinds of fraud settlement proves. */
export type FindingKind = 'overspent' | 'contradiction' | 'clone';

/** A finding: who broke the rules, where, and the evidence. */
export interface DotmFinding {
  readonly kind: FindingKind;
  /** Hex: the over-spent node's digest, the tsn reported both ways, or the conflicting event's digest. */
  readonly subject: string;
  readonly serial: string | null;
  /** Key id of the culprit's user key. */
  readonly culprit: string;
  /** The culprit's wallet key id, when it is registered here. */
  readonly wallet: string | null;
  readonly received: bigint | null;
  readonly spent: bigint | null;
  /** Digests of the records involved (the children of an over-spent node). */
  readonly records: readonly string[];
  readonly reason: string;
}

/** What a batch of events did, or the gap that stopped it before anything changed. */
export type SettleOutcome =
  | { readonly ok: true; readonly lastSeq: number; readonly results: readonly EventResult[]; readonly findings: readonly DotmFinding[] }
  | { readonly ok: false; readonly code: 'SEQUENCE_GAP'; readonly message: string };

interface WalletRow {
  wallet_key_id: string;
  user_key_id: string;
  account_id: string;
  wallet_suite: string;
  wallet_public_key: Uint8Array;
  last_seq: bigint;
  revoked: boolean;
}

/** The wallet's row, locked when `lock` (inside a transaction); null when not registered. */
export async function readWallet(q: Queryable, walletKeyId: string, options: { lock?: boolean } = {}): Promise<DotmWallet | null> {
  const { rows } = await q.query<WalletRow>(
    `SELECT wallet_key_id, user_key_id, account_id, wallet_suite, wallet_public_key, last_seq, revoked
     FROM dotm_wallets WHERE wallet_key_id = $1${options.lock === true ? ' FOR UPDATE' : ''}`,
    [walletKeyId],
  );
  const row = rows[0];
  if (row === undefined) return null;
  const suite = SUITE_NAMES.find((s) => s === row.wallet_suite);
  assert(suite !== undefined, `wallet ${walletKeyId}: unknown suite ${row.wallet_suite}`);
  const lastSeq = Number(bigintColumn(row, 'last_seq'));
  assert(Number.isSafeInteger(lastSeq), `wallet ${walletKeyId}: last_seq out of range`);
  return {
    walletKeyId: row.wallet_key_id,
    userKeyId: row.user_key_id,
    accountId: row.account_id,
    walletKey: { suite, key: new Uint8Array(row.wallet_public_key) },
    lastSeq,
    revoked: row.revoked,
  };
}

/** SHA-256 of an event's encoding, signature included: two events under one seq differ here. */
export function eventDigest(event: WalletEvent): Uint8Array {
  return sha256(encodeCbor(walletEventWire(event)));
}
