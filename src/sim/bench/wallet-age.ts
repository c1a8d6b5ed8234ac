/**
 * Wallet age: does a step cost more in an old wallet? Opens a wallet holding 0 and N settled
 * payments (N received, N sent, N history lines, archived as a sync leaves them) and runs one
 * payment's bookkeeping, through the wallet shell's own path (openFolderOf: the header read, the
 * lock, the store opened and what an open wallet holds read; then the paid-request check, the
 * journal line written before the SE call, and one commit of the sent entry, the journal line
 * removed and the history line), and, in the same run, with the single wallet.json file the wallet
 * wrote before the store (the whole file rewritten atomically at each commit, history appended
 * after). The secure element and the node are left out: this measures the wallet's own storage.
 */
import { appendFile, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { utf8 } from '../../core/bytes.ts';
import { writeFileAtomic } from '../../host/files.ts';
import { WalletStore, walletFileCodec, type InboxEntry, type LegacyWallet, type PendingStep, type SentEntry } from '../../wallet/store/index.ts';
import { hexOf, legacyWallet, storeInit } from '../../wallet/store/test-fixtures.ts';
import { TEST_FORMAT } from '../../wallet/book-fixtures.ts';
import { openFolderOf } from '../../wallet/folder.ts';
import { summarise, type Latency } from './stats.ts';
import type { BenchPlugin } from './plugin.ts';

/** A payment as base64url of about the size of an OPS payment token. */
const PAYMENT = 'A'.repeat(640);
/** The size at which the wallet before the store refused to open its file. */
const LEGACY_FILE_BYTES_MAX = 16 * 1024 * 1024;

/** Options of the benchmark. */
export interface WalletAgeOptions {
  /** Settled payments of the old wallet (the new one has none). */
  readonly settled: number;
  /** Open-and-pay rounds per wallet with the store, and with the JSON file. */
  readonly storeRounds: number;
  readonly jsonRounds: number;
  readonly progress?: ((line: string) => void) | undefined;
}

/** One kind of storage at two ages. */
export interface AgeRow {
  readonly storage: 'sqlite' | 'json';
  readonly settled: number;
  readonly fileBytes: number;
  readonly open: Latency;
  readonly pay: Latency;
  readonly total: Latency;
}

/** The benchmark's report. */
export interface WalletAgeReport {
  readonly machine: string;
  readonly rows: readonly AgeRow[];
  /** total p50 of the old wallet over the new one, per storage. */
  readonly ageRatio: { readonly sqlite: number; readonly json: number };
  /** total p50 of JSON over SQLite in the old wallet. */
  readonly jsonOverSqliteOld: number;
  /** Whether the wallet before the store could open the old JSON file at all. */
  readonly jsonOldOpens: boolean;
}

function inbox(n: number): InboxEntry {
  return { digest: hexOf(n, 32), sender: hexOf(7, 32), index: String(n), amount: '100', payment: PAYMENT, at: 1_700_000_000_000 + n, state: 'collected' };
}

function sent(n: number): SentEntry {
  return { digest: hexOf(n + 2 ** 40, 32), receiver: hexOf(9, 32), index: String(n), amount: '100', payment: PAYMENT, at: 1_700_000_000_000 + n, confirmed: true };
}

function payStep(n: number): PendingStep {
  return { kind: 'pay', id: hexOf(n + 2 ** 44, 16), amount: '100', receiver: 'QUJD' };
}

/** A home holding wallet `alice` (scheme `purse`) with `settled` payments, settled and archived as a sync leaves them. */
async function buildStore(home: string, settled: number): Promise<string> {
  const dir = join(home, 'wallets', 'alice');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, 'wallet.db');
  const store = WalletStore.create(path, storeInit());
  const chunk = 10_000;
  for (let from = 0; from < settled; from += chunk) {
    store.step((tx) => {
      for (let i = from; i < Math.min(settled, from + chunk); i++) {
        tx.putInbox(inbox(i));
        tx.putSent(sent(i));
        tx.history({ at: 1_700_000_000_000 + i, kind: 'claim', amount: '1.00', detail: `credited by the node; from ${hexOf(7, 32)} (index ${i})` });
      }
      tx.settleSent(Array.from({ length: Math.min(settled, from + chunk) - from }, (_, k) => sent(from + k).digest));
    });
  }
  store.prune({ before: Date.now() });
  store.close();
  return path;
}

