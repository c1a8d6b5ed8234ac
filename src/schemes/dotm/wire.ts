/** The decoders of what DOT-M receives from outside (peers' blocks, requests, transactions and notices), listed for the fuzzer. */
import { currencyBlockCodec, decodeBlock } from './messages-block.ts';
import { BLOCK_BYTES_MAX, NOTICE_BYTES_MAX, REQUEST_BYTES_MAX, TRANSACTION_BYTES_MAX } from './messages-fields.ts';
import { decodeFailureNotice, decodeNotification, decodeSuccessNotice, failureNoticeCodec, notificationCodec, successNoticeCodec } from './messages-notices.ts';
import { decodeTransactionRequest, transactionRequestCodec } from './messages-request.ts';
import { decodeTransactionMessage, transactionMessageCodec } from './messages-transaction.ts';

/** What `Scheme.wire()` answers for DOT-M. */
export const DOTM_WIRE = [
  { name: 'block', codec: currencyBlockCodec, bytesMax: BLOCK_BYTES_MAX, decode: decodeBlock },
  { name: 'transaction-request', codec: transactionRequestCodec, bytesMax: REQUEST_BYTES_MAX, decode: decodeTransactionRequest },
  { name: 'transaction', codec: transactionMessageCodec, bytesMax: TRANSACTION_BYTES_MAX, decode: decodeTransactionMessage },
  { name: 'notification', codec: notificationCodec, bytesMax: NOTICE_BYTES_MAX, decode: decodeNotification },
  { name: 'success-notice', codec: successNoticeCodec, bytesMax: NOTICE_BYTES_MAX, decode: decodeSuccessNotice },
  { name: 'failure-notice', codec: failureNoticeCodec, bytesMax: NOTICE_BYTES_MAX, decode: decodeFailureNotice },
];
