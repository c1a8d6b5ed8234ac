import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fromHex, toHex, utf8 } from '../../core/bytes.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { isTallyError } from '../../core/errors.ts';
import {
  decap,
  deriveKeyPair,
  encapDeterministicForTests,
  generateKeyPair,
  HPKE_ENC_BYTES,
  HPKE_EXPORT_BYTES_MAX,
  HPKE_INFO_BYTES_MAX,
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

/**
 * RFC 9180 Appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base mode.
 * The values are the RFC's, as published in the specification's source text.
 */
const A21 = {
  info: '4f6465206f6e2061204772656369616e2055726e',
  ikmE: '909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b',
  pkEm: '1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a',
  skEm: 'f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600',
  ikmR: '1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df',
  pkRm: '4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a',
  skRm: '8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb',
  enc: '1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a',
  sharedSecret: '0bbe78490412b4bbea4812666f7916932b828bba79942424abb65244930d69a7',
  keyScheduleContext:
    '00431df6cd95e11ff49d7013563baf7f11588c75a6611ee2a4404a49306ae4cfc5b69c5718a60cc5876c358d3f7fc31ddb598503f67be58ea1e798c0bb19eb9796',
  secret: '5b9cd775e64b437a2335cf499361b2e0d5e444d5cb41a8a53336d8fe402282c6',
  key: 'ad2744de8e17f4ebba575b3f5f5a8fa1f69c2a07f6e7500bc60ca6e3e3ec1c91',
  baseNonce: '5c4d98150661b848853b547f',
  exporterSecret: 'a3b010d4994890e2c6968a36f64470d3c824c8f5029942feb11e7a74b2921922',
  pt: '4265617574792069732074727574682c20747275746820626561757479',
  encryptions: [
    { seq: 0, aad: '436f756e742d30', ct: '1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28' },
    { seq: 1, aad: '436f756e742d31', ct: '6b53c051e4199c518de79594e1c4ab18b96f081549d45ce015be002090bb119e85285337cc95ba5f59992dc98c' },
    { seq: 2, aad: '436f756e742d32', ct: '71146bd6795ccc9c49ce25dda112a48f202ad220559502cef1f34271e0cb4b02b4f10ecac6f48c32f878fae86b' },
    { seq: 4, aad: '436f756e742d34', ct: '63357a2aa291f5a4e5f27db6baa2af8cf77427c7c1a909e0b37214dd47db122bb153495ff0b02e9e54a50dbe16' },
    { seq: 255, aad: '436f756e742d323535', ct: '18ab939d63ddec9f6ac2b60d61d36a7375d2070c9b683861110757062c52b8880a5f6b3936da9cd6c23ef2a95c' },
    { seq: 256, aad: '436f756e742d323536', ct: '7a4a13e9ef23978e2c520fd4d2e757514ae160cd0cd05e556ef692370ca53076214c0c40d4c728d6ed9e727a5b' },
  ],
  exports: [
    { context: '', length: 32, value: '4bbd6243b8bb54cec311fac9df81841b6fd61f56538a775e7c80a9f40160606e' },
    { context: '00', length: 32, value: '8c1df14732580e5501b00f82b10a1647b40713191b7c1240ac80e2b68808ba69' },
    { context: '54657374436f6e74657874', length: 32, value: '5acb09211139c43b3090489a9da433e8a30ee7188ba8b0a9a1ccf0c229283e53' },
  ],
} as const;

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
    assert.equal(toHex(sharedSecret), A21.sharedSecret);
    assert.equal(toHex(decap(fromHex(A21.enc), fromHex(A21.skRm))), A21.sharedSecret);
  });

  it('derives the key schedule (§5.1)', () => {
    const schedule = keyScheduleBase(fromHex(A21.sharedSecret), info);
    assert.equal(toHex(schedule.keyScheduleContext), A21.keyScheduleContext);
    assert.equal(toHex(schedule.secret), A21.secret);
    assert.equal(toHex(schedule.key), A21.key);
    assert.equal(toHex(schedule.baseNonce), A21.baseNonce);
    assert.equal(toHex(schedule.exporterSecret), A21.exporterSecret);
  });

  it('seals every listed sequence number to the RFC ciphertext, and the recipient opens them in order', () => {
    const sender = setupBaseSDeterministicForTests({ recipientPublicKey: fromHex(A21.pkRm), info, ikmE: fromHex(A21.ikmE) });
    const recipient = setupBaseR({ recipientPrivateKey: fromHex(A21.skRm), enc: fromHex(A21.enc), info });
    assert.equal(toHex(sender.enc), A21.enc);
    const pt = fromHex(A21.pt);
    const listed = new Map<number, (typeof A21.encryptions)[number]>(A21.encryptions.map((e) => [e.seq, e]));
    const last = A21.encryptions[A21.encryptions.length - 1]!.seq;
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
      assert.equal(toHex(sender.export(fromHex(vector.context), vector.length)), vector.value);
      assert.equal(toHex(recipient.export(fromHex(vector.context), vector.length)), vector.value);
      assert.equal(toHex(receiveExportBase({ recipientPrivateKey: fromHex(A21.skRm), enc: fromHex(A21.enc), info, exporterContext: fromHex(vector.context), length: vector.length })), vector.value);
    }
  });

  it('opens the RFC ciphertext at sequence 0 with the single-shot openBase', () => {
    const first = A21.encryptions[0];
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
