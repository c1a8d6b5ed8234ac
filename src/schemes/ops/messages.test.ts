import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeCbor } from '../../core/cbor.ts';
import { isTallyError } from '../../core/errors.ts';
import { SYNC_REPORT_BYTES_MAX } from './node.ts';
import { COUNTER_MAX, decodePayment, encodePayment, PAYMENT_BYTES_MAX, REPORT_ENTRIES_MAX, syncReportBodyWire, syncReportCodec, type Payment, type SyncReportBody } from './messages.ts';
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';

const big = (n: number) => new Uint8Array(n).fill(0xab);

describe('OPS messages', () => {
  it('a report with both lists full, at the largest values, fits the report limit and decodes back', () => {
    const body: SyncReportBody = {
      device: big(32),
      balance: AMOUNT_MINOR_MAX,
      i: COUNTER_MAX,
      j: COUNTER_MAX,
      collectSeq: COUNTER_MAX,
      paid: Array.from({ length: REPORT_ENTRIES_MAX }, () => ({ index: COUNTER_MAX, amount: AMOUNT_MINOR_MAX, receiver: big(32), digest: big(32) })),
      collected: Array.from({ length: REPORT_ENTRIES_MAX }, () => ({ seq: COUNTER_MAX, sender: big(32), index: COUNTER_MAX, amount: AMOUNT_MINOR_MAX, digest: big(32) })),
    };
    const encoded = encodeCbor({ body: syncReportBodyWire(body), signature: big(72) });
    assert.ok(encoded.length <= SYNC_REPORT_BYTES_MAX, `${encoded.length} bytes`);
    assert.ok(Math.ceil((encoded.length * 4) / 3) < 64 * 1024, 'its base64url fits the node body limit');
    const tooMany = { ...syncReportBodyWire(body), paid: [...syncReportBodyWire(body)['paid'] as unknown[], (syncReportBodyWire(body)['paid'] as unknown[])[0]] };
    assert.throws(() => syncReportCodec.decode({ body: tooMany, signature: big(64) }), (e) => isTallyError(e, 'DECODE_FAILED'));
  });

  it('payments round-trip; oversized and malformed bytes are refused', () => {
    const payment: Payment = { amount: 5n, sender: big(400), receiver: big(400), index: 1n, signature: big(64) };
    assert.deepEqual(decodePayment(encodePayment(payment)), payment);
    assert.throws(() => decodePayment(new Uint8Array(PAYMENT_BYTES_MAX + 1)), (e) => isTallyError(e, 'TOO_LARGE'));
    assert.throws(() => decodePayment(encodeCbor({ ...payment, index: 0n })), (e) => isTallyError(e, 'DECODE_FAILED'));
    assert.throws(() => decodePayment(encodeCbor({ ...payment, extra: 1 })), (e) => isTallyError(e, 'DECODE_FAILED'));
    assert.throws(() => encodePayment({ ...payment, sender: big(5000) }), (e) => isTallyError(e, 'TOO_LARGE'));
  });
});
