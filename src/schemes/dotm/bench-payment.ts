/**
 * One dual offline transaction of `bench dotm` (DOT-M §3.3.3, Figure 7): the nine steps between
 * the payer P and the payee R through `runPayer` / `runPayee`, with roles that call each side's
 * secure element as the wallet does: R.request (step 1) → P.pay
 * (steps 2–3, after the wallet checked that λ's payee is the user on the link) → R.accept (steps
 * 4–6) → P.confirm (steps 7–8) → R.complete (step 9). Over TCP on loopback with a Noise secure
 * link, whose handshake is timed and counted apart; or over a plain in-memory link, for counting.
 */
import { equalBytes } from '../../core/bytes.ts';
import type { CryptoProvider, PublicKey } from '../../core/crypto/suite.ts';
import { TallyError } from '../../core/errors.ts';
import { generateStaticKeyPair, memoryPair, openLink, openSecureLink, type Link, type PeerTrust, type StaticKeyPair } from '../../channel/index.ts';
import { decodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import { CountingStream, connectTcp, type TcpServer } from '../../sim/bench/plugin.ts';
import { DOTM_BENCH_PASSWORD, type BenchParty } from './bench-setup.ts';
import type { TransactionData, TransactionMessage } from './messages.ts';
import { DOTM_LINK_PROLOGUE, runPayee, runPayer, type PayeeRole, type PayerRole } from './session.ts';

/** How long a bench side waits for the other's next message; a stall fails the bench instead of hanging it. */
const STEP_TIMEOUT_MS = 60_000;

/** Where a signature or a verification happens, by the steps of §3.3.3 (Table 3's rows). */
export const PHASES = ['step 1', 'wallet 2.3', 'steps 2-3', 'steps 4-6', 'steps 7-8', 'step 9'] as const;
/** A phase of the transaction. */
export type Phase = (typeof PHASES)[number];

/** How long each secure-element command took, as the wallets saw it (call, work, commit), ms. */
export interface StepTimes {
  request: number;
  pay: number;
  accept: number;
  confirm: number;
  complete: number;
}

/** A wallet's end of the link: its party and the Noise static key it keeps from link to link. */
export interface LinkEnd {
  readonly party: BenchParty;
  readonly staticKeyPair: StaticKeyPair;
}

/** An end for `party`, with a static key of its own. */
export function linkEnd(party: BenchParty): LinkEnd {
  return { party, staticKeyPair: generateStaticKeyPair() };
}

/** Two links joined, and what the payer learnt of the payee from the link. */
export interface LinkPair {
  readonly payerLink: Link;
  readonly payeeLink: Link;
  /** The payee's account key: from its verified binding over Noise, given directly in memory. */
  readonly payeeKey: PublicKey;
  /** Counts both directions on the payer's stream (TCP only). */
  readonly counter: CountingStream | null;
  readonly handshakeMs: number;
  readonly handshakeBytes: number;
  close(): void;
}

/** What a wallet pins of the central bank: the node's root and intermediary certificates. */
export interface Pinned {
  readonly root: Certificate;
  readonly intermediary: Certificate;
}

function userChain(pinned: Pinned, provider: CryptoProvider, certificate: Uint8Array) {
  return verifyChain({ provider, chain: [decodeCertificate(certificate), pinned.intermediary], trustAnchors: [pinned.root], now: Date.now(), leafRoles: ['user'] });
}

function userTrust(pinned: Pinned, provider: CryptoProvider): PeerTrust {
  return { provider, verify: (certificate) => userChain(pinned, provider, certificate).subject };
}

/**
 * Connects the payer to the payee over TCP and opens a Noise secure link (DOTM_LINK_PROLOGUE),
 * each side bound with its account's user certificate and checking the other's chain.
 * @throws TallyError from the connection or the handshake
 */
export async function openTcpLinks(server: TcpServer, payer: LinkEnd, payee: LinkEnd, pinned: Pinned, provider: CryptoProvider): Promise<LinkPair> {
  const started = performance.now();
  const [payeeStream, payerStream] = await Promise.all([server.accept({ timeoutMs: STEP_TIMEOUT_MS }), connectTcp(server.host, server.port)]);
  const counter = new CountingStream(payerStream);
  const options = (end: LinkEnd, role: 'initiator' | 'responder') => ({
    role,
    prologue: DOTM_LINK_PROLOGUE,
    identity: { certificate: end.party.accountCert, signer: end.party.account },
    trust: userTrust(pinned, provider),
    staticKeyPair: end.staticKeyPair,
  });
  const [payerSide, payeeSide] = await Promise.all([openSecureLink(counter, options(payer, 'initiator')), openSecureLink(payeeStream, options(payee, 'responder'))]);
  const handshakeMs = performance.now() - started;
  const payeeKey = payerSide.peer.publicKey;
  if (payeeKey === undefined) throw new TallyError('PEER_UNTRUSTED', 'the payee did not prove who it is', { reason: 'no binding' });
  return {
    payerLink: payerSide.link,
    payeeLink: payeeSide.link,
    payeeKey,
    counter,
    handshakeMs,
    handshakeBytes: counter.totalBytes,
    close: () => {
      payerSide.link.close();
      payeeSide.link.close();
    },
  };
}

/** Two plain links in memory (no Noise, no binding): the payee's account key is given. */
export function openMemoryLinks(payee: BenchParty): LinkPair {
  const [a, b] = memoryPair();
  const payerLink = openLink(a);
  const payeeLink = openLink(b);
  return {
    payerLink,
    payeeLink,
    payeeKey: payee.account.publicKey,
    counter: null,
    handshakeMs: 0,
    handshakeBytes: 0,
    close: () => {
      payerLink.close();
      payeeLink.close();
    },
  };
}

/** What one transaction needs besides its links. */
export interface TransactionContext {
  readonly pinned: Pinned;
  readonly payer: BenchParty;
  readonly payee: BenchParty;
  /** The amount asked for and paid, minor units. */
  readonly v: bigint;
  /** For the wallet's own check of λ (step 2.3): the Node provider, or a counting one. */
  readonly provider: CryptoProvider;
  /** Told when the transaction enters a phase, before any of that phase's signatures. */
  readonly onPhase?: ((phase: Phase) => void) | undefined;
}

/** How one transaction went. */
export interface TransactionOutcome {
  readonly transaction: TransactionMessage;
  /** From λ's request to R's step 9, both sides done, ms. */
  readonly ms: number;
  readonly times: StepTimes;
}

function refuse(reason: string, message: string): TallyError<'PAYMENT_INVALID'> {
  return new TallyError('PAYMENT_INVALID', message, { reason });
}

async function timed<T>(times: StepTimes, step: keyof StepTimes, run: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const out = await run();
  times[step] = performance.now() - started;
  return out;
}

/** The payer's wallet: step 2.3's check of the payee on the link, then its TA; step 7; abandon on failure. */
function payerRole(context: TransactionContext, payeeKey: PublicKey, times: StepTimes): PayerRole {
  const { payer, pinned, provider, onPhase } = context;
  const se = payer.se;
  return {
    async pay(request) {
      onPhase?.('wallet 2.3');
      const payee = userChain(pinned, provider, request.ucertR);
      const owner = payee.extensions.owner;
      if (owner === undefined || !equalBytes(owner, keyId(payeeKey))) throw refuse('payee', 'λ names a payee whose user certificate does not belong to the peer on this link');
      onPhase?.('steps 2-3');
      const out = await timed(times, 'pay', () => se.call('pay', { request, password: DOTM_BENCH_PASSWORD, expect: { v: context.v, payee: payee.subjectKeyId }, now: Date.now() }));
      if (out.kind !== 'transaction' || out.transaction === undefined) throw refuse('password', `the payer's TA answered ${out.kind}`);
      return out.transaction;
    },
    confirm(notification) {
      onPhase?.('steps 7-8');
      return timed(times, 'confirm', () => se.call('confirm', { notification }));
    },
    async abandon() {
      await se.call('abandon', {});
    },
  };
}

/** The payee's wallet: λ for v, σ checked by its TA, step 9. */
function payeeRole(context: TransactionContext, times: StepTimes): PayeeRole {
  const { payee, onPhase } = context;
  const se = payee.se;
  return {
    request() {
      onPhase?.('step 1');
      return timed(times, 'request', () => se.call('request', { v: context.v, now: Date.now() }));
    },
    accept(transaction) {
      onPhase?.('steps 4-6');
      return timed(times, 'accept', () => se.call('accept', { transaction, now: Date.now() }));
    },
    async complete(success) {
      onPhase?.('step 9');
      await timed(times, 'complete', () => se.call('complete', { success }));
    },
    async rollback() {
      await se.call('rollback', {});
    },
  };
}

/**
 * Runs the nine steps on open links and times them.
 * @throws TallyError the payer's error when either side fails (the payee's when only it failed),
 *   or PAYMENT_INVALID when the payee rolled back: every bench transaction must complete
 */
export async function transact(links: LinkPair, context: TransactionContext): Promise<TransactionOutcome> {
  const times: StepTimes = { request: Number.NaN, pay: Number.NaN, accept: Number.NaN, confirm: Number.NaN, complete: Number.NaN };
  const options = { stepTimeoutMs: STEP_TIMEOUT_MS };
  const started = performance.now();
  const [paid, received] = await Promise.allSettled([
    runPayer(links.payerLink, payerRole(context, links.payeeKey, times), options),
    runPayee(links.payeeLink, payeeRole(context, times), options),
  ]);
  const ms = performance.now() - started;
  if (paid.status === 'rejected') throw paid.reason;
  if (received.status === 'rejected') throw received.reason;
  if (received.value.status !== 'completed') throw refuse('rolled-back', `the payee rolled back: ${received.value.error.message}`);
  return { transaction: paid.value.transaction, ms, times };
}

/**
 * Checks that the payment used exactly the cell's blocks and records (Figure 8's n_b and n_d).
 * @throws Error when it did not: the cell would not be the one measured
 */
export function checkShape(tsd: TransactionData, nb: number, nd: number, v: bigint): void {
  if (tsd.nb !== nb || tsd.nd !== nd || tsd.blocks.length !== nb || tsd.v !== v) {
    throw new Error(`the payment used n_b = ${tsd.nb}, n_d = ${tsd.nd} for ${tsd.v}; the cell is n_b = ${nb}, n_d = ${nd} for ${v}: splitForPayment chose other blocks`);
  }
}
