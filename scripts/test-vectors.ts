// Writes Tally's own test vectors under test-vectors/ (`npm run vectors`), from fixed keys and
// seeds and no randomness, so every run writes the same bytes. src/schemes/otp/vectors.test.ts
// recomputes each value from the files and checks that this generator's output is what is
// committed. The RFC vectors beside them (rfc*.json) are copied from their RFCs, not generated.
// See docs/test-vectors.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { toHex } from '../src/core/bytes.ts';
import { encodeCbor } from '../src/core/cbor.ts';
import { nobleEd25519 } from '../src/core/crypto/noble-ed25519.ts';
import { signedBytes } from '../src/core/crypto/record.ts';
import { signerFromSecret } from '../src/core/crypto/suite.ts';
import { programDigest } from '../src/schemes/otp/coin.ts';
import { EXCHANGE_KEY_TAG, exchangeKeyId, issueExchangeKey, type ExchangeKeyBody } from '../src/schemes/otp/exchange-key.ts';
import { deriveKeyPair } from '../src/core/crypto/hpke.ts';
import type { CarriedCoin } from '../src/schemes/otp/messages.ts';
import { buildProgram, type Condition, type SchemaVersion } from '../src/schemes/otp/program.ts';
import { openCoin, sealCoin } from '../src/schemes/otp/transfer.ts';

/** The source line of every generated file. */
export const GENERATED_SOURCE = "Tally's own vectors, written by scripts/test-vectors.ts (npm run vectors)";

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

/** Every generated file: its path from the repository's root, and its text. */
export function vectorFiles(): ReadonlyMap<string, string> {
  const text = (value: object): string => `${JSON.stringify(value, null, 2)}\n`;
  return new Map([
    ['test-vectors/otp/program.json', text(programVectors())],
    ['test-vectors/otp/exchange-key.json', text(exchangeKeyVectors())],
    ['test-vectors/otp/transfer.json', text(transferVectors())],
  ]);
}

/** Writes every generated file under `root`; returns their paths. */
export function writeVectors(root: URL): string[] {
  const written: string[] = [];
  for (const [path, text] of vectorFiles()) {
    const file = fileURLToPath(new URL(path, root));
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    written.push(path);
  }
  return written;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const path of writeVectors(new URL('../', import.meta.url))) console.log(`vectors: wrote ${path}`);
}
