/**
 * The fourteen faults of the paper's §5.1 (Figures 6–7), injected into payments between two OPERA
 * wallets whose ODWs run in their own processes, over TCP + Noise: at each of seven suspension
 * points of the protocol, a reset (the ODW's process killed in the middle of committing the step,
 * as a battery cut would) and a shock (the link cut right after a message was made, so it never
 * arrives). Events a–d fall in Stage 1 and restart it at the next mount; e–n fall in Stages 2–3,
 * after the logs exist, and the next mount of the same two wallets finishes the transaction from
 * them. Then e–n again, with the two wallets never meeting again: each syncs, and the bank settles
 * the transaction once. The same again at the change leg's messages (a payment of 1.70 from one
 * token of 2.00, the payee giving 0.30 back in two of its own tokens). After every event the amount
 * has moved exactly once (or come back), both logs are clear, and the node's audit balances.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliOf, dropNodeDatabases, killChildren, nodeDatabaseArgs, startNode } from '../../cli/e2e-process.ts';
import type { CrashPoint } from '../../secure-element/secure-element.ts';
import { connectLink, listenLink } from '../../wallet/plugin.ts';
import type { Role } from './exchange.ts';
import { runOdw, type Odw } from './session.ts';
import { LINK_SIDE, odwOf, type OperaWallet } from './wallet.ts';

type Node = Awaited<ReturnType<typeof startNode>>;
type Method = keyof Odw;

/** One of the fourteen events: who, at which call of which of its ODW's steps, and how. */
interface FaultEvent {
  readonly id: string;
  readonly side: Role;
  readonly method: Method;
  /** Which call of the method (steps are counted; the others are called once). */
  readonly nth: number;
  readonly kind: 'reset' | 'shock';
  /** Where the ODW's process dies in its commit (a reset). */
  readonly point?: CrashPoint;
  /** What the next mount does: restart Stage 1 (a new transaction) or resume the logged one. */
  readonly then: 'new' | 'resume';
  /** For e–n: how the bank settles it when the wallets never meet again (payer's view). */
  readonly settled?: 'refunded' | 'paid';
  /** A payment with change (2.00 for 1.70, 0.30 back). */
  readonly change?: true;
}

// A payment of 1.70 in three tokens (1.00 + 0.50 + 0.20). The payer's steps: 1 takes 2-2 and sends
// 2-3 #1, 2 and 3 take 2-4 #1, #2 and send 2-3 #2, #3, 4 takes 2-4 #3 and sends 3-1, 5 takes 3-2
// and sends FIN. The payee's: 1 takes 2-1, 2–4 take 2-3 #1–#3, 5 takes 3-1 and sends 3-2, 6 takes FIN.
const EVENTS: readonly FaultEvent[] = [
  { id: 'a', side: 'payer', method: 'meet', nth: 1, kind: 'reset', point: 'after-write', then: 'new' },
  { id: 'b', side: 'payer', method: 'mount', nth: 1, kind: 'shock', then: 'new' },
  { id: 'c', side: 'payee', method: 'greet', nth: 1, kind: 'reset', point: 'after-increment', then: 'new' },
  { id: 'd', side: 'payee', method: 'meet', nth: 1, kind: 'shock', then: 'new' },
  // Msg 2-1: the payer's log holds the transaction, the payee never saw it: the tokens come back
  // to the payer at the next mount and Stage 2 starts over.
  { id: 'e', side: 'payer', method: 'begin', nth: 1, kind: 'reset', point: 'after-increment', then: 'new', settled: 'refunded' },
  { id: 'f', side: 'payer', method: 'begin', nth: 1, kind: 'shock', then: 'new', settled: 'refunded' },
  { id: 'g', side: 'payee', method: 'step', nth: 1, kind: 'reset', point: 'after-rename', then: 'resume', settled: 'refunded' },
  { id: 'h', side: 'payee', method: 'step', nth: 1, kind: 'shock', then: 'resume', settled: 'refunded' },
  { id: 'i', side: 'payer', method: 'step', nth: 2, kind: 'reset', point: 'after-write', then: 'resume', settled: 'refunded' },
  { id: 'j', side: 'payer', method: 'step', nth: 2, kind: 'shock', then: 'resume', settled: 'refunded' },
  { id: 'k', side: 'payee', method: 'step', nth: 3, kind: 'reset', point: 'after-increment', then: 'resume', settled: 'refunded' },
  { id: 'l', side: 'payee', method: 'step', nth: 3, kind: 'shock', then: 'resume', settled: 'refunded' },
  // Stage 3: the payer released PTK_A and 3-1 was lost; the payee took the tokens and 3-2 was lost.
  { id: 'm', side: 'payer', method: 'step', nth: 4, kind: 'reset', point: 'after-increment', then: 'resume', settled: 'refunded' },
  { id: 'n', side: 'payee', method: 'step', nth: 5, kind: 'shock', then: 'resume', settled: 'paid' },
];

