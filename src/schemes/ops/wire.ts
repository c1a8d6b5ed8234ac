/** The decoders of what OPS receives from outside (peers' messages, the node's answers, pasted tokens), listed for the fuzzer. */
import { CBOR_BYTES_MAX } from '../../core/cbor.ts';
import { TEXT_CHARS_MAX } from '../../core/text.ts';
import {
  decodePayment,
  depositConfirmationCodec,
  PAYMENT_BYTES_MAX,
  paymentCodec,
  paymentRequestCodec,
  syncAckCodec,
  syncReportCodec,
  withdrawConfirmationCodec,
} from './messages.ts';
import { readPaymentToken, readRequestToken, tokenCodec } from './tokens.ts';

/** What `Scheme.wire()` answers for OPS. */
export const OPS_WIRE = [
  { name: 'payment', codec: paymentCodec, bytesMax: PAYMENT_BYTES_MAX, decode: decodePayment },
  { name: 'payment-request', codec: paymentRequestCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'deposit-confirmation', codec: depositConfirmationCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'withdraw-confirmation', codec: withdrawConfirmationCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'sync-report', codec: syncReportCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'sync-ack', codec: syncAckCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'request-token', codec: tokenCodec, bytesMax: TEXT_CHARS_MAX * 4, readToken: readRequestToken },
  { name: 'payment-token', codec: tokenCodec, bytesMax: TEXT_CHARS_MAX * 4, readToken: readPaymentToken },
];
