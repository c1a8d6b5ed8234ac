import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { CBOR_BYTES_MAX, encodeCbor } from '../../core/cbor.ts';
import { nobleProvider } from '../../core/crypto/noble.ts';
import { signedBytes, signRecord, verifyRecord } from '../../core/crypto/record.ts';
import { isTallyError } from '../../core/errors.ts';
import { CERTIFICATE_BYTES_MAX, TIME_MS_MAX } from '../../pki/certificate.ts';
import { signer } from '../../pki/test-fixtures.ts';
import {
  ALPHA_TAG,
  alphaSigned,
  BETA_TAG,
  betaSigned,
  BLOCK_BYTES_MAX,
  BLOCKS_PER_PAYMENT_MAX,
  decodeFailureNotice,
  decodeNotification,
  decodeSuccessNotice,
  decodeTransactionMessage,
  decodeTransactionRequest,
  encodeBlock,
  encodeFailureNotice,
  encodeNotification,
  encodeSuccessNotice,
  encodeTransactionMessage,
  encodeTransactionRequest,
  GAMMA_TAG,
  gammaSigned,
  NOTIFICATION_TAG,
  notificationDigest,
  notificationSigned,
  PRESENTATION_TAG,
  RECORD_TAG,
  SUCCESS_TAG,
  successSigned,
  RECORDS_PER_BLOCK_MAX,
  RECORDS_PER_PAYMENT_MAX,
  REQUEST_BYTES_MAX,
  TRANSACTION_BYTES_MAX,
  transactionDigest,
  transactionMessageWire,
  type BlockTransfer,
  type CurrencyBlock,
  type TransactionData,
  type TransactionMessage,
  type TransactionRecord,
  type TransactionRequest,
} from './messages.ts';

const big = (n: number, fill = 0xab) => new Uint8Array(n).fill(fill);

function fullRecord(prev: number): TransactionRecord {
  return { prev: big(32, prev), amount: AMOUNT_MINOR_MAX, timestamp: TIME_MS_MAX, ucertP: big(CERTIFICATE_BYTES_MAX), ucertR: big(CERTIFICATE_BYTES_MAX), signature: big(65) };
}

function fullBlock(records: number, serial: number): CurrencyBlock {
  return {
    presentation: { serial: big(16, serial), value: AMOUNT_MINOR_MAX, currency: 'ABCDEFGHIJKL', owner: big(32), signature: big(65) },
    records: Array.from({ length: records }, (_, i) => fullRecord(i)),
    remaining: AMOUNT_MINOR_MAX,
    count: records,
  };
}

function transfer(block: CurrencyBlock, amount: bigint, prev: number): BlockTransfer {
  return { block, current: { ...fullRecord(prev), amount } };
}

function tsdOf(blocks: BlockTransfer[]): TransactionData {
  return {
    tsn: big(16),
    v: blocks.reduce((s, t) => s + t.current.amount, 0n),
    nb: blocks.length,
    nd: blocks.reduce((n, t) => n + t.block.records.length, 0),
    blocks,
  };
}

