/**
 * Test support: the chain-tee EIP-712 records signed with viem (the reference implementation of
 * EIP-712), and upload items built from them in the contract's calldata layout, so the contract
 * is checked against viem rather than against itself. Every step is a separate function so a test
 * can alter one field or sign with the wrong key at any point.
 */
import {
  concat,
  hashStruct,
  keccak256,
  numberToHex,
  parseSignature,
  signatureToCompactSignature,
  type Address,
  type Hex,
  type TypedDataDomain,
} from 'viem';
import type { PrivateKeyAccount } from 'viem/accounts';

/** The EIP-712 types of docs/chain.md, field for field. */
export const CHAIN_TYPES = {
  State: [
    { name: 'account', type: 'address' },
    { name: 'counter', type: 'uint64' },
    { name: 'balance', type: 'uint128' },
  ],
  Payment: [
    { name: 'payer', type: 'address' },
    { name: 'payee', type: 'address' },
    { name: 'amount', type: 'uint128' },
    { name: 'counter', type: 'uint64' },
    { name: 'tGen', type: 'uint64' },
    { name: 'kind', type: 'uint8' },
    { name: 'enclave', type: 'address' },
    { name: 'attestation', type: 'bytes32' },
  ],
  Ack: [
    { name: 'payment', type: 'bytes32' },
    { name: 'payee', type: 'address' },
    { name: 'ok', type: 'bool' },
  ],
  Upload: [
    { name: 'account', type: 'address' },
    { name: 'items', type: 'bytes32' },
  ],
} as const;

/** Payment kinds. */
export const KIND = { pay: 0, withdraw: 1, close: 2 } as const;
/** Ack status of an upload item. */
export const ACK = { none: 0, win: 1, fail: 2 } as const;

/** The EIP-712 domain of an OfflineAccounts deployment. */
export function chainDomain(chainId: number, verifyingContract: Address): TypedDataDomain {
  return { name: 'Tally chain-tee', version: '1', chainId, verifyingContract };
}

/** A device: its enclave key (registered by the bank) and its offline account key. */
export interface Device {
  readonly label: string;
  readonly enclave: PrivateKeyAccount;
  readonly key: PrivateKeyAccount;
  readonly address: Address;
}

/** A Payment record (tx_off). */
export interface Payment {
  readonly payer: Address;
  readonly payee: Address;
  readonly amount: bigint;
  readonly counter: bigint;
  readonly tGen: bigint;
  readonly kind: number;
  readonly enclave: Address;
  readonly attestation: Hex;
}

/** A payment as the payer's TEE hands it to the payee: the record, State.balance, σ_att and σ_1. */
export interface SignedPayment {
  readonly payment: Payment;
  readonly stateBalance: bigint;
  readonly attSig: Hex;
  readonly payerSig: Hex;
}

/** One upload item in the contract's calldata layout (OfflineAccounts.UploadItem). */
export interface UploadItem {
  payer: Address;
  payee: Address;
  amount: bigint;
  counter: bigint;
  tGen: bigint;
  kind: number;
  enclave: Address;
  stateBalance: bigint;
  attR: Hex;
  attVS: Hex;
  payerR: Hex;
  payerVS: Hex;
  ack: number;
  ackR: Hex;
  ackVS: Hex;
}

export const ZERO32: Hex = `0x${'00'.repeat(32)}`;

/** σ_att: `signer` (an enclave key) over State(account, counter, balance). */
export function signState(domain: TypedDataDomain, signer: PrivateKeyAccount, state: { account: Address; counter: bigint; balance: bigint }): Promise<Hex> {
  return signer.signTypedData({ domain, types: CHAIN_TYPES, primaryType: 'State', message: state });
}

/** σ_1: `signer` (the payer's account key) over a Payment. */
export function signPaymentRecord(domain: TypedDataDomain, signer: PrivateKeyAccount, payment: Payment): Promise<Hex> {
  return signer.signTypedData({ domain, types: CHAIN_TYPES, primaryType: 'Payment', message: payment });
}

