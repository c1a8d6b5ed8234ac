/** The decoders of what OTP receives from outside (peers' coins, the exchange's parameters, keys, times and receipts), listed for the fuzzer. */
import { CBOR_BYTES_MAX } from '../../core/cbor.ts';
import { carriedCoinCodec, classEntryCodec, depositReceiptCodec, inFlightCodec, keyRequestCodec, paramsCodec, settledCodec, timeCodec } from './messages.ts';

/** What `Scheme.wire()` answers for OTP. */
export const OTP_WIRE = [
  { name: 'carried-coin', codec: carriedCoinCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'class-entry', codec: classEntryCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'params', codec: paramsCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'key-request', codec: keyRequestCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'time', codec: timeCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'deposit-receipt', codec: depositReceiptCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'in-flight', codec: inFlightCodec, bytesMax: CBOR_BYTES_MAX },
  { name: 'settled', codec: settledCodec, bytesMax: CBOR_BYTES_MAX },
];
