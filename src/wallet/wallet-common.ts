/**
 * What every kind of wallet does the same way, whatever its scheme: reading its folder under the
 * lock, amounts in its currency, its history, and its online balance.
 */
import { readFile } from 'node:fs/promises';
import { Amount, type Currency } from '../core/amount.ts';
import type { Signer } from '../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { readFileBounded, requirePrivateMode } from '../host/files.ts';
import { lockWallet, walletDir, walletPaths, type WalletPaths } from './home.ts';
import type { NodeClient } from './node-client.ts';
import { accountAnswer } from './node-answers.ts';
import { parseData, type HistoryEvent, type WalletData } from './wallet-data.ts';

/** Largest wallet.json read. */
export const WALLET_FILE_BYTES_MAX = 16 * 1024 * 1024;

/** A wallet folder read and locked: call `unlock` when done. */
export interface OpenedFolder {
  readonly paths: WalletPaths;
  readonly data: WalletData;
  readonly unlock: () => Promise<void>;
}

/** Reads a wallet's data, null when there is no wallet of that name. @throws TallyError STATE_CORRUPT */
export async function readWalletData(home: string, name: string): Promise<{ paths: WalletPaths; data: WalletData } | null> {
  const paths = walletPaths(walletDir(home, name));
  const file = await readFileBounded(paths.file, 'wallet file', WALLET_FILE_BYTES_MAX);
  if (file === null) return null;
  requirePrivateMode(paths.file, 'wallet file', file.mode);
  return { paths, data: parseData(paths.file, file.data) };
}

/**
 * Reads a wallet of `scheme` and takes its lock.
 * @throws TallyError WALLET_NOT_FOUND, WALLET_UNSUPPORTED (another scheme), WALLET_BUSY, STATE_CORRUPT
 */
export async function openWalletFolder(home: string, name: string, scheme: WalletData['scheme']): Promise<OpenedFolder> {
  const read = await readWalletData(home, name);
  if (read === null) throw new TallyError('WALLET_NOT_FOUND', `no wallet named ${name} in ${home}: create it with \`tally wallet create ${name} --scheme ${scheme}\``, { name });
  if (read.data.scheme !== scheme) throw new TallyError('WALLET_UNSUPPORTED', `wallet ${name} is a ${read.data.scheme} wallet`, { name, reason: 'scheme' });
  return { ...read, unlock: await lockWallet(read.paths, name) };
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

/** A line of history.jsonl that could not be read as an event. */
export interface DamagedLine {
  /** 1-based line number in the file. */
  line: number;
  reason: string;
}

/** A wallet's history: the events that could be read, oldest first, and the lines that could not. */
export interface HistoryRead {
  events: HistoryEvent[];
  damaged: DamagedLine[];
}

/**
 * Reads a wallet's history. A damaged line (not JSON, or not an event with a time and a kind) is
 * skipped and named in `damaged`; the other events are returned as they are.
 */
export async function readHistory(paths: WalletPaths): Promise<HistoryRead> {
  const text = await readFile(paths.history, 'utf8').catch(() => '');
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
    const e = parsed as Partial<HistoryEvent> | null;
    const valid =
      e !== null && typeof e === 'object' && !Array.isArray(e) && typeof e.at === 'number' && Number.isFinite(e.at) && typeof e.kind === 'string' &&
      (e.amount === undefined || typeof e.amount === 'string') && (e.detail === undefined || typeof e.detail === 'string');
    if (valid) events.push({ at: e.at as number, kind: e.kind as string, ...(e.amount === undefined ? {} : { amount: e.amount }), ...(e.detail === undefined ? {} : { detail: e.detail }) });
    else damaged.push({ line: k + 1, reason: 'not an event (a time and a kind)' });
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
export async function onlineBalanceOf(node: NodeClient, user: Signer, account: string): Promise<{ balance: string | null; error?: string }> {
  try {
    const answer = await node.signed(user, 'GET', `/v1/accounts/${account}`, { answer: accountAnswer });
    return { balance: answer.body.balance };
  } catch (e) {
    if (isTallyError(e, 'NODE_UNREACHABLE')) return { balance: null, error: e.message };
    throw e;
  }
}