// With change: the payer's steps: 1 takes 2-2 and sends 2-3 #1, 2 takes 2-4 #1 and sends 2-5, 3
// takes 2-6 #1 and sends 2-7 #1, 4 takes 2-6 #2 and sends 3-1, 5 takes 3-2 (and the change) and sends
// FIN. The payee's: 1 takes 2-1 (the change leaves its repository), 2 takes 2-3 #1, 3 takes 2-5 and
// sends 2-6 #1, 4 takes 2-7 #1 and sends 2-6 #2, 5 takes 3-1 and sends 3-2 (releasing PTK_B).
const CHANGE_EVENTS: readonly FaultEvent[] = [
  { id: 'o', side: 'payer', method: 'step', nth: 2, kind: 'reset', point: 'after-write', then: 'resume', settled: 'refunded', change: true },
  { id: 'p', side: 'payer', method: 'step', nth: 2, kind: 'shock', then: 'resume', settled: 'refunded', change: true },
  { id: 'q', side: 'payee', method: 'step', nth: 3, kind: 'reset', point: 'after-increment', then: 'resume', settled: 'refunded', change: true },
  { id: 'r', side: 'payee', method: 'step', nth: 3, kind: 'shock', then: 'resume', settled: 'refunded', change: true },
  { id: 's', side: 'payer', method: 'step', nth: 3, kind: 'reset', point: 'after-rename', then: 'resume', settled: 'refunded', change: true },
  { id: 't', side: 'payer', method: 'step', nth: 3, kind: 'shock', then: 'resume', settled: 'refunded', change: true },
  { id: 'u', side: 'payee', method: 'step', nth: 4, kind: 'reset', point: 'after-write', then: 'resume', settled: 'refunded', change: true },
  // 3-1 lost after the payer released PTK_A; then the payee took the tokens and released PTK_B, 3-2 lost.
  { id: 'v', side: 'payer', method: 'step', nth: 4, kind: 'shock', then: 'resume', settled: 'refunded', change: true },
  { id: 'w', side: 'payee', method: 'step', nth: 5, kind: 'reset', point: 'after-increment', then: 'resume', settled: 'paid', change: true },
  { id: 'x', side: 'payee', method: 'step', nth: 5, kind: 'shock', then: 'resume', settled: 'paid', change: true },
];

