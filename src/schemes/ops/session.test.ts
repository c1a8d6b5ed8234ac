/**
 * The OPS payment session (Figure 7 over a live link, session.ts) between real wallets: payer and
 * payee on a Noise link bound to their user certificates, in memory and over TCP. The payer pays
 * only the peer it is bound to; the payee runs PayVerify and collects (TA) or keeps the payment to
 * claim (no TA). Refusals, timeouts, and the link cut at each message: afterwards either nothing
 * happened or the payer holds a payment that delivering again settles exactly once. Every test
 * ends with the audit balanced and conservation.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { equalBytes, toHex } from '../../core/bytes.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { isTallyError, TallyError, type ErrorCode } from '../../core/errors.ts';
import { framed } from '../../channel/frame.ts';
import { injectFaults } from '../../channel/faults.ts';
import type { ChannelIdentity, PeerTrust } from '../../channel/binding.ts';
import { memoryPair } from '../../channel/memory.ts';
import { openSecureLink, type PeerInfo } from '../../channel/secure-link.ts';
import type { ByteStream, FrameChannel } from '../../channel/stream.ts';
import { connectTcp, listenTcp } from '../../channel/tcp.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { decodePayment, paymentDigest, paymentSigned, PAYMENT_TAG, type Payment, type PaymentRequest } from './messages.ts';
import type { VerifiedPayment } from './pay-verify.ts';
import { OPS_LINK_PROLOGUE, payeeMessageCodec, payerMessageCodec, runPayee, runPayer, type PayeeRole, type PayerRole } from './session.ts';
import { opsNode, type AnyOpsSe, type DeviceClient, type OpsNode } from './test-fixtures.ts';

after(() => closeTestTemplates());

/** Short waits: every step here either answers at once or is meant to time out. */
const STEP_MS = 2_000;

type Plain = Awaited<ReturnType<OpsNode['plainClient']>>;

/** The trust both sides give: the peer's certificate is a user certificate chaining to the node's root. */
function trustOf(n: OpsNode): PeerTrust {
  const { identity } = n.h.node.services;
  return {
    provider: nodeProvider,
    verify: (certificate) =>
      verifyChain({
        provider: nodeProvider,
        chain: [decodeCertificate(certificate), identity.intermediary.certificate],
        trustAnchors: [identity.root.certificate],
        now: n.h.now(),
        leafRoles: ['user'],
      }).subject,
  };
}

/**
 * Whether `receiver` is the bound peer: its own user certificate, or a device certificate whose
 * owner is the peer's key id (the peer asks to be paid on its TA).
 */
function receiverIsPeer(receiver: Uint8Array, peer: PeerInfo): boolean {
  if (peer.binding === undefined || peer.publicKey === undefined) return false;
  if (equalBytes(receiver, peer.binding.certificate)) return true;
  const certificate = decodeCertificate(receiver);
  const owner = certificate.body.extensions.owner;
  return certificate.body.role === 'device' && owner !== undefined && equalBytes(owner, keyId(peer.publicKey));
}

/** What the payer's TA paid, in order: conservation counts them until they settle. */
interface Book {
  readonly made: Payment[];
  readonly settled: Set<string>;
}

const digestHex = (p: Payment) => toHex(paymentDigest(p));
const outstanding = (book: Book) => book.made.filter((p) => !book.settled.has(digestHex(p)));

/** The payer's part: judge the request against the bound peer, then the TA pays. */
function payerRole(se: AnyOpsSe, peer: PeerInfo, book: Book): PayerRole {
  return {
    async pay(request) {
      if (!receiverIsPeer(request.receiver, peer)) {
        throw new TallyError('PAYMENT_INVALID', 'the request names a receiver that is not the peer on this link', { reason: 'receiver is not the peer' });
      }
      const payment = await se.call('pay', { amount: request.amount, receiver: request.receiver });
      book.made.push(payment);
      return payment;
    },
  };
}

