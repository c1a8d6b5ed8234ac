/**
 * One chain-tee offline payment of the common workload, as two wallets make it (wallet.ts `pay` and
 * `receive`): a TCP connection on loopback, the anonymous Noise XX secure link (CHAIN_LINK_PROLOGUE,
 * no certificate at the Noise layer), then the session of session.ts through `runPayer` /
 * `runPayee` with the wallet's roles (wallet-link.ts): the payee's terms (its account bound to this
 * session by its enclave, with the enclave's certificate), the payer's check of them, `tx_off`
 * (transfer, Algorithm 3), the payee's ack (receive, Algorithm 4), the payer's `pay` on it, done.
 * Timed in two parts (opening the link, the session on it), with the bytes on the wire each way.
 */
import { openSecureLink } from '../../channel/index.ts';
import type { CryptoProvider } from '../../core/crypto/suite.ts';
import type { Certificate } from '../../pki/certificate.ts';
import { CountingStream, connectTcp, type TcpServer } from '../../sim/bench/plugin.ts';
import type { ChainElement } from './bench-parties.ts';
import { CHAIN_LINK_PROLOGUE, CHAIN_LINK_SCHEME, runPayee, runPayer } from './session.ts';
import { payeeRole, payerRole } from './wallet-link.ts';

/** How long a bench side waits for the other's next message; a stall fails the bench instead of hanging it. */
const STEP_TIMEOUT_MS = 60_000;

/** What a payer's wallet pins of the node: the central bank's root and the intermediary (its TEE checks the payee's enclave to them). */
export interface Pinned {
  readonly root: Certificate;
  readonly intermediary: Certificate;
}

/** One timed payment. */
export interface PaymentSample {
  /** Connection and Noise handshake, ms. */
  readonly linkMs: number;
  /** The session on the open link, ms. */
  readonly sessionMs: number;
  /** Bytes on the wire both ways: the handshake's, then the session's. */
  readonly handshakeBytes: number;
  readonly sessionBytes: number;
}

/**
 * Pays `amount` (minor units) from `payer` to `payee` over a fresh link accepted on `server`; the
 * payer's wallet checks the payee through `provider`.
 * @throws Error when the payee did not credit it: every bench payment must go through
 */
export async function payOnce(server: TcpServer, payer: ChainElement, payee: ChainElement, amount: bigint, pinned: Pinned, provider: CryptoProvider): Promise<PaymentSample> {
  const started = performance.now();
  const [payeeStream, payerStream] = await Promise.all([server.accept({ timeoutMs: STEP_TIMEOUT_MS }), connectTcp(server.host, server.port)]);
  const counter = new CountingStream(payerStream);
  const side = { prologue: CHAIN_LINK_PROLOGUE, scheme: CHAIN_LINK_SCHEME, handshakeTimeoutMs: STEP_TIMEOUT_MS };
  const [payerSide, payeeSide] = await Promise.all([openSecureLink(counter, { ...side, role: 'initiator' }), openSecureLink(payeeStream, { ...side, role: 'responder' })]);
  const linked = performance.now();
  const handshakeBytes = counter.totalBytes;
  try {
    // What the payer's wallet reads of its TEE before it trusts a payee (wallet.ts `pay`).
    const { revoked, banks } = await payer.call('revoked', {});
    const trust = { provider, root: pinned.root, intermediary: pinned.intermediary, revoked: () => revoked, banks: () => banks, session: payerSide.peer.handshakeHash, now: Date.now };
    const [paid, got] = await Promise.all([
      runPayer(payerSide.link, amount, payerRole(payer, trust), { stepTimeoutMs: STEP_TIMEOUT_MS }),
      runPayee(payeeSide.link, amount, payeeRole(payee, { session: payeeSide.peer.handshakeHash, now: Date.now }), { stepTimeoutMs: STEP_TIMEOUT_MS }),
    ]);
    const done = performance.now();
    if (!paid.credited || !got.credited || got.amount !== amount) throw new Error(`the payee did not credit ${amount} (payer: credited ${paid.credited}; payee: ${got.amount}, credited ${got.credited})`);
    return { linkMs: linked - started, sessionMs: done - linked, handshakeBytes, sessionBytes: counter.totalBytes - handshakeBytes };
  } finally {
    payerSide.link.close();
    payeeSide.link.close();
  }
}
