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

/** A wallet's history, oldest first. */
export async function readHistory(paths: WalletPaths): Promise<HistoryEvent[]> {
  const text = await readFile(paths.history, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as HistoryEvent);
}

/** The account's online balance, or null with the reason when the node is unreachable. */
export async function onlineBalanceOf(node: NodeClient, user: Signer, account: string): Promise<{ balance: string | null; error?: string }> {
  try {
    const answer = await node.signed<{ balance: string }>(user, 'GET', `/v1/accounts/${account}`);
    return { balance: answer.body.balance };
  } catch (e) {
    if (isTallyError(e, 'NODE_UNREACHABLE')) return { balance: null, error: e.message };
    throw e;
  }
}
