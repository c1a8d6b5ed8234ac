/**
 * The records the contract verifies, as EIP-712 typed data (docs/chain.md "Signed records"): the
 * account's state (`σ_att`), the offline transaction (`tx_off`), the payee's acknowledgement and an
 * upload. Each is hashed as EIP-712 prescribes, so `ecrecover` in the contract and any Ethereum
 * wallet see the same digest the trusted app signed.
 */
import { concatBytes, equalBytes } from '../../core/bytes.ts';
import { keccak256 } from '../../core/crypto/hash.ts';

/** Bytes of an address. */
export const ADDRESS_BYTES = 20;
/** Bytes of a signature `r ‖ s ‖ v`. */
export const SIGNATURE_BYTES = 65;
/** Largest uint128 (amounts and balances). */
export const UINT128_MAX = (1n << 128n) - 1n;
/** Largest uint64 (counters and times). */
export const UINT64_MAX = (1n << 64n) - 1n;

/** The domain name and version every record is signed under. */
export const DOMAIN_NAME = 'Tally chain-tee';
export const DOMAIN_VERSION = '1';

/** What a payment does: pay an offline account, withdraw to an on-chain address, close the account to one. */
export const PAYMENT_KIND = { payment: 0, withdrawal: 1, closing: 2 } as const;
export type PaymentKind = (typeof PAYMENT_KIND)[keyof typeof PAYMENT_KIND];

/** The domain: the chain and the `OfflineAccounts` contract. */
export interface Domain {
  readonly chainId: bigint;
  readonly contract: Uint8Array;
}

/** `State(address account,uint64 counter,uint128 balance)`: what `σ_att` attests. */
export interface State {
  readonly account: Uint8Array;
  /** The account's next outgoing counter. */
  readonly counter: bigint;
  /** What the account may spend before the payment it goes with. */
  readonly balance: bigint;
}

/** `Payment(...)`: the offline transaction `tx_off` (or a withdrawal, or a closing). */
export interface Payment {
  readonly payer: Uint8Array;
  readonly payee: Uint8Array;
  readonly amount: bigint;
  readonly counter: bigint;
  /** `T_gen`, Unix seconds. */
  readonly tGen: bigint;
  readonly kind: PaymentKind;
  /** The enclave key's address (the paper's `mpk_1`). */
  readonly enclave: Uint8Array;
  /** keccak256 of `σ_att`. */
  readonly attestation: Uint8Array;
}

/** `Ack(bytes32 payment,address payee,bool ok)`: `ack_win` (ok) or `ack_fail`. */
export interface Ack {
  /** The payment's struct hash. */
  readonly payment: Uint8Array;
  readonly payee: Uint8Array;
  readonly ok: boolean;
}

/** `Upload(address account,bytes32 items)`: what the uploader's enclave signs for a reconciliation. */
export interface Upload {
  readonly account: Uint8Array;
  /** keccak256 of each item's payment struct hash and ack status word, concatenated in order (uploadItems). */
  readonly items: Uint8Array;
}

/** An upload item's ack status, as the contract numbers it. */
export const ACK_STATUS = { none: 0, win: 1, fail: 2 } as const;
export type AckStatus = (typeof ACK_STATUS)[keyof typeof ACK_STATUS];

const encoder = new TextEncoder();
const typeHash = (type: string): Uint8Array => keccak256(encoder.encode(type));

const DOMAIN_TYPE = typeHash('EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)');
const STATE_TYPE = typeHash('State(address account,uint64 counter,uint128 balance)');
const PAYMENT_TYPE = typeHash('Payment(address payer,address payee,uint128 amount,uint64 counter,uint64 tGen,uint8 kind,address enclave,bytes32 attestation)');
const ACK_TYPE = typeHash('Ack(bytes32 payment,address payee,bool ok)');
const UPLOAD_TYPE = typeHash('Upload(address account,bytes32 items)');

