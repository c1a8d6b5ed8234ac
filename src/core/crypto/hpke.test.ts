import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { fromHex, toHex, utf8 } from '../bytes.ts';
import { array, record, text, uint } from '../codec.ts';
import { randomBytes } from './hash.ts';
import { isTallyError } from '../errors.ts';
import {
  decap,
  deriveKeyPair,
  encapDeterministicForTests,
  generateKeyPair,
  HPKE_AEAD_ID,
  HPKE_ENC_BYTES,
  HPKE_EXPORT_BYTES_MAX,
  HPKE_INFO_BYTES_MAX,
  HPKE_KDF_ID,
  HPKE_KEM_ID,
  HPKE_TAG_BYTES,
  keyScheduleBase,
  openBase,
  publicKeyOf,
  receiveExportBase,
  sealBase,
  sendExportBase,
  setupBaseR,
  setupBaseS,
  setupBaseSDeterministicForTests,
} from './hpke.ts';

const hex = (maxBytes: number) => text({ max: 2 * maxBytes, pattern: /^([0-9a-f]{2})*$/, describe: `lowercase hex of at most ${maxBytes} bytes` });
const key = hex(32);

/**
 * RFC 9180 Appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base mode,
 * under the RFC's names, from test-vectors/ (docs/test-vectors.md).
 */
const A21 = record({
  source: text({ min: 1, max: 256 }),
  mode: uint({ max: 3 }),
  kem_id: uint({ max: 0xffff }),
  kdf_id: uint({ max: 0xffff }),
  aead_id: uint({ max: 0xffff }),
  info: hex(64),
  ikmE: key, pkEm: key, skEm: key,
  ikmR: key, pkRm: key, skRm: key,
  enc: key,
  shared_secret: key,
  key_schedule_context: hex(65),
  secret: key,
  key,
  base_nonce: hex(12),
  exporter_secret: key,
  pt: hex(64),
  encryptions: array(record({ sequence_number: uint({ max: 1024 }), aad: hex(64), ct: hex(80) }), { min: 1, max: 16 }),
  exports: array(record({ exporter_context: hex(64), L: uint({ min: 1, max: 64 }), exported_value: hex(64) }), { min: 1, max: 16 }),
}).decode(JSON.parse(readFileSync(new URL('../../../test-vectors/otp/rfc9180-hpke-x25519-chacha.json', import.meta.url), 'utf8')), 'rfc9180-hpke-x25519-chacha.json');

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = new Uint8Array(bytes);
  out[bit >> 3] = (out[bit >> 3] as number) ^ (1 << (bit & 7));
  return out;
}

function refusedWith(code: string): (e: unknown) => boolean {
  return (e) => isTallyError(e) && e.code === code;
}

const aeadFailed = refusedWith('AEAD_FAILED');
const keyInvalid = refusedWith('KEY_INVALID');
const isLowOrderRefusal = (e: unknown): boolean => isTallyError(e, 'KEY_INVALID') && e.details.reason === 'low-order point';