/** PayVerify at the wallet, plus the amount asked for. */
function checkPayment(n: OpsNode, payment: Payment, request: PaymentRequest): VerifiedPayment {
  const verified = n.verifyOffline(payment, { receiver: request.receiver });
  if (payment.amount !== request.amount) throw new TallyError('PAYMENT_INVALID', `asked for ${request.amount}, paid ${payment.amount}`, { reason: 'amount' });
  return verified;
}

/** A payee with a TA: verify, then Collect. */
function taPayee(n: OpsNode, payee: DeviceClient, amount: bigint, book: Book): PayeeRole {
  const request = { amount, receiver: payee.certificate };
  return {
    request,
    async accept(payment) {
      checkPayment(n, payment, request);
      await payee.se.call('collect', { payment });
      book.settled.add(digestHex(payment));
    },
  };
}

/** A payee's wallet without a TA: verify, refuse what its log has seen, keep the payment to claim. */
interface PlainWallet {
  readonly log: Set<string>;
  readonly received: Payment[];
}

function plainPayee(n: OpsNode, payee: Plain, amount: bigint, wallet: PlainWallet): PayeeRole {
  const request = { amount, receiver: payee.certificate };
  return {
    request,
    async accept(payment) {
      const verified = checkPayment(n, payment, request);
      const entry = `${toHex(verified.sender.subjectKeyId)}:${payment.index}`;
      if (wallet.log.has(entry)) throw new TallyError('PAYMENT_REPLAYED', 'this wallet accepted that payment already', { sender: toHex(verified.sender.subjectKeyId), index: String(payment.index) });
      wallet.log.add(entry);
      wallet.received.push(payment);
    },
  };
}

const identityOf = (who: { user: ChannelIdentity['signer']; userCertificate: Uint8Array }): ChannelIdentity => ({ certificate: who.userCertificate, signer: who.user });

type PayerOutcome = Awaited<ReturnType<typeof runPayer>>;

/**
 * Opens a secure link between the two carriers (payer initiator, payee responder) and runs both
 * sides to the end; both links are closed afterwards.
 */
async function session(options: {
  n: OpsNode;
  payerCarrier: ByteStream | FrameChannel;
  payeeCarrier: ByteStream | FrameChannel;
  payer: DeviceClient;
  payerPay?: ((peer: PeerInfo) => PayerRole) | undefined;
  payeeIdentity: ChannelIdentity;
  payee: PayeeRole;
  book: Book;
  stepTimeoutMs?: number | undefined;
}): Promise<{ payer: PromiseSettledResult<PayerOutcome>; payee: PromiseSettledResult<{ payment: Payment }> }> {
  const { n, stepTimeoutMs = STEP_MS } = options;
  const trust = trustOf(n);
  const [payer, payee] = await Promise.allSettled([
    (async () => {
      const { link, peer } = await openSecureLink(options.payerCarrier, { role: 'initiator', identity: identityOf(options.payer), trust, prologue: OPS_LINK_PROLOGUE, handshakeTimeoutMs: STEP_MS });
      try {
        return await runPayer(link, options.payerPay?.(peer) ?? payerRole(options.payer.se, peer, options.book), { stepTimeoutMs });
      } finally {
        link.close();
      }
    })(),
    (async () => {
      const { link } = await openSecureLink(options.payeeCarrier, { role: 'responder', identity: options.payeeIdentity, trust, prologue: OPS_LINK_PROLOGUE, handshakeTimeoutMs: STEP_MS });
      try {
        return await runPayee(link, options.payee, { stepTimeoutMs });
      } finally {
        link.close();
      }
    })(),
  ]);
  return { payer, payee };
}

function rejectedWith<C extends ErrorCode>(result: PromiseSettledResult<unknown>, code: C): TallyError<C> {
  assert.equal(result.status, 'rejected', `expected ${code}, got a result`);
  const reason: unknown = (result as PromiseRejectedResult).reason;
  assert.ok(isTallyError(reason, code), `expected ${code}, got ${String(reason)}`);
  return reason;
}

