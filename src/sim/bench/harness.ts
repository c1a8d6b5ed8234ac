/**
 * The one harness every benchmark runs in: it gives a `BenchPlugin` its services, runs it with
 * its quick or full parameters, and writes the report: a `Machine:` line, the bench's tables, and a
 * warning when a ratio to a floor below 1 shows the machine was too noisy to trust the run.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCounter } from '../../secure-element/counters.ts';
import { InProcessHost } from '../../secure-element/host.ts';
import { IsolatedHost } from '../../secure-element/host-isolated.ts';
import type { SecureElement } from '../../secure-element/secure-element.ts';
import { MemoryCounter, MemoryStorage } from '../../secure-element/memory-fixtures.ts';
import { FileStorage } from '../../secure-element/storage-file.ts';
import { openChainService } from '../../issuer/chain/service.ts';
import { identityDir } from '../../issuer/identity/layout.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { nodeSealing } from '../../providers/node-sealing.ts';
import { machineLine, noiseWarnings, thisMachine, type Machine } from './machine.ts';
import { measureCommits, openCommitFloor } from './commit-floor.ts';
import { CryptoMeter } from './meter.ts';
import { openBenchNode } from './node.ts';
import { openProcessNode } from './node-process.ts';
import { progressBar } from './progress.ts';
import type { BenchHarness, BenchPlugin } from './plugin.ts';

/** The repository's root, and its docs folder, where figures go. */
const REPO_DIR = fileURLToPath(new URL('../../../', import.meta.url));
const DOCS_DIR = join(REPO_DIR, 'docs');

/** What seals the bank's chain key of a bench chain (a throwaway key in a temporary folder). */
const BENCH_CHAIN_PASSPHRASE = 'tally bench chain, a throwaway key';

/** What a finished run prints. */
export interface BenchOutput {
  /** The `--json` output: the machine, the warnings and the bench's own report. */
  readonly json: { readonly bench: string; readonly paper: string; readonly reproduces: string; readonly quick: boolean; readonly machine: Machine; readonly warnings: readonly string[]; readonly report: unknown };
  readonly text: string;
  readonly warnings: readonly string[];
}

/** How to run a bench. */
export interface RunOptions {
  readonly quick: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly progress: (line: string) => void;
  /**
   * The folder of a new PGlite cluster that every node on PGlite copies as its database instead
   * of running initdb in its new folder (BenchNodeOptions.pgliteCluster); the tests give theirs.
   */
  readonly pgliteCluster?: string | undefined;
}

