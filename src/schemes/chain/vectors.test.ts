/**
 * chain-tee's known-answer vectors (test-vectors/chain/, docs/test-vectors.md): every key,
 * certificate and CBOR signed record is checked from the bare steps (vectors-fixtures.ts); the
 * EIP-712 hashes are recomputed here word by word with Keccak-256, the addresses from the
 * uncompressed keys, each secp256k1 signature verified and recovered to its signer's address and
 * signed again to the same bytes; then the protocol code takes the file's bytes (checkTxOff,
 * checkAck, the codecs, checkSigned of the node's receipts) and refuses them with a byte changed;
 * and the file is what the generator writes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { concatBytes, fromHex, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { array, boolean, literal, record, uint, type Codec } from '../../core/codec.ts';
import { nobleProvider, nobleSecp256k1 } from '../../core/crypto/noble.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { Refused } from '../../secure-element/trusted-app.ts';
import { bareVerify, certificateRecordCodec, checkGenerated, checkKeys, checkSignedRecord, flipped, hex, keysCodec, publicKeyOf, readVectors, signedRecordCodec, words, type KeyJson } from '../vectors-fixtures.ts';
import { ackCodec, BINDING_TAG, bindingBodyCodec, checkSigned, DEPOSIT_TAG, depositBodyCodec, PARAMS_TAG, paramsBodyCodec, signedCodec, STATEMENT_TAG, statementBodyCodec, txOffCodec } from './messages.ts';
import { checkAck, checkTxOff, type CheckContext } from './tx-off.ts';
import { chainVectorFiles } from './vectors.ts';

const n = uint({ max: Number.MAX_SAFE_INTEGER });
const typed = { structHash: hex(32), signingInput: hex(66), digest: hex(32) };
const file = readVectors(
  'test-vectors/chain/payment.json',
  record({
    source: words,
    keyDerivation: words,
    signedRecord: words,
    signatures: words,
    typedData: words,
    addresses: words,
    now: n,
    currency: words,
    keys: keysCodec,
    addressOf: record({ payerEnclave: hex(20), payerAccount: hex(20), payeeEnclave: hex(20), payeeAccount: hex(20) }),
    certificates: array(certificateRecordCodec, { min: 5, max: 5 }),
    domain: record({ name: words, version: words, chainId: n, verifyingContract: hex(20), separator: hex(32) }),
    state: record({ account: hex(20), counter: n, balance: n, ...typed, signer: literal('payerEnclave'), signature: hex(65), attestation: hex(32) }),
    payment: record({ payer: hex(20), payee: hex(20), amount: n, counter: n, tGen: n, kind: n, enclave: hex(20), attestation: hex(32), ...typed, signer: literal('payerAccount'), signature: hex(65) }),
    txOff: hex(8192),
    ack: record({ payment: hex(32), payee: hex(20), ok: boolean, ...typed, signer: literal('payeeAccount'), signature: hex(65), encoded: hex(256) }),
    upload: record({ account: hex(20), itemsRule: words, itemStatuses: array(uint({ max: 2 }), { max: 64 }), items: hex(32), ...typed, signer: literal('payeeEnclave'), signature: hex(65) }),
    records: array(signedRecordCodec, { min: 4, max: 4 }),
  }),
);

// The bare EIP-712 steps, from the standard, with Keccak-256 straight from @noble/hashes.
const keccak = (data: Uint8Array): Uint8Array => keccak_256(data);
const typeHash = (type: string) => keccak(utf8(type));
const word = (value: bigint | number | boolean): Uint8Array => {
  const out = new Uint8Array(32);
  let v = BigInt(value);
  for (let i = 31; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
};
const addressWord = (address: string): Uint8Array => concatBytes(new Uint8Array(12), fromHex(address));
const key = (name: string): KeyJson => file.keys[name] ?? assert.fail(name);
const addressOf = (k: KeyJson): string => toHex(keccak(secp256k1.Point.fromHex(k.publicKey).toBytes(false).subarray(1)).subarray(12));
const certificate = (name: string) => decodeCertificate(fromHex((file.certificates.find((c) => c.name === name) ?? assert.fail(name)).message));

function checkTyped(what: string, v: { structHash: string; signingInput: string; digest: string; signer: string; signature: string }, structHash: Uint8Array): void {
  assert.equal(toHex(structHash), v.structHash, `${what}: struct hash`);
  assert.equal(v.signingInput, `1901${file.domain.separator}${v.structHash}`, `${what}: signing input`);
  assert.equal(toHex(keccak(fromHex(v.signingInput))), v.digest, `${what}: digest`);
  const signer = key(v.signer);
  const signature = fromHex(v.signature);
  assert.equal(bareVerify(signer, signature, fromHex(v.signingInput)), true, `${what}: the signature verifies and recovers its signer`);
  const recovered = secp256k1.Signature.fromBytes(signature.subarray(0, 64), 'compact').addRecoveryBit((signature[64] as number) - 27).recoverPublicKey(fromHex(v.digest));
  assert.equal(addressOf({ ...signer, publicKey: toHex(recovered.toBytes(true)) }), file.addressOf[v.signer as keyof typeof file.addressOf], `${what}: ecrecover gives the signer's address`);
  assert.equal(toHex(nobleSecp256k1.sign(fromHex(signer.secretKey), fromHex(v.signingInput))), v.signature, `${what}: signing again gives the same signature (RFC 6979)`);
  assert.equal(bareVerify(signer, signature, flipped(fromHex(v.signingInput), 40)), false, `${what}: refused over a changed byte`);
}

const context = (): CheckContext => ({
  provider: nobleProvider,
  domain: { chainId: BigInt(file.domain.chainId), contract: fromHex(file.domain.verifyingContract) },
  root: certificate('root'),
  intermediary: certificate('intermediary'),
  banks: [],
  revoked: [],
  now: file.now,
});
const refused = (code: string) => (e: unknown) => e instanceof Refused && e.code === code;

describe('test vectors: chain/payment.json', () => {
  it('is what the generator writes, and test-vectors/chain/ holds nothing else', () => {
    checkGenerated('test-vectors/chain', chainVectorFiles());
  });

  it('every key comes from its label, every address from its key; certificates and CBOR records check from the bare steps', () => {
    checkKeys(file.keys);
    for (const [name, address] of Object.entries(file.addressOf)) assert.equal(addressOf(key(name)), address, name);
    for (const c of file.certificates) checkSignedRecord(c, file.keys);
    for (const r of file.records) checkSignedRecord(r, file.keys);
    for (const name of ['payerEnclave', 'payeeEnclave', 'issuerNode']) {
      const chain = verifyChain({ provider: nobleProvider, chain: [certificate(name), certificate('intermediary')], trustAnchors: [certificate('root')], now: file.now });
      assert.deepEqual(chain.subject, publicKeyOf(key(name)));
    }
  });

  it('the EIP-712 domain, state, payment, ack and upload hash word by word; each signature recovers its signer', () => {
    const d = file.domain;
    const separator = keccak(concatBytes(typeHash('EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)'), keccak(utf8(d.name)), keccak(utf8(d.version)), word(d.chainId), addressWord(d.verifyingContract)));
    assert.equal(toHex(separator), d.separator);
    const s = file.state;
    checkTyped('state', s, keccak(concatBytes(typeHash('State(address account,uint64 counter,uint128 balance)'), addressWord(s.account), word(s.counter), word(s.balance))));
    assert.equal(toHex(keccak(fromHex(s.signature))), s.attestation, 'the attestation is Keccak-256 of σ_att');
    const p = file.payment;
    const paymentType = typeHash('Payment(address payer,address payee,uint128 amount,uint64 counter,uint64 tGen,uint8 kind,address enclave,bytes32 attestation)');
    checkTyped('payment', p, keccak(concatBytes(paymentType, addressWord(p.payer), addressWord(p.payee), word(p.amount), word(p.counter), word(p.tGen), word(p.kind), addressWord(p.enclave), fromHex(p.attestation))));
    assert.equal(p.attestation, s.attestation);
    assert.equal(p.payer, file.addressOf.payerAccount);
    assert.equal(p.enclave, file.addressOf.payerEnclave);
    const a = file.ack;
    assert.equal(a.payment, p.structHash, 'the ack names the payment by its struct hash');
    checkTyped('ack', a, keccak(concatBytes(typeHash('Ack(bytes32 payment,address payee,bool ok)'), fromHex(a.payment), addressWord(a.payee), word(a.ok))));
    const u = file.upload;
    assert.equal(toHex(keccak(concatBytes(fromHex(p.structHash), word(u.itemStatuses[0] ?? 0)))), u.items);
    checkTyped('upload', u, keccak(concatBytes(typeHash('Upload(address account,bytes32 items)'), addressWord(u.account), fromHex(u.items))));
  });

  it("the payee's TEE takes tx_off (checkTxOff), and refuses it with a byte changed", () => {
    const txOff = txOffCodec.decode(decodeCbor(fromHex(file.txOff)));
    assert.equal(toHex(encodeCbor(txOff)), file.txOff);
    assert.equal(toHex(txOff.signature), file.payment.signature);
    assert.equal(toHex(txOff.attestation), file.state.signature);
    assert.equal(toHex(txOff.payerKey), key('payerAccount').publicKey);
    checkTxOff(context(), txOff);
    const invalid = refused('CHAIN_TX_INVALID');
    assert.throws(() => checkTxOff(context(), { ...txOff, payment: { ...txOff.payment, amount: txOff.payment.amount + 1n } }), invalid);
    assert.throws(() => checkTxOff(context(), { ...txOff, payment: { ...txOff.payment, payee: flipped(txOff.payment.payee, 19) } }), invalid);
    assert.throws(() => checkTxOff(context(), { ...txOff, signature: flipped(txOff.signature, 10) }), invalid);
    assert.throws(() => checkTxOff(context(), { ...txOff, stateBalance: txOff.stateBalance + 1n }), invalid);
    assert.throws(() => checkTxOff(context(), { ...txOff, payment: { ...txOff.payment, tGen: txOff.payment.tGen + 1n } }), invalid);
    assert.throws(() => checkTxOff({ ...context(), domain: { ...context().domain, chainId: context().domain.chainId + 1n } }, txOff), invalid);
    assert.throws(() => checkTxOff({ ...context(), revoked: [fromHex(file.addressOf.payerEnclave)] }, txOff), invalid);
  });

  it("the payer's TEE takes the ack (checkAck), and refuses one changed or from another account", () => {
    const txOff = txOffCodec.decode(decodeCbor(fromHex(file.txOff)));
    const ack = ackCodec.decode(decodeCbor(fromHex(file.ack.encoded)));
    checkAck(nobleProvider, context().domain, txOff.payment, ack);
    const invalid = refused('CHAIN_ACK_INVALID');
    assert.throws(() => checkAck(nobleProvider, context().domain, txOff.payment, { ...ack, ok: false }), invalid);
    assert.throws(() => checkAck(nobleProvider, context().domain, txOff.payment, { ...ack, signature: flipped(ack.signature, 3) }), invalid);
    assert.throws(() => checkAck(nobleProvider, context().domain, { ...txOff.payment, payee: fromHex(file.addressOf.payeeEnclave) }, ack), invalid);
  });

  it("the binding and the node's receipts decode and checkSigned takes them, not with a byte changed", () => {
    const cases: [string, Codec<unknown>, string, string][] = [
      ['binding', bindingBodyCodec, BINDING_TAG, 'payeeEnclave'],
      ['params', paramsBodyCodec, PARAMS_TAG, 'issuerNode'],
      ['deposit', depositBodyCodec, DEPOSIT_TAG, 'issuerNode'],
      ['statement', statementBodyCodec, STATEMENT_TAG, 'issuerNode'],
    ];
    for (const [name, body, tag, signer] of cases) {
      const message = (file.records.find((r) => r.name === name) ?? assert.fail(name)).message;
      const value = signedCodec(body).decode(decodeCbor(fromHex(message)));
      assert.equal(toHex(encodeCbor(value)), message);
      checkSigned(nobleProvider, publicKeyOf(key(signer)), body, tag, value);
      assert.throws(() => checkSigned(nobleProvider, publicKeyOf(key(signer)), body, tag, { ...value, signature: flipped(value.signature, 5) }), name);
      assert.throws(() => checkSigned(nobleProvider, publicKeyOf(key('payerEnclave')), body, tag, value), name);
    }
    const binding = signedCodec(bindingBodyCodec).decode(decodeCbor(fromHex(file.records[0]?.message ?? '')));
    assert.equal(toHex(binding.body.account), file.addressOf.payeeAccount, "the binding names the payee's account");
  });
});
