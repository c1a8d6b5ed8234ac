/**
 * OPS's known-answer vectors (test-vectors/ops/, docs/test-vectors.md): a certificate hierarchy from
 * fixed keys, one payment between two devices with the payee's signed request, the tokens both
 * travel as, the link's three messages, and what settles it: the payer's sync report, the node's
 * ack, the deposit and withdraw confirmations. Every value is made by the protocol code from fixed
 * inputs, so each run gives the same files; vectors.test.ts recomputes them. Pure.
 */
import { fromHex, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { nobleEd25519 } from '../../core/crypto/noble-ed25519.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import type { CertificateExtensions } from '../../pki/extensions.ts';
import { keyId } from '../../pki/key-id.ts';
import { certificateJson, GENERATED_SOURCE, KEY_DERIVATION, keysJson, SIGNED_RECORD, signedRecordJson, vectorKey, vectorText, type VectorKey, vectorCertificate, NOW } from '../../pki/vectors.ts';
import {
  DEPOSIT_TAG,
  depositSigned,
  encodePayment,
  PAYMENT_TAG,
  paymentDigest,
  paymentSigned,
  paymentWire,
  SYNC_ACK_TAG,
  SYNC_REPORT_TAG,
  syncAckBodyWire,
  syncReportBodyWire,
  WITHDRAW_TAG,
  withdrawConfirmationWire,
  withdrawSigned,
  type DepositConfirmation,
  type Payment,
  type SyncAckBody,
  type SyncReportBody,
  type WithdrawConfirmation,
} from './messages.ts';
import { REQUEST_TAG, requestSigned, signRequest } from './request.ts';
import { paymentToken, requestToken } from './tokens.ts';

export { NOT_AFTER, NOT_BEFORE, NOW } from '../../pki/vectors.ts';
export const CURRENCY = 'EUR';

const key = (name: string) => vectorKey(nobleEd25519, name, `tally/vectors/ops/${name}`);

/** The keys, every one Ed25519. */
export function opsKeys() {
  return {
    root: key('root'),
    intermediary: key('intermediary'),
    issuerNode: key('issuerNode'),
    payerUser: key('payerUser'),
    payerDevice: key('payerDevice'),
    payeeUser: key('payeeUser'),
    payeeDevice: key('payeeDevice'),
  };
}

const certify = vectorCertificate;

const deviceExtensions = (owner: VectorKey): CertificateExtensions => ({ scheme: 'ops', currency: CURRENCY, holdingLimit: 50_000n, offlinePaymentsMax: 100, owner: keyId(owner.signer.publicKey) });

/** The certificates: the central bank's root, the bank's intermediary, the node, two users and their devices. */
export function opsCertificates(keys = opsKeys()) {
  return {
    root: certify(keys.root, 'root', 'root', keys.root, 1, { name: 'Central Bank' }),
    intermediary: certify(keys.root, 'root', 'intermediary', keys.intermediary, 2, { name: 'Bank A' }),
    issuerNode: certify(keys.intermediary, 'intermediary', 'issuer-node', keys.issuerNode, 3, { name: 'Bank A node' }),
    payerUser: certify(keys.intermediary, 'intermediary', 'user', keys.payerUser, 4, {}),
    payerDevice: certify(keys.intermediary, 'intermediary', 'device', keys.payerDevice, 5, deviceExtensions(keys.payerUser)),
    payeeUser: certify(keys.intermediary, 'intermediary', 'user', keys.payeeUser, 6, {}),
    payeeDevice: certify(keys.intermediary, 'intermediary', 'device', keys.payeeDevice, 7, deviceExtensions(keys.payeeUser)),
  };
}

const ISSUERS = { root: 'root', intermediary: 'root', issuerNode: 'intermediary', payerUser: 'intermediary', payerDevice: 'intermediary', payeeUser: 'intermediary', payeeDevice: 'intermediary' } as const;

/** The fixed inputs of the payment and its settlement. */
export const PAYMENT_INPUTS = { amount: 1250n, index: 1n, memo: 'coffee', nonce: '000102030405060708090a0b0c0d0e0f', created: NOW - 60_000 } as const;

/** The payment and every message around it, made by the protocol code. */
export function opsMessages(keys = opsKeys(), certificates = opsCertificates(keys)) {
  const sender = encodeCertificate(certificates.payerDevice);
  const receiver = encodeCertificate(certificates.payeeDevice);
  const payee = encodeCertificate(certificates.payeeUser);
  const request = signRequest(keys.payeeUser.signer, { amount: PAYMENT_INPUTS.amount, receiver, memo: PAYMENT_INPUTS.memo, payee, nonce: fromHex(PAYMENT_INPUTS.nonce), created: PAYMENT_INPUTS.created });
  const unsigned = { amount: PAYMENT_INPUTS.amount, sender, receiver, index: PAYMENT_INPUTS.index };
  const payment: Payment = { ...unsigned, signature: signRecord(keys.payerDevice.signer, PAYMENT_TAG, paymentSigned(unsigned)) };
  const digest = paymentDigest(payment);
  const deposit: DepositConfirmation = (() => {
    const fields = { taKey: keys.payerDevice.signer.publicKey, amount: 20_000n, i: 1n };
    return { ...fields, signature: signRecord(keys.issuerNode.signer, DEPOSIT_TAG, depositSigned(fields)) };
  })();
  const withdraw: WithdrawConfirmation = (() => {
    const fields = { amount: 5_000n, i: 2n, j: 1n, collectSeq: 0n };
    return { ...fields, signature: signRecord(keys.payerDevice.signer, WITHDRAW_TAG, withdrawSigned(fields)) };
  })();
  const reportBody: SyncReportBody = {
    device: keyId(keys.payerDevice.signer.publicKey),
    balance: 20_000n - PAYMENT_INPUTS.amount,
    i: 1n,
    j: 1n,
    collectSeq: 0n,
    paid: [{ index: PAYMENT_INPUTS.index, amount: PAYMENT_INPUTS.amount, receiver: keyId(keys.payeeDevice.signer.publicKey), digest }],
    collected: [],
  };
  const report = { body: reportBody, signature: signRecord(keys.payerDevice.signer, SYNC_REPORT_TAG, syncReportBodyWire(reportBody)) };
  const ackBody: SyncAckBody = { device: reportBody.device, paidUpTo: 1n, collectedUpTo: 0n, time: NOW + 3_600_000 };
  const ack = { body: ackBody, signature: signRecord(keys.issuerNode.signer, SYNC_ACK_TAG, syncAckBodyWire(ackBody)) };
  return { request, payment, digest, deposit, withdraw, report, ack };
}

function opsVectors(): object {
  const keys = opsKeys();
  const certificates = opsCertificates(keys);
  const m = opsMessages(keys, certificates);
  const { request, payment, report, ack, deposit, withdraw } = m;
  const requestFields = { amount: request.amount, receiver: request.receiver, memo: request.memo, payee: request.payee, nonce: request.nonce, created: request.created };
  return {
    source: `${GENERATED_SOURCE}: OPS (src/schemes/ops/messages.ts, request.ts, tokens.ts, session.ts; certificates from src/pki/certificate.ts)`,
    keyDerivation: KEY_DERIVATION,
    signedRecord: SIGNED_RECORD,
    signatures: 'Ed25519 (RFC 8032), deterministic',
    tokens: 'tally1 + base64url(CBOR || first 4 bytes of SHA-256("tally1" || CBOR)) (src/core/text.ts)',
    now: NOW,
    currency: CURRENCY,
    keys: keysJson(Object.values(keys)),
    certificates: Object.entries(certificates).map(([name, certificate]) => certificateJson(name, keys[ISSUERS[name as keyof typeof ISSUERS]], certificate)),
    records: [
      signedRecordJson('request', keys.payeeUser, REQUEST_TAG, requestSigned(requestFields), request.signature, {
        amount: request.amount,
        receiver: request.receiver,
        memo: request.memo,
        payee: request.payee,
        nonce: request.nonce,
        created: request.created,
        signature: request.signature,
      }),
      signedRecordJson('payment', keys.payerDevice, PAYMENT_TAG, paymentSigned(payment), payment.signature, paymentWire(payment)),
      signedRecordJson('deposit confirmation', keys.issuerNode, DEPOSIT_TAG, depositSigned(deposit), deposit.signature, deposit),
      signedRecordJson('withdraw confirmation', keys.payerDevice, WITHDRAW_TAG, withdrawSigned(withdraw), withdraw.signature, withdrawConfirmationWire(withdraw)),
      signedRecordJson('sync report', keys.payerDevice, SYNC_REPORT_TAG, syncReportBodyWire(report.body), report.signature, { body: syncReportBodyWire(report.body), signature: report.signature }),
      signedRecordJson('sync ack', keys.issuerNode, SYNC_ACK_TAG, syncAckBodyWire(ack.body), ack.signature, { body: syncAckBodyWire(ack.body), signature: ack.signature }),
    ],
    payment: {
      amount: Number(payment.amount),
      index: Number(payment.index),
      sender: 'payerDevice',
      receiver: 'payeeDevice',
      encoded: toHex(encodePayment(payment)),
      digest: toHex(m.digest),
      token: paymentToken(payment),
    },
    request: {
      amount: Number(request.amount),
      memo: PAYMENT_INPUTS.memo,
      nonce: PAYMENT_INPUTS.nonce,
      created: PAYMENT_INPUTS.created,
      receiver: 'payeeDevice',
      payee: 'payeeUser',
      token: requestToken(request),
    },
    link: {
      prologue: 'tally/ops/link/v1',
      request: toHex(encodeCbor({ kind: 'request', amount: request.amount, receiver: request.receiver, memo: PAYMENT_INPUTS.memo })),
      payment: toHex(encodeCbor({ kind: 'payment', payment: encodePayment(payment) })),
      receipt: toHex(encodeCbor({ kind: 'receipt', digest: m.digest })),
    },
  };
}

/** OPS's generated files: path from the repository's root, and text. */
export function opsVectorFiles(): ReadonlyMap<string, string> {
  return new Map([['test-vectors/ops/payment.json', vectorText(opsVectors())]]);
}
