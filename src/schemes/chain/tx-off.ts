/**
 * The offline transaction and its acknowledgement (Algorithms 3–4): the payer's TEE builds `tx_off`
 * (`σ_att` over its state, `σ_1` over the payment); the payee's TEE checks both, the enclave key's
 * certificate and the payment's consistency before it credits; an ack is the payee's `σ_2` over the
 * payment's hash and the verdict. Every function is pure; the trusted app decides what to keep.
 */
import { equalBytes } from '../../core/bytes.ts';
import { ethereumAddress, recoverEthereumPublicKey as recoverKey } from '../../core/crypto/ethereum.ts';
import { suiteFor, type CryptoProvider, type Signer } from '../../core/crypto/suite.ts';
import { decodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import { refuse } from '../../secure-element/trusted-app.ts';
import type { SignedAck, TxOff } from './messages.ts';
import { ackHash, attestationOf, paymentHash, signingInput, stateHash, type Domain, type Payment, type PaymentKind } from './typed-data.ts';

/** What the payer's TEE signs a payment with. */
export interface PayerKeys {
  readonly enclave: Signer;
  readonly account: Signer;
  readonly certificate: Uint8Array;
}

/** Builds a signed `tx_off` (or a withdrawal, or a closing): `σ_att` over the state, then `σ_1` over the payment. */
export function buildTxOff(domain: Domain, keys: PayerKeys, fields: { payee: Uint8Array; amount: bigint; counter: bigint; tGen: bigint; kind: PaymentKind; balance: bigint }): TxOff {
  const payer = ethereumAddress(keys.account.publicKey);
  const attestation = keys.enclave.sign(signingInput(domain, stateHash({ account: payer, counter: fields.counter, balance: fields.balance })));
  const payment: Payment = {
    payer,
    payee: fields.payee,
    amount: fields.amount,
    counter: fields.counter,
    tGen: fields.tGen,
    kind: fields.kind,
    enclave: ethereumAddress(keys.enclave.publicKey),
    attestation: attestationOf(attestation),
  };
  const signature = keys.account.sign(signingInput(domain, paymentHash(payment)));
  return { payment, payerKey: keys.account.publicKey.key, stateBalance: fields.balance, attestation, signature, enclaveCertificate: keys.certificate };
}

/**
 * Verifies a device certificate up to the pinned root through the intermediary certificate that
 * issued it: the TEE's own bank's, or one of the other banks' the chain's parameters carry
 * (docs/chain.md "Several banks"). Every candidate whose key issued the device is tried, each up to
 * the root: a certificate slipped into the parameters that the root did not sign (even for the
 * same key) verifies nothing, and a bank left out has its devices refused.
 * @throws TallyError from the certificate chain (the last candidate's, or the own bank's when none names the issuer)
 */
export function verifyDevice(provider: CryptoProvider, device: Certificate, trust: { root: Certificate; intermediary: Certificate; banks: readonly Uint8Array[] }, now: number): ReturnType<typeof verifyChain> {
  const candidates = [trust.intermediary, ...trust.banks.map((b) => decodeCertificate(b))].filter((c) => equalBytes(device.body.issuer, keyId(c.body.subject)));
  let failure: unknown;
  for (const issuer of candidates.length === 0 ? [trust.intermediary] : candidates) {
    try {
      return verifyChain({ provider, chain: [device, issuer], trustAnchors: [trust.root], now, leafRoles: ['device'] });
    } catch (e) {
      failure = e;
    }
  }
  throw failure;
}

/** What the payee's TEE checks a `tx_off` against. */
export interface CheckContext {
  readonly provider: CryptoProvider;
  readonly domain: Domain;
  readonly root: Certificate;
  readonly intermediary: Certificate;
  /** The other banks' intermediary certificates, from the chain's parameters. */
  readonly banks: readonly Uint8Array[];
  /** Enclaves the chain revoked, as the TA last learned. */
  readonly revoked: readonly Uint8Array[];
  /** The host's time for the certificate's window, Unix ms. */
  readonly now: number;
}

/**
 * Checks a `tx_off` as the paper's payee TEE does (`verify(σ_1, σ_att)`) and as a correct TEE must
 * for the contract to honour it: the enclave key chains to the root (through its own bank's
 * intermediary certificate or another bank's) and is not revoked, `σ_att` is
 * its signature over the payer's state, `σ_1` the payer account's over the payment, and the payment
 * is consistent (counter of the state, amount within the attested balance, a payment to an account).
 * @throws Refused CHAIN_TX_INVALID; TallyError from the certificate chain
 */
export function checkTxOff(context: CheckContext, txOff: TxOff): void {
  const { payment } = txOff;
  const secp = suiteFor(context.provider, 'secp256k1');
  const chain = verifyDevice(context.provider, decodeCertificate(txOff.enclaveCertificate), context, context.now);
  const enclaveKey = chain.subject;
  if (enclaveKey.suite !== 'secp256k1' || !equalBytes(ethereumAddress(enclaveKey), payment.enclave)) refuse('CHAIN_TX_INVALID', "the payment's enclave is not the one its certificate names");
  if (context.revoked.some((r) => equalBytes(r, payment.enclave))) refuse('CHAIN_TX_INVALID', "the payer's enclave is revoked");
  if (!secp.verify(enclaveKey.key, txOff.attestation, signingInput(context.domain, stateHash({ account: payment.payer, counter: payment.counter, balance: txOff.stateBalance })))) {
    refuse('CHAIN_TX_INVALID', 'σ_att is not the enclave’s signature over the payer’s state');
  }
  if (!equalBytes(attestationOf(txOff.attestation), payment.attestation)) refuse('CHAIN_TX_INVALID', 'the payment does not carry its σ_att');
  if (!secp.isValidPublicKey(txOff.payerKey) || !equalBytes(ethereumAddress({ suite: 'secp256k1', key: txOff.payerKey }), payment.payer)) refuse('CHAIN_TX_INVALID', "pk_1 is not the payer's key");
  if (!secp.verify(txOff.payerKey, txOff.signature, signingInput(context.domain, paymentHash(payment)))) refuse('CHAIN_TX_INVALID', 'σ_1 is not the payer’s signature over the payment');
  if (payment.amount === 0n || payment.amount > txOff.stateBalance) refuse('CHAIN_TX_INVALID', 'the amount is zero or more than the attested balance');
}

/** Signs an ack (`ack_win` when ok, `ack_fail` otherwise) for a payment, as its payee. */
export function buildAck(domain: Domain, payee: Signer, payment: Payment, ok: boolean): SignedAck {
  const payeeAddress = ethereumAddress(payee.publicKey);
  const hash = paymentHash(payment);
  return { payment: hash, payee: payeeAddress, ok, signature: payee.sign(signingInput(domain, ackHash({ payment: hash, payee: payeeAddress, ok }))) };
}

/**
 * Checks an ack for one of the payer's own payments: it names this payment and is signed by the
 * account the payment went to (an ack from anyone else, a relay included, proves nothing).
 * @throws Refused CHAIN_ACK_INVALID
 */
export function checkAck(provider: CryptoProvider, domain: Domain, payment: Payment, ack: SignedAck): void {
  if (!equalBytes(ack.payment, paymentHash(payment))) refuse('CHAIN_ACK_INVALID', 'the ack is for another payment');
  if (!equalBytes(ack.payee, payment.payee)) refuse('CHAIN_ACK_INVALID', 'the ack is not from the payee');
  const recovered = recoverSigner(provider, signingInput(domain, ackHash({ payment: ack.payment, payee: ack.payee, ok: ack.ok })), ack.signature);
  if (recovered === null || !equalBytes(recovered, payment.payee)) refuse('CHAIN_ACK_INVALID', 'σ_2 is not the payee’s signature');
}

/** The address that signed `message` (an ecrecover, through the suite's verify on the recovered key), or null. */
function recoverSigner(provider: CryptoProvider, message: Uint8Array, signature: Uint8Array): Uint8Array | null {
  const key = recoverKey(signature, message);
  if (key === null) return null;
  return suiteFor(provider, 'secp256k1').verify(key, signature, message) ? ethereumAddress({ suite: 'secp256k1', key }) : null;
}
