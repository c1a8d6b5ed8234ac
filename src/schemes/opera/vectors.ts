/**
 * OPERA's known-answer vectors (test-vectors/opera/, docs/test-vectors.md): the bank's certificate
 * chain from fixed keys, its signed parameters, two tokens it signs, their charge into the payer's
 * ODW, the Stage 3 release and accept of a transaction paying them to another ODW, the payer's
 * settlement report and the bank's answer, the payee's deposit and its receipt; and the derivations
 * of §3.3.1 (the mount's SEED, the hello keys, the one-time-key chain, the ODW serial numbers) with
 * one sealed chain message and one sealed token. Pure.
 *
 * A sealed box draws its 24-byte nonce at random (core aeadSeal); here the nonce is fixed and the
 * box made from the bare steps (HKDF-SHA-256 of the OTK, XChaCha20-Poly1305 with the message's
 * context as associated data), and vectors.test.ts checks that otk.ts opens it.
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { concatBytes, fromHex, toHex, utf8 } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { hkdf } from '../../core/crypto/hash.ts';
import { deriveKeyPair } from '../../core/crypto/hpke.ts';
import { nobleEd25519 } from '../../core/crypto/noble-ed25519.ts';
import { signedWith } from '../../core/crypto/record.ts';

import { certificateJson, GENERATED_SOURCE, KEY_DERIVATION, keysJson, SIGNED_RECORD, signedRecordJson, vectorKey, vectorText, type VectorKey, vectorCertificate, NOW } from '../../pki/vectors.ts';
import {
  ACCEPT_TAG,
  CHARGE_REQUEST_TAG,
  CHARGE_TAG,
  chargeBodyCodec,
  chargeRequestBodyCodec,
  DEPOSIT_RECEIPT_TAG,
  DEPOSIT_REQUEST_TAG,
  depositReceiptBodyCodec,
  depositRequestBodyCodec,
  odwSerial,
  PARAMS_TAG,
  paramsBodyCodec,
  RELEASE_TAG,
  SETTLE_REPORT_TAG,
  SETTLED_TAG,
  settledBodyCodec,
  settleReportBodyCodec,
  transferClaimCodec,
} from './messages.ts';
import { firstOtk, helloKey, mountSeed, nextOtk } from './otk.ts';
import { signToken, TOKEN_TAG, type Token } from './token.ts';

export { NOT_AFTER, NOT_BEFORE, NOW } from '../../pki/vectors.ts';
export const CURRENCY = 'EUR';

/** The fixed inputs: nonces, the transaction id, the token serials and values, the mount's agreement. */
export const INPUTS = {
  txid: '7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a',
  chargeNonce: 'c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1',
  settleNonce: 'c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2',
  depositNonce: 'c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3',
  tokens: [
    { serial: '10101010101010101010101010101010', value: 1_000n },
    { serial: '20202020202020202020202020202020', value: 500n },
  ],
  escrowIkm: 'e5'.repeat(32),
  shared: '5a'.repeat(32),
  handshakeHash: '4b'.repeat(64),
  payerEphemeral: 'a1'.repeat(32),
  payeeEphemeral: 'b2'.repeat(32),
  /** N_A of Msg 2-1. */
  nonceA: 'd4'.repeat(16),
  boxNonce: '0f'.repeat(24),
  ptk: '7e'.repeat(32),
} as const;

const key = (name: string) => vectorKey(nobleEd25519, name, `tally/vectors/opera/${name}`);

/** The keys, every one Ed25519: the bank's token key is its issuer node's; each ODW signs with its device key. */
export function operaKeys() {
  return { root: key('root'), intermediary: key('intermediary'), issuerNode: key('issuerNode'), payerDevice: key('payerDevice'), payeeDevice: key('payeeDevice') };
}

const certify = vectorCertificate;

/** The chain of the bank's token key: root → intermediary → issuer node. */
export function operaCertificates(keys = operaKeys()) {
  return {
    root: certify(keys.root, 'root', 'root', keys.root, 1, { name: 'Central Bank' }),
    intermediary: certify(keys.root, 'root', 'intermediary', keys.intermediary, 2, { name: 'Bank A', currency: CURRENCY }),
    issuerNode: certify(keys.intermediary, 'intermediary', 'issuer-node', keys.issuerNode, 3, { name: 'Bank A node', scheme: 'opera' }),
  };
}

export const ISSUERS = { root: 'root', intermediary: 'root', issuerNode: 'intermediary' } as const;

/** A box as core aeadSeal makes it, with a fixed nonce: nonce ‖ XChaCha20-Poly1305(key, nonce, aad).encrypt(plaintext). */
export function boxWithNonce(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, associatedData: Uint8Array): Uint8Array {
  return concatBytes(nonce, xchacha20poly1305(key, nonce, associatedData).encrypt(plaintext));
}

