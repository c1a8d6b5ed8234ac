/**
 * DOT-M's known-answer vectors (test-vectors/dotm/, docs/test-vectors.md): every key, certificate
 * and signed record is checked from the bare steps (vectors-fixtures.ts), then the protocol code
 * takes the file's bytes (the decoders, verifyBlock for the payer's block and the payee's copy, the
 * signatures of λ, σ, the notices and the settlement records) and refuses them with a byte changed;
 * and the file is what the generator writes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fromHex, toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { array, record, uint } from '../../core/codec.ts';
import { nobleProvider } from '../../core/crypto/noble.ts';
import { verifyRecord } from '../../core/crypto/record.ts';
import { isTallyError } from '../../core/errors.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { certificateRecordCodec, checkGenerated, checkKeys, checkSignedRecord, flipped, hex, keysCodec, publicKeyOf, readVectors, sha256Hex, signedRecordCodec, words } from '../vectors-fixtures.ts';
import { verifyBlock, type VerifyBlockOptions } from './block.ts';
import {
  ALPHA_TAG,
  alphaSigned,
  BETA_TAG,
  betaSigned,
  decodeBlock,
  decodeNotification,
  decodeSuccessNotice,
  decodeTransactionMessage,
  decodeTransactionRequest,
  GAMMA_TAG,
  gammaSigned,
  NOTIFICATION_TAG,
  notificationDigest,
  notificationSigned,
  SUCCESS_TAG,
  successSigned,
  transactionDataWire,
  transactionDigest,
} from './messages.ts';
import { EVENT_ACK_TAG, EVENT_TAG, eventAckBodyWire, eventAckCodec, eventBodyWire, walletEventCodec } from './online.ts';
import { dotmVectorFiles } from './vectors.ts';

const time = uint({ max: Number.MAX_SAFE_INTEGER });
const file = readVectors(
  'test-vectors/dotm/payment.json',
  record({
    source: words,
    keyDerivation: words,
    signedRecord: words,
    signatures: words,
    digestRule: words,
    now: time,
    currency: words,
    inputs: record({ serial: hex(16), value: time, tsn: hex(16), amount: time, timestamp: time }),
    keys: keysCodec,
    certificates: array(certificateRecordCodec, { min: 7, max: 7 }),
    records: array(signedRecordCodec, { min: 9, max: 9 }),
    encodings: record({ block: hex(8192), request: hex(8192), transactionData: hex(16384), transaction: hex(16384), receivedBlock: hex(16384), notification: hex(512), success: hex(512) }),
    digests: record({ presentation: hex(32), currentRecord: hex(32), transaction: hex(32), notification: hex(32) }),
    receivedBlockNote: words,
  }),
);

const certificate = (name: string) => {
  const found = file.certificates.find((c) => c.name === name);
  assert.ok(found !== undefined, name);
  return decodeCertificate(fromHex(found.message));
};
const recordNamed = (name: string) => {
  const found = file.records.find((r) => r.name === name);
  assert.ok(found !== undefined, name);
  return found;
};
const key = (name: string) => publicKeyOf(file.keys[name] ?? assert.fail(name));
const options = (): VerifyBlockOptions => ({
  provider: nobleProvider,
  centralBankKey: key('centralBank'),
  trustAnchors: [certificate('root')],
  intermediaries: [certificate('intermediary')],
  now: file.now,
  currency: file.currency,
});

describe('test vectors: dotm/payment.json', () => {
  it('is what the generator writes, and test-vectors/dotm/ holds nothing else', () => {
    checkGenerated('test-vectors/dotm', dotmVectorFiles());
  });

  it('every key comes from its label; every certificate and signed record checks from the bare steps', () => {
    checkKeys(file.keys);
    for (const c of file.certificates) checkSignedRecord(c, file.keys);
    for (const r of file.records) checkSignedRecord(r, file.keys);
    for (const c of file.certificates) {
      const chain = c.name === 'root' ? [certificate('root')] : c.name === 'intermediary' ? [certificate('intermediary'), certificate('root')] : [certificate(c.name), certificate('intermediary')];
      verifyChain({ provider: nobleProvider, chain, trustAnchors: [certificate('root')], now: file.now });
    }
  });

  it("verifyBlock takes the payer's block: the central bank's presentation, owned by the payer", () => {
    const block = decodeBlock(fromHex(file.encodings.block));
    assert.equal(toHex(encodeCbor(decodeCbor(fromHex(file.encodings.block)))), file.encodings.block);
    assert.equal(toHex(block.presentation.serial), file.inputs.serial);
    assert.equal(block.presentation.value, BigInt(file.inputs.value));
    const verified = verifyBlock(block, options());
    assert.equal(toHex(verified.holder), file.keys.payerUser?.keyId);
    assert.equal(toHex(verified.tip), file.digests.presentation);
    assert.equal(sha256Hex(fromHex(recordNamed('presentation').message)), file.digests.presentation);
    const signatureRefused = (e: unknown) => isTallyError(e, 'SIGNATURE_INVALID');
    assert.throws(() => verifyBlock({ ...block, presentation: { ...block.presentation, value: block.presentation.value + 1n } }, options()), signatureRefused);
    assert.throws(() => verifyBlock({ ...block, presentation: { ...block.presentation, signature: flipped(block.presentation.signature, 9) } }, options()), signatureRefused);
  });

  it('λ carries α under the payee user key and β under its wallet key, over the tsn and (tsn, v)', () => {
    const request = decodeTransactionRequest(fromHex(file.encodings.request));
    assert.equal(toHex(request.tsn), file.inputs.tsn);
    assert.equal(request.v, BigInt(file.inputs.amount));
    const userKey = decodeCertificate(request.ucertR).body.subject;
    const walletKey = decodeCertificate(request.wcertR).body.subject;
    assert.deepEqual(userKey, key('payeeUser'));
    assert.deepEqual(walletKey, key('payeeWallet'));
    assert.equal(verifyRecord(nobleProvider, userKey, ALPHA_TAG, alphaSigned(request), request.alpha), true);
    assert.equal(verifyRecord(nobleProvider, walletKey, BETA_TAG, betaSigned(request), request.beta), true);
    assert.equal(verifyRecord(nobleProvider, walletKey, BETA_TAG, betaSigned({ ...request, v: request.v + 1n }), request.beta), false);
    assert.equal(verifyRecord(nobleProvider, userKey, ALPHA_TAG, alphaSigned({ tsn: flipped(request.tsn) }), request.alpha), false);
  });

  it("σ carries γ under the payer's wallet key over tsd; its digest is SHA-256 of its CBOR", () => {
    const transaction = decodeTransactionMessage(fromHex(file.encodings.transaction));
    assert.equal(toHex(encodeCbor(transactionDataWire(transaction.tsd))), file.encodings.transactionData);
    const walletKey = decodeCertificate(transaction.wcertP).body.subject;
    assert.deepEqual(walletKey, key('payerWallet'));
    assert.equal(verifyRecord(nobleProvider, walletKey, GAMMA_TAG, gammaSigned(transaction.tsd), transaction.gamma), true);
    assert.equal(verifyRecord(nobleProvider, walletKey, GAMMA_TAG, gammaSigned({ ...transaction.tsd, tsn: flipped(transaction.tsd.tsn) }), transaction.gamma), false);
    assert.equal(toHex(transactionDigest(transaction)), file.digests.transaction);
    assert.equal(sha256Hex(fromHex(file.encodings.transaction)), file.digests.transaction);
    const [part] = transaction.tsd.blocks;
    assert.ok(part !== undefined);
    assert.equal(toHex(part.current.prev), file.digests.presentation, 'the current record links to the presentation');
    assert.equal(sha256Hex(fromHex(recordNamed('current record').message)), file.digests.currentRecord);
    assert.throws(() => decodeTransactionMessage(flipped(fromHex(file.encodings.transaction), 0)));
  });

  it("verifyBlock takes the payee's copy: held by the payee for the amount paid; refuses it with the amount changed", () => {
    const received = decodeBlock(fromHex(file.encodings.receivedBlock));
    const verified = verifyBlock(received, options());
    assert.equal(toHex(verified.holder), file.keys.payeeUser?.keyId);
    assert.equal(verified.received, BigInt(file.inputs.amount));
    assert.equal(toHex(verified.tip), file.digests.currentRecord);
    const [current] = received.records;
    assert.ok(current !== undefined);
    assert.throws(() => verifyBlock({ ...received, records: [{ ...current, amount: current.amount + 1n }], remaining: received.remaining + 1n }, options()), (e: unknown) => isTallyError(e, 'SIGNATURE_INVALID'));
    assert.throws(() => verifyBlock({ ...received, records: [{ ...current, prev: flipped(current.prev) }] }, options()), (e: unknown) => isTallyError(e, 'PAYMENT_INVALID'));
  });

  it('the notification names σ and the success message names the notification, each signed', () => {
    const notification = decodeNotification(fromHex(file.encodings.notification));
    assert.equal(toHex(notification.transaction), file.digests.transaction);
    assert.equal(verifyRecord(nobleProvider, key('payeeUser'), NOTIFICATION_TAG, notificationSigned(notification), notification.signature), true);
    assert.equal(verifyRecord(nobleProvider, key('payeeUser'), NOTIFICATION_TAG, notificationSigned({ ...notification, transaction: flipped(notification.transaction) }), notification.signature), false);
    assert.equal(toHex(notificationDigest(notification)), file.digests.notification);
    assert.equal(sha256Hex(fromHex(file.encodings.notification)), file.digests.notification);
    const success = decodeSuccessNotice(fromHex(file.encodings.success));
    assert.equal(toHex(success.notification), file.digests.notification);
    assert.equal(verifyRecord(nobleProvider, key('payerWallet'), SUCCESS_TAG, successSigned(success), success.signature), true);
    assert.equal(verifyRecord(nobleProvider, key('payerWallet'), SUCCESS_TAG, successSigned({ ...success, tsn: flipped(success.tsn) }), success.signature), false);
  });

  it("the payer's sent event and the node's ack decode and verify, and not with a byte changed", () => {
    const event = walletEventCodec.decode(decodeCbor(fromHex(recordNamed('sent event').message)));
    assert.equal(event.body.kind, 'sent');
    assert.equal(toHex(event.body.transaction), file.digests.transaction);
    assert.equal(toHex(event.body.wallet), file.keys.payerWallet?.keyId);
    assert.equal(verifyRecord(nobleProvider, key('payerWallet'), EVENT_TAG, eventBodyWire(event.body), event.signature), true);
    assert.equal(verifyRecord(nobleProvider, key('payerWallet'), EVENT_TAG, eventBodyWire({ ...event.body, amount: event.body.amount + 1n }), event.signature), false);
    const ack = eventAckCodec.decode(decodeCbor(fromHex(recordNamed('event ack').message)));
    assert.equal(verifyRecord(nobleProvider, key('issuerNode'), EVENT_ACK_TAG, eventAckBodyWire(ack.body), ack.signature), true);
    assert.equal(verifyRecord(nobleProvider, key('issuerNode'), EVENT_ACK_TAG, eventAckBodyWire({ ...ack.body, upTo: ack.body.upTo + 1 }), ack.signature), false);
  });
});