/** The Payment struct hash (what Ack.payment and Upload.items are made of). */
export function paymentHash(payment: Payment): Hex {
  return hashStruct({ types: CHAIN_TYPES, primaryType: 'Payment', data: payment });
}

/** σ_2: `signer` (the payee's account key) over Ack(payment, payee, ok). */
export function signAck(domain: TypedDataDomain, signer: PrivateKeyAccount, ack: { payment: Hex; payee: Address; ok: boolean }): Promise<Hex> {
  return signer.signTypedData({ domain, types: CHAIN_TYPES, primaryType: 'Ack', message: ack });
}

/** What a correct payer TEE makes: σ_att by its enclave, then the Payment and σ_1 by its account key. */
export async function makePayment(
  domain: TypedDataDomain,
  payer: Device,
  fields: { payee: Address; amount: bigint; counter: bigint; tGen: bigint; kind?: number; stateBalance: bigint },
): Promise<SignedPayment> {
  const attSig = await signState(domain, payer.enclave, { account: payer.address, counter: fields.counter, balance: fields.stateBalance });
  const payment: Payment = {
    payer: payer.address,
    payee: fields.payee,
    amount: fields.amount,
    counter: fields.counter,
    tGen: fields.tGen,
    kind: fields.kind ?? KIND.pay,
    enclave: payer.enclave.address,
    attestation: keccak256(attSig),
  };
  return { payment, stateBalance: fields.stateBalance, attSig, payerSig: await signPaymentRecord(domain, payer.key, payment) };
}

/** The payee's answer: σ_2 over Ack(hash of the payment, payee, ok). */
export function ackPayment(domain: TypedDataDomain, payee: Device, signed: SignedPayment, ok: boolean): Promise<Hex> {
  return signAck(domain, payee.key, { payment: paymentHash(signed.payment), payee: signed.payment.payee, ok });
}

/** A 65-byte signature as the contract's compact pair (r, yParity<<255 | s). */
export function compact(sig: Hex): { r: Hex; vs: Hex } {
  const { r, yParityAndS } = signatureToCompactSignature(parseSignature(sig));
  return { r, vs: yParityAndS };
}

/** An upload item of a signed payment, with the payee's ack if any. */
export function toItem(signed: SignedPayment, ack?: { ok: boolean; sig: Hex }): UploadItem {
  const { attestation: _attestation, ...fields } = signed.payment;
  const att = compact(signed.attSig);
  const payer = compact(signed.payerSig);
  const ackSig = ack === undefined ? { r: ZERO32, vs: ZERO32 } : compact(ack.sig);
  return {
    ...fields,
    stateBalance: signed.stateBalance,
    attR: att.r,
    attVS: att.vs,
    payerR: payer.r,
    payerVS: payer.vs,
    ack: ack === undefined ? ACK.none : ack.ok ? ACK.win : ACK.fail,
    ackR: ackSig.r,
    ackVS: ackSig.vs,
  };
}

/** The Payment hash of an item as the contract computes it (attestation from its compact σ_att). */
export function itemHash(item: UploadItem): Hex {
  // Built by hand: viem's serializer refuses an out-of-range r, which a forged item may carry.
  const vs = BigInt(item.attVS);
  const s = numberToHex(vs & ((1n << 255n) - 1n), { size: 32 });
  const attSig = concat([item.attR, s, numberToHex(27n + (vs >> 255n), { size: 1 })]);
  const { payer, payee, amount, counter, tGen, kind, enclave } = item;
  return paymentHash({ payer, payee, amount, counter, tGen, kind, enclave, attestation: keccak256(attSig) });
}

/** The upload signature: `enclave` over Upload(account, keccak256 of each item's Payment hash and ack status word). */
export function signUpload(domain: TypedDataDomain, enclave: PrivateKeyAccount, account: Address, items: readonly UploadItem[]): Promise<Hex> {
  const words = items.flatMap((item) => [itemHash(item), numberToHex(BigInt(item.ack), { size: 32 })]);
  const itemsDigest = keccak256(words.length === 0 ? '0x' : concat(words));
  return enclave.signTypedData({ domain, types: CHAIN_TYPES, primaryType: 'Upload', message: { account, items: itemsDigest } });
}
