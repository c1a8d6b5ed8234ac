/**
 * OPS's known-answer vectors (test-vectors/ops/, docs/test-vectors.md): every key, certificate and
 * signed record is checked from the bare steps (vectors-fixtures.ts), then the protocol code takes
 * the file's bytes (PayVerify, the request check, the token readers, the codecs) and refuses them
 * with a byte changed; and the file is what the generator writes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fromHex, toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { array, literal, record, uint } from '../../core/codec.ts';
import { nobleProvider } from '../../core/crypto/noble.ts';
import { verifyRecord } from '../../core/crypto/record.ts';
import { isTallyError } from '../../core/errors.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { certificateRecordCodec, checkGenerated, checkKeys, checkSignedRecord, flipped, hex, keysCodec, token, publicKeyOf, readVectors, sha256Hex, signedRecordCodec, words } from '../vectors-fixtures.ts';
import {
  DEPOSIT_TAG,
  decodePayment,
  paymentSigned,
  depositConfirmationCodec,
  depositSigned,
  SYNC_ACK_TAG,
  SYNC_REPORT_TAG,
  syncAckBodyWire,
  syncAckCodec,
  syncReportBodyWire,
  syncReportCodec,
  WITHDRAW_TAG,
  withdrawConfirmationCodec,
  withdrawSigned,
} from './messages.ts';
import { verifyPayment } from './pay-verify.ts';
import { readPaymentToken, readRequestToken } from './tokens.ts';
import { verifyRequest } from './request.ts';
import { payeeMessageCodec, payerMessageCodec } from './session.ts';
import { opsVectorFiles } from './vectors.ts';

const PATH = 'test-vectors/ops/payment.json';
const file = readVectors(
  PATH,
  record({
    source: words,
    keyDerivation: words,
    signedRecord: words,
    signatures: words,
    tokens: words,
    now: uint({ max: Number.MAX_SAFE_INTEGER }),
    currency: words,
    keys: keysCodec,
    certificates: array(certificateRecordCodec, { min: 7, max: 7 }),
    records: array(signedRecordCodec, { min: 6, max: 6 }),
    payment: record({ amount: uint({ max: Number.MAX_SAFE_INTEGER }), index: uint({ max: Number.MAX_SAFE_INTEGER }), sender: words, receiver: words, encoded: hex(8192), digest: hex(32), token }),
    request: record({ amount: uint({ max: Number.MAX_SAFE_INTEGER }), memo: words, nonce: hex(16), created: uint({ max: Number.MAX_SAFE_INTEGER }), receiver: words, payee: words, token }),
    link: record({ prologue: literal('tally/ops/link/v1'), request: hex(8192), payment: hex(8192), receipt: hex(64) }),
  }),
);

const certificateBytes = (name: string): Uint8Array => {
  const found = file.certificates.find((c) => c.name === name);
  assert.ok(found !== undefined, name);
  return fromHex(found.message);
};
const certificate = (name: string) => decodeCertificate(certificateBytes(name));
const recordNamed = (name: string) => {
  const found = file.records.find((r) => r.name === name);
  assert.ok(found !== undefined, name);
  return found;
};
const trust = () => ({ provider: nobleProvider, trustAnchors: [certificate('root')], intermediaries: [certificate('intermediary')], now: file.now });

describe('test vectors: ops/payment.json', () => {
  it('is what the generator writes, and test-vectors/ops/ holds nothing else', () => {
    checkGenerated('test-vectors/ops', opsVectorFiles());
  });

  it('every key comes from its label; every certificate and signed record checks from the bare steps', () => {
    checkKeys(file.keys);
    for (const c of file.certificates) checkSignedRecord(c, file.keys);
    for (const r of file.records) checkSignedRecord(r, file.keys);
  });

  it('each certificate decodes, names its subject key and chains to the root', () => {
    for (const c of file.certificates) {
      const decoded = decodeCertificate(fromHex(c.message));
      assert.equal(toHex(decoded.signature), c.signature);
      assert.equal(toHex(decoded.body.subject.key), file.keys[c.name]?.publicKey, c.name);
      assert.equal(sha256Hex(encodeCbor({ suite: decoded.body.subject.suite, key: decoded.body.subject.key })), c.subjectKeyId);
      assert.equal(toHex(decoded.body.issuer), file.keys[c.signer]?.keyId, `${c.name}: issuer is its signer's key id`);
      const chain = c.name === 'root' ? [decoded] : c.name === 'intermediary' ? [decoded, certificate('root')] : [decoded, certificate('intermediary')];
      verifyChain({ provider: nobleProvider, chain, trustAnchors: [certificate('root')], now: file.now });
    }
    assert.throws(() => decodeCertificate(flipped(certificateBytes('payerDevice'), 1)), (e: unknown) => isTallyError(e, 'CERT_MALFORMED'));
  });

  it('PayVerify takes the payment the file encodes; its digest is SHA-256 of its CBOR', () => {
    const payment = decodePayment(fromHex(file.payment.encoded));
    assert.equal(toHex(encodeCbor(decodeCbor(fromHex(file.payment.encoded)))), file.payment.encoded);
    assert.equal(file.payment.encoded, recordNamed('payment').message);
    assert.equal(toHex(encodeCbor(paymentSigned(payment))), recordNamed('payment').record, 'the record is [amount, sender, receiver, index]');
    assert.equal(payment.amount, BigInt(file.payment.amount));
    assert.equal(payment.index, BigInt(file.payment.index));
    assert.deepEqual(payment.sender, certificateBytes(file.payment.sender));
    assert.deepEqual(payment.receiver, certificateBytes(file.payment.receiver));
    const verified = verifyPayment({ ...trust(), payment, currency: file.currency, receiver: certificateBytes('payeeDevice') });
    assert.equal(toHex(verified.digest), file.payment.digest);
    assert.equal(sha256Hex(fromHex(file.payment.encoded)), file.payment.digest);
    assert.deepEqual(readPaymentToken(file.payment.token), payment);
  });

  it('PayVerify refuses the payment with a byte changed in its signature, amount, index or receiver', () => {
    const payment = decodePayment(fromHex(file.payment.encoded));
    const refused = (e: unknown) => isTallyError(e, 'PAYMENT_INVALID');
    const options = { ...trust(), currency: file.currency };
    assert.throws(() => verifyPayment({ ...options, payment: { ...payment, signature: flipped(payment.signature, 3) } }), refused);
    assert.throws(() => verifyPayment({ ...options, payment: { ...payment, amount: payment.amount + 1n } }), refused);
    assert.throws(() => verifyPayment({ ...options, payment: { ...payment, index: payment.index + 1n } }), refused);
    assert.throws(() => verifyPayment({ ...options, payment: { ...payment, receiver: certificateBytes('payeeUser') } }), refused);
    assert.throws(() => verifyPayment({ ...options, currency: 'USD', payment }), refused);
    const text = file.payment.token;
    const mangled = `${text.slice(0, 40)}${text[40] === "A" ? "B" : "A"}${text.slice(41)}`;
    assert.throws(() => readPaymentToken(mangled), (e: unknown) => isTallyError(e, 'TEXT_CHECKSUM'));
  });

  it('the payer takes the signed request; a changed receiver or nonce is refused', () => {
    const request = readRequestToken(file.request.token);
    assert.equal(request.amount, BigInt(file.request.amount));
    assert.equal(request.memo, file.request.memo);
    assert.equal(toHex(request.nonce), file.request.nonce);
    assert.equal(request.created, file.request.created);
    assert.deepEqual(request.receiver, certificateBytes(file.request.receiver));
    assert.deepEqual(request.payee, certificateBytes(file.request.payee));
    assert.equal(toHex(request.signature), recordNamed('request').signature);
    const verified = verifyRequest({ ...trust(), request });
    assert.equal(toHex(verified.payee.subjectKeyId), file.keys.payeeUser?.keyId);
    assert.throws(() => verifyRequest({ ...trust(), request: { ...request, receiver: certificateBytes('payerDevice') } }), (e: unknown) => isTallyError(e, 'PAYMENT_INVALID'));
    assert.throws(() => verifyRequest({ ...trust(), request: { ...request, nonce: flipped(request.nonce) } }), (e: unknown) => isTallyError(e, 'PAYMENT_INVALID'));
  });

  it('the link messages decode to the request, the payment and its receipt', () => {
    const request = payeeMessageCodec.decode(decodeCbor(fromHex(file.link.request)));
    assert.equal(request.kind, 'request');
    const payment = payerMessageCodec.decode(decodeCbor(fromHex(file.link.payment)));
    assert.ok(payment.kind === 'payment');
    assert.equal(toHex(payment.payment), file.payment.encoded);
    const receipt = payeeMessageCodec.decode(decodeCbor(fromHex(file.link.receipt)));
    assert.ok(receipt.kind === 'receipt');
    assert.equal(toHex(receipt.digest), file.payment.digest);
  });

  it('the settlement records decode and verify under their signers, and not with a byte changed', () => {
    const node = publicKeyOf(file.keys.issuerNode!);
    const device = publicKeyOf(file.keys.payerDevice!);
    const deposit = depositConfirmationCodec.decode(decodeCbor(fromHex(recordNamed('deposit confirmation').message)));
    assert.equal(verifyRecord(nobleProvider, node, DEPOSIT_TAG, depositSigned(deposit), deposit.signature), true);
    assert.equal(verifyRecord(nobleProvider, node, DEPOSIT_TAG, depositSigned({ ...deposit, i: deposit.i + 1n }), deposit.signature), false);
    const withdraw = withdrawConfirmationCodec.decode(decodeCbor(fromHex(recordNamed('withdraw confirmation').message)));
    assert.equal(verifyRecord(nobleProvider, device, WITHDRAW_TAG, withdrawSigned(withdraw), withdraw.signature), true);
    assert.equal(verifyRecord(nobleProvider, device, WITHDRAW_TAG, withdrawSigned({ ...withdraw, j: withdraw.j + 1n }), withdraw.signature), false);
    const report = syncReportCodec.decode(decodeCbor(fromHex(recordNamed('sync report').message)));
    assert.equal(verifyRecord(nobleProvider, device, SYNC_REPORT_TAG, syncReportBodyWire(report.body), report.signature), true);
    assert.equal(toHex(report.body.paid[0]?.digest ?? new Uint8Array()), file.payment.digest, 'the report names the payment by its digest');
    assert.equal(toHex(report.body.device), file.keys.payerDevice?.keyId);
    assert.equal(verifyRecord(nobleProvider, device, SYNC_REPORT_TAG, syncReportBodyWire({ ...report.body, balance: report.body.balance + 1n }), report.signature), false);
    const ack = syncAckCodec.decode(decodeCbor(fromHex(recordNamed('sync ack').message)));
    assert.equal(verifyRecord(nobleProvider, node, SYNC_ACK_TAG, syncAckBodyWire(ack.body), ack.signature), true);
    assert.equal(verifyRecord(nobleProvider, node, SYNC_ACK_TAG, syncAckBodyWire({ ...ack.body, paidUpTo: ack.body.paidUpTo + 1n }), ack.signature), false);
  });
});
