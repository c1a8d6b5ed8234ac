/**
 * chain-tee's known-answer vectors (test-vectors/chain/, docs/test-vectors.md): the certificate
 * chain of two enclave keys from fixed keys, one offline payment `tx_off` (σ_att over the payer's
 * state, σ_1 over the payment, as EIP-712 typed data), the payee's binding of its account to the
 * session and its ack, the enclave's upload for the reconciliation, and the node's signed chain
 * receipts (parameters, a deposit, the payer's statement after the chain applied the payment).
 * Every value is made by the protocol code from fixed inputs; vectors.test.ts recomputes them. Pure.
 *
 * ECDSA over secp256k1 is deterministic here (RFC 6979 nonces, low s): the same key and digest
 * always give the same r ‖ s ‖ v, so the signatures are recorded and signed again in the test.
 */
import { fromHex, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { ethereumAddress } from '../../core/crypto/ethereum.ts';
import { nobleEd25519, nobleSecp256k1 } from '../../core/crypto/noble.ts';
import { signedWith } from '../../core/crypto/record.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { certificateJson, GENERATED_SOURCE, KEY_DERIVATION, keysJson, SIGNED_RECORD, signedRecordJson, vectorKey, vectorText, type VectorKey, vectorCertificate, NOW } from '../../pki/vectors.ts';
import { BINDING_TAG, bindingBodyCodec, DEPOSIT_TAG, depositBodyCodec, PARAMS_TAG, paramsBodyCodec, STATEMENT_TAG, statementBodyCodec } from './messages.ts';
import { buildAck, buildTxOff } from './tx-off.ts';
import { ACK_STATUS, ackHash, DOMAIN_NAME, DOMAIN_VERSION, domainSeparator, PAYMENT_KIND, paymentHash, signingInput, stateHash, typedDigest, uploadHash, uploadItems, type Domain } from './typed-data.ts';

export { NOT_AFTER, NOT_BEFORE, NOW } from '../../pki/vectors.ts';
export const CURRENCY = 'EUR';

/** The fixed inputs: the domain, the token contract, the payment, the session hash, the chain's blocks. */
export const INPUTS = {
  chainId: 31_337n,
  contract: '5fbdb2315678afecb367f032d93f642f64180aa3',
  token: 'e7f1725e7734ce288f8367e1bb143e90bb3f0512',
  amount: 1_250n,
  counter: 0n,
  balance: 20_000n,
  tGen: BigInt(NOW / 1000),
  session: '4b'.repeat(64),
  depositTx: 'd0'.repeat(32),
  block: 120n,
} as const;

/** The keys: the bank's are Ed25519; the enclave keys (`mpk`) and the offline accounts' keys (`pk`) are secp256k1, as the contract's `ecrecover` needs. */
export function chainKeys() {
  const ed = (name: string) => vectorKey(nobleEd25519, name, `tally/vectors/chain/${name}`);
  const k1 = (name: string) => vectorKey(nobleSecp256k1, name, `tally/vectors/chain/${name}`);
  return {
    root: ed('root'),
    intermediary: ed('intermediary'),
    issuerNode: ed('issuerNode'),
    payerEnclave: k1('payerEnclave'),
    payerAccount: k1('payerAccount'),
    payeeEnclave: k1('payeeEnclave'),
    payeeAccount: k1('payeeAccount'),
  };
}

const certify = vectorCertificate;

/** The certificates: root, intermediary, node, and the two enclave keys' device certificates. */
export function chainCertificates(keys = chainKeys()) {
  return {
    root: certify(keys.root, 'root', 'root', keys.root, 1, { name: 'Central Bank' }),
    intermediary: certify(keys.root, 'root', 'intermediary', keys.intermediary, 2, { name: 'Bank A', currency: CURRENCY }),
    issuerNode: certify(keys.intermediary, 'intermediary', 'issuer-node', keys.issuerNode, 3, { name: 'Bank A node', scheme: 'chain' }),
    payerEnclave: certify(keys.intermediary, 'intermediary', 'device', keys.payerEnclave, 4, { scheme: 'chain' }),
    payeeEnclave: certify(keys.intermediary, 'intermediary', 'device', keys.payeeEnclave, 5, { scheme: 'chain' }),
  };
}

export const ISSUERS = { root: 'root', intermediary: 'root', issuerNode: 'intermediary', payerEnclave: 'intermediary', payeeEnclave: 'intermediary' } as const;

/** The EIP-712 domain of the vectors. */
export function chainDomain(): Domain {
  return { chainId: INPUTS.chainId, contract: fromHex(INPUTS.contract) };
}

/** The payment and its records, made by the protocol code. */
export function chainMessages(keys = chainKeys(), certificates = chainCertificates(keys)) {
  const domain = chainDomain();
  const payeeAddress = ethereumAddress(keys.payeeAccount.signer.publicKey);
  const txOff = buildTxOff(
    domain,
    { enclave: keys.payerEnclave.signer, account: keys.payerAccount.signer, certificate: encodeCertificate(certificates.payerEnclave) },
    { payee: payeeAddress, amount: INPUTS.amount, counter: INPUTS.counter, tGen: INPUTS.tGen, kind: PAYMENT_KIND.payment, balance: INPUTS.balance },
  );
  const ack = buildAck(domain, keys.payeeAccount.signer, txOff.payment, true);
  const binding = signedWith(bindingBodyCodec, keys.payeeEnclave.signer, BINDING_TAG, { account: payeeAddress, session: fromHex(INPUTS.session) });
  const hash = paymentHash(txOff.payment);
  const items = uploadItems([{ payment: hash, ack: ACK_STATUS.win }]);
  const upload = { account: payeeAddress, items };
  const uploadSignature = keys.payeeEnclave.signer.sign(signingInput(domain, uploadHash(upload)));
  const node = keys.issuerNode.signer;
  const contract = fromHex(INPUTS.contract);
  const params = signedWith(paramsBodyCodec, node, PARAMS_TAG, {
    chainId: INPUTS.chainId,
    contract,
    token: fromHex(INPUTS.token),
    currency: CURRENCY,
    settleWindowS: 86_400,
    driftS: 300,
    revoked: [],
    block: INPUTS.block,
    at: NOW - 60_000,
  });
  const deposit = signedWith(depositBodyCodec, node, DEPOSIT_TAG, {
    chainId: INPUTS.chainId,
    contract,
    account: txOff.payment.payer,
    index: 0,
    amount: INPUTS.balance,
    txHash: fromHex(INPUTS.depositTx),
    block: INPUTS.block - 10n,
    at: NOW - 86_400_000,
  });
  const statement = signedWith(statementBodyCodec, node, STATEMENT_TAG, {
    chainId: INPUTS.chainId,
    contract,
    account: txOff.payment.payer,
    status: 'open',
    balance: INPUTS.balance - INPUTS.amount,
    payments: [{ payment: hash, state: 'applied', missing: 0n }],
    block: INPUTS.block + 10n,
    at: NOW + 3_600_000,
  });
  return { domain, txOff, ack, binding, upload, uploadSignature, params, deposit, statement };
}

function chainVectors(): object {
  const keys = chainKeys();
  const certificates = chainCertificates(keys);
  const m = chainMessages(keys, certificates);
  const { domain, txOff } = m;
  const state = { account: txOff.payment.payer, counter: txOff.payment.counter, balance: txOff.stateBalance };
  const ackBody = { payment: m.ack.payment, payee: m.ack.payee, ok: m.ack.ok };
  const typed = (structHash: Uint8Array) => ({ structHash: toHex(structHash), signingInput: toHex(signingInput(domain, structHash)), digest: toHex(typedDigest(domain, structHash)) });
  const signed = (name: string, signer: VectorKey, tag: string, value: { body: object; signature: Uint8Array }) => signedRecordJson(name, signer, tag, value.body, value.signature, value);
  return {
    source: `${GENERATED_SOURCE}: chain-tee (src/schemes/chain/typed-data.ts, tx-off.ts, messages.ts; certificates from src/pki/certificate.ts)`,
    keyDerivation: KEY_DERIVATION,
    signedRecord: SIGNED_RECORD,
    signatures:
      "Ed25519 (RFC 8032) for the bank's keys; ECDSA over secp256k1 for the enclave and account keys, over Keccak-256 of the signed bytes, " +
      'RFC 6979 deterministic nonces, low s, encoded r || s || v with v = 27 + recovery bit',
    typedData:
      "EIP-712: domain EIP712Domain(string name,string version,uint256 chainId,address verifyingContract); signingInput = 0x1901 || domainSeparator || structHash; digest = Keccak-256(signingInput), what the contract's ecrecover takes",
    addresses: 'an address is the last 20 bytes of Keccak-256 of the uncompressed secp256k1 public key without its 0x04 prefix',
    now: NOW,
    currency: CURRENCY,
    keys: keysJson(Object.values(keys)),
    addressOf: Object.fromEntries(Object.entries(keys).filter(([, k]) => k.signer.publicKey.suite === 'secp256k1').map(([name, k]) => [name, toHex(ethereumAddress(k.signer.publicKey))])),
    certificates: Object.entries(certificates).map(([name, certificate]) => certificateJson(name, keys[ISSUERS[name as keyof typeof ISSUERS]], certificate)),
    domain: { name: DOMAIN_NAME, version: DOMAIN_VERSION, chainId: Number(INPUTS.chainId), verifyingContract: INPUTS.contract, separator: toHex(domainSeparator(domain)) },
    state: { account: toHex(state.account), counter: Number(state.counter), balance: Number(state.balance), ...typed(stateHash(state)), signer: 'payerEnclave', signature: toHex(txOff.attestation), attestation: toHex(txOff.payment.attestation) },
    payment: {
      payer: toHex(txOff.payment.payer),
      payee: toHex(txOff.payment.payee),
      amount: Number(txOff.payment.amount),
      counter: Number(txOff.payment.counter),
      tGen: Number(txOff.payment.tGen),
      kind: txOff.payment.kind,
      enclave: toHex(txOff.payment.enclave),
      attestation: toHex(txOff.payment.attestation),
      ...typed(paymentHash(txOff.payment)),
      signer: 'payerAccount',
      signature: toHex(txOff.signature),
    },
    txOff: toHex(encodeCbor(txOff)),
    ack: { payment: toHex(ackBody.payment), payee: toHex(ackBody.payee), ok: ackBody.ok, ...typed(ackHash(ackBody)), signer: 'payeeAccount', signature: toHex(m.ack.signature), encoded: toHex(encodeCbor(m.ack)) },
    upload: {
      account: toHex(m.upload.account),
      itemsRule: 'items = Keccak-256 of, for each item in order, its payment struct hash || its ack status as a 32-byte word (none 0, win 1, fail 2)',
      itemStatuses: [ACK_STATUS.win],
      items: toHex(m.upload.items),
      ...typed(uploadHash(m.upload)),
      signer: 'payeeEnclave',
      signature: toHex(m.uploadSignature),
    },
    records: [
      signed('binding', keys.payeeEnclave, BINDING_TAG, m.binding),
      signed('params', keys.issuerNode, PARAMS_TAG, m.params),
      signed('deposit', keys.issuerNode, DEPOSIT_TAG, m.deposit),
      signed('statement', keys.issuerNode, STATEMENT_TAG, m.statement),
    ],
  };
}

/** chain-tee's generated files: path from the repository's root, and text. */
export function chainVectorFiles(): ReadonlyMap<string, string> {
  return new Map([['test-vectors/chain/payment.json', vectorText(chainVectors())]]);
}
