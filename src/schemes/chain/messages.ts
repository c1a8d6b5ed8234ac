/**
 * The records of chain-tee off the chain: the offline transaction `tx_off` and the acknowledgements
 * as they travel between two TEEs (Algorithms 3–4), and the chain receipts the issuer node signs for
 * a TEE, which cannot read the chain itself (docs/chain.md "Trust between the TEE and the chain"):
 * the chain's parameters, a deposit, and the state of an account's payments after a reconciliation.
 *
 * Pure: codecs, signing and checking.
 */
import { array, bigint, boolean, bytes, oneOf, optional, record, refine, text, uint, type Codec, type Infer } from '../../core/codec.ts';
import { timestampMs } from '../../core/fields.ts';
import { ADDRESS_BYTES, PAYMENT_KIND, SIGNATURE_BYTES, UINT128_MAX, UINT64_MAX, type Payment, type PaymentKind } from './typed-data.ts';

/** The scheme's name, in routes and wallet folders. */
export const CHAIN_SCHEME = 'chain';
/** Most payments the contract takes in one upload (`OfflineAccounts.ITEMS_MAX`). */
export const UPLOAD_ITEMS_MAX = 64;
/** Most payments one chain statement reports on. */
export const STATEMENT_PAYMENTS_MAX = 256;
/** Most revoked enclaves the chain's parameters list. */
export const REVOKED_MAX = 4096;
/** Largest certificate a message carries, in bytes. */
export const CERTIFICATE_BYTES_MAX = 4096;
/** Bytes of a compressed secp256k1 public key. */
export const ACCOUNT_KEY_BYTES = 33;

export const PARAMS_TAG = 'tally/chain/params/v1';
export const DEPOSIT_TAG = 'tally/chain/deposit/v1';
export const STATEMENT_TAG = 'tally/chain/statement/v1';
export const BINDING_TAG = 'tally/chain/binding/v1';
export const BANK_ADDRESS_TAG = 'tally/chain/bank-address/v1';
/** Most other banks' intermediary certificates the chain's parameters carry. */
export const BANKS_MAX = 64;

const address = bytes({ length: ADDRESS_BYTES });
const hash = bytes({ length: 32 });
const signature = bytes({ length: SIGNATURE_BYTES });
const recordSignature = bytes({ min: 32, max: 256 });
const uint128 = bigint({ min: 0n, max: UINT128_MAX });
const uint64 = bigint({ min: 0n, max: UINT64_MAX });
const kind: Codec<PaymentKind> = refine(uint({ max: 2 }), 'a payment kind (0, 1 or 2)', (k) => k as PaymentKind);

/** The EIP-712 `Payment` as a record. */
export const paymentCodec: Codec<Payment> = record({ payer: address, payee: address, amount: uint128, counter: uint64, tGen: uint64, kind, enclave: address, attestation: hash });

/**
 * `tx_off` on the wire: the payment with what the payee's TEE checks it by: the payer's account key
 * (`pk_1`), the attested state's balance and its signature `σ_att` by the enclave key, the payer's
 * signature `σ_1`, and the enclave key's device certificate (which chains to the root).
 */
export const txOffCodec = record({
  payment: paymentCodec,
  payerKey: bytes({ length: ACCOUNT_KEY_BYTES }),
  stateBalance: uint128,
  attestation: signature,
  signature,
  enclaveCertificate: bytes({ max: CERTIFICATE_BYTES_MAX }),
});
export type TxOff = Infer<typeof txOffCodec>;

/** `ack_win` (ok) or `ack_fail`, signed by the payee's account key (`σ_2`). */
export const ackCodec = record({ payment: hash, payee: address, ok: boolean, signature });
export type SignedAck = Infer<typeof ackCodec>;

