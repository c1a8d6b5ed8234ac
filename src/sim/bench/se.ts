/**
 * `bench se`: the secure element against its floor. Measures, in one run: sign and verify rates per
 * suite and provider; the persistence a commit needs (sealed write + counter increment) per counter;
 * and toy-purse `spend` latency (one signature + one commit) for the in-process and the isolated
 * host with the file and the TPM counter, each as a ratio to its floor.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from '../../core/crypto/hash.ts';
import { nobleProvider } from '../../core/crypto/noble.ts';
import { SUITE_NAMES, type CryptoProvider, type SuiteName } from '../../core/crypto/suite.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { nodeSealing } from '../../providers/node-sealing.ts';
import { toyPurse, type PurseState } from '../../secure-element/apps/toy-purse.ts';
import type { MonotonicCounter } from '../../secure-element/counter.ts';
import { makeCounter } from '../../secure-element/counters.ts';
import { InProcessHost } from '../../secure-element/host.ts';
import { IsolatedHost } from '../../secure-element/host-isolated.ts';
import type { CounterSpec } from '../../secure-element/host-protocol.ts';
import type { SecureElement } from '../../secure-element/secure-element.ts';
import { FileStorage } from '../../secure-element/storage-file.ts';
import { startSwtpm, swtpmAvailable, type Swtpm } from '../../secure-element/swtpm.ts';
import type { BenchPlugin } from './plugin.ts';
import { latency, throughput, type Latency } from './stats.ts';

/** How long to run each part. */
export interface SeBenchOptions {
  /** Time per throughput measurement. */
  cryptoBudgetMs: number;
  /** Timed iterations per latency measurement. */
  iterations: number;
  /** Progress lines go here (stderr). */
  progress: (line: string) => void;
}

/** One row of the crypto floor. */
export interface CryptoRow {
  provider: string;
  suite: SuiteName;
  signPerSecond: number;
  verifyPerSecond: number;
}

/** One row of the SE latencies. */
export interface SeRow {
  host: 'in-process' | 'isolated';
  counter: 'file' | 'tpm';
  command: Latency;
  floor: { signMs: number; persistence: Latency; p50Ms: number; p99Ms: number };
  ratioP50: number;
  ratioP99: number;
}

/** Everything `bench se` measured. */
export interface SeBenchReport {
  machine: { cpus: string; cores: number; memoryGiB: number; node: string; platform: string };
  crypto: CryptoRow[];
  persistence: Array<{ counter: 'file' | 'tpm'; latency: Latency }>;
  se: SeRow[];
  tpm: 'swtpm' | 'unavailable';
}

const MESSAGE = randomBytes(160); // about the size of an encoded payment record

function measureSuite(provider: CryptoProvider, name: SuiteName, budgetMs: number): CryptoRow {
  const suite = provider.suites[name];
  const secretKey = suite.generateSecretKey();
  const publicKey = suite.publicKey(secretKey);
  const signature = suite.sign(secretKey, MESSAGE);
  const signPerSecond = throughput(() => suite.sign(secretKey, MESSAGE), budgetMs);
  const verifyPerSecond = throughput(() => {
    if (!suite.verify(publicKey, signature, MESSAGE)) throw new Error('benchmark signature failed to verify');
  }, budgetMs);
  return { provider: provider.name, suite: name, signPerSecond, verifyPerSecond };
}

async function measurePersistence(dir: string, counter: MonotonicCounter, sealedBytes: number, iterations: number): Promise<Latency> {
  await mkdir(dir, { recursive: true });
  const storage = new FileStorage(dir);
  await counter.open();
  const blob = randomBytes(sealedBytes);
  const result = await latency(async () => {
    await storage.writeTemp('floor', blob);
    await storage.replace('floor');
    await counter.increment();
  }, iterations);
  await counter.close();
  return result;
}

const APP_LOCATION = { module: new URL('../../secure-element/apps/toy-purse.ts', import.meta.url).href, export: 'toyPurse' };

async function startHost(kind: 'in-process' | 'isolated', dir: string, counter: CounterSpec): Promise<SecureElement<typeof toyPurse.commands>> {
  if (kind === 'in-process') {
    return InProcessHost.provision<PurseState, typeof toyPurse.commands>({
      app: toyPurse,
      storage: new FileStorage(dir),
      counter: makeCounter(counter),
      provider: nodeProvider,
      sealing: nodeSealing,
    });
  }
  return IsolatedHost.start({ app: toyPurse, location: APP_LOCATION, dir, counter, provision: true });
}

