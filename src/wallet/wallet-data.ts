/**
 * What a wallet keeps on disk: wallet.json (written whole and atomically, mode 0600) and
 * history.jsonl (appended). See home.ts for the folder and wallet.ts for who writes what when.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import type { SuiteName } from '../core/crypto/suite.ts';
import { TallyError } from '../core/errors.ts';
import { writeFileAtomic } from '../host/files.ts';
import type { WalletPaths } from './home.ts';
import { walletFileCodec } from './store/records.ts';

/** A received payment, as the payee's log keeps it. */
export interface InboxEntry {
  digest: string;
  sender: string;
  index: string;
  amount: string;
  payment: string;
  at: number;
  /** `retired`: paid to a secure element this wallet retired (`tally wallet recover`); kept, not collectable. */
  state: 'accepted' | 'collected' | 'claimed' | 'refused' | 'retired';
  /** Why the SE or the node refused it. */
  reason?: string;
  /**
   * Why it is still accepted after a try: the SE or the node could not take it yet for a reason
   * time, a sync or room cures (see CURABLE_REFUSALS); it is tried again after the next sync.
   */
  waiting?: string;
  /** What the node credited for it (decimal), as its answer to the claim said. */
  credited?: string;
}

/** A payment made by this wallet's TA. */
export interface SentEntry {
  digest: string;
  receiver: string;
  index: string;
  amount: string;
  payment: string;
  at: number;
  /** The payee confirmed it over a link (tokens are never confirmed). */
  confirmed: boolean;
  /** The nonce (hex) of the signed request token it paid: a request is paid once unless the user insists. */
  request?: string;
}

/** A step written down before it starts, finished on the next open if it was cut short; each scheme adds its own fields. */
export interface JournalStep {
  /** What the step does (the scheme's word: deposit, pay, issue, ...). */
  kind: string;
  /** The SE request id and the node idempotency key of the step (32 hex digits). */
  id: string;
}

/** wallet.json. */
export interface WalletData<Step extends JournalStep = JournalStep, Slot = unknown> {
  format: 1;
  name: string;
  /** The scheme's name, as the registry lists it. */
  scheme: string;
  node: string;
  currency: { code: string; decimals: number };
  createdAt: number;
  /**
   * The account key (the user key registered at the node, which signs the wallet's calls): `secret`
   * in hex, or `sealed`, a key file (base64url) sealed under a password, never the key in the clear.
   */
  user: { secret?: string; sealed?: string; keyId: string; account: string; certificate: string };
  device: { keyId: string; certificate: string } | null;
  /** What the scheme's wallet part keeps besides these fields (its keys, its own records). */
  slot?: Slot;
  certificates: { root: string; intermediary: string; issuerNode: string };
  crl: string | null;
  inbox: InboxEntry[];
  sent: SentEntry[];
  pending: Step[];
  /** Secure elements retired by `tally wallet recover`, oldest first, with the folder each was moved to. */
  retired?: { device: string; at: number; folder: string; /** When the node gives back what it holds for it (ISO time), and whether it did. */ releaseAt?: string; released?: boolean }[];
}

/** A line of history.jsonl. */
export interface HistoryEvent {
  at: number;
  kind: string;
  amount?: string;
  detail?: string;
}

function fail(message: string, reason: string): never {
  throw new TallyError('STATE_CORRUPT', message, { reason });
}

/** Replaces wallet.json. */
export async function writeData(paths: WalletPaths, data: WalletData): Promise<void> {
  await writeFileAtomic(paths.file, new TextEncoder().encode(`${JSON.stringify(data, null, 1)}\n`));
}

/** Appends an event to history.jsonl. */
export async function appendHistory(paths: WalletPaths, event: HistoryEvent): Promise<void> {
  await mkdir(paths.dir, { recursive: true });
  await appendFile(paths.history, `${JSON.stringify(event)}\n`, { mode: 0o600 });
}

/** Reads wallet.json. @throws TallyError STATE_CORRUPT */
export function parseData(path: string, bytes: Uint8Array): WalletData {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new TallyError('STATE_CORRUPT', `wallet file ${path} is not JSON`, { reason: 'json' }, { cause: e });
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || !('format' in raw) || raw.format !== 1) fail(`wallet file ${path} is not a format 1 wallet`, 'format');
  const record: Record<string, unknown> = { ...raw };
  const scheme = record['scheme'];
  if (typeof scheme !== 'string' || !/^[a-z][a-z0-9-]{1,31}$/.test(scheme)) fail(`wallet file ${path}: the scheme is missing`, 'scheme');
  // An earlier version kept the scheme's slot under the scheme's own name.
  if (record['slot'] === undefined && record[scheme] !== undefined && typeof record[scheme] === 'object') {
    record['slot'] = record[scheme];
    delete record[scheme];
  }
  for (const field of ['inbox', 'sent', 'pending'] as const) if (!Array.isArray(record[field])) fail(`wallet file ${path}: ${field} is missing`, field);
  for (const step of record['pending'] as unknown[]) {
    if (step === null || typeof step !== 'object' || !('kind' in step) || typeof step.kind !== 'string' || !('id' in step) || typeof step.id !== 'string') fail(`wallet file ${path}: a pending step has no kind or id`, 'pending');
  }
  const data = record as unknown as WalletData;
  const clear = typeof data.user?.secret === 'string' && /^[0-9a-f]{64}$/.test(data.user.secret);
  const sealed = typeof data.user?.sealed === 'string' && /^[A-Za-z0-9_-]{1,2048}$/.test(data.user.sealed);
  if (!clear && !sealed) fail(`wallet file ${path}: the user key is missing`, 'user');
  try {
    walletFileCodec.decode(data, 'wallet');
  } catch (e) {
    throw new TallyError('STATE_CORRUPT', `wallet file ${path} is damaged: ${e instanceof Error ? e.message : String(e)}`, { reason: 'field' }, { cause: e });
  }
  return data;
}
