/**
 * For the chain-tee crash tests (not exported): a world of a real issuer node with its embedded
 * anvil and chain-tee wallets opened in this process (each secure element its own child process),
 * a kill of a wallet's secure element at a crash point of a command's commit, a payment over TCP
 * on loopback, the embedded anvil killed and its node started again on the same data folder, and
 * the conservation check every test ends with: everyone syncs, each TEE holds exactly what the test
 * expects and exactly what the chain holds for its account, every minted token is somewhere, and
 * the node's audit (its chain part too) balances.
 */
import assert from 'node:assert/strict';
import { CRASH_POINTS } from '../../secure-element/secure-element.ts';
import { copyFile, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliOf, killChildren, startNode, type Json, type NodeProcess } from '../../cli/e2e-process.ts';
import { isTallyError } from '../../core/errors.ts';
import { anvilFiles } from '../../issuer/chain/anvil.ts';
import { anvilPidOf } from '../../issuer/chain/test-fixtures.ts';
import type { CrashPoint } from '../../secure-element/secure-element.ts';
import { ChainWallet } from './wallet.ts';

/** The passphrase of the crash tests' nodes. */
const NODE = { passphrase: 'chain crash' };
/** How long each side of a payment waits for the other. */
const SESSION_TIMEOUT_MS = 5_000;

/** Minor units of a wallet's decimal text ("12.50" -> 1250n). */
export const minor = (text: string | null): bigint => BigInt((text ?? 'NaN').replace('.', ''));

/** True for the error a secure element killed under a call gives. */
export const crashed = (e: unknown): boolean => isTallyError(e, 'SE_CRASHED') || isTallyError(e, 'SE_UNAVAILABLE');

/** Kills the wallet's SE at `point` of the commit of its next `command` (each call of it on this SE process arms the crash). */
export async function killAt(wallet: ChainWallet, command: string, point: CrashPoint): Promise<void> {
  const se = await wallet.se();
  const call = se.call.bind(se) as (...args: unknown[]) => Promise<unknown>;
  Object.assign(se, {
    call: async (...args: unknown[]) => {
      if (args[0] === command) await se.armCrash(point);
      return call(...args);
    },
  });
}

/** Kills the wallet's SE process outright while its next `command` (a read) runs. */
export async function killDuring(wallet: ChainWallet, command: string): Promise<void> {
  const se = await wallet.se();
  const call = se.call.bind(se) as (...args: unknown[]) => Promise<unknown>;
  Object.assign(se, {
    call: (...args: unknown[]) => {
      if (args[0] !== command) return call(...args);
      const running = call(...args);
      void se.kill();
      return running;
    },
  });
}

/**
 * Makes the payee's wallet decline every payment with its TEE's `reject` (Algorithm 4: an ack_fail
 * kept by the TEE) instead of `receive`, until the returned function is called.
 */
export async function declining(wallet: ChainWallet): Promise<() => void> {
  const se = await wallet.se();
  const original = se.call;
  const call = original.bind(se) as (...args: unknown[]) => Promise<unknown>;
  Object.assign(se, {
    call: async (...args: unknown[]) => {
      if (args[0] !== 'receive') return call(...args);
      const input = args[1] as { txOff: unknown; now: number };
      const { ack } = (await call('reject', { txOff: input.txOff, now: input.now })) as { ack: unknown };
      return { ack, credited: false };
    },
  });
  return () => Object.assign(se, { call: original });
}

/** What each side of a payment ended with (the error when it failed). */
export interface SessionEnd {
  payer: Awaited<ReturnType<ChainWallet['pay']>> | Error;
  payee: Awaited<ReturnType<ChainWallet['receive']>> | Error;
}

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

/** One payment: `payee` listens on loopback and asks `amount`, `payer` pays it; both sides ended when it returns. */
export async function session(payer: ChainWallet, payee: ChainWallet, amount: string): Promise<SessionEnd> {
  let port = 0;
  let listening!: () => void;
  const ready = new Promise<void>((resolve) => (listening = resolve));
  const receiving = payee.receive(amount, { port: 0, host: '127.0.0.1', timeoutMs: SESSION_TIMEOUT_MS, onListening: (p) => { port = p; listening(); } });
  const payeeEnd = receiving.then((r) => r, asError);
  await Promise.race([ready, payeeEnd]);
  const payerEnd = await payer.pay('127.0.0.1', port, null, { timeoutMs: SESSION_TIMEOUT_MS }).then((r) => r, asError);
  return { payer: payerEnd, payee: await payeeEnd };
}

/**
 * Runs `around` in place of this process's next request whose path starts with `path` (`go` sends
 * it as it was); every other request, and every later one, goes through. Answers the undo.
 */
