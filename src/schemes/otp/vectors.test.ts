/**
 * Tally's own OTP test vectors (test-vectors/otp/, docs/test-vectors.md): every value is
 * recomputed from the inputs its file gives, by the protocol code and again from the bare steps the
 * file describes (hashes and MACs through node:crypto); the files are what the generator
 * (scripts/test-vectors.ts) writes, so a change of encoding fails here until they are regenerated.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { otpVectorFiles as vectorFiles } from './vectors.ts';
import { fromHex, toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { array, literal, record, taggedUnion, text, uint, type Codec } from '../../core/codec.ts';
import { nobleEd25519, nobleProvider } from '../../core/crypto/noble.ts';
import { signedBytes } from '../../core/crypto/record.ts';
import { signerFromSecret } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { looseRecord, nullable, timestampMs } from '../../core/fields.ts';
import { programDigest } from './coin.ts';
import { checkExchangeKey, exchangeKeyCodec, exchangeKeyId, issueExchangeKey } from './exchange-key.ts';
import { deriveKeyPair, setupBaseSDeterministicForTests } from '../../core/crypto/hpke.ts';
import { carriedCoinCodec } from './messages.ts';
import { buildProgram, checkProgram, programCodec } from './program.ts';
import { ackCodec, ackMatches, openCoin, sealCoin, sealedCoinCodec } from './transfer.ts';

const ROOT = new URL('../../../', import.meta.url);
const hex = (maxBytes: number) => text({ max: 2 * maxBytes, pattern: /^([0-9a-f]{2})*$/, describe: `lowercase hex of at most ${maxBytes} bytes` });
const words = text({ min: 1, max: 512 });
/** A field whose meaning the protocol's own codec decodes (programCodec for instructions). */
const passed: Codec<unknown> = { expected: 'any JSON value', decode: (input) => input };

function readVectors<T>(path: string, codec: Codec<T>): T {
  return codec.decode(JSON.parse(readFileSync(new URL(path, ROOT), 'utf8')), path);
}

function flipped(bytes: Uint8Array, at = 0): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[at] = (out[at] as number) ^ 1;
  return out;
}

const sha256Hex = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

const conditionCodec = taggedUnion('kind', {
  checkExpiry: { until: timestampMs },
  checkPayeeCategory: { categories: array(text({ min: 1, max: 32 }), { min: 1, max: 16 }) },
  checkMaxHops: { hops: uint({ min: 1, max: 64 }) },
});

const programFile = readVectors(
  'test-vectors/otp/program.json',
  record({
    source: words,
    checksum: words,
    checksumLabel: words,
    vectors: array(
      record({
        name: words,
        schemaVersion: uint({ min: 1, max: 2 }),
        conditions: array(conditionCodec, { max: 3 }),
        instructions: passed,
        checksum: hex(32),
        cbor: hex(2048),
        digest: hex(32),
      }),
      { min: 3, max: 3 },
    ),
  }),
);

const exchangeKeyFile = readVectors(
  'test-vectors/otp/exchange-key.json',
  record({
    source: words,
    signature: words,
    tag: words,
    bankSuite: literal('ed25519'),
    bankSecretKey: hex(32),
    bankPublicKey: hex(32),
    body: record({ publicKey: hex(32), category: nullable(text({ min: 1, max: 32 })), notBefore: timestampMs, notAfter: timestampMs }),
    bodyCbor: hex(256),
    signedBytes: hex(256),
    bankSignature: hex(64),
    exchangeKeyCbor: hex(512),
    keyId: hex(16),
  }),
);

const transferFile = readVectors(
  'test-vectors/otp/transfer.json',
  record({
    source: words,
    sealing: words,
    coinNote: words,
    infoLabel: words,
    ackLabel: words,
    payee: record({ ikm: hex(32), privateKey: hex(32), publicKey: hex(32), keyId: hex(16) }),
    ephemeral: record({ ikmE: hex(32), privateKey: hex(32), enc: hex(32) }),
    info: hex(256),
    carriedCoinCbor: hex(4096),
    sealed: record({ keyId: hex(16), classId: hex(16), enc: hex(32), ciphertext: hex(4096) }),
    sealedCbor: hex(4096),
    ackSecret: hex(32),
    ack: record({ digest: hex(32), mac: hex(32) }),
    ackCbor: hex(128),
  }),
);

