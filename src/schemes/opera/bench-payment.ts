/**
 * One offline payment of `bench opera`, as two wallets make it: a TCP connection on loopback, the
 * anonymous Noise XX link (wallet.ts's LINK_SIDE: no certificate either way), then `runOdw` on each
 * side with its ODW (paper Figure 4). Each ODW command is timed through a wrapper of the Odw
 * interface, which splits the payment into the paper's stages:
 *   Stage 1  the first `mount` → the payer's `begin` (both ODWs ready: proofs, hellos, plans)
 *   Stage 2  Msg 2-1 → the last Msg 2-4 reaching the payer (one 2-3 and one 2-4 per token)
 *   Stage 3  Msg 3-1 → the payee's FIN (the payee opens and checks every token, 3-2, FIN)
 * with the bytes on the wire (both ways) and the time spent inside the ODW commands per stage, and
 * the CPU time of this process and of the secure elements' processes.
 */
import { openSecureLink } from '../../channel/index.ts';
import { CountingStream, connectTcp, cpuNow, type TcpServer } from '../../sim/bench/plugin.ts';
import type { Role } from './exchange.ts';
import { runOdw, type Odw } from './session.ts';
import type { Party } from './bench-setup.ts';
import { LINK_SIDE, odwOf } from './wallet.ts';

/** How long a bench side waits for the other's next message; a stall fails the bench instead of hanging it. */
const STEP_TIMEOUT_MS = 120_000;

/** The stages of a payment, in order. */
export const STAGES = ['stage1', 'stage2', 'stage3'] as const;
export type Stage = (typeof STAGES)[number];

/** One ODW command as a side's wallet app called it. */
export interface OdwCall {
  readonly side: Role;
  readonly command: keyof Odw;
  readonly startMs: number;
  endMs: number;
  /** Bytes on the wire (both ways) when the call started. */
  readonly bytesAtStart: number;
}

/** One timed payment. */
export interface PaymentSample {
  /** Tokens moved, as both sides counted them. */
  readonly tokens: number;
  /** From the TCP connect to the payee's FIN, ms. */
  readonly totalMs: number;
  /** The connection, the Noise handshake and the amount asked (before the first mount), ms. */
  readonly linkMs: number;
  /** Each stage's time, ms; linkMs and the three add up to totalMs. */
  readonly stageMs: Readonly<Record<Stage, number>>;
  /** Time inside the ODW commands begun in each stage, both sides summed, ms. */
  readonly odwMs: Readonly<Record<Stage, number>>;
  /** Bytes on the wire both ways: before Stage 1, and in each stage. */
  readonly linkBytes: number;
  readonly stageBytes: Readonly<Record<Stage, number>>;
  /** ODW commands each side called. */
  readonly odwCalls: { readonly payer: number; readonly payee: number };
  /** CPU time (user + system) of this process and of the secure elements' processes, ms. */
  readonly cpuMs: { readonly bench: number; readonly elements: number };
}

/** Told of each ODW command as it starts, with its index among its side's commands. */
export type OnCall = (call: OdwCall, index: number) => void;

/**
 * `inner` with each command's start, end and the bytes on the wire at its start recorded into
 * `calls`; `onCall` is told of each as it starts.
 */
export function timedOdw(inner: Odw, side: Role, calls: OdwCall[], bytes: () => number, onCall?: OnCall | undefined): Odw {
  let index = 0;
  const timed =
    <A extends unknown[], R>(command: keyof Odw, run: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const call: OdwCall = { side, command, startMs: performance.now(), endMs: Number.NaN, bytesAtStart: bytes() };
      calls.push(call);
      onCall?.(call, index++);
      try {
        return await run(...args);
      } finally {
        call.endMs = performance.now();
      }
    };
  return {
    mount: timed('mount', (hash: Uint8Array, role: Role, expect: bigint | undefined) => inner.mount(hash, role, expect)),
    meet: timed('meet', (offer: Parameters<Odw['meet']>[0]) => inner.meet(offer)),
    greet: timed('greet', (hello: Uint8Array) => inner.greet(hello)),
    begin: timed('begin', (amount: bigint | undefined) => inner.begin(amount)),
    step: timed('step', (box: Uint8Array) => inner.step(box)),
  };
}

/**
 * Each side's commands in a new transaction of `tokens` tokens: the payer mounts, meets, greets,
 * begins (2-1) and steps on 2-2, on each 2-4 (the last answering 3-1) and on 3-2 (FIN); the payee
 * mounts, meets, greets and steps on 2-1, each 2-3, 3-1 and FIN.
 */
export function expectedCalls(tokens: number): Record<Role, (keyof Odw)[]> {
  const steps = (n: number): (keyof Odw)[] => Array.from({ length: n }, () => 'step');
  return { payer: ['mount', 'meet', 'greet', 'begin', ...steps(tokens + 2)], payee: ['mount', 'meet', 'greet', ...steps(tokens + 3)] };
}

/**
 * The stage of each call, and where each stage starts (ms, bytes), from the calls of a new
 * transaction of `tokens` tokens.
 * @throws Error when the calls are not those of one new transaction
 */