/** The chain a TEE settles on, signed by the node: the domain, the token, the windows, the revoked enclaves, the chain's time. */
export const paramsBodyCodec = record({
  chainId: uint64,
  contract: address,
  token: address,
  currency: text({ min: 3, max: 3, pattern: /^[A-Z]{3}$/, describe: 'an ISO 4217 code' }),
  /** How long a recorded payment waits before its payer may void it, seconds. */
  settleWindowS: uint({ max: 365 * 24 * 3600 }),
  /** How far `T_gen` may be from the payee's clock, seconds (the paper's clock-drift bound). */
  driftS: uint({ max: 24 * 3600 }),
  revoked: array(address, { max: REVOKED_MAX }),
  block: uint64,
  /** The block's time, Unix milliseconds: a lower bound on the TEE's clock. */
  at: timestampMs,
  /**
   * The certificates of the other intermediaries settling on this deployment and not revoked by
   * the root (absent at a bank alone on its chain). A TEE takes a payer or payee certified by one
   * of them only if the certificate chains to the root it pinned: the node can leave a bank out
   * (its customers are then refused), never add one the root did not certify.
   */
  banks: optional(array(bytes({ max: CERTIFICATE_BYTES_MAX }), { max: BANKS_MAX })),
});
export type ParamsBody = Infer<typeof paramsBodyCodec>;

/** A deposit into an offline account as the chain recorded it (`Deposited(account, index, amount, from)`). */
export const depositBodyCodec = record({
  chainId: uint64,
  contract: address,
  account: address,
  index: uint({ max: 2 ** 32 }),
  amount: uint128,
  txHash: hash,
  block: uint64,
  at: timestampMs,
});
export type DepositBody = Infer<typeof depositBodyCodec>;

/** What the chain made of a payment: unknown to it, recorded (waiting), applied, failed, voided. */
export const PAYMENT_STATES = ['unknown', 'recorded', 'applied', 'failed', 'voided'] as const;
export type PaymentState = (typeof PAYMENT_STATES)[number];
/** An account's state on chain. */
export const ACCOUNT_STATUSES = ['open', 'frozen', 'closed'] as const;
export type AccountStatus = (typeof ACCOUNT_STATUSES)[number];

/** An account after a reconciliation: its status and balance on chain and the state of the payments the TEE asked about. */
export const statementBodyCodec = record({
  chainId: uint64,
  contract: address,
  account: address,
  status: oneOf(ACCOUNT_STATUSES),
  balance: uint128,
  /** Each payment asked about; `missing` is what the chain did not honour of an applied payment (a forked payer's shortfall). */
  payments: array(record({ payment: hash, state: oneOf(PAYMENT_STATES), missing: uint128 }), { max: STATEMENT_PAYMENTS_MAX }),
  block: uint64,
  at: timestampMs,
});
export type StatementBody = Infer<typeof statementBodyCodec>;

/** Bytes of the session hash a binding names (the Noise handshake hash). */
export const SESSION_HASH_BYTES = 64;
/** A payee's account bound to the payment session by its enclave key (the session's terms). */
export const bindingBodyCodec = record({ account: address, session: bytes({ length: SESSION_HASH_BYTES }) });
export type BindingBody = Infer<typeof bindingBodyCodec>;

/** An intermediary's chain address on a deployment, signed with its intermediary key: what the deployment's governor admits. */
export const bankAddressBodyCodec = record({ chainId: uint64, contract: address, address });
export type BankAddressBody = Infer<typeof bankAddressBodyCodec>;

/** A body with the node's (or enclave's) signature under its tag. */
export function signedCodec<B>(body: Codec<B>): Codec<{ body: B; signature: Uint8Array }> {
  return record({ body, signature: recordSignature });
}
export const paramsCodec = signedCodec(paramsBodyCodec);
export type Params = Infer<typeof paramsCodec>;
export const depositReceiptCodec = signedCodec(depositBodyCodec);
export type DepositReceipt = Infer<typeof depositReceiptCodec>;
export const statementCodec = signedCodec(statementBodyCodec);
export type Statement = Infer<typeof statementCodec>;
export const bindingCodec = signedCodec(bindingBodyCodec);
export type Binding = Infer<typeof bindingCodec>;
export const bankAddressCodec = signedCodec(bankAddressBodyCodec);

// Signing and checking are the core's, shared by every scheme's signed records.
export { checkSignedWith as checkSigned, signedWith as signed } from '../../core/crypto/record.ts';

/** True for a payment to an offline account (the others go to on-chain addresses). */
export function isOffline(payment: Payment): boolean {
  return payment.kind === PAYMENT_KIND.payment;
}
