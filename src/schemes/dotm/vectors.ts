/**
 * DOT-M's known-answer vectors (test-vectors/dotm/, docs/test-vectors.md): a certificate hierarchy
 * from fixed keys, a currency block the central bank issued to the payer, and one payment of
 * §3.3.3 with every message: λ with α and β (step 1), the current record and σ with γ (steps 3–4),
 * the payee's copy of the block (step 5), the notification (step 6) and the success message
 * (step 8); then what settles it: the payer's `sent` event and the node's ack. Every value is made
 * by the protocol code from fixed inputs; vectors.test.ts recomputes them. Pure.
 */
import { fromHex, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { nobleEd25519 } from '../../core/crypto/noble-ed25519.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import type { CertificateExtensions } from '../../pki/extensions.ts';
import { keyId } from '../../pki/key-id.ts';
import { certificateJson, GENERATED_SOURCE, KEY_DERIVATION, keysJson, SIGNED_RECORD, signedRecordJson, vectorKey, vectorText, type VectorKey, vectorCertificate, NOW } from '../../pki/vectors.ts';
import { appendRecord } from './block.ts';
import {
  ALPHA_TAG,
  alphaSigned,
  BETA_TAG,
  betaSigned,
  encodeBlock,
  encodeNotification,
  encodeSuccessNotice,
  encodeTransactionMessage,
  encodeTransactionRequest,
  GAMMA_TAG,
  gammaSigned,
  NOTIFICATION_TAG,
  notificationDigest,
  notificationSigned,
  notificationWire,
  presentationDigest,
  presentationSigned,
  presentationWire,
  PRESENTATION_TAG,
  RECORD_TAG,
  recordDigest,
  recordSigned,
  recordWire,
  SUCCESS_TAG,
  successSigned,
  transactionDataWire,
  transactionDigest,
  transactionMessageWire,
  transactionRequestWire,
  type CurrencyBlock,
  type Notification,
  type SuccessNotice,
  type TransactionData,
  type TransactionMessage,
  type TransactionRecord,
  type TransactionRequest,
} from './messages.ts';
import { EVENT_ACK_TAG, EVENT_TAG, eventAckBodyWire, eventBodyWire, walletEventWire, type EventAckBody, type EventBody, type WalletEvent } from './online.ts';

export { NOT_AFTER, NOT_BEFORE, NOW } from '../../pki/vectors.ts';
export const CURRENCY = 'EUR';

/** The fixed inputs: the block's serial and value, the payment's tsn, amount and time. */
export const INPUTS = { serial: '5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e', value: 5_000n, tsn: '7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a', amount: 1_250n, timestamp: NOW } as const;

const key = (name: string) => vectorKey(nobleEd25519, name, `tally/vectors/dotm/${name}`);

/** The keys, every one Ed25519: pk_C (`centralBank`) signs presentations; usk and wsk are each side's user and wallet keys. */
export function dotmKeys() {
  return {
    root: key('root'),
    intermediary: key('intermediary'),
    issuerNode: key('issuerNode'),
    centralBank: key('centralBank'),
    payerUser: key('payerUser'),
    payerWallet: key('payerWallet'),
    payeeUser: key('payeeUser'),
    payeeWallet: key('payeeWallet'),
  };
}

const certify = vectorCertificate;

const walletExtensions = (owner: VectorKey): CertificateExtensions => ({ scheme: 'dotm', currency: CURRENCY, holdingLimit: 50_000n, owner: keyId(owner.signer.publicKey) });

/** The certificates: root, intermediary, node, and each side's user certificate (ucert) and wallet certificate (wcert). */
export function dotmCertificates(keys = dotmKeys()) {
  return {
    root: certify(keys.root, 'root', 'root', keys.root, 1, { name: 'Central Bank' }),
    intermediary: certify(keys.root, 'root', 'intermediary', keys.intermediary, 2, { name: 'Bank A', currency: CURRENCY }),
    issuerNode: certify(keys.intermediary, 'intermediary', 'issuer-node', keys.issuerNode, 3, { name: 'Bank A node' }),
    payerUser: certify(keys.intermediary, 'intermediary', 'user', keys.payerUser, 4, {}),
    payerWallet: certify(keys.intermediary, 'intermediary', 'device', keys.payerWallet, 5, walletExtensions(keys.payerUser)),
    payeeUser: certify(keys.intermediary, 'intermediary', 'user', keys.payeeUser, 6, {}),
    payeeWallet: certify(keys.intermediary, 'intermediary', 'device', keys.payeeWallet, 7, walletExtensions(keys.payeeUser)),
  };
}

export const ISSUERS = { root: 'root', intermediary: 'root', issuerNode: 'intermediary', payerUser: 'intermediary', payerWallet: 'intermediary', payeeUser: 'intermediary', payeeWallet: 'intermediary' } as const;

/** The block, the payment's messages and the settlement records, made by the protocol code. */
export function dotmMessages(keys = dotmKeys(), certificates = dotmCertificates(keys)) {
  const ucertP = encodeCertificate(certificates.payerUser);
  const ucertR = encodeCertificate(certificates.payeeUser);
  const wcertP = encodeCertificate(certificates.payerWallet);
  const wcertR = encodeCertificate(certificates.payeeWallet);
  const tsn = fromHex(INPUTS.tsn);

  const unsignedPresentation = { serial: fromHex(INPUTS.serial), value: INPUTS.value, currency: CURRENCY, owner: keyId(keys.payerUser.signer.publicKey) };
  const presentation = { ...unsignedPresentation, signature: signRecord(keys.centralBank.signer, PRESENTATION_TAG, presentationSigned(unsignedPresentation)) };
  const block: CurrencyBlock = { presentation, records: [], remaining: INPUTS.value, count: 0 };

  const request: TransactionRequest = {
    tsn,
    v: INPUTS.amount,
    alpha: signRecord(keys.payeeUser.signer, ALPHA_TAG, alphaSigned({ tsn })),
    ucertR,
    beta: signRecord(keys.payeeWallet.signer, BETA_TAG, betaSigned({ tsn, v: INPUTS.amount })),
    wcertR,
  };

  const unsignedRecord = { prev: presentationDigest(presentation), amount: INPUTS.amount, timestamp: INPUTS.timestamp, ucertP, ucertR };
  const current: TransactionRecord = { ...unsignedRecord, signature: signRecord(keys.payerUser.signer, RECORD_TAG, recordSigned(unsignedRecord)) };
  const tsd: TransactionData = { tsn, v: INPUTS.amount, nb: 1, nd: 0, blocks: [{ block, current }] };
  const transaction: TransactionMessage = { tsd, gamma: signRecord(keys.payerWallet.signer, GAMMA_TAG, gammaSigned(tsd)), wcertP };
  const received = appendRecord(block, current);

  const unsignedNotification = { tsn, transaction: transactionDigest(transaction) };
  const notification: Notification = { ...unsignedNotification, signature: signRecord(keys.payeeUser.signer, NOTIFICATION_TAG, notificationSigned(unsignedNotification)) };
  const unsignedSuccess = { tsn, notification: notificationDigest(notification) };
  const success: SuccessNotice = { ...unsignedSuccess, signature: signRecord(keys.payerWallet.signer, SUCCESS_TAG, successSigned(unsignedSuccess)) };

  const eventBody: EventBody = {
    wallet: keyId(keys.payerWallet.signer.publicKey),
    seq: 1,
    kind: 'sent',
    tsn,
    transaction: transactionDigest(transaction),
    amount: INPUTS.amount,
    time: INPUTS.timestamp + 1_000,
    parts: [{ block, current }],
    notification,
  };
  const event: WalletEvent = { body: eventBody, signature: signRecord(keys.payerWallet.signer, EVENT_TAG, eventBodyWire(eventBody)) };
  const ackBody: EventAckBody = { wallet: eventBody.wallet, upTo: 1, time: NOW + 3_600_000 };
  const ack = { body: ackBody, signature: signRecord(keys.issuerNode.signer, EVENT_ACK_TAG, eventAckBodyWire(ackBody)) };
  return { block, request, current, transaction, received, notification, success, event, ack };
}

function dotmVectors(): object {
  const keys = dotmKeys();
  const certificates = dotmCertificates(keys);
  const m = dotmMessages(keys, certificates);
  const p = m.block.presentation;
  return {
    source: `${GENERATED_SOURCE}: DOT-M (src/schemes/dotm/messages-*.ts, block.ts, online.ts; certificates from src/pki/certificate.ts)`,
    keyDerivation: KEY_DERIVATION,
    signedRecord: SIGNED_RECORD,
    signatures: 'Ed25519 (RFC 8032), deterministic',
    digestRule: 'presentationDigest, recordDigest, transactionDigest and notificationDigest are SHA-256 of the message CBOR, signature included',
    now: NOW,
    currency: CURRENCY,
    inputs: { serial: INPUTS.serial, value: Number(INPUTS.value), tsn: INPUTS.tsn, amount: Number(INPUTS.amount), timestamp: INPUTS.timestamp },
    keys: keysJson(Object.values(keys)),
    certificates: Object.entries(certificates).map(([name, certificate]) => certificateJson(name, keys[ISSUERS[name as keyof typeof ISSUERS]], certificate)),
    records: [
      signedRecordJson('presentation', keys.centralBank, PRESENTATION_TAG, presentationSigned(p), p.signature, presentationWire(p)),
      signedRecordJson('alpha', keys.payeeUser, ALPHA_TAG, alphaSigned(m.request), m.request.alpha, transactionRequestWire(m.request)),
      signedRecordJson('beta', keys.payeeWallet, BETA_TAG, betaSigned(m.request), m.request.beta, transactionRequestWire(m.request)),
      signedRecordJson('current record', keys.payerUser, RECORD_TAG, recordSigned(m.current), m.current.signature, recordWire(m.current)),
      signedRecordJson('gamma', keys.payerWallet, GAMMA_TAG, gammaSigned(m.transaction.tsd), m.transaction.gamma, transactionMessageWire(m.transaction)),
      signedRecordJson('notification', keys.payeeUser, NOTIFICATION_TAG, notificationSigned(m.notification), m.notification.signature, notificationWire(m.notification)),
      signedRecordJson('success', keys.payerWallet, SUCCESS_TAG, successSigned(m.success), m.success.signature, { tsn: m.success.tsn, notification: m.success.notification, signature: m.success.signature }),
      signedRecordJson('sent event', keys.payerWallet, EVENT_TAG, eventBodyWire(m.event.body), m.event.signature, walletEventWire(m.event)),
      signedRecordJson('event ack', keys.issuerNode, EVENT_ACK_TAG, eventAckBodyWire(m.ack.body), m.ack.signature, { body: eventAckBodyWire(m.ack.body), signature: m.ack.signature }),
    ],
    encodings: {
      block: toHex(encodeBlock(m.block)),
      request: toHex(encodeTransactionRequest(m.request)),
      transactionData: toHex(encodeCbor(transactionDataWire(m.transaction.tsd))),
      transaction: toHex(encodeTransactionMessage(m.transaction)),
      receivedBlock: toHex(encodeBlock(m.received)),
      notification: toHex(encodeNotification(m.notification)),
      success: toHex(encodeSuccessNotice(m.success)),
    },
    digests: {
      presentation: toHex(presentationDigest(p)),
      currentRecord: toHex(recordDigest(m.current)),
      transaction: toHex(transactionDigest(m.transaction)),
      notification: toHex(notificationDigest(m.notification)),
    },
    receivedBlockNote: "the payee's copy (step 5): the current record appended, count 1, remaining the amount paid",
  };
}

/** DOT-M's generated files: path from the repository's root, and text. */
export function dotmVectorFiles(): ReadonlyMap<string, string> {
  return new Map([['test-vectors/dotm/payment.json', vectorText(dotmVectors())]]);
}