export function onceFetching(path: string, around: (go: () => Promise<Response>) => Promise<Response>): () => void {
  const real = globalThis.fetch;
  let used = false;
  globalThis.fetch = (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    if (used || !url.pathname.startsWith(path)) return real(input, init);
    used = true;
    return around(() => real(input, init));
  };
  return () => {
    globalThis.fetch = real;
  };
}

/** A node with the chain-tee part on its embedded anvil, an OEM, and wallets in one home. */
export class ChainWorld {
  readonly wallets = new Map<string, ChainWallet>();
  /** What the test expects each TEE (and so its account on chain) to hold, minor units. */
  readonly expected = new Map<string, bigint>();
  /** Tokens the bank minted, minor units. */
  minted = 0n;

  private constructor(
    readonly root: string,
    readonly dataDir: string,
    readonly home: string,
    public node: NodeProcess,
    readonly token: string,
  ) {}

  /** Starts the node, enrolls the OEM, creates the wallets (through the CLI), mints to some, and opens them all here. */
  static async start(prefix: string, names: readonly string[], mints: Readonly<Record<string, string>>): Promise<ChainWorld> {
    const root = await mkdtemp(join(tmpdir(), prefix));
    const dataDir = join(root, 'node');
    const node = await startNode(dataDir, 0, NODE);
    const token = (await readFile(join(dataDir, 'identity', 'operator-token'), 'utf8')).trim();
    const world = new ChainWorld(root, dataDir, join(root, 'home'), node, token);
    await world.cli('operator', 'oem');
    await Promise.all(names.map((name) => world.cli('wallet', 'create', name, '--scheme', 'chain')));
    for (const [name, amount] of Object.entries(mints)) {
      await world.cli('operator', 'mint', name, amount);
      world.minted += minor(amount);
    }
    for (const name of names) world.expected.set(name, 0n);
    await world.openAll();
    return world;
  }

  /** A `tally` command of this home and node (exit 0: its JSON line). */
  cli(...args: string[]): Promise<Json> {
    return cliOf({ ...process.env, TALLY_HOME: this.home, TALLY_NODE: this.node.url, TALLY_OPERATOR_TOKEN: this.token }).ok(...args);
  }

  /** The open wallet `name`. */
  w(name: string): ChainWallet {
    const wallet = this.wallets.get(name);
    assert.ok(wallet !== undefined, `wallet ${name} is open`);
    return wallet;
  }

  /** Opens every wallet of the world in this process (their chain clients read the node's chain afresh). */
  async openAll(): Promise<void> {
    for (const name of this.expected.keys()) this.wallets.set(name, await ChainWallet.open(this.home, name));
  }

  /** Closes wallet `name` (its SE process stops, or is already gone) and opens it again, as a restarted app does. */
  async reopen(name: string): Promise<ChainWallet> {
    await this.w(name).close();
    const wallet = await ChainWallet.open(this.home, name);
    this.wallets.set(name, wallet);
    return wallet;
  }

  /** Moves `amount` of the expectation from `from` to `to` (minor units). */
  move(from: string, to: string, amount: bigint): void {
    this.expected.set(from, (this.expected.get(from) ?? 0n) - amount);
    this.expected.set(to, (this.expected.get(to) ?? 0n) + amount);
  }

  /** Adds `amount` to what `name` is expected to hold (a deposit), minor units. */
  credit(name: string, amount: bigint): void {
    this.expected.set(name, (this.expected.get(name) ?? 0n) + amount);
  }

  /** The node's audit (operator token). */
  async audit(): Promise<{ balanced: boolean; schemes?: { scheme: string; balanced: boolean; lines: string[]; details: Json }[] }> {
    const response = await fetch(`${this.node.url}/v1/audit`, { headers: { authorization: `Bearer ${this.token}` } });
    assert.equal(response.status, 200, await response.clone().text());
    return (await response.json()) as { balanced: boolean; schemes?: { scheme: string; balanced: boolean; lines: string[]; details: Json }[] };
  }

