/**
 * OTP's known-answer vectors (test-vectors/otp/, docs/test-vectors.md): a coin's program, an
 * exchange key and one sealed transfer with its ACK, from fixed keys and seeds and no randomness;
 * vectors.test.ts recomputes them. The RFC vectors beside them (rfc*.json) are copied from their
 * RFCs, not generated. Pure.
 */
import { toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { nobleEd25519 } from '../../core/crypto/noble-ed25519.ts';
import { signedBytes } from '../../core/crypto/record.ts';
import { signerFromSecret } from '../../core/crypto/suite.ts';
import { programDigest } from './coin.ts';
import { EXCHANGE_KEY_TAG, exchangeKeyId, issueExchangeKey, type ExchangeKeyBody } from './exchange-key.ts';
import { deriveKeyPair } from '../../core/crypto/hpke.ts';
import type { CarriedCoin } from './messages.ts';
import { buildProgram, type Condition, type SchemaVersion } from './program.ts';
import { openCoin, sealCoin } from './transfer.ts';
import { GENERATED_SOURCE, vectorText } from '../../pki/vectors.ts';

// Labels private to their modules, written into the files for other implementations;
// vectors.test.ts checks each against the bytes it labels.
/** The label under which a program's checksum is taken (program.ts). */
const PROGRAM_CHECKSUM_LABEL = 'tally/otp/program-checksum/v1';
/** The HPKE info label and ACK exporter context of a transfer (transfer.ts). */
const TRANSFER_INFO_LABEL = 'tally/otp/transfer/v1';
const ACK_LABEL = 'tally/otp/ack/v1';

/** The programs a vector is given for: schema 1, schema 2 bare, schema 2 with every condition. */
const PROGRAMS: readonly { name: string; schemaVersion: SchemaVersion; conditions: readonly Condition[] }[] = [
  { name: 'schema 1 (the paper\'s seven steps)', schemaVersion: 1, conditions: [] },
  { name: 'schema 2 without conditions', schemaVersion: 2, conditions: [] },
  {
    name: 'schema 2 with every condition',
    schemaVersion: 2,
    conditions: [
      { kind: 'checkExpiry', until: 1_798_761_600_000 },
      { kind: 'checkPayeeCategory', categories: ['grocery', 'pharmacy'] },
      { kind: 'checkMaxHops', hops: 3 },
    ],
  },
];

/** The bank's Ed25519 private key (RFC 8032's 32 bytes) and the payee TA's HPKE ikm (RFC 9180 §7.1.3). */
const BANK_SECRET_KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const PAYEE_IKM = new Uint8Array(32).fill(0xa1);
/** The ikm of the sealing's ephemeral key: a test-vector device, never how a coin is sealed. */
const EPHEMERAL_IKM = new Uint8Array(32).fill(0xe5);

const EXCHANGE_KEY_BODY_FIELDS = { category: 'grocery', notBefore: 1_767_225_600_000, notAfter: 1_798_761_600_000 } as const;

/** A carried coin of fixed filler bytes: the transfer vector covers the sealing, not the coin's signature. */
const COIN: CarriedCoin = {
  coin: {
    serial: new Uint8Array(32).fill(0x11),
    classId: new Uint8Array(16).fill(0x22),
    prefix: new Uint8Array(32).fill(0x33),
    signature: new Uint8Array(256).fill(0x44),
    program: buildProgram(1),
  },
  tags: [],
};

function programVectors(): object {
  return {
    source: `${GENERATED_SOURCE}: the behavioural section of an OTP coin (src/schemes/otp/program.ts)`,
    checksum: 'SHA-256 of the deterministic CBOR of [checksumLabel, instructions]; digest is SHA-256 of the CBOR of the whole program',
    checksumLabel: PROGRAM_CHECKSUM_LABEL,
    vectors: PROGRAMS.map(({ name, schemaVersion, conditions }) => {
      const program = buildProgram(schemaVersion, conditions);
      return {
        name,
        schemaVersion,
        conditions,
        instructions: program.instructions,
        checksum: toHex(program.checksum),
        cbor: toHex(encodeCbor(program)),
        digest: toHex(programDigest(program)),
      };
    }),
  };
}

function exchangeKeyVectors(): object {
  const bank = signerFromSecret(nobleEd25519, BANK_SECRET_KEY);
  const payee = deriveKeyPair(PAYEE_IKM);
  const body: ExchangeKeyBody = { publicKey: payee.publicKey, ...EXCHANGE_KEY_BODY_FIELDS };
  const key = issueExchangeKey(bank, body);
  return {
    source: `${GENERATED_SOURCE}: an exchange key the bank signs for a payee TA (src/schemes/otp/exchange-key.ts)`,
    signature: 'Ed25519 (RFC 8032) by the bank over the deterministic CBOR of [tag, body]',
    tag: EXCHANGE_KEY_TAG,
    bankSuite: bank.publicKey.suite,
    bankSecretKey: toHex(BANK_SECRET_KEY),
    bankPublicKey: toHex(bank.publicKey.key),
    body: { publicKey: toHex(body.publicKey), ...EXCHANGE_KEY_BODY_FIELDS },
    bodyCbor: toHex(encodeCbor(key.body)),
    signedBytes: toHex(signedBytes(EXCHANGE_KEY_TAG, key.body)),
    bankSignature: toHex(key.signature),
    exchangeKeyCbor: toHex(encodeCbor(key)),
    keyId: toHex(exchangeKeyId(body.publicKey)),
  };
}

function transferVectors(): object {
  const payee = deriveKeyPair(PAYEE_IKM);
  const ephemeral = deriveKeyPair(EPHEMERAL_IKM);
  const { sealed, ackSecret } = sealCoin(COIN, payee.publicKey, (length) => {
    if (length !== ephemeral.privateKey.length) throw new RangeError(`the sealing asked for ${length} random bytes, not an X25519 key`);
    return Uint8Array.from(ephemeral.privateKey);
  });
  const { ack } = openCoin(sealed, payee.privateKey, payee.publicKey);
  return {
    source: `${GENERATED_SOURCE}: one coin sealed to a payee's exchange key and its ACK (src/schemes/otp/transfer.ts)`,
    sealing:
      'HPKE base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305 (RFC 9180): info is the CBOR of [infoLabel, keyId], ' +
      'aad the class id, plaintext the CBOR of the carried coin; ackSecret = Export(ackLabel, 32); ack.digest = SHA-256(sealedCbor); ' +
      'ack.mac = HMAC-SHA256(ackSecret, ackLabel || ack.digest)',
    coinNote: "the coin's fields are fixed filler bytes (its signature is no class key's): this vector covers the sealing and the ACK",
    infoLabel: TRANSFER_INFO_LABEL,
    ackLabel: ACK_LABEL,
    payee: { ikm: toHex(PAYEE_IKM), privateKey: toHex(payee.privateKey), publicKey: toHex(payee.publicKey), keyId: toHex(exchangeKeyId(payee.publicKey)) },
    ephemeral: { ikmE: toHex(EPHEMERAL_IKM), privateKey: toHex(ephemeral.privateKey), enc: toHex(ephemeral.publicKey) },
    info: toHex(encodeCbor([TRANSFER_INFO_LABEL, sealed.keyId])),
    carriedCoinCbor: toHex(encodeCbor(COIN)),
    sealed: { keyId: toHex(sealed.keyId), classId: toHex(sealed.classId), enc: toHex(sealed.enc), ciphertext: toHex(sealed.ciphertext) },
    sealedCbor: toHex(encodeCbor(sealed)),
    ackSecret: toHex(ackSecret),
    ack: { digest: toHex(ack.digest), mac: toHex(ack.mac) },
    ackCbor: toHex(encodeCbor(ack)),
  };
}

/** OTP's generated files: path from the repository's root, and text. */
export function otpVectorFiles(): ReadonlyMap<string, string> {
  return new Map([
    ['test-vectors/otp/program.json', vectorText(programVectors())],
    ['test-vectors/otp/exchange-key.json', vectorText(exchangeKeyVectors())],
    ['test-vectors/otp/transfer.json', vectorText(transferVectors())],
  ]);
}