async function buildJson(dir: string, settled: number): Promise<{ file: string; history: string }> {
  const data: LegacyWallet = { ...legacyWallet(0), inbox: Array.from({ length: settled }, (_, i) => inbox(i)), sent: Array.from({ length: settled }, (_, i) => sent(i)) };
  const file = join(dir, 'wallet.json');
  const history = join(dir, 'history.jsonl');
  await writeFileAtomic(file, utf8(`${JSON.stringify(data, null, 1)}\n`));
  const lines = Array.from({ length: settled }, (_, i) => `${JSON.stringify({ at: 1_700_000_000_000 + i, kind: 'claim', amount: '1.00', detail: `credited by the node; from ${hexOf(7, 32)} (index ${i})` })}\n`);
  await appendFile(history, lines.join(''), { mode: 0o600 });
  return { file, history };
}

/** One round through the wallet shell's path: open the folder (header, lock, store, what an open wallet holds), one payment's bookkeeping, close. */
async function roundStore(home: string, n: number): Promise<{ openMs: number; payMs: number }> {
  const t0 = performance.now();
  const { book, unlock } = await openFolderOf(home, 'alice', 'purse', TEST_FORMAT);
  book.acceptedInbox();
  const t1 = performance.now();
  const step = payStep(n);
  const entry = { ...sent(10_000_000 + n), request: hexOf(n, 16) };
  if (book.sentByRequest(entry.request) !== undefined) throw new Error('the request was paid already');
  book.commit({ put: [step] });
  book.commit({ drop: [step.id], sent: [entry], history: [{ at: Date.now(), kind: 'pay', amount: '1.00', detail: `to ${hexOf(9, 32)}` }] });
  const t2 = performance.now();
  book.close();
  await unlock();
  return { openMs: t1 - t0, payMs: t2 - t1 };
}

/** One round with the JSON file as the wallet kept it: read and parse whole, rewrite whole at each commit, append history after. */
async function roundJson(paths: { file: string; history: string }, n: number): Promise<{ openMs: number; payMs: number }> {
  const t0 = performance.now();
  // As the wallet read it: parsed, then decoded whole.
  const data = walletFileCodec.decode(JSON.parse(await readFile(paths.file, 'utf8')), 'wallet');
  const t1 = performance.now();
  const step = payStep(n);
  data.pending.push(step);
  await writeFileAtomic(paths.file, utf8(`${JSON.stringify(data, null, 1)}\n`));
  data.sent.push(sent(10_000_000 + n));
  data.pending = data.pending.filter((s) => s.id !== step.id);
  await writeFileAtomic(paths.file, utf8(`${JSON.stringify(data, null, 1)}\n`));
  await appendFile(paths.history, `${JSON.stringify({ at: Date.now(), kind: 'pay', amount: '1.00', detail: `to ${hexOf(9, 32)}` })}\n`, { mode: 0o600 });
  const t2 = performance.now();
  return { openMs: t1 - t0, payMs: t2 - t1 };
}

function row(storage: AgeRow['storage'], settled: number, fileBytes: number, rounds: readonly { openMs: number; payMs: number }[]): AgeRow {
  return {
    storage,
    settled,
    fileBytes,
    open: summarise(rounds.map((r) => r.openMs)),
    pay: summarise(rounds.map((r) => r.payMs)),
    total: summarise(rounds.map((r) => r.openMs + r.payMs)),
  };
}

