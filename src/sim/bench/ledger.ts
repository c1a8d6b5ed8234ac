/**
 * `bench ledger`: online transfers through the issuer node's HTTP API over a real socket, with
 * PGlite and with PostgreSQL, at concurrency 1 and 32, measured in one run. Each worker pays from
 * its own account to its own payee, so the figures show the node and the database, not one hot row.
 */
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { toBase64url, toHex } from '../../core/bytes.ts';
import { signerFromSecret, type Signer } from '../../core/crypto/suite.ts';
import { keyId } from '../../pki/key-id.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { startNode, DEFAULT_CURRENCY } from '../../cli/node-start.ts';
import { signRequest } from '../../issuer/client/request-auth.ts';
import type { Database } from '../../issuer/db/database.ts';
import { dropPostgresSchema, openPostgres } from '../../issuer/db/postgres.ts';
import type { BenchPlugin } from './plugin.ts';
import { summarise, type Latency } from './stats.ts';

/** Options of the ledger benchmark. */
export interface LedgerBenchOptions {
  /** Transfers timed per row. */
  transfers: number;
  /** PostgreSQL URL; the PostgreSQL rows are skipped without one. */
  postgresUrl: string | undefined;
  progress: (line: string) => void;
}

/** One row: a backend at a concurrency. */
export interface LedgerRow {
  database: 'pglite' | 'postgres';
  concurrency: number;
  transfers: number;
  perSecond: number;
  latency: Latency;
}

/** What `bench ledger` measured. */
export interface LedgerBenchReport {
  rows: LedgerRow[];
  skipped: string[];
}

const CONCURRENCIES = [1, 32] as const;
const silent = { log: () => undefined };

async function withPostgresSchema<T>(url: string, run: (db: Database) => Promise<T>): Promise<T> {
  const schema = `tally_bench_${process.pid}_${nodeRandomBytes(4).toString('hex')}`;
  const db = await openPostgres(url, { schema, poolSize: 40 });
  try {
    return await run(db);
  } finally {
    await db.close().catch(() => undefined);
    await dropPostgresSchema(url, schema);
  }
}

async function measureNode(database: 'pglite' | 'postgres', db: Database | undefined, options: LedgerBenchOptions): Promise<LedgerRow[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-bench-ledger-'));
  let tokenText = '';
  const node = await startNode({
    port: 0,
    host: '127.0.0.1',
    dataDir,
    db,
    env: { TALLY_NODE_PASSPHRASE: 'bench' },
    currency: DEFAULT_CURRENCY,
    logger: silent,
    print: (text) => {
      tokenText = text.split('\n')[2] ?? '';
    },
  });
  try {
    const users: Array<{ signer: Signer; id: string; account: string }> = [];
    const call = async (signer: Signer | null, method: string, path: string, body: unknown, key: string): Promise<Response> => {
      const text = JSON.stringify(body);
      const auth = signer === null ? { authorization: `Bearer ${tokenText}` } : signRequest({ signer, keyId: toHex(keyId(signer.publicKey)), method, path, body: text, timestamp: Date.now() });
      const response = await fetch(`${node.url}${path}`, { method, body: text, headers: { 'content-type': 'application/json', 'idempotency-key': key, ...auth } });
      if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
      return response;
    };
    const workers = Math.max(...CONCURRENCIES);
    options.progress(`${database}: registering ${2 * workers} account holders`);
    for (let i = 0; i < 2 * workers; i++) {
      const signer = signerFromSecret(nodeProvider.suites.ed25519, nodeProvider.suites.ed25519.generateSecretKey());
      const registered = (await (await call(signer, 'POST', '/v1/users', { publicKey: { suite: 'ed25519', key: toBase64url(signer.publicKey.key) } }, `register-${i}-bench`)).json()) as { keyId: string; account: string };
      users.push({ signer, id: registered.keyId, account: registered.account });
      await call(null, 'POST', '/v1/operator/mint', { account: registered.account, amount: '1000000.00' }, `mint-${i}-bench`);
    }
    const rows: LedgerRow[] = [];
    let serial = 0;
    for (const concurrency of CONCURRENCIES) {
      options.progress(`${database}: ${options.transfers} transfers at concurrency ${concurrency}`);
      const samples: number[] = [];
      let next = 0;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async (_unused, w) => {
          const payer = users[w];
          const payee = users[workers + w];
          if (payer === undefined || payee === undefined) throw new Error('no such account holder');
          while (next < options.transfers) {
            next++;
            const t = performance.now();
            await call(payer.signer, 'POST', '/v1/transfers', { to: payee.account, amount: '0.01' }, `bench-${serial++}-${w}`);
            samples.push(performance.now() - t);
          }
        }),
      );
      const elapsed = performance.now() - started;
      rows.push({ database, concurrency, transfers: samples.length, perSecond: (samples.length * 1000) / elapsed, latency: summarise(samples) });
    }
    const audit = (await (await fetch(`${node.url}/v1/audit`, { headers: { authorization: `Bearer ${tokenText}` } })).json()) as { balanced: boolean };
    if (audit.balanced !== true) throw new Error(`${database}: the audit is not balanced after the benchmark`);
    return rows;
  } finally {
    await node.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** Runs `bench ledger`. */
export async function benchLedger(options: LedgerBenchOptions): Promise<LedgerBenchReport> {
  const rows = await measureNode('pglite', undefined, options);
  const skipped: string[] = [];
  if (options.postgresUrl === undefined) {
    skipped.push('postgres: set DATABASE_URL or TEST_DATABASE_URL to a PostgreSQL URL to measure it');
  } else {
    const url = options.postgresUrl;
    rows.push(...(await withPostgresSchema(url, (db) => measureNode('postgres', db, options))));
  }
  return { rows, skipped };
}

/** The report as a Markdown table, with PostgreSQL's ratio to PGlite per concurrency. */
export function formatLedgerReport(report: LedgerBenchReport): string {
  const lines = ['Online transfers through POST /v1/transfers (signed, idempotent, one ledger transaction each)', '', '| database | concurrency | transfers | transfers/s | p50 ms | p99 ms |', '|---|---:|---:|---:|---:|---:|'];
  for (const row of report.rows) {
    lines.push(`| ${row.database} | ${row.concurrency} | ${row.transfers} | ${row.perSecond.toFixed(0)} | ${row.latency.p50Ms.toFixed(2)} | ${row.latency.p99Ms.toFixed(2)} |`);
  }
  for (const concurrency of CONCURRENCIES) {
    const lite = report.rows.find((r) => r.database === 'pglite' && r.concurrency === concurrency);
    const postgres = report.rows.find((r) => r.database === 'postgres' && r.concurrency === concurrency);
    if (lite !== undefined && postgres !== undefined) lines.push('', `PostgreSQL / PGlite throughput at concurrency ${concurrency}: ${(postgres.perSecond / lite.perSecond).toFixed(2)}x`);
  }
  for (const reason of report.skipped) lines.push('', `Skipped: ${reason}`);
  return lines.join('\n');
}

/** `npm run bench -- ledger`: online transfers through the node, PGlite and PostgreSQL. */
export const ledgerBench: BenchPlugin<Pick<LedgerBenchOptions, 'transfers'>, LedgerBenchReport> = {
  name: 'ledger',
  paper: 'Tally',
  reproduces: 'online transfers through the issuer node',
  parameters: { quick: { transfers: 100 }, full: { transfers: 1000 } },
  async run(harness, parameters) {
    const report = await benchLedger({ ...parameters, postgresUrl: harness.postgresUrl, progress: harness.progress });
    return { report, text: formatLedgerReport(report), ratios: [] };
  },
};
