/**
 * The OPS trusted application (Figure 4) as a pure state machine: `Init`, `CertInit`, `Deposit`,
 * `Withdraw`, `Pay`, `Collect` and `Get-Balance`, aborting where the paper aborts; plus what
 * settlement needs: a signed report of what was paid and collected since the last sync, and the
 * node's ack, which also brings the revocation list and the TA's only trusted clock.
 *
 * Beyond the paper, and named as such: the root certificate is pinned at provisioning (a TA build
 * would embed it), the TA enforces the limits of its certificate (holding limit, payments between
 * syncs), and its payment log is bounded and pruned by certificate expiry against trusted time.
 */
import { equalBytes, toHex } from '../../core/bytes.ts';
import { array, boolean, bytes, optional, record, text, uint, type Codec } from '../../core/codec.ts';
import { signRecord, verifyRecord } from '../../core/crypto/record.ts';
import { publicKeyCodec, type Signer } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { decodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { verifyChain, type VerifiedChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import { signRegistrationProof } from '../../pki/registration.ts';
import { decodeRevocationList } from '../../pki/revocation.ts';
import { takeNewerRevocationList } from '../../pki/revocation-update.ts';
import { accept, command, defineTrustedApp, reject, type CommandResult, type TrustedEnv } from '../../secure-element/trusted-app.ts';
import {
  amountCodec,
  balanceCodec,
  BALANCE_TAG,
  certificateBytesCodec,
  counterCodec,
  depositConfirmationCodec,
  depositSigned,
  DEPOSIT_TAG,
  keyIdBytesCodec,
  OPS_SCHEME,
  paymentCodec,
  paymentDigest,
  paymentRequestCodec,
  paymentSigned,
  PAYMENT_TAG,
  REPORT_ENTRIES_MAX,
  signatureCodec,
  syncAckBodyWire,
  syncAckCodec,
  syncReportBodyWire,
  syncReportCodec,
  SYNC_ACK_TAG,
  SYNC_REPORT_TAG,
  withdrawConfirmationCodec,
  withdrawSigned,
  WITHDRAW_TAG,
  type CollectedEntry,
  type PaidEntry,
  type Payment,
  type SyncReport,
  type WithdrawConfirmation,
} from './messages.ts';
import { verifyPayment } from './pay-verify.ts';
import { certified, checkerOf, decodeHeldCertificate, heldChecker, heldList, peerCertificates } from './trusted-app-certified.ts';

/** The label of the TA's signing key (T.sk) under the device master secret. */
export const TA_KEY_LABEL = 'ops/ta';
export { IN_PAYMENT_LOG_MAX, opsStateCodec, PEERS_MAX, TA_CRL_BYTES_MAX, type LogEntry, type OpsState } from './trusted-app-state.ts';
import {
  IN_PAYMENT_LOG_MAX,
  opsLogs,
  opsStateCodec,
  PEERS_MAX,
  TA_CRL_BYTES_MAX,
  TA_PEER_CRL_BYTES_MAX,
  TA_ROOT_CRL_BYTES_MAX,
  WITHDRAWALS_KEPT_MAX,
  type LogEntry,
  type OpsState,
} from './trusted-app-state.ts';

function taSigner(env: TrustedEnv): Signer {
  return env.signer(TA_KEY_LABEL);
}

const NOT_CERTIFIED = () => reject('NOT_CERTIFIED', 'T.cert is not set: register the device and run CertInit first');

function verifyTaCertificate(state: OpsState, certificate: Certificate, intermediary: Certificate, root: Certificate, env: TrustedEnv, now: number): VerifiedChain {
  return verifyChain({ provider: env.provider, chain: [certificate, intermediary], trustAnchors: [root], now, leafRoles: ['device'], revocations: checkerOf(heldList(state)) });
}

const initInput = record({ root: certificateBytesCodec, owner: keyIdBytesCodec });
const initOutput = record({ publicKey: publicKeyCodec, proof: signatureCodec });
const certInitInput = record({ certificate: certificateBytesCodec, intermediary: certificateBytesCodec, issuerNode: certificateBytesCodec });
const limitsOutput = record({ holdingLimit: balanceCodec, offlinePaymentsMax: uint({ max: 2 ** 32 - 1 }), currency: text({ max: 12 }) });
const balanceOutput = record({ balance: balanceCodec });
const signedBalanceOutput = record({ balance: balanceCodec, i: counterCodec, signature: signatureCodec });
const withdrawOutput = withdrawConfirmationCodec;
const syncAckInput = record({ ack: syncAckCodec, crl: optional(bytes({ max: TA_CRL_BYTES_MAX })) });
const syncAckOutput = record({ paidCleared: uint({ max: REPORT_ENTRIES_MAX }), collectedCleared: uint({ max: REPORT_ENTRIES_MAX }), logPruned: uint({ max: IN_PAYMENT_LOG_MAX }), crlVersion: optional(uint({ max: Number.MAX_SAFE_INTEGER })) });
const peersInput = record({
  intermediaries: array(certificateBytesCodec, { max: PEERS_MAX }),
  rootCrl: optional(bytes({ max: TA_ROOT_CRL_BYTES_MAX })),
  crls: array(bytes({ max: TA_PEER_CRL_BYTES_MAX }), { max: PEERS_MAX }),
});
const peersOutput = record({ peers: uint({ max: PEERS_MAX }), crls: uint({ max: PEERS_MAX }), rootCrlVersion: optional(uint({ max: Number.MAX_SAFE_INTEGER })) });
const statusOutput = record({
  publicKey: publicKeyCodec,
  certified: boolean,
  balance: balanceCodec,
  i: counterCodec,
  j: counterCodec,
  unsyncedPayments: uint({ max: REPORT_ENTRIES_MAX }),
  unsyncedCollects: uint({ max: REPORT_ENTRIES_MAX }),
  holdingLimit: balanceCodec,
  offlinePaymentsMax: uint({ max: 2 ** 32 - 1 }),
  trustedTime: uint({ max: Number.MAX_SAFE_INTEGER }),
});

function paymentsAllowed(state: OpsState): number {
  return Math.min(state.offlinePaymentsMax, REPORT_ENTRIES_MAX);
}

/** Runs a check that throws TallyError and turns its failure into a rejection. */
function guarded<S, O>(run: () => CommandResult<S, O>): CommandResult<S, O> {
  try {
    return run();
  } catch (e) {
    if (isTallyError(e)) return reject(e.code, e.message);
    throw e;
  }
}

/** The OPS trusted app. */
export const opsTrustedApp = defineTrustedApp({
  name: 'ops',
  state: opsStateCodec as Codec<OpsState>,
  logs: opsLogs,
  init: (): OpsState => ({
    bal: 0n,
    i: 0n,
    j: 0n,
    collectSeq: 0n,
    currency: '',
    holdingLimit: 0n,
    offlinePaymentsMax: 0,
    inPaymentLog: [],
    paid: [],
    collected: [],
    trustedTime: 0,
  }),
  commands: {
    /** Init: the key pair (derived in the SE), the pinned root, and the proof that registers the TA under its owner. */
    init: command({
      input: initInput,
      output: initOutput,
      run(state: OpsState, input, env) {
        if (state.cert !== undefined) return reject('ALREADY_CERTIFIED', 'this TA already holds a certificate; Init runs once');
        return guarded(() => {
          const root = decodeCertificate(input.root);
          if (root.body.role !== 'root') return reject('ROOT_INVALID', `the pinned certificate must be a root, got a ${root.body.role}`);
          const signer = taSigner(env);
          const proof = signRegistrationProof(signer, { owner: input.owner, scheme: OPS_SCHEME });
          return accept({ ...state, root: input.root, owner: input.owner }, { publicKey: signer.publicKey, proof });
        });
      },
    }),

    /** CertInit: TACertVerify, then T.cert is set and the certificate's limits apply. */
    certInit: command({
      input: certInitInput,
      output: limitsOutput,
      run(state: OpsState, input, env) {
        if (state.root === undefined || state.owner === undefined) return reject('NOT_INITIALISED', 'run Init first');
        if (state.cert !== undefined) return reject('ALREADY_CERTIFIED', 'T.cert is already set');
        return guarded(() => {
          const root = decodeCertificate(state.root as Uint8Array);
          const certificate = decodeCertificate(input.certificate);
          const intermediary = decodeCertificate(input.intermediary);
          const issuerNode = decodeCertificate(input.issuerNode);
          // The TA has no clock: the certificate's own start is the first trusted time.
          const now = Math.max(state.trustedTime, certificate.body.notBefore);
          const verified = verifyTaCertificate(state, certificate, intermediary, root, env, now);
          const me = taSigner(env).publicKey;
          if (verified.subject.suite !== me.suite || !equalBytes(verified.subject.key, me.key)) return reject('CERT_MISMATCH', 'the certificate is for another key than T.vk');
          const x = verified.extensions;
          if (x.scheme !== OPS_SCHEME) return reject('CERT_MISMATCH', `the certificate is for scheme ${x.scheme ?? '(none)'}`);
          if (x.owner === undefined || !equalBytes(x.owner, state.owner as Uint8Array)) return reject('CERT_MISMATCH', 'the certificate names another owner');
          if (x.holdingLimit === undefined || x.currency === undefined || x.offlinePaymentsMax === undefined) {
            return reject('CERT_MISMATCH', 'the certificate lacks its holding limit, currency or payment count limit');
          }
          const server = verifyChain({ provider: env.provider, chain: [issuerNode, intermediary], trustAnchors: [root], now, leafRoles: ['issuer-node'] });
          const next: OpsState = {
            ...state,
            cert: input.certificate,
            intermediary: input.intermediary,
            serverKey: server.subject,
            currency: x.currency,
            holdingLimit: x.holdingLimit,
            offlinePaymentsMax: x.offlinePaymentsMax,
            trustedTime: now,
          };
          return accept(next, { holdingLimit: x.holdingLimit, offlinePaymentsMax: x.offlinePaymentsMax, currency: x.currency });
        });
      },
    }),

    /** Deposit(x, i, σ_S): abort unless certified, i = T.i + 1 and σ_S verifies over [T.vk, x, i]; then T.bal += x, T.i += 1. */
    deposit: command({
      input: record({ confirmation: depositConfirmationCodec }),
      output: balanceOutput,
      run(state: OpsState, input, env) {
        const c = certified(state);
        if (c === null) return NOT_CERTIFIED();
        const { confirmation } = input;
        if (confirmation.i !== state.i + 1n) return reject('COUNTER_MISMATCH', `deposit number ${confirmation.i} is not the next one (T.i is ${state.i})`);
        const me = taSigner(env).publicKey;
        if (confirmation.taKey.suite !== me.suite || !equalBytes(confirmation.taKey.key, me.key)) return reject('SIGNATURE_INVALID', 'the deposit is for another TA');
        if (!verifyRecord(env.provider, c.serverKey, DEPOSIT_TAG, depositSigned(confirmation), confirmation.signature)) {
          return reject('SIGNATURE_INVALID', 'the server signature σ_S does not verify');
        }
        const bal = state.bal + confirmation.amount;
        if (bal > state.holdingLimit) return reject('HOLDING_LIMIT', 'the balance would be over the holding limit; pay or withdraw first, then apply this deposit');
        return accept({ ...state, bal, i: state.i + 1n }, { balance: bal });
      },
    }),

    /** Withdraw(x): abort unless certified and x ≤ T.bal; T.bal -= x, T.i += 1; output [x, T.i, σ]. */
    withdraw: command({
      input: record({ amount: amountCodec }),
      output: withdrawOutput,
      run(state: OpsState, input, env) {
        if (certified(state) === null) return NOT_CERTIFIED();
        if (input.amount > state.bal) return reject('INSUFFICIENT_FUNDS', 'the offline balance is below the amount to withdraw');
        const i = state.i + 1n;
        const body = { amount: input.amount, i, j: state.j, collectSeq: state.collectSeq };
        const out: WithdrawConfirmation = { ...body, signature: signRecord(taSigner(env), WITHDRAW_TAG, withdrawSigned(body)) };
        const withdrawals = [...(state.withdrawals ?? []), { i, amount: input.amount }].slice(-WITHDRAWALS_KEPT_MAX);
        return accept({ ...state, bal: state.bal - input.amount, i, withdrawals }, out);
      },
    }),

    /**
     * Signs one of the latest withdrawals again with the TA's current counters (nothing moves): a
     * withdrawal that waited for the node while the TA paid on is sent with counters that cover those
     * payments, so the node never mistakes it for a restored state.
     */
    withdrawAgain: command({
      input: record({ i: counterCodec }),
      output: withdrawOutput,
      readOnly: true,
      run(state: OpsState, input, env) {
        if (certified(state) === null) return NOT_CERTIFIED();
        const kept = (state.withdrawals ?? []).find((w) => w.i === input.i);
        if (kept === undefined) return reject('WITHDRAW_UNKNOWN', `withdrawal number ${input.i} is not among the last ${WITHDRAWALS_KEPT_MAX} this TA made`);
        const body = { amount: kept.amount, i: kept.i, j: state.j, collectSeq: state.collectSeq };
        return accept(state, { ...body, signature: signRecord(taSigner(env), WITHDRAW_TAG, withdrawSigned(body)) });
      },
    }),

    /** Pay(x, receiver): abort unless certified and T.bal ≥ x (and within the payments allowed between syncs); output P. */
    pay: command({
      input: paymentRequestCodec,
      output: paymentCodec,
      run(state: OpsState, input, env) {
        const c = certified(state);
        if (c === null) return NOT_CERTIFIED();
        if (state.bal < input.amount) return reject('INSUFFICIENT_FUNDS', 'the offline balance is below the amount to pay');
        if (state.paid.length >= paymentsAllowed(state)) {
          return reject('OFFLINE_LIMIT', `${state.paid.length} payments since the last sync, the most this device may make offline; sync first`);
        }
        if (equalBytes(input.receiver, c.cert)) return reject('RECEIVER_INVALID', 'a TA cannot pay itself');
        return guarded(() => {
          const receiver = decodeCertificate(input.receiver);
          const j = state.j + 1n;
          const body = { amount: input.amount, sender: c.cert, receiver: input.receiver, index: j };
          const payment: Payment = { ...body, signature: signRecord(taSigner(env), PAYMENT_TAG, paymentSigned(body)) };
          const entry: PaidEntry = { index: j, amount: input.amount, receiver: keyId(receiver.body.subject), digest: paymentDigest(payment) };
          return accept({ ...state, bal: state.bal - input.amount, j, paid: [...state.paid, entry] }, payment);
        });
      },
    }),

    /** Collect(P): abort unless certified, PayVerify(P), P.receiver = T.cert and P ∉ T.inPaymentLog; T.bal += P.amount. */
    collect: command({
      input: record({ payment: paymentCodec }),
      output: balanceOutput,
      run(state: OpsState, input, env) {
        const c = certified(state);
        if (c === null) return NOT_CERTIFIED();
        return guarded(() => {
          const verified = verifyPayment({
            provider: env.provider,
            payment: input.payment,
            trustAnchors: [c.root()],
            // Its own bank's intermediary and, in two tiers, the other banks' it took (peers).
            intermediaries: [c.intermediary(), ...peerCertificates(state)],
            now: state.trustedTime,
            revocations: heldChecker(state),
            currency: state.currency,
            receiver: c.cert,
          });
          const sender = verified.sender.subjectKeyId;
          const index = input.payment.index;
          if (state.inPaymentLog.some((e) => e.index === index && equalBytes(e.sender, sender))) {
            return reject('PAYMENT_REPLAYED', 'this payment was already collected (it is in T.inPaymentLog)');
          }
          if (state.inPaymentLog.length >= IN_PAYMENT_LOG_MAX || state.collected.length >= REPORT_ENTRIES_MAX) {
            return reject('LOG_FULL', 'the payment log is full; sync to prune it, then collect');
          }
          const bal = state.bal + input.payment.amount;
          if (bal > state.holdingLimit) return reject('HOLDING_LIMIT', `the balance would be ${bal}, over the holding limit of ${state.holdingLimit}; spend or withdraw first`);
          const seq = state.collectSeq + 1n;
          const log: LogEntry = { sender, index, notAfter: verified.sender.leaf.body.notAfter };
          const entry: CollectedEntry = { seq, sender, index, amount: input.payment.amount, digest: verified.digest };
          return accept({ ...state, bal, collectSeq: seq, inPaymentLog: [...state.inPaymentLog, log], collected: [...state.collected, entry] }, { balance: bal });
        });
      },
    }),

    /**
     * Two tiers (Tally): the other intermediaries whose devices this TA takes payments from, the
     * root's list of revoked intermediaries and each of those intermediaries' own revocation lists.
     * Nothing is taken on the word of whoever passes them (the wallet, its bank, the central bank's
     * directory): each certificate must be an intermediary certificate signed by the pinned root, of
     * this TA's currency, valid at trusted time; the root's list must be signed by the root, each
     * other list by the intermediary it revokes for; no list replaces a newer one held (a rolled-back
     * list would un-revoke). Certificates and lists held stay (the set only grows, up to PEERS_MAX
     * peers), so leaving one out later changes nothing. Aborts, changing nothing, on the first input
     * that fails.
     */
    peers: command({
      input: peersInput,
      output: peersOutput,
      run(state: OpsState, input, env) {
        const c = certified(state);
        if (c === null) return NOT_CERTIFIED();
        return guarded(() => {
          const root = c.root();
          const rootUpdate = takeNewerRevocationList({ provider: env.provider, issuerKey: root.body.subject, held: state.rootCrl, offered: input.rootCrl });
          if (!rootUpdate.ok) return reject(rootUpdate.code, `the root's list of revoked intermediaries: ${rootUpdate.message}`);
          const own = toHex(keyId(c.intermediary().body.subject));
          const peers = new Map<string, Uint8Array>();
          for (const held of state.peers ?? []) peers.set(toHex(keyId(decodeHeldCertificate(held).body.subject)), held);
          for (const bytes of input.intermediaries) {
            const certificate = decodeCertificate(bytes);
            // A revoked intermediary is kept: the root's list refuses its chains at every Collect.
            verifyChain({ provider: env.provider, chain: [certificate], trustAnchors: [root], now: Math.max(state.trustedTime, certificate.body.notBefore), leafRoles: ['intermediary'] });
            if (certificate.body.extensions.currency !== state.currency) {
              return reject('CERT_MISMATCH', `intermediary ${toHex(keyId(certificate.body.subject))} holds ${certificate.body.extensions.currency ?? '(no currency)'}, not ${state.currency}`);
            }
            const id = toHex(keyId(certificate.body.subject));
            if (id !== own) peers.set(id, bytes);
          }
          if (peers.size > PEERS_MAX) return reject('PEERS_FULL', `this TA holds at most ${PEERS_MAX} other intermediaries`);
          const crls = new Map<string, Uint8Array>();
          for (const held of state.peerCrls ?? []) crls.set(toHex(decodeRevocationList(held).body.issuer), held);
          for (const offered of input.crls) {
            const issuer = toHex(decodeRevocationList(offered).body.issuer);
            // Its own bank's list comes with each sync's ack, signed and checked there.
            if (issuer === own) continue;
            const peer = peers.get(issuer);
            if (peer === undefined) return reject('CRL_INVALID', `a revocation list of ${issuer}, which is no other intermediary this TA holds`);
            const update = takeNewerRevocationList({ provider: env.provider, issuerKey: decodeHeldCertificate(peer).body.subject, held: crls.get(issuer), offered });
            if (!update.ok) return reject(update.code, `the revocation list of intermediary ${issuer}: ${update.message}`);
            crls.set(issuer, offered);
          }
          const next: OpsState = { ...state, peers: [...peers.values()], peerCrls: [...crls.values()], ...(rootUpdate.crl === undefined ? {} : { rootCrl: rootUpdate.crl }) };
          return accept(next, { peers: peers.size, crls: crls.size, ...(rootUpdate.crl === undefined ? {} : { rootCrlVersion: decodeRevocationList(rootUpdate.crl).body.version }) });
        });
      },
    }),

    /** Get-Balance: [T.bal, T.i, σ]. */
    balance: command({
      input: record({}),
      output: signedBalanceOutput,
      readOnly: true,
      run(state: OpsState, _input, env) {
        if (certified(state) === null) return NOT_CERTIFIED();
        return accept(state, { balance: state.bal, i: state.i, signature: signRecord(taSigner(env), BALANCE_TAG, [state.bal, state.i]) });
      },
    }),

    /** The signed sync report: counters, balance, and the flow since the last ack. */
    report: command({
      input: record({}),
      output: syncReportCodec,
      readOnly: true,
      run(state: OpsState, _input, env) {
        if (certified(state) === null) return NOT_CERTIFIED();
        const signer = taSigner(env);
        const body = { device: keyId(signer.publicKey), balance: state.bal, i: state.i, j: state.j, collectSeq: state.collectSeq, paid: state.paid, collected: state.collected };
        const report: SyncReport = { body, signature: signRecord(signer, SYNC_REPORT_TAG, syncReportBodyWire(body)) };
        return accept(state, report);
      },
    }),

    /** The node's ack: forget what it acknowledged, take the newer revocation list and trusted time, prune the log. */
    syncAck: command({
      input: syncAckInput,
      output: syncAckOutput,
      run(state: OpsState, input, env) {
        const c = certified(state);
        if (c === null) return NOT_CERTIFIED();
        const { ack } = input;
        if (!equalBytes(ack.body.device, keyId(taSigner(env).publicKey))) return reject('ACK_INVALID', 'the ack is for another device');
        if (!verifyRecord(env.provider, c.serverKey, SYNC_ACK_TAG, syncAckBodyWire(ack.body), ack.signature)) return reject('ACK_INVALID', 'the ack signature does not verify');
        if (ack.body.paidUpTo > state.j || ack.body.collectedUpTo > state.collectSeq) return reject('ACK_INVALID', 'the ack acknowledges more than this TA reported');
        return guarded(() => {
          const update = takeNewerRevocationList({ provider: env.provider, issuerKey: c.intermediary().body.subject, held: state.crl, offered: input.crl });
          if (!update.ok) return reject(update.code, update.message);
          const { crl, version: crlVersion } = update;
          const trustedTime = Math.max(state.trustedTime, ack.body.time);
          const paid = state.paid.filter((e) => e.index > ack.body.paidUpTo);
          const collected = state.collected.filter((e) => e.seq > ack.body.collectedUpTo);
          // A payment whose sender certificate ended before trusted time is refused anyway: its log entry can go.
          const inPaymentLog = state.inPaymentLog.filter((e) => e.notAfter >= trustedTime);
          const next: OpsState = { ...state, paid, collected, inPaymentLog, trustedTime, ...(crl === undefined ? {} : { crl }) };
          return accept(next, {
            paidCleared: state.paid.length - paid.length,
            collectedCleared: state.collected.length - collected.length,
            logPruned: state.inPaymentLog.length - inPaymentLog.length,
            ...(crlVersion === undefined ? {} : { crlVersion }),
          });
        });
      },
    }),

    /** What the wallet shows: the key, whether certified, balance, counters, what awaits a sync, the limits. */
    status: command({
      input: record({}),
      output: statusOutput,
      readOnly: true,
      run(state: OpsState, _input, env) {
        return accept(state, {
          publicKey: taSigner(env).publicKey,
          certified: state.cert !== undefined,
          balance: state.bal,
          i: state.i,
          j: state.j,
          unsyncedPayments: state.paid.length,
          unsyncedCollects: state.collected.length,
          holdingLimit: state.holdingLimit,
          offlinePaymentsMax: state.offlinePaymentsMax,
          trustedTime: state.trustedTime,
        });
      },
    }),
  },
});