function fulfilled<T>(result: PromiseSettledResult<T>): T {
  if (result.status === 'rejected') assert.fail(`expected a result, got ${String(result.reason)}`);
  return result.value;
}

async function status(se: AnyOpsSe) {
  const s = await se.call('status', {});
  return { balance: s.balance, j: s.j };
}

/** Asserts that the TA refused with `code`. */
async function refused(call: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(call, (e: unknown) => {
    assert.ok(isTallyError(e, 'SE_REJECTED'), String(e));
    assert.equal(e.details.reason, code, e.message);
    return true;
  });
}

for (const backend of testBackends()) {
  describe(`OPS payment session on ${backend.kind}`, { skip: backend.skip }, () => {
    test('over a bound Noise link in memory: a TA payee collects, a plain payee keeps and claims; receipts name the payment', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '50.00');
        await n.deposit(alice, '40.00');
        const book: Book = { made: [], settled: new Set() };

        // Bob binds the link with his user certificate and asks to be paid on his TA (owner = Bob).
        const [a, b] = memoryPair();
        const toBob = await session({ n, payerCarrier: a, payeeCarrier: b, payer: alice, payeeIdentity: identityOf(bob), payee: taPayee(n, bob, 1250n, book), book });
        const paid = fulfilled(toBob.payer);
        assert.equal(paid.error, undefined);
        assert.deepEqual(paid.receipt, paymentDigest(paid.payment));
        assert.deepEqual(paid.request.receiver, bob.certificate);
        assert.deepEqual(fulfilled(toBob.payee).payment, paid.payment);
        assert.equal(paid.payment.index, 1n);
        assert.deepEqual(await status(bob.se), { balance: 1250n, j: 0n });

        // Carol has no TA: she asks on her user certificate, verifies, and claims online later.
        const wallet: PlainWallet = { log: new Set(), received: [] };
        const [c, d] = memoryPair({ chunkBytes: 7 });
        const toCarol = await session({ n, payerCarrier: c, payeeCarrier: d, payer: alice, payeeIdentity: { certificate: carol.certificate, signer: carol.user }, payee: plainPayee(n, carol, 300n, wallet), book });
        assert.deepEqual(fulfilled(toCarol.payer).receipt, paymentDigest(fulfilled(toCarol.payer).payment));
        assert.equal(wallet.received.length, 1);
        assert.deepEqual(await status(alice.se), { balance: 4000n - 1250n - 300n, j: 2n });
        await n.conservation([alice, bob], outstanding(book));

        const claimed = await n.claim(carol, wallet.received[0] as Payment);
        assert.equal(claimed.status, 200, await claimed.clone().text());
        book.settled.add(digestHex(wallet.received[0] as Payment));
        assert.equal(await n.h.balance(carol), '3.00');
        assert.equal(await n.h.balance(alice), '10.00');
        const totals = await n.conservation([alice, bob], outstanding(book));
        assert.deepEqual(totals, { issued: 5000n, online: 1300n, float: 3700n, held: 3700n, unsettled: 0n });
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('over TCP: the same session to a TA payee and to a plain payee', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      const server = await listenTcp(0, '127.0.0.1');
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        const book: Book = { made: [], settled: new Set() };

        const tcpPair = async (): Promise<[ByteStream, ByteStream]> => {
          const [payerEnd, payeeEnd] = await Promise.all([connectTcp('127.0.0.1', server.port), server.accept({ timeoutMs: STEP_MS })]);
          return [payerEnd, payeeEnd];
        };
        let [a, b] = await tcpPair();
        const toBob = await session({ n, payerCarrier: a, payeeCarrier: b, payer: alice, payeeIdentity: identityOf(bob), payee: taPayee(n, bob, 700n, book), book });
        assert.deepEqual(fulfilled(toBob.payer).receipt, paymentDigest(fulfilled(toBob.payee).payment));
        assert.equal((await status(bob.se)).balance, 700n);

        const wallet: PlainWallet = { log: new Set(), received: [] };
        [a, b] = await tcpPair();
        const toCarol = await session({ n, payerCarrier: a, payeeCarrier: b, payer: alice, payeeIdentity: { certificate: carol.certificate, signer: carol.user }, payee: plainPayee(n, carol, 450n, wallet), book });
        assert.deepEqual(fulfilled(toCarol.payer).receipt, paymentDigest(wallet.received[0] as Payment));
        assert.equal((await n.claim(carol, wallet.received[0] as Payment)).status, 200);
        book.settled.add(digestHex(wallet.received[0] as Payment));
        assert.equal(await n.h.balance(carol), '4.50');
        assert.deepEqual(await status(alice.se), { balance: 2000n - 700n - 450n, j: 2n });
        assert.equal((await n.conservation([alice, bob], outstanding(book))).unsettled, 0n);
      } finally {
        await server.close();
        await n.close([alice, bob]);
      }
    });

    test('the payer refuses a request naming a receiver other than the bound peer: PEER_REFUSED at the payee, nothing paid', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      const dave = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '10.00');
        await n.deposit(alice, '10.00');
        const book: Book = { made: [], settled: new Set() };
        const before = await status(alice.se);
        // Bob is bound to the link but asks to be paid on Carol's certificate, on Dave's device,
        // and on Carol's user certificate as if it were his: each names someone else.
        const elsewhere: { receiver: Uint8Array; what: string }[] = [
          { receiver: carol.certificate, what: "another user's certificate" },
          { receiver: dave.certificate, what: "a device certificate of another owner" },
          { receiver: alice.certificate, what: "the payer's own device" },
        ];
        for (const { receiver, what } of elsewhere) {
          const [a, b] = memoryPair();
          const payee: PayeeRole = { request: { amount: 100n, receiver }, accept: () => assert.fail(`${what}: no payment may arrive`) };
          const result = await session({ n, payerCarrier: a, payeeCarrier: b, payer: alice, payeeIdentity: identityOf(bob), payee, book });
          const refusal = rejectedWith(result.payee, 'PEER_REFUSED');
          assert.equal(refusal.details.code, 'PAYEE_MISMATCH', what);
          assert.equal(refusal.message, 'the payer refused: the request names a payee that is not the peer on this link [PAYEE_MISMATCH]', what);
          rejectedWith(result.payer, 'PAYMENT_INVALID');
        }
        // A request the TA itself refuses (more than the balance) comes back refused too, with the
        // neutral code only: the payee learns neither the balance nor the TA's reason; the payer keeps both.
        const [a, b] = memoryPair();
        const tooMuch = await session({ n, payerCarrier: a, payeeCarrier: b, payer: alice, payeeIdentity: identityOf(bob), payee: taPayee(n, bob, 1001n, book), book });
        const declined = rejectedWith(tooMuch.payee, 'PEER_REFUSED');
        assert.equal(declined.details.code, 'PAYER_DECLINED');
        assert.equal(declined.message, "the payer refused: the payer's wallet declined to make this payment [PAYER_DECLINED]");
        const own = rejectedWith(tooMuch.payer, 'SE_REJECTED');
        assert.equal(own.details.reason, 'INSUFFICIENT_FUNDS');
        // The payer keeps its own reason (the wallet words it with the amounts: src/cli/link.e2e.test.ts).
        assert.match(own.message, /offline balance is below the amount to pay/, 'the payer still sees why');
        assert.deepEqual(await status(alice.se), before);
        assert.equal(book.made.length, 0);
        assert.deepEqual(await status(bob.se), { balance: 0n, j: 0n });
        await n.conservation([alice, bob, dave]);
      } finally {
        await n.close([alice, bob, dave]);
      }
    });

    test('the payee refuses a forged, altered or misdirected payment; the payer learns it and its real payment still settles once', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '30.00');
        await n.deposit(alice, '30.00');
        const book: Book = { made: [], settled: new Set() };
        // Each tamper: the TA really pays (the real payment is kept), the link carries something else.
        const tampers: { name: string; send: (real: Payment) => Payment; receiver?: (req: PaymentRequest) => Uint8Array }[] = [
          { name: 'amount raised after signing', send: (real) => ({ ...real, amount: real.amount + 100n }) },
          { name: 'index changed after signing', send: (real) => ({ ...real, index: real.index + 7n }) },
          { name: 'signed by the payer user key, not the TA', send: (real) => ({ ...real, signature: signRecord(alice.user, PAYMENT_TAG, paymentSigned(real)) }) },
          { name: 'genuine, for less than asked', send: (real) => real, receiver: (req) => req.receiver },
          { name: 'genuine, made out to someone else', send: (real) => real, receiver: () => carol.certificate },
        ];
        const held: Payment[] = [];
        for (const [k, tamper] of tampers.entries()) {
          const [a, b] = memoryPair();
          const payerPay = (): PayerRole => ({
            async pay(request) {
              const amount = tamper.name.includes('less') ? request.amount - 1n : request.amount;
              const real = await alice.se.call('pay', { amount, receiver: tamper.receiver?.(request) ?? request.receiver });
              book.made.push(real);
              held.push(real);
              return tamper.send(real);
            },
          });
          const before = (await status(bob.se)).balance;
          const result = await session({ n, payerCarrier: a, payeeCarrier: b, payer: alice, payerPay, payeeIdentity: identityOf(bob), payee: taPayee(n, bob, 200n + BigInt(k), book), book });
          const refusedBy = rejectedWith(result.payee, 'PAYMENT_INVALID');
          const outcome = fulfilled(result.payer);
          assert.equal(outcome.receipt, null, tamper.name);
          assert.ok(isTallyError(outcome.error, 'PEER_REFUSED'), tamper.name);
          // The payer gets a code and its fixed sentence; the payee's own message stays with the payee.
          const sent = tamper.name.includes('less') ? { code: 'AMOUNT_MISMATCH', text: 'the payment is not for the amount asked' } : { code: 'PAYMENT_INVALID', text: 'the payment does not verify' };
          assert.equal(outcome.error.details.code, sent.code, tamper.name);
          assert.equal(outcome.error.message, `the payee refused: ${sent.text} [${sent.code}]`, tamper.name);
          assert.ok(!outcome.error.message.includes(refusedBy.message), `${tamper.name}: ${outcome.error.message}`);
          assert.equal((await status(bob.se)).balance, before, `${tamper.name}: Bob's TA took nothing`);
        }
        assert.equal(held.length, tampers.length);
        assert.deepEqual(await status(alice.se), { balance: 3000n - 200n - 201n - 202n - 202n - 204n, j: 5n });
        await n.conservation([alice, bob], outstanding(book));

        // What the payer holds is genuine: delivered again (as a token), each settles exactly once.
        const bobsBefore = (await status(bob.se)).balance;
        for (const payment of held.slice(0, 4)) {
          await bob.se.call('collect', { payment });
          await refused(bob.se.call('collect', { payment }), 'PAYMENT_REPLAYED');
          book.settled.add(digestHex(payment));
        }
        assert.equal((await status(bob.se)).balance, bobsBefore + 200n + 201n + 202n + 202n);
        const toCarol = held[4] as Payment;
        await refused(bob.se.call('collect', { payment: toCarol }), 'PAYMENT_INVALID');
        assert.equal((await n.claim(carol, toCarol)).status, 200);
        await expectError(await n.claim(carol, toCarol), 409, 'PAYMENT_REPLAYED');
        book.settled.add(digestHex(toCarol));
        assert.equal(await n.h.balance(carol), '2.04');
        const totals = await n.conservation([alice, bob], outstanding(book));
        assert.equal(totals.unsettled, 0n);
        assert.equal(totals.issued, 3000n);
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('timeouts: a silent payer, a silent payee, a receipt that never comes; nothing is paid twice', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        await n.mint(alice, '10.00');
        await n.deposit(alice, '10.00');
        const book: Book = { made: [], settled: new Set() };
        const trust = trustOf(n);
        const open = async () => {
          const [a, b] = memoryPair();
          const [payer, payee] = await Promise.all([
            openSecureLink(a, { role: 'initiator', identity: identityOf(alice), trust, prologue: OPS_LINK_PROLOGUE }),
            openSecureLink(b, { role: 'responder', identity: identityOf(bob), trust, prologue: OPS_LINK_PROLOGUE }),
          ]);
          return { payer, payee };
        };

        // The payee asks, the payer never answers: TIMEOUT waiting for the payment.
        let link = await open();
        await assert.rejects(runPayee(link.payee.link, taPayee(n, bob, 100n, book), { stepTimeoutMs: 50 }), (e) => isTallyError(e, 'TIMEOUT') && e.details.what === 'payment' && e.details.timeoutMs === 50);
        link.payer.link.close();
        link.payee.link.close();

        // The payer waits, the payee never asks: TIMEOUT waiting for the request, nothing paid.
        link = await open();
        await assert.rejects(runPayer(link.payer.link, payerRole(alice.se, link.payer.peer, book), { stepTimeoutMs: 50 }), (e) => isTallyError(e, 'TIMEOUT') && e.details.what === 'payment request');
        link.payer.link.close();
        link.payee.link.close();
        assert.deepEqual(await status(alice.se), { balance: 1000n, j: 0n });

        // The payee takes the payment and never answers (not collected): the payer times out holding it.
        link = await open();
        link.payee.link.send({ kind: 'request', amount: 150n, receiver: bob.certificate, memo: '' });
        const unanswered = await runPayer(link.payer.link, payerRole(alice.se, link.payer.peer, book), { stepTimeoutMs: 50 });
        assert.ok(isTallyError(unanswered.error, 'TIMEOUT') && unanswered.error.details.what === 'receipt');
        assert.equal(unanswered.receipt, null);
        link.payer.link.close();
        link.payee.link.close();

        // The payee collects but answers after the payer gave up: the payer holds a payment Bob already has.
        link = await open();
        const slow = taPayee(n, bob, 250n, book);
        const payeeSide = runPayee(link.payee.link, {
          request: slow.request,
          async accept(payment) {
            await slow.accept(payment);
            await new Promise((resolve) => setTimeout(resolve, 150));
          },
        });
        const late = await runPayer(link.payer.link, payerRole(alice.se, link.payer.peer, book), { stepTimeoutMs: 50 });
        assert.ok(isTallyError(late.error, 'TIMEOUT'));
        await payeeSide;
        link.payer.link.close();
        link.payee.link.close();
        assert.deepEqual(await status(bob.se), { balance: 250n, j: 0n });
        await n.conservation([alice, bob], outstanding(book));

        // Delivering both again: the unanswered one settles now, the late one was settled already.
        await bob.se.call('collect', { payment: unanswered.payment });
        book.settled.add(digestHex(unanswered.payment));
        await refused(bob.se.call('collect', { payment: unanswered.payment }), 'PAYMENT_REPLAYED');
        await refused(bob.se.call('collect', { payment: late.payment }), 'PAYMENT_REPLAYED');
        assert.deepEqual(await status(bob.se), { balance: 400n, j: 0n });
        assert.deepEqual(await status(alice.se), { balance: 600n, j: 2n });
        assert.equal((await n.conservation([alice, bob], outstanding(book))).unsettled, 0n);
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('a peer off the protocol: a refusal instead of a request, a receipt for another payment, undecodable payment bytes', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        await n.mint(alice, '10.00');
        await n.deposit(alice, '10.00');
        const book: Book = { made: [], settled: new Set() };
        const trust = trustOf(n);
        const open = async () => {
          const [a, b] = memoryPair();
          const [payer, payee] = await Promise.all([
            openSecureLink(a, { role: 'initiator', identity: identityOf(alice), trust, prologue: OPS_LINK_PROLOGUE }),
            openSecureLink(b, { role: 'responder', identity: identityOf(bob), trust, prologue: OPS_LINK_PROLOGUE }),
          ]);
          return { payer, payee };
        };

        // The payee refuses before asking: the payer pays nothing.
        let link = await open();
        link.payee.link.send({ kind: 'refusal', code: 'HOLDING_LIMIT', message: 'cannot take more' });
        await assert.rejects(runPayer(link.payer.link, payerRole(alice.se, link.payer.peer, book), { stepTimeoutMs: STEP_MS }), (e) => isTallyError(e, 'PEER_REFUSED') && e.details.code === 'HOLDING_LIMIT');
        assert.deepEqual(await status(alice.se), { balance: 1000n, j: 0n });
        link.payer.link.close();
        link.payee.link.close();

        // The payee collects, then answers a receipt that names another payment: no receipt for the payer.
        link = await open();
        const collecting = taPayee(n, bob, 300n, book);
        link.payee.link.send({ kind: 'request', amount: 300n, receiver: bob.certificate, memo: 'coffee' });
        const paying = runPayer(link.payer.link, payerRole(alice.se, link.payer.peer, book), { stepTimeoutMs: STEP_MS });
        const sent = await link.payee.link.receive(payerMessageCodec, { timeoutMs: STEP_MS });
        assert.equal(sent.kind, 'payment');
        const payment = decodePayment((sent as { payment: Uint8Array }).payment);
        await collecting.accept(payment);
        link.payee.link.send({ kind: 'receipt', digest: new Uint8Array(32).fill(1) });
        const outcome = await paying;
        assert.equal(outcome.request.memo, 'coffee');
        assert.equal(outcome.receipt, null);
        assert.ok(isTallyError(outcome.error, 'PAYMENT_INVALID') && outcome.error.details.reason === 'receipt digest');
        await refused(bob.se.call('collect', { payment: outcome.payment }), 'PAYMENT_REPLAYED');
        link.payer.link.close();
        link.payee.link.close();

        // A payer that sends bytes that are no payment: the payee refuses with the decoder's code.
        link = await open();
        const payeeSide = runPayee(link.payee.link, taPayee(n, bob, 100n, book), { stepTimeoutMs: STEP_MS });
        await link.payer.link.receive(payeeMessageCodec, { timeoutMs: STEP_MS });
        link.payer.link.send({ kind: 'payment', payment: new Uint8Array([0xa1, 0x61, 0x78, 0x01]) });
        const answer = await link.payer.link.receive(payeeMessageCodec, { timeoutMs: STEP_MS });
        assert.equal(answer.kind, 'refusal');
        assert.equal((answer as { code: string }).code, 'DECODE_FAILED');
        await assert.rejects(payeeSide, (e) => isTallyError(e, 'DECODE_FAILED'));
        link.payer.link.close();
        link.payee.link.close();
        assert.deepEqual(await status(bob.se), { balance: 300n, j: 0n });
        assert.deepEqual(await status(alice.se), { balance: 700n, j: 1n });
        assert.equal((await n.conservation([alice, bob], outstanding(book))).unsettled, 0n);
      } finally {
        await n.close([alice, bob]);
      }
    });

    // The payee is the responder. Its outgoing units: 0 handshake message 2, 1 its hello, 2 the
    // request, 3 the receipt; incoming: 0 message 1, 1 message 3, 2 the payer's hello, 3 the payment.
    // cutAfterUnits k lets k units through, then cuts the link.
    const expected: Record<'outgoing' | 'incoming', readonly Outcome[]> = {
      outgoing: ['nothing', 'nothing', 'nothing', 'undelivered', 'complete', 'complete'],
      incoming: ['nothing', 'nothing', 'nothing', 'nothing', 'receipt-lost', 'complete'],
    };
    type Outcome = 'nothing' | 'undelivered' | 'receipt-lost' | 'complete';

    for (const kind of ['TA', 'plain'] as const) {
      test(`the link cut at each message to a ${kind} payee: nothing happened, or the payer holds a payment that settles exactly once`, async () => {
        const n = await opsNode(backend);
        const alice = await n.deviceClient();
        const bob = await n.deviceClient();
        try {
          const carol = await n.plainClient();
          await n.mint(alice, '50.00');
          await n.deposit(alice, '50.00');
          const book: Book = { made: [], settled: new Set() };
          const wallet: PlainWallet = { log: new Set(), received: [] };
          let amount = 100n;
          const seen = new Set<Outcome>();
          for (const direction of ['outgoing', 'incoming'] as const) {
            for (const [k, outcome] of expected[direction].entries()) {
              const what = `${direction} cut after ${k}`;
              amount += 1n;
              const [a, b] = memoryPair();
              const faulty = injectFaults(framed(b), { seed: k, [direction]: { cutAfterUnits: k } });
              const payee = kind === 'TA' ? taPayee(n, bob, amount, book) : plainPayee(n, carol, amount, wallet);
              const payeeIdentity = kind === 'TA' ? identityOf(bob) : { certificate: carol.certificate, signer: carol.user };
              const alicesBefore = await status(alice.se);
              const bobsBefore = await status(bob.se);
              const carolsBefore = wallet.received.length;
              const result = await session({ n, payerCarrier: a, payeeCarrier: faulty, payer: alice, payeeIdentity, payee, book });

              const accepted = kind === 'TA' ? (await status(bob.se)).balance - bobsBefore.balance === amount : wallet.received.length === carolsBefore + 1;
              if (result.payer.status === 'rejected') {
                // Nothing happened: no TA balance moved, no payment exists.
                assert.equal(outcome, 'nothing', `${what}: ${String(result.payer.reason)}`);
                assert.ok(isTallyError(result.payer.reason), what);
                assert.equal(result.payee.status, 'rejected', what);
                assert.deepEqual(await status(alice.se), alicesBefore, what);
                assert.deepEqual(await status(bob.se), bobsBefore, what);
                assert.equal(accepted, false, what);
              } else {
                const { payment, receipt, error } = result.payer.value;
                const observed: Outcome = receipt !== null ? 'complete' : accepted ? 'receipt-lost' : 'undelivered';
                assert.equal(observed, outcome, `${what}: ${String(error)}`);
                if (receipt === null) assert.ok(isTallyError(error, 'LINK_CLOSED'), `${what}: ${String(error)}`);
                assert.deepEqual(await status(alice.se), { balance: alicesBefore.balance - amount, j: alicesBefore.j + 1n }, what);
                // The payee settles what it accepted; then the payer delivers what it holds again, twice.
                if (kind === 'plain' && accepted) {
                  assert.equal((await n.claim(carol, wallet.received.at(-1) as Payment)).status, 200, what);
                }
                const redeliver = async () => {
                  if (kind === 'TA') return bob.se.call('collect', { payment }).then(() => 'settled' as const, (e: unknown) => (isTallyError(e, 'SE_REJECTED') ? e.details.reason : Promise.reject(e)));
                  const res = await n.claim(carol, payment);
                  return res.status === 200 ? ('settled' as const) : ((await res.json()) as { error: { code: string } }).error.code;
                };
                assert.equal(await redeliver(), accepted ? 'PAYMENT_REPLAYED' : 'settled', what);
                assert.equal(await redeliver(), 'PAYMENT_REPLAYED', what);
                book.settled.add(digestHex(payment));
              }
              seen.add(outcome);
              await n.conservation([alice, bob], outstanding(book));
            }
          }
          assert.deepEqual([...seen].sort(), ['complete', 'nothing', 'receipt-lost', 'undelivered']);
          const made = book.made.reduce((sum, p) => sum + p.amount, 0n);
          assert.equal((await status(alice.se)).balance, 5000n - made);
          const totals = await n.conservation([alice, bob], outstanding(book));
          assert.deepEqual(totals, { issued: 5000n, online: kind === 'TA' ? 0n : made, float: 5000n - (kind === 'TA' ? 0n : made), held: 5000n - (kind === 'TA' ? 0n : made), unsettled: 0n });
        } finally {
          await n.close([alice, bob]);
        }
      });
    }
  });
}
