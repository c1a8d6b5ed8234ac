/**
 * One offline payment of `bench ops`, end to end between two wallets whose secure elements run in
 * their own processes: a secure link between the two users (Noise XX, each side bound with its
 * user certificate and checked against the central bank's chain), then OPS Figure 7 through
 * `runPayer` / `runPayee`: request → Pay in the payer's TA → PayVerify in the payee's wallet →
 * Collect in the payee's TA (store) → receipt. Timed in two parts (opening the link, the payment on
 * it) with the bytes that crossed the wire in each.
 */
import { equalBytes } from '../../core/bytes.ts';
import type { CryptoProvider } from '../../core/crypto/suite.ts';
import { TallyError } from '../../core/errors.ts';
import { generateStaticKeyPair, memoryPair, openSecureLink, type ByteStream, type PeerTrust, type SecureLink, type StaticKeyPair } from '../../channel/index.ts';
import { decodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import { CountingStream, connectTcp, type TcpServer } from '../../sim/bench/plugin.ts';
import type { BenchDevice } from './bench-setup.ts';
import type { Payment, PaymentRequest } from './messages.ts';
import { verifyPayment } from './pay-verify.ts';
import { OPS_LINK_PROLOGUE, runPayee, runPayer } from './session.ts';

/** How the two devices are connected. */
export type Transport = 'memory' | 'tcp';

/** How long a bench side waits for the other's next message; a stall fails the bench instead of hanging it. */
const STEP_TIMEOUT_MS = 10_000;

/** A wallet in the bench: its user, its TA, and the Noise static key it keeps from link to link. */
export interface Wallet {
  readonly party: BenchDevice;
  readonly staticKeyPair: StaticKeyPair;
}

/** A wallet for `party`, with its own static key for the links it opens. */
export function walletOf(party: BenchDevice): Wallet {
  return { party, staticKeyPair: generateStaticKeyPair() };
}

/** What a wallet holds of the central bank: its certificates and the currency (no key of the node). */
export interface Pinned {
  readonly root: Certificate;
  readonly intermediary: Certificate;
  readonly currency: string;
  /** The wallets' provider (node:crypto, as `tally` runs). */
  readonly provider: CryptoProvider;
}

/** What the two wallets share for the run. */
export interface PaymentContext {
  readonly pinned: Pinned;
  /** Listening for the TCP transport (the payee's side). */
  readonly server: TcpServer;
  readonly amount: bigint;
}

/** One timed payment. */
export interface PaymentSample {
  /** Opening the secure link: connection, Noise handshake, both certificate bindings checked. */
  readonly linkMs: number;
  /** The payment on the open link: request, Pay, PayVerify, Collect, receipt. */
  readonly paymentMs: number;
  /** Parts of the payment: the payer TA's Pay call, the payee wallet's PayVerify, the payee TA's Collect call. */
  readonly payMs: number;
  readonly verifyMs: number;
  readonly collectMs: number;
  readonly handshakeBytes: number;
  readonly paymentBytes: number;
  /** The payment made, as the payee stored it. */
  readonly payment: Payment;
}

/** Trusts a peer whose user certificate chains to the central bank; answers the user's key. */
function userTrust(pinned: Pinned): PeerTrust {
  return {
    provider: pinned.provider,
    verify: (certificate) =>
      verifyChain({
        provider: pinned.provider,
        chain: [decodeCertificate(certificate), pinned.intermediary],
        trustAnchors: [pinned.root],
        now: Date.now(),
        leafRoles: ['user'],
      }).subject,
  };
}

function linkOptions(wallet: Wallet, pinned: Pinned, role: 'initiator' | 'responder') {
  return {
    role,
    identity: { certificate: wallet.party.certificate, signer: wallet.party.signer },
    trust: userTrust(pinned),
    prologue: OPS_LINK_PROLOGUE,
    staticKeyPair: wallet.staticKeyPair,
  };
}

/** Opens both ends of a secure link over `transport`; the payer initiates. Counts on the payer's stream. */
async function openLinks(transport: Transport, payer: Wallet, payee: Wallet, context: PaymentContext): Promise<{ payerSide: SecureLink; payeeSide: SecureLink; counter: CountingStream }> {
  let payerStream: ByteStream;
  let payeeStream: ByteStream;
  if (transport === 'memory') {
    [payerStream, payeeStream] = memoryPair();
  } else {
    [payeeStream, payerStream] = await Promise.all([context.server.accept({ timeoutMs: STEP_TIMEOUT_MS }), connectTcp(context.server.host, context.server.port)]);
  }
  const counter = new CountingStream(payerStream);
  const [payerSide, payeeSide] = await Promise.all([
    openSecureLink(counter, linkOptions(payer, context.pinned, 'initiator')),
    openSecureLink(payeeStream, linkOptions(payee, context.pinned, 'responder')),
  ]);
  return { payerSide, payeeSide, counter };
}

/** Where the time of one payment went, filled in by the two roles. */
interface Parts {
  payMs: number;
  verifyMs: number;
  collectMs: number;
}

function refuse(reason: string, message: string): TallyError<'PAYMENT_INVALID'> {
  return new TallyError('PAYMENT_INVALID', message, { reason });
}

/**
 * The payer's wallet: pays only a TA owned by the user at the other end of the link, and only the
 * amount it came to pay; then its TA's Pay.
 */
function payerRole(payer: Wallet, peer: SecureLink['peer'], amount: bigint, parts: Parts) {
  return {
    async pay(request: PaymentRequest): Promise<Payment> {
      if (request.amount !== amount) throw refuse('amount', `the payee asks ${request.amount}, the payer came to pay ${amount}`);
      const owner = decodeCertificate(request.receiver).body.extensions.owner;
      if (peer.publicKey === undefined || owner === undefined || !equalBytes(owner, keyId(peer.publicKey))) {
        throw refuse('receiver', 'the receiver TA does not belong to the user at the other end of the link');
      }
      const started = performance.now();
      const payment = await payer.party.se.call('pay', { amount: request.amount, receiver: request.receiver });
      parts.payMs = performance.now() - started;
      return payment;
    },
  };
}

/** The payee's wallet: asks for `amount` to its TA, runs PayVerify, then stores through its TA's Collect. */
function payeeRole(payee: Wallet, pinned: Pinned, amount: bigint, parts: Parts) {
  const request: PaymentRequest = { amount, receiver: payee.party.taCertificate };
  return {
    request,
    async accept(payment: Payment): Promise<void> {
      if (payment.amount !== amount) throw refuse('amount', `the payment is for ${payment.amount}, ${amount} was asked`);
      const started = performance.now();
      verifyPayment({
        provider: pinned.provider,
        payment,
        trustAnchors: [pinned.root],
        intermediaries: [pinned.intermediary],
        now: Date.now(),
        currency: pinned.currency,
        receiver: payee.party.taCertificate,
      });
      const verified = performance.now();
      await payee.party.se.call('collect', { payment });
      parts.verifyMs = verified - started;
      parts.collectMs = performance.now() - verified;
    },
  };
}

/**
 * Runs one payment from `payer` to `payee` over a fresh link and times it.
 * @throws TallyError when either side fails or the receipt does not come: every bench payment must go through
 */
export async function payOnce(transport: Transport, payer: Wallet, payee: Wallet, context: PaymentContext): Promise<PaymentSample> {
  const started = performance.now();
  const { payerSide, payeeSide, counter } = await openLinks(transport, payer, payee, context);
  const linked = performance.now();
  const handshakeBytes = counter.totalBytes;
  const parts: Parts = { payMs: Number.NaN, verifyMs: Number.NaN, collectMs: Number.NaN };
  try {
    const [paid] = await Promise.all([
      runPayer(payerSide.link, payerRole(payer, payerSide.peer, context.amount, parts), { stepTimeoutMs: STEP_TIMEOUT_MS }),
      runPayee(payeeSide.link, payeeRole(payee, context.pinned, context.amount, parts), { stepTimeoutMs: STEP_TIMEOUT_MS }),
    ]);
    const done = performance.now();
    if (paid.receipt === null) throw paid.error ?? refuse('receipt', 'the payer got no receipt');
    return { linkMs: linked - started, paymentMs: done - linked, ...parts, handshakeBytes, paymentBytes: counter.totalBytes - handshakeBytes, payment: paid.payment };
  } finally {
    payerSide.link.close();
    payeeSide.link.close();
  }
}