export function splitStages(calls: readonly OdwCall[], tokens: number): { stageOf: Map<OdwCall, Stage>; starts: Record<Stage, { ms: number; bytes: number }> } {
  const payer = calls.filter((c) => c.side === 'payer');
  const payee = calls.filter((c) => c.side === 'payee');
  const expected = expectedCalls(tokens);
  for (const [side, got] of [['payer', payer], ['payee', payee]] as const) {
    if (got.map((c) => c.command).join() !== expected[side].join()) throw new Error(`the ${side}'s ODW commands are not those of one new transaction of ${tokens} tokens: ${got.map((c) => c.command).join(', ')}`);
  }
  // Index of each side's first call of Stage 2 and of Stage 3 (see expectedCalls).
  const firsts: Record<Role, [number, number]> = { payer: [3, 4 + tokens], payee: [3, 4 + tokens] };
  const stageOf = new Map<OdwCall, Stage>();
  for (const [side, list] of [['payer', payer], ['payee', payee]] as const) {
    const [two, three] = firsts[side];
    list.forEach((c, i) => stageOf.set(c, i < two ? 'stage1' : i < three ? 'stage2' : 'stage3'));
  }
  const first = payer[0] !== undefined && payee[0] !== undefined && payee[0].startMs < payer[0].startMs ? payee[0] : payer[0];
  const begin = payer[3];
  const lastAck = payer[4 + tokens];
  if (first === undefined || begin === undefined || lastAck === undefined) throw new Error('unreachable: the calls were checked');
  return {
    stageOf,
    starts: { stage1: { ms: first.startMs, bytes: first.bytesAtStart }, stage2: { ms: begin.startMs, bytes: begin.bytesAtStart }, stage3: { ms: lastAck.startMs, bytes: lastAck.bytesAtStart } },
  };
}

/**
 * Pays `amount` (minor units, `tokens` tokens) from `payer` to `payee` over a fresh link accepted on
 * `server`; `onCall` is told of each ODW command as it starts.
 * @throws TallyError when either side fails; Error when the sides disagree: every bench payment must go through
 */
export async function payOnce(server: TcpServer, payer: Party, payee: Party, amount: bigint, tokens: number, onCall?: OnCall | undefined): Promise<PaymentSample> {
  const pids = [payer.pid, payee.pid].filter((p): p is number => p !== undefined);
  const cpuBefore = cpuNow(pids);
  const started = performance.now();
  const [payeeStream, payerStream] = await Promise.all([server.accept({ timeoutMs: STEP_TIMEOUT_MS }), connectTcp(server.host, server.port)]);
  const counter = new CountingStream(payerStream);
  const side = { prologue: LINK_SIDE.prologue, scheme: LINK_SIDE.scheme, handshakeTimeoutMs: STEP_TIMEOUT_MS };
  const [payerSide, payeeSide] = await Promise.all([openSecureLink(counter, { ...side, role: 'initiator' }), openSecureLink(payeeStream, { ...side, role: 'responder' })]);
  const calls: OdwCall[] = [];
  const bytes = () => counter.totalBytes;
  try {
    const [paid, got] = await Promise.all([
      runOdw(payerSide.link, payerSide.peer.handshakeHash, 'payer', timedOdw(odwOf(payer.se), 'payer', calls, bytes, onCall), { stepTimeoutMs: STEP_TIMEOUT_MS }),
      runOdw(payeeSide.link, payeeSide.peer.handshakeHash, 'payee', timedOdw(odwOf(payee.se), 'payee', calls, bytes, onCall), { amount, stepTimeoutMs: STEP_TIMEOUT_MS }),
    ]);
    const done = performance.now();
    const cpuAfter = cpuNow(pids);
    if (paid.plan !== 'new' || got.plan !== 'new' || paid.ending !== 'paid' || got.ending !== 'paid' || paid.count !== tokens || got.count !== tokens) {
      throw new Error(`a payment of ${tokens} tokens: the payer ended ${paid.plan}/${paid.ending} with ${paid.count}, the payee ${got.plan}/${got.ending} with ${got.count}`);
    }
    const { stageOf, starts } = splitStages(calls, tokens);
    const ends: Record<Stage, { ms: number; bytes: number }> = { stage1: starts.stage2, stage2: starts.stage3, stage3: { ms: done, bytes: counter.totalBytes } };
    const per = (f: (s: Stage) => number) => Object.fromEntries(STAGES.map((s) => [s, f(s)])) as Record<Stage, number>;
    return {
      tokens,
      totalMs: done - started,
      linkMs: starts.stage1.ms - started,
      stageMs: per((s) => ends[s].ms - starts[s].ms),
      odwMs: per((s) => calls.filter((c) => stageOf.get(c) === s).reduce((sum, c) => sum + (c.endMs - c.startMs), 0)),
      linkBytes: starts.stage1.bytes,
      stageBytes: per((s) => ends[s].bytes - starts[s].bytes),
      odwCalls: { payer: calls.filter((c) => c.side === 'payer').length, payee: calls.filter((c) => c.side === 'payee').length },
      cpuMs: { bench: cpuAfter.bench - cpuBefore.bench, elements: cpuAfter.elements - cpuBefore.elements },
    };
  } finally {
    payerSide.link.close();
    payeeSide.link.close();
  }
}
