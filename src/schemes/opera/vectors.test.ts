/**
 * OPERA's known-answer vectors (test-vectors/opera/, docs/test-vectors.md): every key, certificate
 * and signed record is checked from the bare steps (vectors-fixtures.ts), then the protocol code
 * takes the file's bytes (checkToken, the codecs and checkSigned of each record, odwSerial, the
 * mount's derivations and otk.ts opening the two boxes) and refuses them with a byte changed; and
 * the file is what the generator writes.
 */
import assert from 'node:assert/strict';
import { createHash, hkdfSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { concatBytes, fromHex, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { array, record, uint, type Codec } from '../../core/codec.ts';
import { nobleProvider } from '../../core/crypto/noble.ts';
import { isTallyError } from '../../core/errors.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { certificateRecordCodec, checkGenerated, checkKeys, checkSignedRecord, flipped, hex, keysCodec, publicKeyOf, readVectors, sha256Hex, signedRecordCodec, words } from '../vectors-fixtures.ts';
import { chainMessageCodec } from './exchange.ts';
import {
  ACCEPT_TAG,
  CHARGE_REQUEST_TAG,
  CHARGE_TAG,
  chargeBodyCodec,
  chargeCodec,
  chargeRequestBodyCodec,
  chargeRequestCodec,
  checkSigned,
  DEPOSIT_RECEIPT_TAG,
  DEPOSIT_REQUEST_TAG,
  depositReceiptBodyCodec,
  depositReceiptCodec,
  depositRequestBodyCodec,
  depositRequestCodec,
  odwSerial,
  PARAMS_TAG,
  paramsBodyCodec,
  paramsCodec,
  RELEASE_TAG,
  SETTLE_REPORT_TAG,
  SETTLED_TAG,
  settledBodyCodec,
  settledCodec,
  settleReportBodyCodec,
  settleReportCodec,
  signatureCodec,
  transferClaimCodec,
} from './messages.ts';
import { firstOtk, helloKey, mountSeed, nextOtk, openMessage, openToken } from './otk.ts';
import { checkToken, tokenCodec } from './token.ts';
import { operaVectorFiles } from './vectors.ts';

const time = uint({ max: Number.MAX_SAFE_INTEGER });
const file = readVectors(
  'test-vectors/opera/transaction.json',
  record({
    source: words,
    keyDerivation: words,
    signedRecord: words,
    signatures: words,
    now: time,
    currency: words,
    keys: keysCodec,
    certificates: array(certificateRecordCodec, { min: 3, max: 3 }),
    serials: record({ rule: words, payerDevice: hex(16), payeeDevice: hex(16) }),
    records: array(signedRecordCodec, { min: 11, max: 11 }),
    mount: record({
      rule: words,
      boxNote: words,
      shared: hex(32),
      handshakeHash: hex(64),
      payerEphemeral: hex(32),
      payeeEphemeral: hex(32),
      seed: hex(32),
      payerHelloKey: hex(32),
      payeeHelloKey: hex(32),
      otk0: hex(32),
      otk0Sha1: hex(20),
      message: hex(256),
      otk1: hex(32),
      boxKey: hex(32),
      messageIndex: time,
      messageSender: words,
      messageContext: hex(64),
      boxNonce: hex(24),
      messageBox: hex(512),
      ptk: hex(32),
      txid: hex(16),
      tokenCounter: time,
      token: hex(512),
      tokenContext: hex(64),
      tokenBox: hex(512),
    }),
  }),
);

const recordNamed = (name: string) => file.records.find((r) => r.name === name) ?? assert.fail(name);
const key = (name: string) => publicKeyOf(file.keys[name] ?? assert.fail(name));
const certificate = (name: string) => decodeCertificate(fromHex((file.certificates.find((c) => c.name === name) ?? assert.fail(name)).message));
const decoded = <T>(codec: Codec<T>, name: string): T => codec.decode(decodeCbor(fromHex(recordNamed(name).message)), name);

describe('test vectors: opera/transaction.json', () => {
  it('is what the generator writes, and test-vectors/opera/ holds nothing else', () => {
    checkGenerated('test-vectors/opera', operaVectorFiles());
  });

  it('every key comes from its label; every certificate and signed record checks from the bare steps', () => {
    checkKeys(file.keys);
    for (const c of file.certificates) checkSignedRecord(c, file.keys);
    for (const r of file.records) checkSignedRecord(r, file.keys);
    const node = verifyChain({ provider: nobleProvider, chain: [certificate('issuerNode'), certificate('intermediary')], trustAnchors: [certificate('root')], now: file.now });
    assert.deepEqual(node.subject, key('issuerNode'), "the bank's token key is its certified issuer-node key");
  });

  it("checkToken takes each token under the bank's key, and refuses it changed or in another currency", () => {
    const bank = key('issuerNode');
    for (const name of ['token 0', 'token 1']) {
      const token = decoded(tokenCodec, name);
      assert.equal(checkToken(nobleProvider, bank, file.currency, token).value, token.body.value);
      const refused = (e: unknown) => isTallyError(e, 'OPERA_TOKEN_INVALID');
      assert.throws(() => checkToken(nobleProvider, bank, file.currency, { ...token, body: { ...token.body, value: token.body.value + 1n } }), refused);
      assert.throws(() => checkToken(nobleProvider, bank, file.currency, { ...token, signature: flipped(token.signature, 4) }), refused);
      assert.throws(() => checkToken(nobleProvider, bank, 'USD', token), refused);
      assert.throws(() => checkToken(nobleProvider, key('payerDevice'), file.currency, token), refused);
    }
  });

  it('each signed record decodes by its wire codec, and checkSigned takes it under its signer, not changed or under another key', () => {
    const cases: [string, Codec<{ body: unknown; signature: Uint8Array }>, Codec<unknown>, string, string][] = [
      ['params', paramsCodec, paramsBodyCodec, PARAMS_TAG, 'issuerNode'],
      ['charge request', chargeRequestCodec, chargeRequestBodyCodec, CHARGE_REQUEST_TAG, 'payerDevice'],
      ['charge', chargeCodec, chargeBodyCodec, CHARGE_TAG, 'issuerNode'],
      ['settle report', settleReportCodec, settleReportBodyCodec, SETTLE_REPORT_TAG, 'payerDevice'],
      ['settled', settledCodec, settledBodyCodec, SETTLED_TAG, 'issuerNode'],
      ['deposit request', depositRequestCodec, depositRequestBodyCodec, DEPOSIT_REQUEST_TAG, 'payeeDevice'],
      ['deposit receipt', depositReceiptCodec, depositReceiptBodyCodec, DEPOSIT_RECEIPT_TAG, 'issuerNode'],
    ];
    const refused = (e: unknown) => isTallyError(e, 'SIGNATURE_INVALID');
    for (const [name, wire, body, tag, signer] of cases) {
      const value = decoded(wire, name);
      assert.equal(toHex(encodeCbor(value)), recordNamed(name).message, `${name}: re-encodes to the same bytes`);
      checkSigned(nobleProvider, key(signer), body, tag, value);
      assert.throws(() => checkSigned(nobleProvider, key(signer), body, tag, { ...value, signature: flipped(value.signature, 2) }), refused, name);
      assert.throws(() => checkSigned(nobleProvider, key(signer === 'issuerNode' ? 'payerDevice' : 'issuerNode'), body, tag, value), refused, name);
      assert.throws(() => checkSigned(nobleProvider, key(signer), body, tag === PARAMS_TAG ? CHARGE_TAG : PARAMS_TAG, value), refused, `${name}: under another tag`);
    }
  });

  it('the release and the accept sign the same claim, naming both ODWs by their serial numbers', () => {
    assert.equal(toHex(odwSerial(key('payerDevice'))), file.serials.payerDevice);
    assert.equal(toHex(odwSerial(key('payeeDevice'))), file.serials.payeeDevice);
    assert.equal(sha256Hex(fromHex(file.keys.payeeDevice?.publicKey ?? '')).slice(0, 32), file.serials.payeeDevice);
    const claimRecord = record({ body: transferClaimCodec, signature: signatureCodec });
    const release = decoded(claimRecord, 'release');
    const accept = decoded(claimRecord, 'accept');
    assert.deepEqual(release.body, accept.body);
    assert.equal(toHex(release.body.payer), file.serials.payerDevice);
    assert.equal(toHex(release.body.payee), file.serials.payeeDevice);
    assert.equal(toHex(release.body.txid), file.mount.txid);
    checkSigned(nobleProvider, key('payerDevice'), transferClaimCodec, RELEASE_TAG, release);
    checkSigned(nobleProvider, key('payeeDevice'), transferClaimCodec, ACCEPT_TAG, accept);
    const refused = (e: unknown) => isTallyError(e, 'SIGNATURE_INVALID');
    assert.throws(() => checkSigned(nobleProvider, key('payerDevice'), transferClaimCodec, ACCEPT_TAG, release), refused, 'a release is no accept');
    assert.throws(() => checkSigned(nobleProvider, key('payerDevice'), transferClaimCodec, RELEASE_TAG, { ...release, body: { ...release.body, amount: release.body.amount - 1n } }), refused);
    const report = decoded(settleReportCodec, 'settle report');
    assert.deepEqual(report.body.txid, release.body.txid, 'the settlement report names the transaction');
  });

  it('the mount: SEED, hello keys and the OTK chain from the bare steps; otk.ts opens both boxes and refuses them moved', () => {
    const m = file.mount;
    const seedInfo = concatBytes(utf8('tally/opera/seed/v1\0'), fromHex(m.payerEphemeral), fromHex(m.payeeEphemeral));
    const seed = new Uint8Array(hkdfSync('sha256', fromHex(m.shared), fromHex(m.handshakeHash), seedInfo, 32));
    assert.equal(toHex(seed), m.seed);
    assert.equal(toHex(mountSeed(fromHex(m.shared), fromHex(m.handshakeHash), fromHex(m.payerEphemeral), fromHex(m.payeeEphemeral))), m.seed);
    assert.equal(toHex(new Uint8Array(hkdfSync('sha256', seed, new Uint8Array(0), utf8('tally/opera/hello/v1\0payer'), 32))), m.payerHelloKey);
    assert.equal(toHex(helloKey(seed, 'payee')), m.payeeHelloKey);
    assert.equal(sha256Hex(seed), m.otk0);
    assert.equal(createHash('sha1').update(seed).digest('hex'), m.otk0Sha1);
    assert.equal(toHex(firstOtk('sha1', seed)), m.otk0Sha1);
    assert.equal(sha256Hex(concatBytes(fromHex(m.otk0), fromHex(m.message))), m.otk1);
    assert.equal(toHex(nextOtk('sha256', fromHex(m.otk0), fromHex(m.message))), m.otk1);
    const message = chainMessageCodec.decode(decodeCbor(fromHex(m.message)));
    assert.equal(message.msg, '2-1');
    assert.equal(toHex(new Uint8Array(hkdfSync('sha256', fromHex(m.otk0), new Uint8Array(0), utf8('tally/opera/otk-box/v1'), 32))), m.boxKey);
    assert.equal(toHex(utf8(`tally/opera/message/v1\0${m.messageIndex}\0${m.messageSender}`)), m.messageContext);
    assert.equal(m.messageBox.slice(0, 48), m.boxNonce, 'a box starts with its nonce');

    const opened = openMessage(fromHex(m.otk0), m.messageIndex, 'payer', fromHex(m.messageBox));
    assert.equal(toHex(opened), m.message);
    const aeadFailed = (e: unknown) => isTallyError(e, 'AEAD_FAILED');
    assert.throws(() => openMessage(fromHex(m.otk1), m.messageIndex, 'payer', fromHex(m.messageBox)), aeadFailed);
    assert.throws(() => openMessage(fromHex(m.otk0), m.messageIndex + 1, 'payer', fromHex(m.messageBox)), aeadFailed);
    assert.throws(() => openMessage(fromHex(m.otk0), m.messageIndex, 'payee', fromHex(m.messageBox)), aeadFailed);
    assert.throws(() => openMessage(fromHex(m.otk0), m.messageIndex, 'payer', flipped(fromHex(m.messageBox), 30)), aeadFailed);

    assert.equal(toHex(concatBytes(utf8(`tally/opera/token-box/v1\0${m.tokenCounter}\0`), fromHex(m.txid))), m.tokenContext);
    assert.equal(toHex(openToken(fromHex(m.ptk), fromHex(m.txid), m.tokenCounter, fromHex(m.tokenBox))), m.token);
    assert.equal(m.token, recordNamed('token 0').message, 'the sealed token is token 0');
    assert.throws(() => openToken(fromHex(m.ptk), fromHex(m.txid), m.tokenCounter + 1, fromHex(m.tokenBox)), aeadFailed);
    assert.throws(() => openToken(fromHex(m.ptk), fromHex(m.txid), m.tokenCounter, fromHex(m.tokenBox), 'change'), aeadFailed);
    assert.throws(() => openToken(flipped(fromHex(m.ptk)), fromHex(m.txid), m.tokenCounter, fromHex(m.tokenBox)), aeadFailed);
  });
});