/** The signed records, made by the protocol code. */
export function operaMessages(keys = operaKeys()) {
  const bank = keys.issuerNode.signer;
  const tokens: Token[] = INPUTS.tokens.map((t) => signToken(bank, { serial: fromHex(t.serial), value: t.value, currency: CURRENCY, issued: NOW - 86_400_000 }));
  const amount = INPUTS.tokens.reduce((s, t) => s + t.value, 0n);
  const params = signedWith(paramsBodyCodec, bank, PARAMS_TAG, { currency: CURRENCY, denominations: [100n, 500n, 1_000n], hash: 'sha256', makers: [], escrowKey: deriveKeyPair(fromHex(INPUTS.escrowIkm)).publicKey, at: NOW - 86_400_000 });
  const chargeRequest = signedWith(chargeRequestBodyCodec, keys.payerDevice.signer, CHARGE_REQUEST_TAG, { nonce: fromHex(INPUTS.chargeNonce), amount, tokens: [{ value: 500n, count: 1 }, { value: 1_000n, count: 1 }] });
  const charge = signedWith(chargeBodyCodec, bank, CHARGE_TAG, { nonce: fromHex(INPUTS.chargeNonce), tokens });
  const payer = odwSerial(keys.payerDevice.signer.publicKey);
  const payee = odwSerial(keys.payeeDevice.signer.publicKey);
  const claim = { txid: fromHex(INPUTS.txid), payer, payee, amount, count: tokens.length };
  const release = signedWith(transferClaimCodec, keys.payerDevice.signer, RELEASE_TAG, claim);
  const accept = signedWith(transferClaimCodec, keys.payeeDevice.signer, ACCEPT_TAG, claim);
  const report = signedWith(settleReportBodyCodec, keys.payerDevice.signer, SETTLE_REPORT_TAG, {
    nonce: fromHex(INPUTS.settleNonce),
    txid: claim.txid,
    mode: 'send',
    self: payer,
    partner: payee,
    amount,
    count: tokens.length,
    done: tokens.length,
    flag: 0,
    released: 1,
    accepted: 0,
    tokens,
  });
  const settled = signedWith(settledBodyCodec, bank, SETTLED_TAG, { nonce: fromHex(INPUTS.settleNonce), txid: claim.txid, outcome: 'pending', credited: 0n });
  const depositRequest = signedWith(depositRequestBodyCodec, keys.payeeDevice.signer, DEPOSIT_REQUEST_TAG, { nonce: fromHex(INPUTS.depositNonce), tokens });
  const depositReceipt = signedWith(depositReceiptBodyCodec, bank, DEPOSIT_RECEIPT_TAG, {
    nonce: fromHex(INPUTS.depositNonce),
    tokens: tokens.map((t) => ({ serial: t.body.serial, outcome: 'credited' as const })),
    credited: amount,
  });
  return { tokens, amount, params, chargeRequest, charge, claim, release, accept, report, settled, depositRequest, depositReceipt };
}

/** The mount's derivations and two sealed boxes, from the fixed inputs. */
export function operaMount() {
  const seed = mountSeed(fromHex(INPUTS.shared), fromHex(INPUTS.handshakeHash), fromHex(INPUTS.payerEphemeral), fromHex(INPUTS.payeeEphemeral));
  const otk0 = firstOtk('sha256', seed);
  // Msg 2-1 (exchange.ts), the first message of the OTK chain: sealed under OTK_0; OTK_1 follows from its plaintext.
  const message = encodeCbor({ msg: '2-1', txid: fromHex(INPUTS.txid), amount: INPUTS.tokens.reduce((s, t) => s + t.value, 0n), count: INPUTS.tokens.length, nonce: fromHex(INPUTS.nonceA) });
  const otk1 = nextOtk('sha256', otk0, message);
  const boxKey = hkdf({ ikm: otk0, info: 'tally/opera/otk-box/v1', length: 32 });
  const messageContext = utf8('tally/opera/message/v1\u00000\u0000payer');
  const messageBox = boxWithNonce(boxKey, fromHex(INPUTS.boxNonce), message, messageContext);
  const { tokens } = operaMessages();
  const token = encodeCbor(tokens[0]);
  const tokenContext = concatBytes(utf8('tally/opera/token-box/v1\u00000\u0000'), fromHex(INPUTS.txid));
  const tokenBox = boxWithNonce(fromHex(INPUTS.ptk), fromHex(INPUTS.boxNonce), token, tokenContext);
  return {
    seed,
    payerHelloKey: helloKey(seed, 'payer'),
    payeeHelloKey: helloKey(seed, 'payee'),
    otk0,
    otk0Sha1: firstOtk('sha1', seed),
    otk1,
    message,
    boxKey,
    messageContext,
    messageBox,
    token,
    tokenContext,
    tokenBox,
  };
}