  /**
   * Everyone syncs; then each TEE holds what the test expects, with nothing held or unsettled, and
   * its account on chain holds the same; the tokens minted are all in the wallets' on-chain accounts
   * or in the offline accounts; the audit balances, its chain part too.
   */
  async assertConserved(label: string): Promise<void> {
    const names = [...this.expected.keys()];
    await Promise.all(names.map((name) => this.w(name).sync()));
    // Syncs run side by side: a payee's upload may reach the chain before its payer's own incoming
    // payments did, and then waits there (owed) for the next upload. A second round settles those.
    await Promise.all(names.map((name) => this.w(name).sync()));
    let tokens = 0n;
    let offline = 0n;
    for (const name of names) {
      const b = await this.w(name).balance();
      assert.equal(b.chainError, undefined, `${label}: ${name} reads the chain`);
      assert.equal(b.pendingSteps, 0, `${label}: ${name} has no step left`);
      assert.equal(b.unsettled, 0, `${label}: ${name}'s TEE holds nothing the chain has not settled`);
      assert.equal(minor(b.pending), 0n, `${label}: ${name}'s TEE holds nothing for an unacknowledged payment`);
      assert.equal(minor(b.offline), this.expected.get(name), `${label}: ${name}'s TEE holds what was paid to it, once`);
      assert.equal(minor(b.onChainAccount), minor(b.offline) + minor(b.pending), `${label}: ${name}'s account on chain holds what its TEE holds`);
      tokens += minor(b.walletTokens);
      offline += minor(b.onChainAccount);
    }
    assert.equal(tokens + offline, this.minted, `${label}: every token minted is in a wallet or an offline account`);
    const audit = await this.audit();
    const chain = audit.schemes?.find((s) => s.scheme === 'chain');
    assert.equal(chain?.balanced, true, `${label}: ${JSON.stringify(chain?.lines)}`);
    assert.equal(minor(String(chain?.details['supply'])), this.minted, `${label}: the token's supply is what was minted`);
    assert.equal(minor(String(chain?.details['onAccounts'])), offline, `${label}: the audit sees the offline accounts the wallets see`);
    assert.equal(audit.balanced, true, label);
  }

  /** The pid of the node's embedded anvil. */
  async anvilPid(): Promise<number> {
    const pid = await anvilPidOf(this.dataDir);
    assert.ok(pid !== undefined, 'the embedded anvil is found');
    return pid;
  }

  /** The latest block anvil's state file holds (null while it cannot be read: a dump under way). */
  async dumpedBlock(): Promise<number | null> {
    try {
      return Number((JSON.parse(await readFile(anvilFiles(this.dataDir).state, 'utf8')) as { best_block_number: number }).best_block_number);
    } catch {
      return null;
    }
  }

  /** Waits until anvil's state file holds block `block` (anvil dumps it every ANVIL_STATE_INTERVAL_S). */
  async untilDumped(block: bigint): Promise<void> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const dumped = await this.dumpedBlock();
      if (dumped !== null && dumped >= Number(block)) return;
      assert.ok(Date.now() < deadline, `anvil's state file reached block ${block} (it holds ${dumped})`);
      await new Promise((wait) => setTimeout(wait, 100));
    }
  }

  /** A copy of anvil's state file as its last dump left it, once that dump holds block `block`. */
  async snapshotAt(block: bigint): Promise<string> {
    await this.untilDumped(block);
    const copy = join(this.root, 'anvil-state.snapshot.json');
    for (;;) {
      await copyFile(anvilFiles(this.dataDir).state, copy);
      try {
        JSON.parse(await readFile(copy, 'utf8'));
        return copy;
      } catch {
        // Copied in the middle of a dump: again.
      }
    }
  }

  /**
   * SIGKILLs the embedded anvil (the node stays up, its chain requests failing). With `lostSince`
   * (a snapshot taken before), the state file goes back to it: what a kill before anvil's next
   * dump loses, made certain instead of left to the dump's timer.
   */
  async killAnvil(lostSince?: string): Promise<void> {
    const pid = await this.anvilPid();
    process.kill(pid, 'SIGKILL');
    const deadline = Date.now() + 10_000;
    while ((await anvilPidOf(this.dataDir)) !== undefined) {
      assert.ok(Date.now() < deadline, 'the killed anvil is gone');
      await new Promise((wait) => setTimeout(wait, 50));
    }
    if (lostSince !== undefined) await rename(lostSince, anvilFiles(this.dataDir).state);
  }

  /** Stops the node (its anvil may be dead already) and starts it again on the same data folder and port; the wallets are opened again. */
  async restartNode(): Promise<void> {
    for (const wallet of this.wallets.values()) await wallet.close();
    this.wallets.clear();
    await this.node.stop();
    this.node = await startNode(this.dataDir, this.node.port, NODE);
    await this.openAll();
  }

  /** Closes the wallets, stops the node and removes the files (every child left is killed). */
  async end(): Promise<number | null> {
    for (const wallet of this.wallets.values()) await wallet.close().catch(() => undefined);
    this.wallets.clear();
    const code = await this.node.stop();
    killChildren();
    await rm(this.root, { recursive: true, force: true });
    return code;
  }
}

/**
 * The crash points a run kills at. A commit is either not yet visible (killed before its rename) or
 * visible (after it, rolled forward if the counter lags): the test suite's short pass kills once in
 * each class (after-write, after-rename); TALLY_CRASH_CAMPAIGN=1 runs all four.
 */
export const RUN_CRASH_POINTS: readonly CrashPoint[] = process.env['TALLY_CRASH_CAMPAIGN'] === '1' ? CRASH_POINTS : ['after-write', 'after-rename'];
