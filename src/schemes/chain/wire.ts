/** The decoders of what chain-tee receives from outside (payments, uploads, acknowledgements and the node's signed records), listed for the fuzzer. */
import { CBOR_BYTES_MAX } from '../../core/cbor.ts';
import { ackCodec, bankAddressCodec, bindingCodec, depositReceiptCodec, paramsCodec, paymentCodec, statementCodec, txOffCodec } from './messages.ts';

/** What `Scheme.wire()` answers for chain-tee. */
export const CHAIN_WIRE = [
  { name: 'payment', codec: paymentCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'tx-off', codec: txOffCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'ack', codec: ackCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'params', codec: paramsCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'deposit-receipt', codec: depositReceiptCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'statement', codec: statementCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'binding', codec: bindingCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'bank-address', codec: bankAddressCodec, bytesMax: CBOR_BYTES_MAX },
];