describe('DOT-M messages', () => {
  it('every domain tag is well formed and distinct', () => {
    const tags = [PRESENTATION_TAG, RECORD_TAG, ALPHA_TAG, BETA_TAG, GAMMA_TAG, NOTIFICATION_TAG];
    for (const tag of tags) assert.ok(signedBytes(tag, []).length > 0 && tag.startsWith('tally/dotm/'));
    assert.equal(new Set(tags).size, tags.length);
  });

  it('a block at every bound fits BLOCK_BYTES_MAX; σ at every bound fits TRANSACTION_BYTES_MAX, inside the CBOR limit', () => {
    assert.ok(encodeBlock(fullBlock(RECORDS_PER_BLOCK_MAX, 1)).length <= BLOCK_BYTES_MAX);
    // n_d earlier records spread over n_b blocks, plus one current record each.
    const perBlock = RECORDS_PER_PAYMENT_MAX / BLOCKS_PER_PAYMENT_MAX;
    const blocks = Array.from({ length: BLOCKS_PER_PAYMENT_MAX }, (_, i) => transfer(fullBlock(perBlock, i), 1n, 100 + i));
    const sigma: TransactionMessage = { tsd: tsdOf(blocks), gamma: big(65), wcertP: big(CERTIFICATE_BYTES_MAX) };
    const encoded = encodeTransactionMessage(sigma);
    assert.ok(encoded.length <= TRANSACTION_BYTES_MAX && TRANSACTION_BYTES_MAX <= CBOR_BYTES_MAX, `${encoded.length} bytes`);
    assert.deepEqual(decodeTransactionMessage(encoded), sigma);
  });

  it('λ: α and β verify under the payee keys over exactly tsn and (tsn, v); the request round-trips', () => {
    const usk = signer('dotm/msg/usk');
    const wsk = signer('dotm/msg/wsk');
    const unsigned = { tsn: big(16, 7), v: 1250n, ucertR: big(300), wcertR: big(300) };
    const lambda: TransactionRequest = {
      ...unsigned,
      alpha: signRecord(usk, ALPHA_TAG, alphaSigned(unsigned)),
      beta: signRecord(wsk, BETA_TAG, betaSigned(unsigned)),
    };
    const back = decodeTransactionRequest(encodeTransactionRequest(lambda));
    assert.deepEqual(back, lambda);
    assert.ok(verifyRecord(nobleProvider, usk.publicKey, ALPHA_TAG, alphaSigned(back), back.alpha));
    assert.ok(verifyRecord(nobleProvider, wsk.publicKey, BETA_TAG, betaSigned(back), back.beta));
    assert.ok(!verifyRecord(nobleProvider, wsk.publicKey, BETA_TAG, betaSigned({ ...back, tsn: big(16, 8) }), back.beta));
    assert.ok(!verifyRecord(nobleProvider, usk.publicKey, BETA_TAG, alphaSigned(back), back.alpha), 'α is no β');
    assert.throws(() => decodeTransactionRequest(new Uint8Array(REQUEST_BYTES_MAX + 1)), (e) => isTallyError(e, 'TOO_LARGE'));
    assert.throws(() => decodeTransactionRequest(encodeCbor({ ...lambda, v: 0n })), (e) => isTallyError(e, 'DECODE_FAILED') && /request\.v/.test(e.message));
    assert.throws(() => decodeTransactionRequest(encodeCbor({ ...lambda, tsn: big(15) })), (e) => isTallyError(e, 'DECODE_FAILED'));
  });

  it('σ: γ covers tsd; the counts and the sum of tsd must match its blocks; a block may not come twice', () => {
    const wsk = signer('dotm/msg/wsk-payer');
    const tsd = tsdOf([transfer(fullBlock(2, 1), 40n, 50), transfer(fullBlock(0, 2), 2n, 51)]);
    const sigma: TransactionMessage = { tsd, gamma: signRecord(wsk, GAMMA_TAG, gammaSigned(tsd)), wcertP: big(300) };
    const back = decodeTransactionMessage(encodeTransactionMessage(sigma));
    assert.ok(verifyRecord(nobleProvider, wsk.publicKey, GAMMA_TAG, gammaSigned(back.tsd), back.gamma));
    assert.ok(!verifyRecord(nobleProvider, wsk.publicKey, GAMMA_TAG, gammaSigned({ ...back.tsd, tsn: big(16, 1) }), back.gamma));
    const wire = transactionMessageWire(sigma);
    const tsdWire = wire['tsd'] as Record<string, unknown>;
    const bad = (change: Record<string, unknown>, field: RegExp) =>
      assert.throws(() => decodeTransactionMessage(encodeCbor({ ...wire, tsd: { ...tsdWire, ...change } })), (e) => isTallyError(e, 'DECODE_FAILED') && field.test(e.message));
    bad({ nb: 1 }, /tsd\.nb/);
    bad({ nd: 3 }, /tsd\.nd/);
    bad({ v: 41n }, /tsd\.v/);
    bad({ blocks: [] }, /tsd\.blocks/);
    const twice = tsdOf([transfer(fullBlock(1, 1), 1n, 50), transfer(fullBlock(1, 1), 1n, 50)]);
    assert.throws(() => decodeTransactionMessage(encodeTransactionMessage({ ...sigma, tsd: twice })), (e) => isTallyError(e, 'DECODE_FAILED') && /given twice/.test(e.message));
    const tooMany = tsdOf(Array.from({ length: 5 }, (_, i) => transfer(fullBlock(13, i), 1n, 100 + i)));
    assert.ok(tooMany.nd > RECORDS_PER_PAYMENT_MAX);
    assert.throws(() => decodeTransactionMessage(encodeCbor(transactionMessageWire({ ...sigma, tsd: tooMany }))), (e) => isTallyError(e, 'DECODE_FAILED') && /tsd\.nd/.test(e.message));
    assert.throws(() => decodeTransactionMessage(new Uint8Array(TRANSACTION_BYTES_MAX + 1)), (e) => isTallyError(e, 'TOO_LARGE'));
    assert.throws(() => decodeTransactionMessage(Uint8Array.of(0xa1, 0x61)), (e) => isTallyError(e, 'CBOR_MALFORMED'));
  });

  it('the notification, success and failure messages round-trip and chain by digest', () => {
    const usk = signer('dotm/msg/usk');
    const sigma: TransactionMessage = { tsd: tsdOf([transfer(fullBlock(0, 1), 5n, 1)]), gamma: big(64), wcertP: big(300) };
    const unsigned = { tsn: sigma.tsd.tsn, transaction: transactionDigest(sigma) };
    const notification = { ...unsigned, signature: signRecord(usk, NOTIFICATION_TAG, notificationSigned(unsigned)) };
    const back = decodeNotification(encodeNotification(notification));
    assert.ok(verifyRecord(nobleProvider, usk.publicKey, NOTIFICATION_TAG, notificationSigned(back), back.signature));
    const wsk = signer('dotm/msg/wsk');
    const fields = { tsn: back.tsn, notification: notificationDigest(back) };
    const success = { ...fields, signature: signRecord(wsk, SUCCESS_TAG, successSigned(fields)) };
    const successBack = decodeSuccessNotice(encodeSuccessNotice(success));
    assert.deepEqual(successBack, success);
    assert.ok(verifyRecord(nobleProvider, wsk.publicKey, SUCCESS_TAG, successSigned(successBack), successBack.signature));
    assert.throws(() => decodeSuccessNotice(encodeCbor(fields)), (e) => isTallyError(e, 'DECODE_FAILED'), 'an unsigned success message does not decode');
    assert.deepEqual(decodeFailureNotice(encodeFailureNotice({ tsn: big(16), reason: 'insufficient-value' })), { tsn: big(16), reason: 'insufficient-value' });
    assert.throws(() => decodeFailureNotice(encodeCbor({ tsn: big(16), reason: 'because' })), (e) => isTallyError(e, 'DECODE_FAILED'));
    assert.throws(() => decodeSuccessNotice(encodeCbor({ ...success, extra: true })), (e) => isTallyError(e, 'DECODE_FAILED'));
  });
});