/** A harness for one run, and what closes everything it started. */
export function makeHarness(options: RunOptions): { harness: BenchHarness; close(): Promise<void> } {
  const closers: Array<() => Promise<void>> = [];
  const postgresUrl = options.env['DATABASE_URL'] || options.env['TEST_DATABASE_URL'] || undefined;
  const harness: BenchHarness = {
    machine: thisMachine(),
    quick: options.quick,
    repoDir: REPO_DIR,
    env: options.env,
    provider: nodeProvider,
    postgresUrl,
    progress: options.progress,
    loadAverage: () => loadavg()[0] ?? Number.NaN,
    async tempDir(name) {
      const dir = await mkdtemp(join(tmpdir(), `tally-bench-${name}-`));
      closers.push(() => rm(dir, { recursive: true, force: true }));
      return dir;
    },
    async openNode(nodeOptions) {
      const node = await openBenchNode({ ...nodeOptions, postgresUrl, pgliteCluster: options.pgliteCluster });
      let stopped = false;
      const stop = async () => {
        if (stopped) return;
        stopped = true;
        await node.stop();
      };
      closers.push(stop);
      return { ...node, stop };
    },
    async openNodeProcess(nodeOptions) {
      const node = await openProcessNode({ ...nodeOptions, postgresUrl, pgliteCluster: options.pgliteCluster });
      closers.push(() => node.stop());
      return node;
    },
    progressBar: (label, total) => progressBar(label, total, process.stderr, options.progress),
    async chain() {
      const dataDir = await harness.tempDir('chain');
      // The bank's chain key lives in the data folder's identity, which a bare folder lacks.
      await mkdir(identityDir(dataDir), { recursive: true, mode: 0o700 });
      const { service } = await openChainService({ dataDir, passphrase: BENCH_CHAIN_PASSPHRASE, provider: nodeProvider, log: options.progress });
      closers.push(() => service.close());
      return service;
    },
    async startElement(element) {
      const host = await IsolatedHost.start({
        app: element.app,
        location: { module: element.location.module, export: element.location.export },
        dir: join(element.dir, 'se'),
        counter: { kind: 'file', path: join(element.dir, 'counter') },
        suite: element.suite,
        provision: true,
      });
      closers.push(() => host.close());
      return host;
    },
    async startInProcessElement(element) {
      // The file counter lives beside the state: the folder must exist before it opens.
      const dir = join(element.dir, 'se');
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const host: SecureElement<typeof element.app.commands> = await InProcessHost.provision({
        app: element.app,
        storage: new FileStorage(dir),
        counter: makeCounter({ kind: 'file', path: join(dir, 'counter') }),
        provider: element.provider,
        sealing: nodeSealing,
        suite: element.suite ?? 'ed25519',
      });
      closers.push(() => host.close());
      return host;
    },
    async startMemoryElement(element) {
      const host: SecureElement<typeof element.app.commands> = await InProcessHost.provision({
        app: element.app,
        storage: new MemoryStorage(),
        counter: new MemoryCounter(),
        provider: nodeProvider,
        sealing: nodeSealing,
        suite: element.suite ?? 'ed25519',
      });
      closers.push(() => host.close());
      return host;
    },
    async measureCommits(sealedBytes, iterations) {
      const dir = await harness.tempDir('commits');
      return measureCommits({ dir, sealedBytes, iterations });
    },
    async openCommitFloor() {
      const floor = openCommitFloor({ dir: await harness.tempDir('commits') });
      closers.push(() => floor.close());
      return floor;
    },
    meter: (phases) => new CryptoMeter(nodeProvider, phases),
    async fileBytes(path) {
      return (await stat(path)).size;
    },
    async elementState(dir) {
      // startElement keeps the counter beside the state folder; startInProcessElement inside it.
      const se = join(dir, 'se');
      const counterPath = await stat(join(dir, 'counter')).then(
        () => join(dir, 'counter'),
        () => join(se, 'counter'),
      );
      const commits = Number((await readFile(counterPath, 'utf8')).trim());
      if (!Number.isSafeInteger(commits)) throw new Error(`the counter of ${dir} is not a number`);
      let sealedBytes = 0;
      for (const name of await readdir(se)) if (name.endsWith('.sealed')) sealedBytes += (await stat(join(se, name))).size;
      return { commits, sealedBytes };
    },
    async writeFile(path, text) {
      const target = isAbsolute(path) ? path : join(DOCS_DIR, path);
      await writeFile(target, text);
      return target;
    },
  };
  return {
    harness,
    async close() {
      for (const close of closers.reverse()) await close().catch(() => undefined);
    },
  };
}

/** Runs `plugin` with its quick or full parameters in a fresh harness; answers what to print. */
export async function runBench<P, R>(plugin: BenchPlugin<P, R>, options: RunOptions): Promise<BenchOutput> {
  const { harness, close } = makeHarness(options);
  try {
    const result = await plugin.run(harness, options.quick ? plugin.parameters.quick : plugin.parameters.full);
    const warnings = noiseWarnings(result.ratios);
    const text = [machineLine(harness.machine), `${plugin.paper}: ${plugin.reproduces}${options.quick ? ' (--quick)' : ''}`, '', result.text, ...warnings.flatMap((w) => ['', w])].join('\n');
    return {
      json: { bench: plugin.name, paper: plugin.paper, reproduces: plugin.reproduces, quick: options.quick, machine: harness.machine, warnings, report: result.report },
      text,
      warnings,
    };
  } finally {
    await close();
  }
}
