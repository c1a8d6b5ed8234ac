/**
 * One offline payment of `bench otp`, as two wallets make it: a TCP connection on loopback, the
 * anonymous Noise XX secure link (OTP_LINK_PROLOGUE, no certificate either way, as wallet.ts's
 * LINK_SIDE), then the session of paper Figure 4 through `runPayer` / `runPayee` with the wallet's
 * roles (wallet-link.ts): terms, offer, exchange keys, the coins sealed COINS_PER_ROUND at a time,
 * each round ACKed, done. Timed as a whole and in two parts (opening the link, the session on it),
 * with the bytes on the wire each way of the link and the CPU time the payment took in this process
 * and in the secure elements' own processes.
 */
import { openSecureLink } from '../../channel/index.ts';
import { CountingStream, connectTcp, cpuNow, type TcpServer } from '../../sim/bench/plugin.ts';
import type { Party } from './bench-setup.ts';
import { OTP_LINK_PROLOGUE, OTP_LINK_SCHEME, runPayee, runPayer } from './session.ts';
import { payeeRole, payerRole } from './wallet-link.ts';

/** How long a bench side waits for the other's next message; a stall fails the bench instead of hanging it. */
const STEP_TIMEOUT_MS = 60_000;

/** One timed payment. */
export interface PaymentSample {
  /** Coins moved (OTPs run), as both sides counted them. */
  readonly coins: number;
  /** Connection, handshake and the session, ms. */
  readonly totalMs: number;
  /** Connection and Noise handshake, ms. */
  readonly linkMs: number;
  /** The session on the open link, ms. */
  readonly sessionMs: number;
  /** Bytes on the wire both ways: the handshake's, then the session's. */
  readonly handshakeBytes: number;
  readonly sessionBytes: number;
  /** CPU time (user + system) in this process and in the secure elements' child processes, ms. */
  readonly cpuMs: { readonly bench: number; readonly elements: number };
}

/**
 * Pays `amount` (minor units) from `payer` to `payee` over a fresh link accepted on `server`.
 * @throws TallyError when either side fails: every bench payment must go through
 */
export async function payOnce(server: TcpServer, payer: Party, payee: Party, amount: bigint): Promise<PaymentSample> {
  const pids = [payer.pid, payee.pid].filter((p): p is number => p !== undefined);
  const cpuBefore = cpuNow(pids);
  const started = performance.now();
  const [payeeStream, payerStream] = await Promise.all([server.accept({ timeoutMs: STEP_TIMEOUT_MS }), connectTcp(server.host, server.port)]);
  const counter = new CountingStream(payerStream);
  const side = { prologue: OTP_LINK_PROLOGUE, scheme: OTP_LINK_SCHEME, handshakeTimeoutMs: STEP_TIMEOUT_MS };
  const [payerSide, payeeSide] = await Promise.all([openSecureLink(counter, { ...side, role: 'initiator' }), openSecureLink(payeeStream, { ...side, role: 'responder' })]);
  const linked = performance.now();
  const handshakeBytes = counter.totalBytes;
  try {
    const [paid, got] = await Promise.all([
      runPayer(payerSide.link, amount, payerRole(payer.se, () => undefined), { stepTimeoutMs: STEP_TIMEOUT_MS }),
      runPayee(payeeSide.link, amount, payeeRole(payee.se), { stepTimeoutMs: STEP_TIMEOUT_MS }),
    ]);
    const done = performance.now();
    const cpuAfter = cpuNow(pids);
    if (paid.coins !== got.coins || got.amount !== amount) throw new Error(`the payer sent ${paid.coins} coins, the payee took ${got.coins} for ${got.amount}`);
    return {
      coins: got.coins,
      totalMs: done - started,
      linkMs: linked - started,
      sessionMs: done - linked,
      handshakeBytes,
      sessionBytes: counter.totalBytes - handshakeBytes,
      cpuMs: { bench: cpuAfter.bench - cpuBefore.bench, elements: cpuAfter.elements - cpuBefore.elements },
    };
  } finally {
    payerSide.link.close();
    payeeSide.link.close();
  }
}