describe('hpke: RFC 9180 A.2.1 (X25519, HKDF-SHA256, ChaCha20Poly1305, base mode)', () => {
  const info = fromHex(A21.info);

  it('is a vector of this suite in base mode (§7)', () => {
    assert.deepEqual([A21.mode, A21.kem_id, A21.kdf_id, A21.aead_id], [0, HPKE_KEM_ID, HPKE_KDF_ID, HPKE_AEAD_ID]);
  });

  it('derives both key pairs from their ikm (DeriveKeyPair, §7.1.3)', () => {
    const ephemeral = deriveKeyPair(fromHex(A21.ikmE));
    assert.equal(toHex(ephemeral.privateKey), A21.skEm);
    assert.equal(toHex(ephemeral.publicKey), A21.pkEm);
    const recipient = deriveKeyPair(fromHex(A21.ikmR));
    assert.equal(toHex(recipient.privateKey), A21.skRm);
    assert.equal(toHex(recipient.publicKey), A21.pkRm);
    assert.equal(toHex(publicKeyOf(fromHex(A21.skRm))), A21.pkRm);
  });

  it('encapsulates and decapsulates to the shared secret (§4.1)', () => {
    const { enc, sharedSecret } = encapDeterministicForTests(fromHex(A21.pkRm), fromHex(A21.ikmE));
    assert.equal(toHex(enc), A21.enc);
    assert.equal(toHex(sharedSecret), A21.shared_secret);
    assert.equal(toHex(decap(fromHex(A21.enc), fromHex(A21.skRm))), A21.shared_secret);
  });

  it('derives the key schedule (§5.1)', () => {
    const schedule = keyScheduleBase(fromHex(A21.shared_secret), info);
    assert.equal(toHex(schedule.keyScheduleContext), A21.key_schedule_context);
    assert.equal(toHex(schedule.secret), A21.secret);
    assert.equal(toHex(schedule.key), A21.key);
    assert.equal(toHex(schedule.baseNonce), A21.base_nonce);
    assert.equal(toHex(schedule.exporterSecret), A21.exporter_secret);
  });

  it('seals every listed sequence number to the RFC ciphertext, and the recipient opens them in order', () => {
    const sender = setupBaseSDeterministicForTests({ recipientPublicKey: fromHex(A21.pkRm), info, ikmE: fromHex(A21.ikmE) });
    const recipient = setupBaseR({ recipientPrivateKey: fromHex(A21.skRm), enc: fromHex(A21.enc), info });
    assert.equal(toHex(sender.enc), A21.enc);
    const pt = fromHex(A21.pt);
    const listed = new Map<number, (typeof A21.encryptions)[number]>(A21.encryptions.map((e) => [e.sequence_number, e]));
    const last = A21.encryptions[A21.encryptions.length - 1]!.sequence_number;
    let checked = 0;
    for (let seq = 0; seq <= last; seq++) {
      assert.equal(sender.seq, seq);
      assert.equal(recipient.seq, seq);
      const vector = listed.get(seq);
      // Unlisted sequence numbers still advance both contexts, with aad "Count-<seq>" as the RFC's generator.
      const aad = vector === undefined ? utf8(`Count-${seq}`) : fromHex(vector.aad);
      const ct = sender.seal(pt, aad);
      if (vector !== undefined) {
        assert.equal(toHex(ct), vector.ct, `ciphertext at seq ${seq}`);
        checked++;
      }
      assert.equal(toHex(recipient.open(ct, aad)), A21.pt);
    }
    assert.equal(checked, 6);
  });

  it('exports the RFC values on both sides (§5.3)', () => {
    const sender = setupBaseSDeterministicForTests({ recipientPublicKey: fromHex(A21.pkRm), info, ikmE: fromHex(A21.ikmE) });
    const recipient = setupBaseR({ recipientPrivateKey: fromHex(A21.skRm), enc: fromHex(A21.enc), info });
    for (const vector of A21.exports) {
      assert.equal(toHex(sender.export(fromHex(vector.exporter_context), vector.L)), vector.exported_value);
      assert.equal(toHex(recipient.export(fromHex(vector.exporter_context), vector.L)), vector.exported_value);
      assert.equal(toHex(receiveExportBase({ recipientPrivateKey: fromHex(A21.skRm), enc: fromHex(A21.enc), info, exporterContext: fromHex(vector.exporter_context), length: vector.L })), vector.exported_value);
    }
  });

  it('opens the RFC ciphertext at sequence 0 with the single-shot openBase', () => {
    const first = A21.encryptions[0];
    assert.ok(first !== undefined && first.sequence_number === 0);
    const opened = openBase({ recipientPrivateKey: fromHex(A21.skRm), enc: fromHex(A21.enc), info, aad: fromHex(first.aad), ciphertext: fromHex(first.ct) });
    assert.equal(toHex(opened), A21.pt);
  });
});

