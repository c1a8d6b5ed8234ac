/** The EIP-712 hashes against viem's (the reference implementation the contract is also tested with). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hashTypedData, recoverTypedDataAddress, type Hex } from 'viem';
import { fromHex, toHex } from '../../core/bytes.ts';
import { ethereumAddress } from '../../core/crypto/ethereum.ts';
import { signerFromSecret, suiteFor } from '../../core/crypto/suite.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { CHAIN_TYPES } from './upload-fixtures.ts';
import {
  ackHash,
  attestationOf,
  paymentHash,
  signingInput,
  stateHash,
  typedDigest,
  uploadHash,
  uploadItems,
  type Domain,
  type Payment,
} from './typed-data.ts';

const hex = (b: Uint8Array): Hex => `0x${toHex(b)}`;
const contract = fromHex('5fbdb2315678afecb367f032d93f642f64180aa3');
const domain: Domain = { chainId: 31337n, contract };
const viemDomain = { name: 'Tally chain-tee', version: '1', chainId: 31337, verifyingContract: hex(contract) } as const;
const types = CHAIN_TYPES;

const suite = suiteFor(nodeProvider, 'secp256k1');
const payerKey = signerFromSecret(suite, fromHex('11'.repeat(32)));
const enclaveKey = signerFromSecret(suite, fromHex('22'.repeat(32)));
const payer = ethereumAddress(payerKey.publicKey);
const enclave = ethereumAddress(enclaveKey.publicKey);
const payee = fromHex('aa'.repeat(20));

function samplePayment(): Payment {
  return { payer, payee, amount: (1n << 100n) + 12345n, counter: 7n, tGen: 1_800_000_000n, kind: 0, enclave, attestation: fromHex('cd'.repeat(32)) };
}

test('the four struct digests are the ones viem computes', () => {
  const state = { account: payer, counter: 7n, balance: 99_999n };
  assert.equal(hex(typedDigest(domain, stateHash(state))), hashTypedData({ domain: viemDomain, types, primaryType: 'State', message: { account: hex(payer), counter: 7n, balance: 99_999n } }));
  const payment = samplePayment();
  const paymentMessage = { payer: hex(payer), payee: hex(payee), amount: payment.amount, counter: 7n, tGen: payment.tGen, kind: 0, enclave: hex(enclave), attestation: hex(payment.attestation) };
  assert.equal(hex(typedDigest(domain, paymentHash(payment))), hashTypedData({ domain: viemDomain, types, primaryType: 'Payment', message: paymentMessage }));
  for (const ok of [true, false]) {
    const ack = { payment: paymentHash(payment), payee, ok };
    assert.equal(hex(typedDigest(domain, ackHash(ack))), hashTypedData({ domain: viemDomain, types, primaryType: 'Ack', message: { payment: hex(ack.payment), payee: hex(payee), ok } }));
  }
  const items = uploadItems([
    { payment: paymentHash(payment), ack: 1 },
    { payment: paymentHash({ ...payment, counter: 8n }), ack: 0 },
  ]);
  assert.notDeepEqual(items, uploadItems([{ payment: paymentHash(payment), ack: 0 }, { payment: paymentHash({ ...payment, counter: 8n }), ack: 0 }]));
  assert.equal(hex(typedDigest(domain, uploadHash({ account: payer, items }))), hashTypedData({ domain: viemDomain, types, primaryType: 'Upload', message: { account: hex(payer), items: hex(items) } }));
});

test('a signature by the secp256k1 suite over the signing input recovers to the signer, as ecrecover will', async () => {
  const payment = samplePayment();
  const signature = payerKey.sign(signingInput(domain, paymentHash(payment)));
  const recovered = await recoverTypedDataAddress({
    domain: viemDomain,
    types,
    primaryType: 'Payment',
    message: { payer: hex(payer), payee: hex(payee), amount: payment.amount, counter: 7n, tGen: payment.tGen, kind: 0, enclave: hex(enclave), attestation: hex(payment.attestation) },
    signature: hex(signature),
  });
  assert.equal(recovered.toLowerCase(), hex(payer));
  assert.equal(attestationOf(signature).length, 32);
});

test('every field changes the digest; values beyond their width are refused', () => {
  const base = samplePayment();
  const digest = toHex(paymentHash(base));
  const variants: Payment[] = [
    { ...base, payer: payee },
    { ...base, payee: payer },
    { ...base, amount: base.amount + 1n },
    { ...base, counter: 8n },
    { ...base, tGen: base.tGen + 1n },
    { ...base, kind: 1 },
    { ...base, enclave: payer },
    { ...base, attestation: fromHex('ce'.repeat(32)) },
  ];
  for (const variant of variants) assert.notEqual(toHex(paymentHash(variant)), digest);
  assert.throws(() => paymentHash({ ...base, amount: 1n << 128n }), /amount: expected a uint128/);
  assert.throws(() => paymentHash({ ...base, counter: -1n }), /counter: expected a uint64/);
  assert.throws(() => paymentHash({ ...base, payee: new Uint8Array(19) }), /payee: expected 20 bytes, got 19/);
  assert.throws(() => attestationOf(new Uint8Array(64)), /expected 65 bytes, got 64/);
  assert.throws(() => uploadItems([{ payment: new Uint8Array(31), ack: 0 }]), /items\[0\]\.payment: expected 32 bytes/);
});
