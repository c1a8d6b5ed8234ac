/** The decoders of what OPERA receives from outside (the issuer's parameters, charges, receipts and settlements), listed for the fuzzer. */
import { CBOR_BYTES_MAX } from '../../core/cbor.ts';
import { chargeCodec, chargeRequestCodec, depositReceiptCodec, depositRequestCodec, interbankEvidenceCodec, paramsCodec, settledCodec, settleReportCodec, TOKENS_REQUEST_BYTES_MAX } from './messages.ts';

/** What `Scheme.wire()` answers for OPERA. */
export const OPERA_WIRE = [
  { name: 'params', codec: paramsCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'charge-request', codec: chargeRequestCodec, bytesMax: TOKENS_REQUEST_BYTES_MAX },
  { name: 'charge', codec: chargeCodec, bytesMax: TOKENS_REQUEST_BYTES_MAX },
  { name: 'deposit-request', codec: depositRequestCodec, bytesMax: TOKENS_REQUEST_BYTES_MAX },
  { name: 'deposit-receipt', codec: depositReceiptCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'settle-report', codec: settleReportCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'settled', codec: settledCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'interbank-evidence', codec: interbankEvidenceCodec, bytesMax: CBOR_BYTES_MAX },
];
