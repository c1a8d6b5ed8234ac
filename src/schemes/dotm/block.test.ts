import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { equalBytes } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { nobleProvider } from '../../core/crypto/noble.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { SignatureMemo } from '../../core/crypto/signature-memo.ts';
import type { Signer } from '../../core/crypto/suite.ts';
import { isTallyError, type ErrorCode } from '../../core/errors.ts';
import { decodeCertificate, encodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { certify, DAY, hierarchy, NOW, signer, T0 } from '../../pki/test-fixtures.ts';
import { appendRecord, blockTip, CLOCK_SKEW_MS_MAX, deductRemaining, splitForPayment, verifyBlock, type VerifyBlockOptions } from './block.ts';
import {
  BLOCK_BYTES_MAX,
  BLOCKS_PER_PAYMENT_MAX,
  blockWire,
  decodeBlock,
  encodeBlock,
  PRESENTATION_TAG,
  presentationSigned,
  RECORD_TAG,
  recordSigned,
  RECORDS_PER_BLOCK_MAX,
  RECORDS_PER_PAYMENT_MAX,
  type CurrencyBlock,
  type Presentation,
  type TransactionRecord,
} from './messages.ts';

const pki = hierarchy('ed25519', 'dotm');
const centralBank = signer('dotm/currency');

interface User {
  readonly key: Signer;
  readonly cert: Uint8Array;
}
function user(name: string): User {
  const key = signer(`dotm/user/${name}`);
  return { key, cert: encodeCertificate(certify({ issuer: pki.intermediary, issuerRole: 'intermediary', role: 'user', subject: key, extensions: { name } })) };
}
const [alice, bob, carol, dave] = ['alice', 'bob', 'carol', 'dave'].map(user) as [User, User, User, User];

const options: VerifyBlockOptions = {
  provider: nobleProvider,
  centralBankKey: centralBank.publicKey,
  trustAnchors: [pki.rootCert],
  intermediaries: [pki.intermediaryCert],
  now: NOW,
  currency: 'EUR',
};

let serialCounter = 0;
function issue(value: bigint, owner: User, bank: Signer = centralBank): CurrencyBlock {
  const serial = new Uint8Array(16).fill(++serialCounter);
  const unsigned = { serial, value, currency: 'EUR', owner: keyId(owner.key.publicKey) };
  const presentation: Presentation = { ...unsigned, signature: signRecord(bank, PRESENTATION_TAG, presentationSigned(unsigned)) };
  return { presentation, records: [], remaining: value, count: 0 };
}

function record(block: CurrencyBlock, payer: User, payee: User, amount: bigint, timestamp: number): TransactionRecord {
  const unsigned = { prev: blockTip(block), amount, timestamp, ucertP: payer.cert, ucertR: payee.cert };
  return { ...unsigned, signature: signRecord(payer.key, RECORD_TAG, recordSigned(unsigned)) };
}

/** The payee's copy after `payer` pays `amount` from `block`. */
function pay(block: CurrencyBlock, payer: User, payee: User, amount: bigint, timestamp = T0 + DAY + block.records.length * 3_600_000): CurrencyBlock {
  return appendRecord(block, record(block, payer, payee, amount, timestamp));
}

/** A block issued to Alice for 100, carried over 3 hops: Alice → Bob 100 (in full), Bob → Carol 60, Carol → Dave 25. */
function threeHops(): CurrencyBlock {
  return pay(pay(pay(issue(100n, alice), alice, bob, 100n), bob, carol, 60n), carol, dave, 25n);
}

function withRecord(block: CurrencyBlock, k: number, change: Partial<TransactionRecord>): CurrencyBlock {
  return { ...block, records: block.records.map((r, i) => (i === k ? { ...r, ...change } : r)) };
}

function refused(block: CurrencyBlock, code: ErrorCode, reason?: RegExp, opts: VerifyBlockOptions = options): void {
  assert.throws(
    () => verifyBlock(block, opts),
    (e) => isTallyError(e, code) && (reason === undefined || reason.test(e.message)),
  );
}

describe('DOT-M currency blocks', () => {
  it('a block issued by the central bank and carried over 3 hops verifies; its holder is the last payee', () => {
    const block = threeHops();
    const verified = verifyBlock(block, options);
    assert.ok(equalBytes(verified.holder, keyId(dave.key.publicKey)));
    assert.ok(equalBytes(verified.holderCertificate ?? new Uint8Array(), dave.cert));
    assert.equal(verified.received, 25n);
    assert.equal(block.count, 3);
    assert.equal(block.remaining, 25n);
    assert.ok(equalBytes(verified.tip, blockTip(block)));
    // A fresh block is held by its original owner; the wire form round-trips.
    const fresh = verifyBlock(issue(7n, alice), options);
    assert.ok(equalBytes(fresh.holder, keyId(alice.key.publicKey)));
    assert.equal(fresh.holderCertificate, undefined);
    assert.deepEqual(decodeBlock(encodeBlock(block)), block);
  });

  it("the payer keeps its change: its copy, less what it paid, verifies and spends the rest again", () => {
    const atBob = pay(issue(100n, alice), alice, bob, 100n);
    const toCarol = pay(atBob, bob, carol, 60n);
    const bobKeeps = deductRemaining(atBob, 60n);
    assert.equal(verifyBlock(bobKeeps, options).block.remaining, 40n);
    assert.equal(verifyBlock(toCarol, options).received, 60n);
    const toDave = pay(bobKeeps, bob, dave, 40n, T0 + 2 * DAY);
    assert.equal(verifyBlock(toDave, options).received, 40n);
    assert.throws(() => pay(deductRemaining(bobKeeps, 40n), bob, dave, 1n), (e) => isTallyError(e, 'PAYMENT_INVALID'));
    assert.throws(() => deductRemaining(bobKeeps, 41n), (e) => isTallyError(e, 'PAYMENT_INVALID'));
  });

  it('refuses a forged central bank signature', () => {
    refused(issue(100n, alice, signer('not the central bank')), 'SIGNATURE_INVALID', /central bank/);
    const block = threeHops();
    refused({ ...block, presentation: { ...block.presentation, value: 1000n } }, 'SIGNATURE_INVALID', /central bank/);
    refused({ ...block, presentation: { ...block.presentation, owner: keyId(bob.key.publicKey) } }, 'SIGNATURE_INVALID', /central bank/);
  });

  it('refuses a record altered anywhere in the chain: amount, timestamp, payee or signature', () => {
    const block = threeHops();
    for (let k = 0; k < 3; k++) {
      const r = block.records[k] as TransactionRecord;
      const flipped = Uint8Array.from(r.signature);
      flipped[0] = (flipped[0] as number) ^ 1;
      const changes: Partial<TransactionRecord>[] = [{ amount: r.amount - 1n }, { timestamp: r.timestamp + 1 }, { ucertR: alice.cert }, { signature: flipped }];
      for (const change of changes) refused(withRecord(block, k, change), 'SIGNATURE_INVALID', new RegExp(`record ${k}`));
    }
  });

  it("through a node's memo of signatures, a block is verified once and answered from the memo after; anything changed is verified again and refused", () => {
    let verifications = 0;
    const ed25519 = nobleProvider.suites.ed25519;
    const counting = { ...nobleProvider, suites: { ...nobleProvider.suites, ed25519: { ...ed25519, verify: (key: Uint8Array, signature: Uint8Array, message: Uint8Array) => (verifications++, ed25519.verify(key, signature, message)) } } };
    const memo = new SignatureMemo();
    const opts: VerifyBlockOptions = { ...options, provider: counting, verifiedSignatures: memo };
    const block = threeHops();
    verifyBlock(block, opts);
    const first = verifications;
    // The presentation, three records, and each user's certificate with its chain to the root.
    assert.ok(first >= 4, `the first verification checks signatures (${first})`);
    verifications = 0;
    assert.equal(verifyBlock(block, opts).received, 25n);
    assert.equal(verifications, 0, 'the same block again is answered from the memo');
    // The memo answers only for the exact signed bytes: every change is verified, and refused.
    const r = block.records[1] as TransactionRecord;
    const flipped = Uint8Array.from(r.signature);
    flipped[0] = (flipped[0] as number) ^ 1;
    for (const change of [{ amount: r.amount - 1n }, { timestamp: r.timestamp + 1 }, { signature: flipped }] as Partial<TransactionRecord>[]) {
      verifications = 0;
      refused(withRecord(block, 1, change), 'SIGNATURE_INVALID', /record 1/, opts);
      assert.ok(verifications >= 1, 'a changed record is verified again');
    }
    refused({ ...block, presentation: { ...block.presentation, value: 1000n } }, 'SIGNATURE_INVALID', /central bank/, opts);
    // Carol's certificate is in the memo; the same body under another signature is not, and is refused.
    const forged = { ...decodeCertificate(carol.cert), signature: signer('not the bank').sign(new Uint8Array([1])) };
    refused(pay(issue(10n, alice), alice, { ...carol, cert: encodeCertificate(forged) }, 10n), 'PAYMENT_INVALID', /record 0 payee certificate/, opts);
  });

  it('refuses a record moved from another block', () => {
    const block = pay(issue(100n, alice), alice, bob, 100n);
    const other = pay(issue(100n, alice), alice, bob, 100n);
    refused({ ...block, records: other.records }, 'PAYMENT_INVALID', /record 0 is not linked to the presentation/);
    // The second record of another chain, re-signed by a legitimate payer, still names the other chain.
    const moved = pay(other, bob, carol, 50n).records[1] as TransactionRecord;
    refused({ ...block, records: [...block.records, moved], count: 2, remaining: 50n }, 'PAYMENT_INVALID', /record 1 is not linked to record 0/);
    assert.throws(() => appendRecord(block, moved), (e) => isTallyError(e, 'PAYMENT_INVALID'));
    // Records swapped inside one chain break the links too.
    const chain = threeHops();
    refused({ ...chain, records: [chain.records[1], chain.records[0], chain.records[2]] as TransactionRecord[] }, 'PAYMENT_INVALID', /not linked/);
  });

  it('refuses a payer who is not the previous payee (nor, first, the original owner)', () => {
    const fresh = issue(100n, alice);
    refused(appendRecord(fresh, record(fresh, bob, carol, 10n, T0 + DAY)), 'PAYMENT_INVALID', /record 0 is paid by .* not by the original owner/);
    const atBob = pay(fresh, alice, bob, 100n);
    refused(appendRecord(atBob, record(atBob, carol, dave, 10n, T0 + 2 * DAY)), 'PAYMENT_INVALID', /record 1 is paid by .* not by the payee of record 0/);
    refused(appendRecord(atBob, record(atBob, alice, dave, 10n, T0 + 2 * DAY)), 'PAYMENT_INVALID', /not by the payee of record 0/);
    refused(appendRecord(atBob, record(atBob, bob, bob, 10n, T0 + 2 * DAY)), 'PAYMENT_INVALID', /pays its payer/);
  });

  it(`refuses more than ${RECORDS_PER_BLOCK_MAX} records, and a count that is not the number of records`, () => {
    let block = issue(1000n, alice);
    const hops = [alice, bob, carol];
    for (let k = 0; k < RECORDS_PER_BLOCK_MAX; k++) block = pay(block, hops[k % 3] as User, hops[(k + 1) % 3] as User, 1000n - BigInt(k));
    assert.equal(verifyBlock(block, options).block.count, RECORDS_PER_BLOCK_MAX);
    assert.throws(() => pay(block, alice, bob, 1n), (e) => isTallyError(e, 'TOO_LARGE') && /go online/.test(e.message));
    const last = block.records[RECORDS_PER_BLOCK_MAX - 1] as TransactionRecord;
    const tooMany: CurrencyBlock = { ...block, records: [...block.records, last], count: RECORDS_PER_BLOCK_MAX + 1 };
    refused(tooMany, 'TOO_LARGE');
    assert.throws(() => decodeBlock(encodeCbor(blockWire(tooMany))), (e) => isTallyError(e, 'DECODE_FAILED') && /records/.test(e.message));
    // The best-placed block at its limit is left out of a payment.
    assert.deepEqual(splitForPayment([block], 1n), { ok: false, reason: 'insufficient', available: 0n });
    const three = threeHops();
    refused({ ...three, count: 2 }, 'PAYMENT_INVALID', /count of offline transactions is 2/);
    refused({ ...three, count: 4 }, 'PAYMENT_INVALID', /count/);
  });

  it('refuses a remaining value or an amount that does not add up', () => {
    const block = threeHops();
    refused({ ...block, remaining: 26n }, 'PAYMENT_INVALID', /remaining value 26/);
    refused({ ...issue(100n, alice), remaining: 101n }, 'PAYMENT_INVALID', /remaining value 101/);
    // A signed record that pays more than its payer received.
    const atBob = pay(pay(issue(100n, alice), alice, bob, 30n), bob, carol, 30n);
    const over = { ...atBob, remaining: 31n };
    refused(appendRecord(over, record(over, carol, dave, 31n, T0 + 2 * DAY)), 'PAYMENT_INVALID', /pays 31, more than the 30/);
    const overOwner = { ...issue(100n, alice), remaining: 200n };
    refused(appendRecord(overOwner, record(overOwner, alice, bob, 150n, T0 + DAY)), 'PAYMENT_INVALID', /more than the 100/);
    assert.throws(() => pay(block, dave, alice, 26n), (e) => isTallyError(e, 'PAYMENT_INVALID') && /more than the remaining 25/.test(e.message));
  });

  it('refuses records out of time order or from the future, a revoked user, another currency', () => {
    const atBob = pay(issue(100n, alice), alice, bob, 100n, T0 + 2 * DAY);
    refused(pay(atBob, bob, carol, 10n, T0 + DAY), 'PAYMENT_INVALID', /dated before record 0/);
    refused(pay(atBob, bob, carol, 10n, NOW + CLOCK_SKEW_MS_MAX + 1), 'PAYMENT_INVALID', /after the verifier's time/);
    verifyBlock(pay(atBob, bob, carol, 10n, NOW + CLOCK_SKEW_MS_MAX), options);
    const carolSerial = decodeCertificate(carol.cert).body.serial;
    const revoked = { isRevoked: (_issuer: Uint8Array, serial: Uint8Array) => equalBytes(serial, carolSerial) };
    refused(threeHops(), 'CERT_REVOKED', undefined, { ...options, revocations: revoked });
    refused(threeHops(), 'PAYMENT_INVALID', /not USD/, { ...options, currency: 'USD' });
    // A payer certificate that is not a user certificate.
    const device = { key: pki.device, cert: encodeCertificate(pki.deviceCert) };
    const fresh = issue(100n, device);
    refused(pay(fresh, device, bob, 10n), 'PAYMENT_INVALID', /payer certificate/);
  });

  it('refuses oversized and malformed encodings', () => {
    const block = threeHops();
    assert.throws(() => decodeBlock(new Uint8Array(BLOCK_BYTES_MAX + 1)), (e) => isTallyError(e, 'TOO_LARGE'));
    assert.throws(() => decodeBlock(Uint8Array.of(0xff, 0x00)), (e) => isTallyError(e, 'CBOR_MALFORMED'));
    const wire = blockWire(block);
    assert.throws(() => decodeBlock(encodeCbor({ ...wire, extra: 1 })), (e) => isTallyError(e, 'DECODE_FAILED'));
    assert.throws(() => decodeBlock(encodeCbor({ ...wire, remaining: -1n })), (e) => isTallyError(e, 'DECODE_FAILED') && /remaining/.test(e.message));
    const shortSerial = { ...(wire['presentation'] as Record<string, unknown>), serial: new Uint8Array(15) };
    assert.throws(() => decodeBlock(encodeCbor({ ...wire, presentation: shortSerial })), (e) => isTallyError(e, 'DECODE_FAILED') && /presentation\.serial/.test(e.message));
    const zeroAmount = (wire['records'] as Record<string, unknown>[]).map((r, i) => (i === 1 ? { ...r, amount: 0n } : r));
    assert.throws(() => decodeBlock(encodeCbor({ ...wire, records: zeroAmount })), (e) => isTallyError(e, 'DECODE_FAILED') && /records\[1\]\.amount/.test(e.message));
    const hugeCert = (wire['records'] as Record<string, unknown>[]).map((r, i) => (i === 0 ? { ...r, ucertP: new Uint8Array(5000) } : r));
    assert.throws(() => decodeBlock(encodeCbor({ ...wire, records: hugeCert })), (e) => isTallyError(e, 'DECODE_FAILED') && /ucertP/.test(e.message));
    // A certificate field that holds bytes but no certificate.
    refused(withRecord(block, 0, { ucertP: new Uint8Array(10) }), 'PAYMENT_INVALID', /payer certificate/);
    assert.throws(() => encodeBlock({ ...block, records: block.records.map((r) => ({ ...r, ucertP: new Uint8Array(BLOCK_BYTES_MAX) })) }), (e) => isTallyError(e, 'TOO_LARGE'));
  });
});

describe('choosing the blocks of a payment', () => {
  const fifty = issue(50n, alice);
  const thirty = issue(30n, alice);
  const twenty = issue(20n, alice);

  it('takes the largest blocks first, all in full but the last, which pays in part', () => {
    const plan = splitForPayment([twenty, fifty, thirty], 60n);
    assert.ok(plan.ok);
    assert.deepEqual(plan.parts.map((p) => [p.block.presentation.value, p.amount]), [[50n, 50n], [30n, 10n]]);
    const one = splitForPayment([twenty, fifty, thirty], 20n);
    assert.ok(one.ok);
    assert.deepEqual(one.parts.map((p) => [p.block.presentation.value, p.amount]), [[50n, 20n]]);
    const all = splitForPayment([twenty, fifty, thirty], 100n);
    assert.ok(all.ok && all.parts.length === 3);
  });

  it('says when the blocks hold too little, or too much spread over too many blocks', () => {
    assert.deepEqual(splitForPayment([twenty, fifty, thirty], 101n), { ok: false, reason: 'insufficient', available: 100n });
    assert.deepEqual(splitForPayment([{ ...fifty, remaining: 0n }], 1n), { ok: false, reason: 'insufficient', available: 0n });
    const ones = Array.from({ length: BLOCKS_PER_PAYMENT_MAX + 1 }, () => issue(1n, alice));
    assert.deepEqual(splitForPayment(ones, BigInt(BLOCKS_PER_PAYMENT_MAX + 1)), { ok: false, reason: 'limits', available: BigInt(BLOCKS_PER_PAYMENT_MAX + 1) });
    assert.ok(splitForPayment(ones, BigInt(BLOCKS_PER_PAYMENT_MAX)).ok);
    assert.throws(() => splitForPayment([fifty], 0n), RangeError);
    // Blocks whose records would take the payment past RECORDS_PER_PAYMENT_MAX are passed over.
    const filler = pay(issue(10n, alice), alice, bob, 10n).records[0] as TransactionRecord;
    const heavy = Array.from({ length: 5 }, () => ({ ...issue(10n, alice), records: Array.from({ length: 15 }, () => filler), count: 15 }));
    assert.equal(5 * 15 > RECORDS_PER_PAYMENT_MAX, true);
    assert.deepEqual(splitForPayment(heavy, 50n), { ok: false, reason: 'limits', available: 50n });
    const plan = splitForPayment([...heavy, issue(5n, alice)], 45n);
    assert.ok(plan.ok);
    assert.deepEqual(plan.parts.map((p) => [p.block.records.length, p.amount]), [[15, 10n], [15, 10n], [15, 10n], [15, 10n], [0, 5n]]);
  });
});

describe('DOT-M blocks of several operators (docs/dotm.md, "Several operators")', () => {
  // Bank B, a second intermediary under the same root, in EUR; its key signs its blocks.
  const bankB = signer('dotm/bank-b');
  const bankBCert = certify({ issuer: pki.root, issuerRole: 'root', role: 'intermediary', subject: bankB, extensions: { name: 'Bank B', currency: 'EUR' } });
  const bankC = signer('dotm/bank-c');
  const bankCCert = certify({ issuer: pki.root, issuerRole: 'root', role: 'intermediary', subject: bankC, extensions: { name: 'Bank C', currency: 'EUR' } });
  const erinKey = signer('dotm/user/erin');
  const erin: User = { key: erinKey, cert: encodeCertificate(certify({ issuer: bankB, issuerRole: 'intermediary', role: 'user', subject: erinKey, extensions: { name: 'erin' } })) };
  const both: VerifyBlockOptions = { ...options, intermediaries: [pki.intermediaryCert, bankBCert, bankCCert] };

  function issuedBy(bank: Signer, value: bigint, owner: User, issuer: Uint8Array = keyId(bank.publicKey)): CurrencyBlock {
    const serial = new Uint8Array(16).fill(++serialCounter);
    const unsigned = { serial, value, currency: 'EUR', owner: keyId(owner.key.publicKey), issuer };
    return { presentation: { ...unsigned, signature: signRecord(bank, PRESENTATION_TAG, presentationSigned(unsigned)) }, records: [], remaining: value, count: 0 };
  }

  it("verifies a block signed by another bank's key through its certificate, paid on to this bank's customer", () => {
    const block = pay(issuedBy(bankB, 50n, erin), erin, alice, 20n);
    const verified = verifyBlock(block, both);
    assert.ok(equalBytes(verified.holder, keyId(alice.key.publicKey)));
    // The issuer is part of what the signature covers, and encodes only when present.
    assert.ok(equalBytes(decodeBlock(encodeBlock(block)).presentation.issuer ?? new Uint8Array(), keyId(bankB.publicKey)));
    assert.equal(decodeBlock(encodeBlock(issue(5n, alice))).presentation.issuer, undefined);
  });

  it("refuses a block of a bank it does not know, one whose issuer was swapped, one certified by another root or for another currency, or by a key the root certified as something else", () => {
    const block = issuedBy(bankB, 50n, erin);
    assert.throws(() => verifyBlock(block, options), (e) => isTallyError(e, 'PAYMENT_INVALID') && /does not know/.test(e.message));
    const swapped = { ...block, presentation: { ...block.presentation, issuer: keyId(bankC.publicKey) } };
    assert.throws(() => verifyBlock(swapped, both), (e) => isTallyError(e, 'SIGNATURE_INVALID'));
    const stripped = { ...block, presentation: { ...block.presentation, issuer: undefined } };
    assert.throws(() => verifyBlock(stripped, both), (e) => isTallyError(e, 'SIGNATURE_INVALID'));
    const other = hierarchy('ed25519', 'dotm-other-root');
    const foreign = certify({ issuer: other.root, issuerRole: 'root', role: 'intermediary', subject: bankB, extensions: { name: 'Bank B', currency: 'EUR' } });
    assert.throws(() => verifyBlock(block, { ...options, intermediaries: [pki.intermediaryCert, foreign] }), (e) => isTallyError(e, 'PAYMENT_INVALID'));
    const dollars = certify({ issuer: pki.root, issuerRole: 'root', role: 'intermediary', subject: bankB, extensions: { name: 'Bank B', currency: 'USD' } });
    assert.throws(() => verifyBlock(block, { ...options, intermediaries: [pki.intermediaryCert, dollars] }), (e) => isTallyError(e, 'PAYMENT_INVALID') && /USD/.test(e.message));
    const oem = certify({ issuer: pki.root, issuerRole: 'root', role: 'oem', subject: bankB, extensions: { name: 'Bank B' } });
    assert.throws(() => verifyBlock(block, { ...options, intermediaries: [pki.intermediaryCert, oem] }), (e) => isTallyError(e, 'PAYMENT_INVALID'));
  });
});