/** A uint as one 32-byte word, checked against its width. @throws RangeError out of range */
function word(value: bigint, bits: number, field: string): Uint8Array {
  if (value < 0n || value >= 1n << BigInt(bits)) throw new RangeError(`${field}: expected a uint${bits}, got ${value}`);
  const out = new Uint8Array(32);
  let v = value;
  for (let i = 31; i >= 0 && v > 0n; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** An address as one word. @throws RangeError unless 20 bytes */
function addressWord(address: Uint8Array, field: string): Uint8Array {
  if (address.length !== ADDRESS_BYTES) throw new RangeError(`${field}: expected ${ADDRESS_BYTES} bytes, got ${address.length}`);
  const out = new Uint8Array(32);
  out.set(address, 12);
  return out;
}

/** A bytes32 as one word. @throws RangeError unless 32 bytes */
function bytes32(value: Uint8Array, field: string): Uint8Array {
  if (value.length !== 32) throw new RangeError(`${field}: expected 32 bytes, got ${value.length}`);
  return value;
}

/** The domain separator. */
export function domainSeparator(domain: Domain): Uint8Array {
  return keccak256(
    concatBytes(DOMAIN_TYPE, keccak256(encoder.encode(DOMAIN_NAME)), keccak256(encoder.encode(DOMAIN_VERSION)), word(domain.chainId, 256, 'chainId'), addressWord(domain.contract, 'contract')),
  );
}

/** The struct hash of a state. */
export function stateHash(state: State): Uint8Array {
  return keccak256(concatBytes(STATE_TYPE, addressWord(state.account, 'account'), word(state.counter, 64, 'counter'), word(state.balance, 128, 'balance')));
}

/** The struct hash of a payment (its identity on chain and in acknowledgements). */
export function paymentHash(payment: Payment): Uint8Array {
  return keccak256(
    concatBytes(
      PAYMENT_TYPE,
      addressWord(payment.payer, 'payer'),
      addressWord(payment.payee, 'payee'),
      word(payment.amount, 128, 'amount'),
      word(payment.counter, 64, 'counter'),
      word(payment.tGen, 64, 'tGen'),
      word(BigInt(payment.kind), 8, 'kind'),
      addressWord(payment.enclave, 'enclave'),
      bytes32(payment.attestation, 'attestation'),
    ),
  );
}

/** The struct hash of an acknowledgement. */
export function ackHash(ack: Ack): Uint8Array {
  return keccak256(concatBytes(ACK_TYPE, bytes32(ack.payment, 'payment'), addressWord(ack.payee, 'payee'), word(ack.ok ? 1n : 0n, 8, 'ok')));
}

/** The struct hash of an upload. */
export function uploadHash(upload: Upload): Uint8Array {
  return keccak256(concatBytes(UPLOAD_TYPE, addressWord(upload.account, 'account'), bytes32(upload.items, 'items')));
}

/**
 * The `items` of an upload: keccak256 of, for each item in order, its payment struct hash and its
 * ack status as a word. The status is covered so that whoever relays the upload cannot drop an ack.
 */
export function uploadItems(items: readonly { readonly payment: Uint8Array; readonly ack: AckStatus }[]): Uint8Array {
  return keccak256(concatBytes(...items.flatMap((item, i) => [bytes32(item.payment, `items[${i}].payment`), word(BigInt(item.ack), 256, `items[${i}].ack`)])));
}

/** The bytes a signer signs for a struct hash: `0x1901 ‖ domainSeparator ‖ structHash` (the suite hashes them with Keccak-256). */
export function signingInput(domain: Domain, structHash: Uint8Array): Uint8Array {
  return concatBytes(new Uint8Array([0x19, 0x01]), domainSeparator(domain), bytes32(structHash, 'structHash'));
}

/** The EIP-712 digest: what `ecrecover` takes. */
export function typedDigest(domain: Domain, structHash: Uint8Array): Uint8Array {
  return keccak256(signingInput(domain, structHash));
}

/** keccak256 of `σ_att`: the payment's `attestation` field. */
export function attestationOf(signature: Uint8Array): Uint8Array {
  if (signature.length !== SIGNATURE_BYTES) throw new RangeError(`signature: expected ${SIGNATURE_BYTES} bytes, got ${signature.length}`);
  return keccak256(signature);
}

/** True when two domains are the same chain and contract. */
export function sameDomain(a: Domain, b: Domain): boolean {
  return a.chainId === b.chainId && equalBytes(a.contract, b.contract);
}