/** Runs the benchmark. */
export async function benchWalletAge(options: WalletAgeOptions): Promise<WalletAgeReport> {
  const say = options.progress ?? (() => {});
  const root = await mkdtemp(join(tmpdir(), 'tally-bench-age-'));
  const rows: AgeRow[] = [];
  let jsonOldOpens = true;
  try {
    for (const settled of [0, options.settled]) {
      const dir = await mkdtemp(join(root, `w${settled}-`));
      say(`sqlite: building a wallet with ${settled} settled payments`);
      const path = await buildStore(dir, settled);
      const rounds: { openMs: number; payMs: number }[] = [];
      for (let i = 0; i < options.storeRounds; i++) rounds.push(await roundStore(dir, i));
      rows.push(row('sqlite', settled, (await stat(path)).size, rounds));
      say(`json: building a wallet with ${settled} settled payments`);
      const json = await buildJson(dir, settled);
      const size = (await stat(json.file)).size;
      if (settled > 0) jsonOldOpens = size <= LEGACY_FILE_BYTES_MAX;
      const jsonRounds: { openMs: number; payMs: number }[] = [];
      for (let i = 0; i < options.jsonRounds; i++) jsonRounds.push(await roundJson(json, i));
      rows.push(row('json', settled, size, jsonRounds));
      await rm(dir, { recursive: true, force: true });
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  const p50 = (storage: AgeRow['storage'], settled: number): number => rows.find((r) => r.storage === storage && r.settled === settled)?.total.p50Ms ?? NaN;
  return {
    machine: machineLine(),
    rows,
    ageRatio: { sqlite: p50('sqlite', options.settled) / p50('sqlite', 0), json: p50('json', options.settled) / p50('json', 0) },
    jsonOverSqliteOld: p50('json', options.settled) / p50('sqlite', options.settled),
    jsonOldOpens,
  };
}

function machineLine(): string {
  return `Node ${process.version}, ${process.platform}/${process.arch}, tmp ${tmpdir()}`;
}

/** The report as text. */
export function formatWalletAgeReport(report: WalletAgeReport): string {
  const ms = (x: number): string => x.toFixed(2).padStart(9);
  const lines = [
    'Wallet age: open + one payment\'s bookkeeping (paid-request check, journal line, sent entry, history line), p50 / p99 in ms; sqlite through the wallet shell\'s own path',
    'storage  settled     file MB   open p50   pay p50  total p50  total p99',
    ...report.rows.map((r) => `${r.storage.padEnd(7)}  ${String(r.settled).padStart(7)}  ${(r.fileBytes / 1e6).toFixed(1).padStart(10)} ${ms(r.open.p50Ms)} ${ms(r.pay.p50Ms)} ${ms(r.total.p50Ms)} ${ms(r.total.p99Ms)}`),
    `ratio old/new: sqlite ${report.ageRatio.sqlite.toFixed(2)}x, json ${report.ageRatio.json.toFixed(2)}x`,
    `old wallet, json/sqlite: ${report.jsonOverSqliteOld.toFixed(1)}x`,
    ...(report.jsonOldOpens ? [] : ['note: the old JSON file is over 16 MiB, which the wallet before the store refused to open (timed here without that limit)']),
  ];
  if (report.ageRatio.sqlite < 0.9) lines.push('warning: the old wallet came out faster than the new one by more than 10%: the machine was too noisy to trust this run');
  return lines.join('\n');
}

/** `npm run bench -- wallet-age [--quick]`: a wallet with 100,000 settled payments against a new one, SQLite store and wallet.json. */
export const walletAgeBench: BenchPlugin<{ settled: number; storeRounds: number; jsonRounds: number }, WalletAgeReport> = {
  name: 'wallet-age',
  paper: 'Tally',
  reproduces: "a step's cost against the wallet's age: open and one payment's bookkeeping with 0 and with 100,000 settled entries",
  parameters: { quick: { settled: 100_000, storeRounds: 10, jsonRounds: 2 }, full: { settled: 100_000, storeRounds: 40, jsonRounds: 5 } },
  async run(harness, parameters) {
    const report = await benchWalletAge({ ...parameters, progress: (line) => harness.progress(line) });
    // Its ratio (old over new) is about 1 when a step's cost does not grow with age, so it is not a
    // ratio to a floor; the report warns itself when the old wallet came out clearly faster.
    return { report, text: formatWalletAgeReport(report), ratios: [] };
  },
};