describe('test vectors: the files are what the generator writes', () => {
  it('writes exactly the committed text of each of its files', () => {
    const files = vectorFiles();
    assert.deepEqual([...files.keys()].sort(), ['test-vectors/otp/exchange-key.json', 'test-vectors/otp/program.json', 'test-vectors/otp/transfer.json']);
    for (const [path, text] of files) assert.equal(readFileSync(new URL(path, ROOT), 'utf8'), text, `${path} differs from the generator's output: npm run vectors`);
  });

  it('holds no other file but the RFC vectors, each naming its RFC', () => {
    const generated = new Set(vectorFiles().keys());
    for (const name of readdirSync(new URL('test-vectors/otp/', ROOT))) {
      const path = `test-vectors/otp/${name}`;
      if (generated.has(path)) continue;
      assert.match(name, /^rfc[0-9]+-[a-z0-9-]+\.json$/, `${path} is neither generated nor an RFC's`);
      const { source } = readVectors(path, looseRecord({ source: words }));
      assert.match(source, new RegExp(`^RFC ${name.slice(3, name.indexOf('-'))}, Appendix `), path);
    }
  });
});

describe('test vectors: program.json', () => {
  for (const vector of programFile.vectors) {
    it(`${vector.name}: buildProgram gives its checksum, CBOR and digest, and the player takes it`, () => {
      assert.ok(vector.schemaVersion === 1 || vector.schemaVersion === 2);
      const built = buildProgram(vector.schemaVersion, vector.conditions);
      assert.equal(toHex(built.checksum), vector.checksum);
      assert.equal(toHex(encodeCbor(built)), vector.cbor);
      assert.equal(toHex(programDigest(built)), vector.digest);
      assert.equal(sha256Hex(fromHex(vector.cbor)), vector.digest);

      const program = programCodec.decode({ schemaVersion: vector.schemaVersion, instructions: vector.instructions, checksum: fromHex(vector.checksum) });
      assert.deepEqual(programCodec.decode(decodeCbor(fromHex(vector.cbor))), program);
      assert.equal(sha256Hex(encodeCbor([programFile.checksumLabel, program.instructions])), vector.checksum);
      assert.deepEqual(checkProgram(program), { schemaVersion: vector.schemaVersion, conditions: vector.conditions });
      assert.throws(() => checkProgram({ ...program, checksum: flipped(program.checksum) }), (e: unknown) => isTallyError(e, 'OTP_PROGRAM_INVALID') && e.details.fault === 'checksum');
    });
  }
});

describe('test vectors: exchange-key.json', () => {
  const v = exchangeKeyFile;
  const bank = signerFromSecret(nobleEd25519, fromHex(v.bankSecretKey));
  const body = { ...v.body, publicKey: fromHex(v.body.publicKey) };

  it('the bank key, the signed bytes, the signature and the key id are recomputed', () => {
    assert.equal(toHex(bank.publicKey.key), v.bankPublicKey);
    const issued = issueExchangeKey(bank, body);
    assert.equal(toHex(encodeCbor(issued.body)), v.bodyCbor);
    assert.equal(toHex(signedBytes(v.tag, issued.body)), v.signedBytes);
    assert.equal(toHex(encodeCbor([v.tag, issued.body])), v.signedBytes);
    assert.equal(toHex(issued.signature), v.bankSignature);
    assert.equal(toHex(encodeCbor(issued)), v.exchangeKeyCbor);
    assert.equal(toHex(exchangeKeyId(body.publicKey)), v.keyId);
    assert.equal(v.keyId, transferFile.payee.keyId, 'the key the transfer vector seals to');
  });

  it('the signature verifies over the signed bytes, and the payer takes the key in its window', () => {
    assert.equal(nobleEd25519.verify(fromHex(v.bankPublicKey), fromHex(v.bankSignature), fromHex(v.signedBytes)), true);
    const key = exchangeKeyCodec.decode(decodeCbor(fromHex(v.exchangeKeyCbor)));
    const bankKey = { suite: v.bankSuite, key: fromHex(v.bankPublicKey) };
    assert.deepEqual(checkExchangeKey(nobleProvider, bankKey, key, v.body.notBefore), body);
  });

  it('refuses the key with a flipped signature, another body or under another bank', () => {
    const key = exchangeKeyCodec.decode(decodeCbor(fromHex(v.exchangeKeyCbor)));
    const bankKey = { suite: v.bankSuite, key: fromHex(v.bankPublicKey) };
    const refused = (e: unknown) => isTallyError(e, 'SIGNATURE_INVALID');
    assert.throws(() => checkExchangeKey(nobleProvider, bankKey, { ...key, signature: flipped(key.signature, 5) }, v.body.notBefore), refused);
    assert.throws(() => checkExchangeKey(nobleProvider, bankKey, { ...key, body: { ...key.body, category: 'pharmacy' } }, v.body.notBefore), refused);
    assert.throws(() => checkExchangeKey(nobleProvider, bankKey, { ...key, body: { ...key.body, notAfter: key.body.notAfter + 1 } }, v.body.notBefore), refused);
    const other = signerFromSecret(nobleEd25519, flipped(fromHex(v.bankSecretKey)));
    assert.throws(() => checkExchangeKey(nobleProvider, other.publicKey, key, v.body.notBefore), refused);
  });
});