describe('hpke: refusals', () => {
  const recipient = generateKeyPair();
  const info = utf8('tally otp test');
  const aad = utf8('coin 1');
  const plaintext = utf8('a coin sealed to a one-time key');
  const sealed = sealBase({ recipientPublicKey: recipient.publicKey, info, aad, plaintext });
  const good = { recipientPrivateKey: recipient.privateKey, enc: sealed.enc, info, aad, ciphertext: sealed.ciphertext };

  it('opens the untampered message (the refusals below differ from it in one thing)', () => {
    assert.deepEqual(openBase(good), plaintext);
    assert.equal(sealed.enc.length, HPKE_ENC_BYTES);
    assert.equal(sealed.ciphertext.length, plaintext.length + HPKE_TAG_BYTES);
  });

  it('refuses every flipped bit of the ciphertext', () => {
    for (let bit = 0; bit < sealed.ciphertext.length * 8; bit++) {
      assert.throws(() => openBase({ ...good, ciphertext: flipBit(sealed.ciphertext, bit) }), aeadFailed, `bit ${bit}`);
    }
  });

  it('refuses a tampered enc', () => {
    // Bit 255 is masked by X25519 (RFC 7748 §5): flipping it names the same point, so it is left out.
    for (let bit = 0; bit < 255; bit++) {
      assert.throws(() => openBase({ ...good, enc: flipBit(sealed.enc, bit) }), (e: unknown) => aeadFailed(e) || keyInvalid(e), `bit ${bit}`);
    }
    assert.throws(() => openBase({ ...good, enc: flipBit(sealed.enc, 0) }), aeadFailed);
  });

  it('refuses another aad or info, absent or present', () => {
    assert.throws(() => openBase({ ...good, aad: utf8('coin 2') }), aeadFailed);
    assert.throws(() => openBase({ ...good, aad: undefined }), aeadFailed);
    assert.throws(() => openBase({ ...good, info: utf8('tally otp tesT') }), aeadFailed);
    assert.throws(() => openBase({ ...good, info: undefined }), aeadFailed);
  });

  it('refuses the wrong recipient key', () => {
    assert.throws(() => openBase({ ...good, recipientPrivateKey: generateKeyPair().privateKey }), aeadFailed);
    assert.throws(() => openBase({ ...good, recipientPrivateKey: flipBit(recipient.privateKey, 200) }), aeadFailed);
  });

  it('refuses a truncated or extended ciphertext', () => {
    for (const length of [0, 1, HPKE_TAG_BYTES - 1, HPKE_TAG_BYTES, sealed.ciphertext.length - 1]) {
      assert.throws(() => openBase({ ...good, ciphertext: sealed.ciphertext.subarray(0, length) }), aeadFailed, `length ${length}`);
    }
    const longer = new Uint8Array(sealed.ciphertext.length + 1);
    longer.set(sealed.ciphertext);
    assert.throws(() => openBase({ ...good, ciphertext: longer }), aeadFailed);
  });

  it('refuses low-order points as a recipient key or as an enc (all-zero shared secret, §7.1.4)', () => {
    const lowOrder = [
      new Uint8Array(32),
      Uint8Array.of(1, ...new Uint8Array(31)),
      fromHex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'),
      fromHex('5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157'),
      fromHex('ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'),
      // Non-canonical encodings of low-order points: p (≡ 0), p + 1 (≡ 1), and 0 with bit 255 set.
      fromHex('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'),
      fromHex('eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'),
      fromHex('0000000000000000000000000000000000000000000000000000000000000080'),
    ];
    for (const point of lowOrder) {
      assert.throws(() => sealBase({ recipientPublicKey: point, plaintext }), isLowOrderRefusal, toHex(point));
      assert.throws(() => openBase({ ...good, enc: point }), isLowOrderRefusal, toHex(point));
    }
  });

  it('refuses keys and encs of the wrong length', () => {
    const wrongLength = (length: number) => (e: unknown) => isTallyError(e, 'KEY_INVALID') && e.details.reason.endsWith(`of ${length} bytes`);
    assert.throws(() => sealBase({ recipientPublicKey: recipient.publicKey.subarray(0, 31), plaintext }), wrongLength(31));
    assert.throws(() => openBase({ ...good, enc: sealed.enc.subarray(0, 31) }), wrongLength(31));
    assert.throws(() => openBase({ ...good, enc: new Uint8Array(33) }), wrongLength(33));
    assert.throws(() => openBase({ ...good, recipientPrivateKey: recipient.privateKey.subarray(0, 31) }), RangeError);
    assert.throws(() => deriveKeyPair(new Uint8Array(31)), RangeError);
  });

  it('refuses an info over its limit and an export length out of range', () => {
    assert.throws(() => sealBase({ recipientPublicKey: recipient.publicKey, info: new Uint8Array(HPKE_INFO_BYTES_MAX + 1), plaintext }), refusedWith('TOO_LARGE'));
    const sender = setupBaseS({ recipientPublicKey: recipient.publicKey });
    assert.throws(() => sender.export(new Uint8Array(0), 0), RangeError);
    assert.throws(() => sender.export(new Uint8Array(0), HPKE_EXPORT_BYTES_MAX + 1), RangeError);
    assert.equal(sender.export(new Uint8Array(0), HPKE_EXPORT_BYTES_MAX).length, HPKE_EXPORT_BYTES_MAX);
  });

  it('refuses messages out of order, and a failed open does not advance the context', () => {
    const sender = setupBaseS({ recipientPublicKey: recipient.publicKey, info });
    const first = sender.seal(utf8('first'));
    const second = sender.seal(utf8('second'));
    const receiver = setupBaseR({ recipientPrivateKey: recipient.privateKey, enc: sender.enc, info });
    assert.throws(() => receiver.open(second), aeadFailed);
    assert.equal(receiver.seq, 0);
    assert.deepEqual(receiver.open(first), utf8('first'));
    assert.throws(() => receiver.open(first), aeadFailed);
    assert.deepEqual(receiver.open(second), utf8('second'));
    assert.equal(receiver.seq, 2);
  });
});