/** Runs `bench se`. */
export async function benchSecureElement(options: SeBenchOptions): Promise<SeBenchReport> {
  const root = await mkdtemp(join(tmpdir(), 'tally-bench-se-'));
  let swtpm: Swtpm | null = null;
  try {
    const crypto: CryptoRow[] = [];
    for (const provider of [nodeProvider, nobleProvider]) {
      for (const suite of SUITE_NAMES) {
        options.progress(`crypto: ${provider.name} ${suite}`);
        crypto.push(measureSuite(provider, suite, options.cryptoBudgetMs));
      }
    }
    const signMs = 1000 / (crypto.find((row) => row.provider === 'node' && row.suite === 'ed25519')?.signPerSecond ?? Number.NaN);

    const counters: Array<{ name: 'file' | 'tpm'; spec: (i: number) => CounterSpec }> = [
      { name: 'file', spec: (i) => ({ kind: 'file', path: join(root, `counter-${i}`) }) },
    ];
    if (await swtpmAvailable()) {
      options.progress('starting swtpm');
      swtpm = await startSwtpm({ stateDir: join(root, 'swtpm') });
      const tcti = swtpm.tcti;
      counters.push({ name: 'tpm', spec: (i) => ({ kind: 'tpm', tcti, nvIndex: 0x01800100 + i }) });
    } else {
      options.progress('swtpm not installed: TPM rows skipped (install swtpm swtpm-tools tpm2-tools)');
    }

    // A sealed toy-purse state with a full outbox is about this size.
    const sealedBytes = 2048;
    const persistence: SeBenchReport['persistence'] = [];
    const se: SeRow[] = [];
    let slot = 0;
    for (const counter of counters) {
      options.progress(`persistence floor: ${counter.name} counter`);
      const floorDir = join(root, `floor-${counter.name}`);
      const persisted = await measurePersistence(floorDir, makeCounter(counter.spec(slot++)), sealedBytes, options.iterations);
      persistence.push({ counter: counter.name, latency: persisted });
      for (const host of ['in-process', 'isolated'] as const) {
        options.progress(`secure element: ${host} host, ${counter.name} counter`);
        const dir = join(root, `se-${host}-${counter.name}`);
        const element = await startHost(host, dir, counter.spec(slot++));
        await element.call('load', { amount: 10n ** 12n });
        const payee = randomBytes(32);
        const command = await latency(() => element.call('spend', { amount: 1n, payee }), options.iterations);
        await element.close();
        const floorP50 = signMs + persisted.p50Ms;
        const floorP99 = signMs + persisted.p99Ms;
        se.push({
          host,
          counter: counter.name,
          command,
          floor: { signMs, persistence: persisted, p50Ms: floorP50, p99Ms: floorP99 },
          ratioP50: command.p50Ms / floorP50,
          ratioP99: command.p99Ms / floorP99,
        });
      }
    }
    const cpu = cpus()[0];
    return {
      machine: {
        cpus: cpu?.model ?? 'unknown',
        cores: cpus().length,
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
        platform: `${process.platform}-${process.arch}`,
      },
      crypto,
      persistence,
      se,
      tpm: swtpm === null ? 'unavailable' : 'swtpm',
    };
  } finally {
    await swtpm?.stop();
    await rm(root, { recursive: true, force: true });
  }
}

const fmt = (x: number, digits = 2) => x.toFixed(digits);
const rate = (x: number) => Math.round(x).toLocaleString('en-US');

/** The report as Markdown tables. */
export function formatSeReport(report: SeBenchReport): string {
  const lines: string[] = [];
  const m = report.machine;
  lines.push(`TPM: ${report.tpm}; the report's machine: ${m.cpus}, ${m.cores} cores`, '');
  lines.push('Signatures (160-byte message)', '', '| provider | suite | sign/s | verify/s |', '|---|---|---:|---:|');
  for (const row of report.crypto) lines.push(`| ${row.provider} | ${row.suite} | ${rate(row.signPerSecond)} | ${rate(row.verifyPerSecond)} |`);
  lines.push('', 'Speed-up of node:crypto over noble (same run)', '', '| suite | sign | verify |', '|---|---:|---:|');
  for (const suite of SUITE_NAMES) {
    const node = report.crypto.find((r) => r.provider === 'node' && r.suite === suite);
    const noble = report.crypto.find((r) => r.provider === 'noble' && r.suite === suite);
    if (node !== undefined && noble !== undefined) {
      lines.push(`| ${suite} | ${fmt(node.signPerSecond / noble.signPerSecond)}x | ${fmt(node.verifyPerSecond / noble.verifyPerSecond)}x |`);
    }
  }
  lines.push('', 'Persistence per commit (sealed write + fsync + rename + counter increment)', '', '| counter | p50 ms | p99 ms |', '|---|---:|---:|');
  for (const row of report.persistence) lines.push(`| ${row.counter} | ${fmt(row.latency.p50Ms, 3)} | ${fmt(row.latency.p99Ms, 3)} |`);
  lines.push(
    '',
    'Secure element command `spend` (one Ed25519 signature + one commit); floor = one node:crypto signature + the persistence above',
    '',
    '| host | counter | p50 ms | p99 ms | floor p50 ms | floor p99 ms | p50 / floor | p99 / floor |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  );
  for (const row of report.se) {
    lines.push(
      `| ${row.host} | ${row.counter} | ${fmt(row.command.p50Ms, 3)} | ${fmt(row.command.p99Ms, 3)} | ${fmt(row.floor.p50Ms, 3)} | ${fmt(row.floor.p99Ms, 3)} | ${fmt(row.ratioP50)} | ${fmt(row.ratioP99)} |`,
    );
  }
  return lines.join('\n');
}

/** `npm run bench -- se`: the secure element's command against one signature and one commit. */
export const seBench: BenchPlugin<Omit<SeBenchOptions, 'progress'>, SeBenchReport> = {
  name: 'se',
  paper: 'Tally',
  reproduces: 'the secure element against its floor (signatures, persistence, a command)',
  parameters: { quick: { cryptoBudgetMs: 150, iterations: 40 }, full: { cryptoBudgetMs: 1000, iterations: 400 } },
  async run(harness, parameters) {
    const report = await benchSecureElement({ ...parameters, progress: harness.progress });
    return { report, text: formatSeReport(report), ratios: report.se.map((r) => ({ what: `${r.host} ${r.counter} spend / floor (p50)`, value: r.ratioP50 })) };
  },
};
