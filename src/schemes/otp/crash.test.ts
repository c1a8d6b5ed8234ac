/**
 * OTP with each wallet's secure element in its own process, killed (SIGKILL) at each of the four
 * crash points of a commit: in both halves of a blind withdrawal, in the payer's Pay and
 * acknowledge, and in the payee's receive. After a kill the wallet starts its SE again: a
 * withdrawal step resumes with the bank's idempotent answer, and a payment cut anywhere leaves its
 * coins in flight at the payer until the next session with the same payee, which sends them again
 * and ends them with the ACK. Each coin ends credited exactly once: the bank debited each
 * withdrawal once, no coin is lost or doubled, and the audit balances at the end.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliOf, killChildren, startNode, type Json } from '../../cli/e2e-process.ts';
import { isTallyError } from '../../core/errors.ts';
import { CRASH_POINTS, type CrashPoint } from '../../secure-element/secure-element.ts';
import type { OtpWallet } from './wallet.ts';

type Node = Awaited<ReturnType<typeof startNode>>;
const dirs: string[] = [];
const open: OtpWallet[] = [];
after(async () => {
  for (const w of open) await w.close().catch(() => undefined);
  killChildren();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Kills the wallet's SE at `point` of the commit of its next `command`. */
async function killAt(wallet: OtpWallet, command: string, point: CrashPoint): Promise<void> {
  const se = await wallet.se();
  const call = se.call.bind(se) as (...args: unknown[]) => Promise<unknown>;
  (se as unknown as { call: (...args: unknown[]) => Promise<unknown> }).call = async (...args: unknown[]) => {
    if (args[0] === command) await se.armCrash(point);
    return call(...args);
  };
}

const crashed = (e: unknown) => isTallyError(e, 'SE_CRASHED');
const minor = (text: string) => BigInt(text.replace('.', ''));

describe('OTP with secure elements killed mid-commit', { timeout: 600_000 }, () => {
  let node: Node;
  let home: string;
  let env: Record<string, string | undefined>;
  let alice: OtpWallet;
  let bob: OtpWallet;

  const cli = (...args: string[]): Promise<Json> => cliOf(env).ok(...args);

  before(async () => {
    const root = await mkdtemp(join(tmpdir(), 'tally-otp-crash-'));
    dirs.push(root);
    home = join(root, 'home');
    node = await startNode(join(root, 'node'), 0, { passphrase: 'otp crash', args: ['--schemes', 'otp'] });
    env = { ...process.env, TALLY_HOME: home, TALLY_NODE: node.url, TALLY_OPERATOR_TOKEN: (await readFile(join(root, 'node', 'identity', 'operator-token'), 'utf8')).trim() };
    await cli('operator', 'oem');
    await Promise.all([cli('wallet', 'create', 'alice', '--scheme', 'otp'), cli('wallet', 'create', 'bob', '--scheme', 'otp')]);
    await cli('operator', 'mint', 'alice', '100.00');
    const { OtpWallet } = await import('./wallet.ts');
    alice = await OtpWallet.open(home, 'alice');
    bob = await OtpWallet.open(home, 'bob');
    open.push(alice, bob);
    await Promise.all([alice.sync(), bob.sync()]);
  });

  test('a withdrawal killed in either half, at each crash point, lands once', async () => {
    let expected = 0n;
    for (const command of ['prepareWithdrawal', 'finishWithdrawal']) {
      for (const point of CRASH_POINTS) {
        await killAt(alice, command, point);
        await assert.rejects(alice.deposit('1.00'), crashed, `${command} at ${point}`);
        const resumed = await alice.resume();
        assert.equal(resumed.waiting.length, 0, JSON.stringify(resumed));
        expected += 100n;
        const b = await alice.balance();
        assert.equal(minor(b.offline), expected, `${command} at ${point}: the coin is held once`);
        assert.equal(minor(b.online ?? ''), 10_000n - expected, `${command} at ${point}: the account was debited once`);
      }
    }
  });

  test('a payment killed in the payer\'s pay or acknowledge, or the payee\'s receive, ends once at the next session', async () => {
    // Two sessions of 1.00 for each of the twelve kills: 24 coins of 1.00 (8 from the test before).
    for (let i = 0; i < 16; i++) await alice.deposit('1.00');
    // A coin in flight may already be at the payee (its ACK was lost) or not (it never arrived).
    const held = async () => {
      const [a, b] = await Promise.all([alice.balance(), bob.balance()]);
      return { spendable: minor(a.offline) + minor(b.offline), inFlight: minor(a.inFlight.amount) };
    };
    const total = async () => {
      const h = await held();
      return h.spendable + h.inFlight;
    };
    const start = await total();
    // One payment: bob listens, alice pays; it returns once bob's side has ended too (never two at once).
    const session = async (amount: string) => {
      let port = 0;
      let listening!: () => void;
      const ready = new Promise<void>((resolve) => (listening = resolve));
      const receiving = bob.receive(amount, { port: 0, host: '127.0.0.1', timeoutMs: 3_000, onListening: (p) => { port = p; listening(); } });
      const ended = receiving.then(() => undefined, () => undefined);
      await Promise.race([ready, ended]);
      try {
        return await alice.pay('127.0.0.1', port, null, { timeoutMs: 3_000 });
      } finally {
        await ended;
      }
    };
    const cases: [OtpWallet, string][] = [[alice, 'pay'], [alice, 'acknowledge'], [bob, 'receive']];
    for (const [wallet, command] of cases) {
      for (const point of CRASH_POINTS) {
        await killAt(wallet, command, point);
        await session('1.00').catch((e: unknown) => e);
        const cut = await held();
        assert.ok(cut.spendable <= start, `${command} at ${point}: no value made (${cut.spendable} spendable of ${start})`);
        assert.ok(cut.spendable + cut.inFlight >= start, `${command} at ${point}: none lost (${cut.spendable} + ${cut.inFlight} in flight of ${start})`);
        // The next session sends whatever is in flight again; its ACK ends it.
        await session('1.00');
        const a = await alice.balance();
        assert.deepEqual(a.inFlight, { count: 0, amount: '0.00' }, `${command} at ${point}: nothing left in flight`);
        assert.equal(await total(), start, `${command} at ${point}: conserved`);
      }
    }
  });

  test('everything deposited back: each coin credited exactly once, the audit balances', async () => {
    const [a, b] = await Promise.all([alice.balance(), bob.balance()]);
    if (minor(a.offline) > 0n) await alice.withdraw(a.offline);
    if (minor(b.offline) > 0n) await bob.withdraw(b.offline);
    const [a2, b2] = await Promise.all([alice.balance(), bob.balance()]);
    assert.equal(minor(a2.offline) + minor(b2.offline), 0n);
    assert.equal(minor(a2.online ?? '') + minor(b2.online ?? ''), 10_000n, 'every minted unit is back online, once');
    const audit = (await cli('audit')) as { balanced: boolean; currencies: { totalOfflineFloat: string }[] };
    assert.equal(audit.balanced, true);
    assert.equal(audit.currencies[0]?.totalOfflineFloat, '0.00');
    await alice.close();
    await bob.close();
    open.length = 0;
    assert.equal(await node.stop(), 0);
  });
});