describe('hpke: round trips', () => {
  it('opens what it sealed, for random keys and plaintexts of 0..5000 bytes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5000 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.uint8Array({ maxLength: 64 }),
        (size, info, aad) => {
          const recipient = generateKeyPair();
          const plaintext = randomBytes(size);
          const { enc, ciphertext } = sealBase({ recipientPublicKey: recipient.publicKey, info, aad, plaintext });
          assert.equal(ciphertext.length, size + HPKE_TAG_BYTES);
          assert.deepEqual(openBase({ recipientPrivateKey: recipient.privateKey, enc, info, aad, ciphertext }), plaintext);
        },
      ),
      { numRuns: 100 },
    );
    for (const size of [0, 1, 63, 64, 65, 4999, 5000]) {
      const recipient = generateKeyPair();
      const plaintext = randomBytes(size);
      const { enc, ciphertext } = sealBase({ recipientPublicKey: recipient.publicKey, plaintext });
      assert.deepEqual(openBase({ recipientPrivateKey: recipient.privateKey, enc, ciphertext }), plaintext, `size ${size}`);
    }
  });

  it('uses the randomness it is given for the ephemeral key (as a trusted app passes env.random)', () => {
    const recipient = generateKeyPair();
    const ephemeral = randomBytes(32);
    const random = (length: number): Uint8Array => {
      assert.equal(length, 32);
      return new Uint8Array(ephemeral);
    };
    const one = sealBase({ recipientPublicKey: recipient.publicKey, plaintext: utf8('x'), random });
    const two = sealBase({ recipientPublicKey: recipient.publicKey, plaintext: utf8('x'), random });
    assert.deepEqual(one.enc, publicKeyOf(ephemeral));
    assert.deepEqual(one, two);
    const fresh = sealBase({ recipientPublicKey: recipient.publicKey, plaintext: utf8('x') });
    assert.notDeepEqual(fresh.enc, one.enc);
  });

  it('exports the same secret on both sides, and another for another context or key', () => {
    const recipient = generateKeyPair();
    const context = utf8('otp exchange');
    const { enc, exported } = sendExportBase({ recipientPublicKey: recipient.publicKey, exporterContext: context, length: 48 });
    assert.equal(exported.length, 48);
    assert.deepEqual(receiveExportBase({ recipientPrivateKey: recipient.privateKey, enc, exporterContext: context, length: 48 }), exported);
    assert.notDeepEqual(receiveExportBase({ recipientPrivateKey: recipient.privateKey, enc, exporterContext: utf8('other'), length: 48 }), exported);
    assert.notDeepEqual(receiveExportBase({ recipientPrivateKey: generateKeyPair().privateKey, enc, exporterContext: context, length: 48 }), exported);
  });

  it('derives the same key pair from the same ikm and another from another', () => {
    const ikm = randomBytes(32);
    assert.deepEqual(deriveKeyPair(ikm), deriveKeyPair(new Uint8Array(ikm)));
    assert.notDeepEqual(deriveKeyPair(ikm).privateKey, deriveKeyPair(flipBit(ikm, 0)).privateKey);
  });
});
