/**
 * A TEE's upload in the contract's calldata layout (`OfflineAccounts.UploadItem`, docs/chain.md):
 * the payment's fields, the attested balance, the three signatures in compact form (EIP-2098) and
 * the ack's status; and the payments a statement is asked for. Plain values (0x text, bigints)
 * that any Ethereum client encodes. Pure.
 */
import { toHex } from '../../core/bytes.ts';
import type { SignedAck, TxOff } from './messages.ts';
import { ACK_STATUS, paymentHash, SIGNATURE_BYTES } from './typed-data.ts';

type Hex = `0x${string}`;

/** One item of `reconcile`. */
export interface UploadItem {
  readonly payer: Hex;
  readonly payee: Hex;
  readonly amount: bigint;
  readonly counter: bigint;
  readonly tGen: bigint;
  readonly kind: number;
  readonly enclave: Hex;
  readonly stateBalance: bigint;
  readonly attR: Hex;
  readonly attVS: Hex;
  readonly payerR: Hex;
  readonly payerVS: Hex;
  readonly ack: number;
  readonly ackR: Hex;
  readonly ackVS: Hex;
}

const ZERO32: Hex = `0x${'00'.repeat(32)}`;
const hex = (bytes: Uint8Array): Hex => `0x${toHex(bytes)}`;

/** A 65-byte `r ‖ s ‖ v` signature as EIP-2098's `(r, yParity ‖ s)`. @throws RangeError for another length or v */
export function compactSignature(signature: Uint8Array): { r: Hex; vs: Hex } {
  if (signature.length !== SIGNATURE_BYTES) throw new RangeError(`signature: expected ${SIGNATURE_BYTES} bytes, got ${signature.length}`);
  const v = signature[64] as number;
  if (v !== 27 && v !== 28) throw new RangeError(`signature: v must be 27 or 28, got ${v}`);
  const vs = signature.slice(32, 64);
  if (((vs[0] as number) & 0x80) !== 0) throw new RangeError('signature: s is not low');
  if (v === 28) vs[0] = (vs[0] as number) | 0x80;
  return { r: hex(signature.subarray(0, 32)), vs: hex(vs) };
}

/** An upload item of a payment and its ack, if any. */
export function uploadItem(txOff: TxOff, ack?: SignedAck | undefined): UploadItem {
  const p = txOff.payment;
  const att = compactSignature(txOff.attestation);
  const payer = compactSignature(txOff.signature);
  const acked = ack === undefined ? { r: ZERO32, vs: ZERO32 } : compactSignature(ack.signature);
  return {
    payer: hex(p.payer),
    payee: hex(p.payee),
    amount: p.amount,
    counter: p.counter,
    tGen: p.tGen,
    kind: p.kind,
    enclave: hex(p.enclave),
    stateBalance: txOff.stateBalance,
    attR: att.r,
    attVS: att.vs,
    payerR: payer.r,
    payerVS: payer.vs,
    ack: ack === undefined ? ACK_STATUS.none : ack.ok ? ACK_STATUS.win : ACK_STATUS.fail,
    ackR: acked.r,
    ackVS: acked.vs,
  };
}

/** What a statement is asked about for each uploaded payment. */
export function statementQuery(txOff: TxOff): { payer: Hex; counter: string; payment: Hex } {
  return { payer: hex(txOff.payment.payer), counter: txOff.payment.counter.toString(), payment: hex(paymentHash(txOff.payment)) };
}
