/**
 * Two tiers as processes, for the end-to-end tests of payments across banks: a central bank and
 * two intermediaries, each a `tally node start` of its own with its own data folder and database
 * (a PostgreSQL database of its own on the test server when TEST_DATABASE_URL names one),
 * set up through the CLI as an operator would (enrolment, approval, a reserve for each), plus a
 * way to stop a bank and start it again, and the whole system's audit.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { cliOf, startNode, type Json, type NodeProcess } from '../cli/e2e-process.ts';
import { TEST_DATABASE_URL_VARIABLE } from '../issuer/db/test-databases.ts';
import { createTestDatabases, type TestShardDatabases } from '../issuer/shards/test-shards.ts';

/** One node of the system: its process, folder, and the CLI arguments that reach it as its operator. */
export interface TierProcess {
  readonly name: string;
  readonly dir: string;
  node: NodeProcess;
  /** `--node URL --data DIR`, for operator commands. */
  at: string[];
}

/** An intermediary's process, with its key id at the central bank. */
export interface BankProcess extends TierProcess {
  readonly keyId: string;
  /** Stops the node process (its folder and database stay). */
  stop(): Promise<void>;
  /** Starts it again over the same folder (on the same port, so that wallets reach it as before). */
  restart(): Promise<void>;
}

export interface TwoTierProcesses {
  readonly cli: ReturnType<typeof cliOf>;
  readonly env: Record<string, string | undefined>;
  readonly cb: TierProcess;
  readonly bankA: BankProcess;
  readonly bankB: BankProcess;
  /** Both banks synced (`tally node reserve`) `rounds` times, every audit balanced through the CLI, and the central bank's; the system's audit. */
  audit(rounds?: number): Promise<Json>;
  /** Stops every process. */
  stop(): Promise<void>;
}

/**
 * Starts the central bank, enrols and approves `Bank A` and `Bank B`, starts them, issues each its
 * reserve (major units) and syncs both. `base` is a fresh folder the caller removes.
 */
export async function startTwoTierProcesses(options: {
  base: string;
  passphrase: string;
  reserves?: { a: string; b: string };
  /** More arguments of bank B's `tally node start`, once bank A runs (say, to settle on A's chain). */
  bankBArgs?: (bankA: BankProcess) => Promise<string[]>;
}): Promise<TwoTierProcesses> {
  // With a test server, each node keeps its ledger in a PostgreSQL database of its own, as an
  // intermediary in production would; without one, in its embedded database.
  const serverUrl = process.env[TEST_DATABASE_URL_VARIABLE];
  const databases = serverUrl === undefined || serverUrl === '' ? undefined : await createTestDatabases(serverUrl, 3);
  try {
    return await startTiers(options, databases);
  } catch (e) {
    // The processes started are killed when the test process exits (e2e-process.ts).
    await databases?.drop();
    throw e;
  }
}

async function startTiers(options: Parameters<typeof startTwoTierProcesses>[0], databases: TestShardDatabases | undefined): Promise<TwoTierProcesses> {
  const env = { ...process.env, TALLY_NODE_PASSPHRASE: options.passphrase, TALLY_HOME: join(options.base, 'home') };
  const cli = cliOf(env);
  const databaseArgs = (i: number): string[] => (databases === undefined ? [] : ['--database-url', databases.urls[i] as string]);
  const cbDir = join(options.base, 'cb');
  const cbNode = await startNode(cbDir, 0, { passphrase: options.passphrase, args: ['--role', 'central-bank', ...databaseArgs(0)] });
  const cb: TierProcess = { name: 'central bank', dir: cbDir, node: cbNode, at: ['--node', cbNode.url, '--data', cbDir] };
  const started: TierProcess[] = [cb];
  const bank = async (name: string, folder: string, database: number, extra: string[] = []): Promise<BankProcess> => {
    const dir = join(options.base, folder);
    const args = [...databaseArgs(database), ...extra];
    const asked = await cli.ok('node', 'enrol', '--central-bank', cbNode.url, '--name', name, '--data', dir);
    assert.equal(asked['status'], 'pending');
    const keyId = String(asked['keyId']);
    assert.equal((await cli.ok('cb', 'approve', keyId, ...cb.at))['status'], 'approved');
    // A bank is restarted on its port (its wallets know its URL): a port below the ephemeral range,
    // which no other test's node (started on port 0) can be given while this one is stopped.
    const node = await startOnFixedPort(dir, { passphrase: options.passphrase, args });
    const self: BankProcess = {
      name,
      dir,
      keyId,
      node,
      at: ['--node', node.url, '--data', dir],
      async stop() {
        await self.node.stop();
      },
      async restart() {
        self.node = await startNode(dir, self.node.port, { passphrase: options.passphrase, args });
      },
    };
    started.push(self);
    return self;
  };
  const bankA = await bank('Bank A', 'bank-a', 1);
  const bankB = await bank('Bank B', 'bank-b', 2, options.bankBArgs === undefined ? [] : await options.bankBArgs(bankA));
  const reserves = options.reserves ?? { a: '1000.00', b: '1000.00' };
  await cli.ok('cb', 'issue', bankA.keyId, reserves.a, ...cb.at);
  await cli.ok('cb', 'issue', bankB.keyId, reserves.b, ...cb.at);
  for (const b of [bankA, bankB]) await cli.ok('node', 'reserve', ...b.at);
  return {
    cli,
    env,
    cb,
    bankA,
    bankB,
    async audit(rounds = 3) {
      for (let r = 0; r < rounds; r++) for (const b of [bankA, bankB]) await cli.ok('node', 'reserve', ...b.at);
      for (const b of [bankA, bankB]) {
        const audit = await cli.ok('audit', ...b.at);
        assert.equal(audit['balanced'], true, `${b.name}: ${JSON.stringify(audit)}`);
      }
      const system = await cli.ok('cb', 'audit', ...cb.at);
      assert.equal(system['balanced'], true, `the system: ${JSON.stringify(system)}`);
      return system;
    },
    async stop() {
      for (const p of started.reverse()) await p.node.stop().catch(() => undefined);
      await databases?.drop();
    },
  };
}

/** A port below the kernel's ephemeral range (32768 and up here) that nothing listens on now. */
async function freeFixedPort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((done) => {
      const probe = createServer();
      probe.once('error', () => done(false));
      probe.listen(port, '127.0.0.1', () => probe.close(() => done(true)));
    });
    if (free) return port;
  }
}

/** `tally node start` on such a port; another port when the chosen one was taken meanwhile. */
async function startOnFixedPort(dir: string, options: { passphrase: string; args: string[] }): Promise<NodeProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNode(dir, await freeFixedPort(), options);
    } catch (e) {
      if (attempt >= 5 || !(e instanceof Error) || !e.message.includes('LISTEN_FAILED')) throw e;
    }
  }
}