const AMOUNT = '1.70';
/** What a payment with change is paid with, and given back. */
const OFFERED = '2.00';
const CHANGE = '0.30';
const minor = (text: string | null) => BigInt((text ?? '').replace('.', ''));
const dirs: string[] = [];
const open: OperaWallet[] = [];
after(async () => {
  for (const w of open) await w.close().catch(() => undefined);
  killChildren();
  await dropNodeDatabases();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** The ODW with the event's fault: a kill armed before the chosen call, or the link cut after it. */
function faulty(odw: Odw, se: { armCrash(point: CrashPoint): Promise<void> }, event: FaultEvent | null, cut: () => void): Odw {
  const calls = new Map<Method, number>();
  const wrap = <M extends Method>(method: M): Odw[M] =>
    (async (...args: unknown[]) => {
      const n = (calls.get(method) ?? 0) + 1;
      calls.set(method, n);
      const hit = event !== null && event.method === method && event.nth === n;
      if (hit && event.kind === 'reset') await se.armCrash(event.point as CrashPoint);
      const out = await (odw[method] as (...a: unknown[]) => Promise<unknown>)(...args);
      if (hit && event.kind === 'shock') {
        cut();
        throw new Error(`shock: the link was cut after ${method} #${n}`);
      }
      return out;
    }) as Odw[M];
  return { mount: wrap('mount'), meet: wrap('meet'), greet: wrap('greet'), begin: wrap('begin'), step: wrap('step') };
}

describe('OPERA: the fourteen faults of §5.1', { timeout: 900_000 }, () => {
  let node: Node;
  let env: Record<string, string | undefined>;
  let alice: OperaWallet;
  let bob: OperaWallet;

  before(async () => {
    const root = await mkdtemp(join(tmpdir(), 'tally-opera-faults-'));
    dirs.push(root);
    node = await startNode(join(root, 'node'), 0, { passphrase: 'opera faults', args: ['--schemes', 'opera', ...(await nodeDatabaseArgs())] });
    env = { ...process.env, TALLY_HOME: join(root, 'home'), TALLY_NODE: node.url, TALLY_OPERATOR_TOKEN: (await readFile(join(root, 'node', 'identity', 'operator-token'), 'utf8')).trim() };
    const { ok } = cliOf(env);
    await ok('operator', 'oem');
    await Promise.all([ok('wallet', 'create', 'alice', '--scheme', 'opera'), ok('wallet', 'create', 'bob', '--scheme', 'opera')]);
    await ok('operator', 'mint', 'alice', '100.00');
    await ok('operator', 'mint', 'bob', '20.00');
    const { OperaWallet } = await import('./wallet.ts');
    alice = await OperaWallet.open(join(root, 'home'), 'alice');
    bob = await OperaWallet.open(join(root, 'home'), 'bob');
    open.push(alice, bob);
  });

  /** The value the two wallets hold, online and offline. */
  const holdings = async () => {
    const [a, b] = await Promise.all([alice.balance(), bob.balance()]);
    return { a, b, total: minor(a.online) + minor(a.offline) + minor(b.online) + minor(b.offline) };
  };

  /** One payment of AMOUNT from alice to bob, with the event's fault (or none). */
  const session = async (event: FaultEvent | null) => {
    let port = 0;
    let listening!: () => void;
    const ready = new Promise<void>((resolve) => (listening = resolve));
    const payeeLink = listenLink(LINK_SIDE, { port: 0, host: '127.0.0.1', timeoutMs: 5_000, onListening: (p) => ((port = p), listening()) });
    await ready;
    const [payer, payee] = await Promise.all([connectLink(LINK_SIDE, '127.0.0.1', port, 5_000), payeeLink]);
    const cut = () => {
      payer.link.close();
      payee.link.close();
    };
    const side = async (wallet: OperaWallet, role: Role, link: typeof payer) => {
      const se = await wallet.se();
      const odw = faulty(odwOf(se), se, event?.side === role ? event : null, cut);
      try {
        return await runOdw(link.link, link.peer.handshakeHash, role, odw, { amount: role === 'payee' ? minor(AMOUNT) : undefined, stepTimeoutMs: 5_000 });
      } finally {
        link.link.close();
      }
    };
    return Promise.allSettled([side(alice, 'payer', payer), side(bob, 'payee', payee)]);
  };

  const clear = async () => {
    const { a, b } = await holdings();
    assert.equal(a.pending, null, `alice's log is clear: ${JSON.stringify(a.pending)}`);
    assert.equal(b.pending, null, `bob's log is clear: ${JSON.stringify(b.pending)}`);
  };

  /**
   * The node's audit after an event, asked over HTTP as its operator: the same answer `tally
   * audit` prints (the last test asks through the CLI), without a CLI process after every event.
   */
  const audited = async () => {
    const response = await fetch(`${node.url}/v1/audit`, { headers: { authorization: `Bearer ${env['TALLY_OPERATOR_TOKEN'] ?? ''}` } });
    const text = await response.text();
    assert.equal(response.status, 200, text);
    const audit = JSON.parse(text) as { balanced: boolean };
    assert.equal(audit.balanced, true, text);
  };

  /**
   * Tokens for the payment: exactly the amount, or (with change) one token of 2.00 to alice, who
   * first deposits back what she holds (earlier change could make 1.70 exactly), and 0.30 to bob.
   */
  const charge = async (event: FaultEvent) => {
    if (event.change === true && minor((await alice.balance()).offline) > 0n) await alice.withdraw('all');
    await alice.deposit(event.change === true ? OFFERED : AMOUNT);
    if (event.change === true) await bob.deposit(CHANGE);
  };

  for (const event of [...EVENTS, ...CHANGE_EVENTS]) {
    test(`event ${event.id}${event.change === true ? ' (with change)' : ''} (${event.kind} ${event.side} at ${event.method} #${event.nth}): the next mount ${event.then === 'new' ? 'restarts Stage 1' : 'resumes from the logs'}, the amount moves once`, async () => {
      await charge(event);
      const before = await holdings();
      const faulted = await session(event);
      assert.ok(faulted.some((r) => r.status === 'rejected'), 'the fault ended the session');
      const again = await session(null);
      const outcomes = again.map((r) => (r.status === 'fulfilled' ? r.value : assert.fail(String(r.reason))));
      const shown = JSON.stringify(outcomes, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
      assert.deepEqual(outcomes.map((o) => o.plan), [event.then, event.then], shown);
      if (event.change === true) assert.deepEqual(outcomes.map((o) => o.change), [minor(CHANGE), minor(CHANGE)], `both sides end with the change: ${shown}`);
      const afterwards = await holdings();
      assert.equal(minor(afterwards.a.offline), minor(before.a.offline) - minor(AMOUNT), 'alice paid once');
      assert.equal(minor(afterwards.b.offline), minor(before.b.offline) + minor(AMOUNT), 'bob received once');
      assert.equal(afterwards.total, before.total);
      await clear();
      await audited();
    });
  }

  for (const event of [...EVENTS, ...CHANGE_EVENTS].filter((e) => e.settled !== undefined)) {
    test(`event ${event.id}${event.change === true ? ' (with change)' : ''}, the wallets never meeting again: each syncs and the bank settles it once (${event.settled})`, async () => {
      await charge(event);
      const before = await holdings();
      await session(event);
      // alice first (a payer that released its key waits for bob), then bob, then alice again.
      await alice.sync();
      await bob.sync();
      await alice.sync();
      const afterwards = await holdings();
      // Alice's tokens (worth the amount, or 2.00) left her ODW; so did bob's change (0.30), if any.
      const [offered, change] = event.change === true ? [minor(OFFERED), minor(CHANGE)] : [minor(AMOUNT), 0n];
      assert.equal(minor(afterwards.a.offline), minor(before.a.offline) - offered, "alice's tokens left her ODW");
      if (event.settled === 'refunded') {
        assert.equal(minor(afterwards.a.online), minor(before.a.online) + offered, 'refunded to alice');
        assert.equal(minor(afterwards.b.offline), minor(before.b.offline) - change, 'bob took nothing (his change left his ODW)');
        assert.equal(minor(afterwards.b.online), minor(before.b.online) + change, "bob's change refunded to him");
      } else {
        assert.equal(minor(afterwards.b.offline), minor(before.b.offline) + offered - change, 'bob took the tokens and gave the change');
        assert.equal(minor(afterwards.a.online), minor(before.a.online) + change, "the change's value to alice, who never opened it");
        assert.equal(minor(afterwards.b.online), minor(before.b.online));
      }
      assert.equal(afterwards.total, before.total);
      await clear();
      await audited();
    });
  }

  test('everything deposited back: each token credited once, the audit balances with no float', async () => {
    const { a, b } = await holdings();
    if (minor(a.offline) > 0n) await alice.withdraw('all');
    if (minor(b.offline) > 0n) await bob.withdraw('all');
    const end = await holdings();
    assert.equal(minor(end.a.offline) + minor(end.b.offline), 0n);
    assert.equal(minor(end.a.online) + minor(end.b.online), 12_000n, 'every minted unit is back online, once');
    const audit = (await cliOf(env).ok('audit')) as { balanced: boolean; currencies: { totalOfflineFloat: string }[] };
    assert.equal(audit.balanced, true);
    assert.equal(audit.currencies[0]?.totalOfflineFloat, '0.00');
    for (const w of open.splice(0)) await w.close();
    assert.equal(await node.stop(), 0);
  });
});
