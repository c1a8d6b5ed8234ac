/**
 * What every kind of wallet does the same way, whatever its scheme: reading its header and history
 * without the lock, amounts in its currency, and its online balance.
 */
import { readFile } from 'node:fs/promises';
import { Amount, type Currency } from '../core/amount.ts';
import type { Signer } from '../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { join } from 'node:path';
import { looseRecord } from '../core/fields.ts';
import { walletDir, walletPaths, type WalletPaths } from './home.ts';
import { readLegacyWallet, STORE_FILES } from './store/open.ts';
import { accountCodec, historyEventCodec } from './store/records.ts';
import { WalletStore } from './store/store.ts';
import type { NodeClient } from './node-client.ts';
import { accountAnswer } from './node-answers.ts';
import type { HistoryEvent, WalletAccount } from './wallet-data.ts';

/** What `readWalletData` reads without the lock: the header and the account. */
export interface WalletSummary {
  name: string;
  scheme: string;
  node: string;
  currency: { code: string; decimals: number };
  user: WalletAccount;
}

/** The store's slot as far as the shell reads it without the scheme: the account (the rest is the scheme's). */
const summarySlot = looseRecord({ user: accountCodec });

/**
 * Reads a wallet's header and account without its lock (wallet.db read-only, or the wallet.json of
 * an earlier version, which the next open migrates), null when there is no wallet of that name.
 * @throws TallyError STATE_CORRUPT
 */
export async function readWalletData(home: string, name: string): Promise<{ paths: WalletPaths; data: WalletSummary } | null> {
  const paths = walletPaths(walletDir(home, name));
  let store: WalletStore;
  try {
    store = WalletStore.openReadOnly(paths.store);
  } catch (e) {
    if (!isTallyError(e, 'WALLET_NOT_FOUND')) throw e;
    const legacy = await readLegacyWallet(paths.legacy);
    return legacy === null ? null : { paths, data: { name: legacy.name, scheme: legacy.scheme, node: legacy.node, currency: legacy.currency, user: legacy.user } };
  }
  try {
    const header = store.header();
    return { paths, data: { name: header.name, scheme: header.scheme, node: header.node, currency: header.currency, user: store.slot(summarySlot).user } };
  } finally {
    store.close();
  }
}

/** Formats minor units of `currency`. */
export function formatMinor(currency: Currency, minor: bigint): string {
  return Amount.of(currency, minor).toString();
}

/** Parses a decimal amount into minor units (> 0). @throws TallyError AMOUNT_INVALID */
export function parsePositive(currency: Currency, text: string): bigint {
  const minor = Amount.parse(text, currency).minor;
  if (minor <= 0n) throw new TallyError('AMOUNT_INVALID', `amount ${text}: must be more than zero`, { input: text });
  return minor;
}

/** A history line that could not be read as an event. */
export interface DamagedLine {
  /** 1-based line number (the first line the wallet ever wrote is 1). */
  line: number;
  reason: string;
}

/** A wallet's history: the events that could be read, oldest first, and the lines that could not. */
export interface HistoryRead {
  events: HistoryEvent[];
  damaged: DamagedLine[];
}

/**
 * Reads a wallet's history without its lock: from wallet.db (read-only), or from the history.jsonl
 * of a wallet.json folder not migrated yet. A damaged line is skipped and named in `damaged`; the
 * other events are returned as they are. `file` is the file read.
 */
export async function readHistory(paths: WalletPaths): Promise<HistoryRead & { file: string }> {
  let store: WalletStore;
  try {
    store = WalletStore.openReadOnly(paths.store);
  } catch (e) {
    if (!isTallyError(e, 'WALLET_NOT_FOUND')) throw e;
    return { ...(await readHistoryLines(join(paths.dir, STORE_FILES.legacyHistory))), file: join(paths.dir, STORE_FILES.legacyHistory) };
  }
  try {
    return { ...store.historyRead(), file: paths.store };
  } finally {
    store.close();
  }
}

/** The lines of a history.jsonl of an earlier version. */
async function readHistoryLines(path: string): Promise<HistoryRead> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const events: HistoryEvent[] = [];
  const damaged: DamagedLine[] = [];
  for (const [k, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      damaged.push({ line: k + 1, reason: 'not JSON' });
      continue;
    }
    try {
      events.push(historyEventCodec.decode(parsed, 'history line'));
    } catch {
      damaged.push({ line: k + 1, reason: 'not an event (a time and a kind)' });
    }
  }
  return { events, damaged };
}

/** Error codes of a node answer that a later retry may change (the request was not judged on its merits). */
const NODE_TRANSIENT_CODES: ReadonlySet<string> = new Set(['TIMESTAMP_OUT_OF_WINDOW', 'NONCE_REPLAYED', 'RATE_LIMITED']);

/**
 * True when the node gave a definite refusal: an answer 4xx with an error code (not one about the
 * request's freshness). Unreachable, 5xx, or a 4xx without a code are not: the step may be retried.
 */
export function isNodeRefusal(e: unknown): e is TallyError<'NODE_REFUSED'> {
  if (!isTallyError(e, 'NODE_REFUSED')) return false;
  const { status, code } = e.details;
  return status >= 400 && status < 500 && status !== 408 && status !== 429 && !code.startsWith('HTTP_') && !NODE_TRANSIENT_CODES.has(code);
}

/** The account's online balance, or null with the reason when the node is unreachable. */
export async function onlineBalanceOf(node: NodeClient, user: () => Promise<Signer>, account: string): Promise<{ balance: string | null; error?: string }> {
  const down = await node.reachable();
  if (down !== null) return { balance: null, error: `cannot reach the issuer node at ${node.url} (${down}); is it running? (tally node start)` };
  try {
    const answer = await node.signed(await user(), 'GET', `/v1/accounts/${account}`, { answer: accountAnswer });
    return { balance: answer.body.balance };
  } catch (e) {
    if (isTallyError(e, 'NODE_UNREACHABLE')) return { balance: null, error: e.message };
    throw e;
  }
}