describe('test vectors: transfer.json', () => {
  const v = transferFile;
  const payeePrivate = fromHex(v.payee.privateKey);
  const payeePublic = fromHex(v.payee.publicKey);
  const carried = carriedCoinCodec.decode(decodeCbor(fromHex(v.carriedCoinCbor)));
  const ephemeralKey = (length: number): Uint8Array => {
    assert.equal(length, 32);
    return fromHex(v.ephemeral.privateKey);
  };

  it('the payee and ephemeral keys come from their ikm (RFC 9180 §7.1.3), and info from the key id', () => {
    const payee = deriveKeyPair(fromHex(v.payee.ikm));
    assert.equal(toHex(payee.privateKey), v.payee.privateKey);
    assert.equal(toHex(payee.publicKey), v.payee.publicKey);
    assert.equal(toHex(exchangeKeyId(payeePublic)), v.payee.keyId);
    const ephemeral = deriveKeyPair(fromHex(v.ephemeral.ikmE));
    assert.equal(toHex(ephemeral.privateKey), v.ephemeral.privateKey);
    assert.equal(toHex(ephemeral.publicKey), v.ephemeral.enc);
    assert.equal(toHex(encodeCbor([v.infoLabel, fromHex(v.payee.keyId)])), v.info);
    assert.equal(toHex(encodeCbor(carried)), v.carriedCoinCbor);
  });

  it('sealCoin with that ephemeral key gives the sealed coin and the ACK secret', () => {
    const { sealed, ackSecret } = sealCoin(carried, payeePublic, ephemeralKey);
    assert.deepEqual({ keyId: toHex(sealed.keyId), classId: toHex(sealed.classId), enc: toHex(sealed.enc), ciphertext: toHex(sealed.ciphertext) }, v.sealed);
    assert.equal(toHex(encodeCbor(sealed)), v.sealedCbor);
    assert.equal(toHex(ackSecret), v.ackSecret);
  });

  it('plain HPKE from the ikmE, the info and the class id as aad gives the same ciphertext and ACK secret', () => {
    const context = setupBaseSDeterministicForTests({ recipientPublicKey: payeePublic, info: fromHex(v.info), ikmE: fromHex(v.ephemeral.ikmE) });
    assert.equal(toHex(context.enc), v.sealed.enc);
    assert.equal(toHex(context.seal(fromHex(v.carriedCoinCbor), fromHex(v.sealed.classId))), v.sealed.ciphertext);
    assert.equal(toHex(context.export(new TextEncoder().encode(v.ackLabel), 32)), v.ackSecret);
  });

  it('the payee opens it to the coin and answers the ACK; digest and MAC are SHA-256 and HMAC-SHA256', () => {
    const sealed = sealedCoinCodec.decode(decodeCbor(fromHex(v.sealedCbor)));
    const { carried: opened, ack } = openCoin(sealed, payeePrivate, payeePublic);
    assert.deepEqual(opened, carried);
    assert.equal(toHex(encodeCbor(ack)), v.ackCbor);
    assert.deepEqual(ackCodec.decode(decodeCbor(fromHex(v.ackCbor))), { digest: fromHex(v.ack.digest), mac: fromHex(v.ack.mac) });
    assert.equal(sha256Hex(fromHex(v.sealedCbor)), v.ack.digest);
    const mac = createHmac('sha256', fromHex(v.ackSecret)).update(v.ackLabel).update(fromHex(v.ack.digest)).digest('hex');
    assert.equal(mac, v.ack.mac);
    assert.equal(ackMatches(sealed, fromHex(v.ackSecret), ack), true);
  });

  it('refuses the sealed coin under another key, and an ACK with a flipped MAC or under another secret', () => {
    const sealed = sealedCoinCodec.decode(decodeCbor(fromHex(v.sealedCbor)));
    const other = deriveKeyPair(flipped(fromHex(v.payee.ikm)));
    assert.throws(() => openCoin(sealed, other.privateKey, other.publicKey), (e: unknown) => isTallyError(e, 'AEAD_FAILED'));
    assert.throws(() => openCoin({ ...sealed, keyId: exchangeKeyId(other.publicKey) }, other.privateKey, other.publicKey), (e: unknown) => isTallyError(e, 'AEAD_FAILED'));
    const ack = { digest: fromHex(v.ack.digest), mac: fromHex(v.ack.mac) };
    assert.equal(ackMatches(sealed, fromHex(v.ackSecret), { ...ack, mac: flipped(ack.mac) }), false);
    assert.equal(ackMatches(sealed, flipped(fromHex(v.ackSecret)), ack), false);
  });
});