function operaVectors(): object {
  const keys = operaKeys();
  const certificates = operaCertificates(keys);
  const m = operaMessages(keys);
  const mount = operaMount();
  const signed = (name: string, signer: VectorKey, tag: string, value: { body: object; signature: Uint8Array }) => signedRecordJson(name, signer, tag, value.body, value.signature, value);
  return {
    source: `${GENERATED_SOURCE}: OPERA (src/schemes/opera/token.ts, messages.ts, otk.ts, serial.ts; certificates from src/pki/certificate.ts)`,
    keyDerivation: KEY_DERIVATION,
    signedRecord: SIGNED_RECORD,
    signatures: 'Ed25519 (RFC 8032), deterministic',
    now: NOW,
    currency: CURRENCY,
    keys: keysJson(Object.values(keys)),
    certificates: Object.entries(certificates).map(([name, certificate]) => certificateJson(name, keys[ISSUERS[name as keyof typeof ISSUERS]], certificate)),
    serials: { rule: 'SN = the first 16 bytes of SHA-256 of the device public key', payerDevice: toHex(m.claim.payer), payeeDevice: toHex(m.claim.payee) },
    records: [
      signed('params', keys.issuerNode, PARAMS_TAG, m.params),
      ...m.tokens.map((t, i) => signedRecordJson(`token ${i}`, keys.issuerNode, TOKEN_TAG, t.body, t.signature, t)),
      signed('charge request', keys.payerDevice, CHARGE_REQUEST_TAG, m.chargeRequest),
      signed('charge', keys.issuerNode, CHARGE_TAG, m.charge),
      signed('release', keys.payerDevice, RELEASE_TAG, m.release),
      signed('accept', keys.payeeDevice, ACCEPT_TAG, m.accept),
      signed('settle report', keys.payerDevice, SETTLE_REPORT_TAG, m.report),
      signed('settled', keys.issuerNode, SETTLED_TAG, m.settled),
      signed('deposit request', keys.payeeDevice, DEPOSIT_REQUEST_TAG, m.depositRequest),
      signed('deposit receipt', keys.issuerNode, DEPOSIT_RECEIPT_TAG, m.depositReceipt),
    ],
    mount: {
      rule:
        'seed = HKDF-SHA-256(ikm shared, salt handshakeHash, info "tally/opera/seed/v1\\0" || payerEphemeral || payeeEphemeral, 32); ' +
        'helloKey(side) = HKDF-SHA-256(ikm seed, info "tally/opera/hello/v1\\0" || side, 32); OTK_0 = Hash(seed); OTK_1 = Hash(OTK_0 || message); ' +
        'the message (Msg 2-1) is sealed under OTK_0: boxKey = HKDF-SHA-256(ikm OTK_0, info "tally/opera/otk-box/v1", 32); a box is nonce || XChaCha20-Poly1305(key, nonce, context).encrypt(plaintext); ' +
        'a message\'s context is "tally/opera/message/v1\\0" || index || "\\0" || sender, a token\'s "tally/opera/token-box/v1\\0" || counter || "\\0" || txid',
      boxNote: 'Tally draws each box nonce at random; these boxes fix it, so their bytes are reproducible and any nonce opens the same way',
      shared: INPUTS.shared,
      handshakeHash: INPUTS.handshakeHash,
      payerEphemeral: INPUTS.payerEphemeral,
      payeeEphemeral: INPUTS.payeeEphemeral,
      seed: toHex(mount.seed),
      payerHelloKey: toHex(mount.payerHelloKey),
      payeeHelloKey: toHex(mount.payeeHelloKey),
      otk0: toHex(mount.otk0),
      otk0Sha1: toHex(mount.otk0Sha1),
      message: toHex(mount.message),
      otk1: toHex(mount.otk1),
      boxKey: toHex(mount.boxKey),
      messageIndex: 0,
      messageSender: 'payer',
      messageContext: toHex(mount.messageContext),
      boxNonce: INPUTS.boxNonce,
      messageBox: toHex(mount.messageBox),
      ptk: INPUTS.ptk,
      txid: INPUTS.txid,
      tokenCounter: 0,
      token: toHex(mount.token),
      tokenContext: toHex(mount.tokenContext),
      tokenBox: toHex(mount.tokenBox),
    },
  };
}

/** OPERA's generated files: path from the repository's root, and text. */
export function operaVectorFiles(): ReadonlyMap<string, string> {
  return new Map([['test-vectors/opera/transaction.json', vectorText(operaVectors())]]);
}
