import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scrypt as nobleScrypt } from '@noble/hashes/scrypt.js';
import { utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { aeadSeal, hkdf } from '../../core/crypto/hash.ts';
import { nobleProvider } from '../../core/crypto/noble.ts';
import { SUITE_NAMES } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { decodeKeyFile, openKey, openSecretKey, readKeyFile, readSecretKeyFile, sealKey, writeKeyFile, KEY_FILE_DOMAIN_TAG, SCRYPT_DEFAULTS } from './keystore.ts';

const PASSPHRASE = 'correct horse battery staple';
const suite = nodeProvider.suites.ed25519;
const secretKey = suite.secretKeyFromSeed(hkdf({ ikm: utf8('keystore test'), info: 'tally/test/keystore/v1', length: 48 }));
const MESSAGE = utf8('deposit confirmation');

function flipByte(bytes: Uint8Array, index: number): Uint8Array {
  const out = bytes.slice();
  out[index] = (out[index] as number) ^ 0x01;
  return out;
}

/** Re-encodes a decoded key file with some fields changed (what a careful forger would write). */
function reencode(encoded: Uint8Array, change: (file: Record<string, unknown>, kdf: Record<string, unknown>) => void): Uint8Array {
  const file = decodeKeyFile(encoded);
  const kdf: Record<string, unknown> = { ...file.kdf };
  const fields: Record<string, unknown> = { ...file, kdf };
  change(fields, kdf);
  return encodeCbor(fields);
}

async function refusedWith(run: () => Promise<unknown>, code: string, what: string): Promise<void> {
  await assert.rejects(run, (e: unknown) => {
    assert.ok(isTallyError(e), `${what}: expected a TallyError, got ${String(e)}`);
    assert.equal(e.code, code, `${what}: ${e.message}`);
    return true;
  });
}

describe('key files', () => {
  let dir = '';
  let sealed: Uint8Array = new Uint8Array(0);
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tally-keystore-'));
    sealed = await sealKey({ suite, secretKey }, PASSPHRASE);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a 0600 file atomically and reads back a signer for the same key', async () => {
    const path = join(dir, 'node.key');
    const publicKey = await writeKeyFile(path, { suite, secretKey }, PASSPHRASE);
    if (process.platform !== 'win32') assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ['node.key'], 'no temporary file is left');
    const loaded = await readKeyFile(path, PASSPHRASE, nodeProvider);
    assert.deepEqual(loaded.publicKey, publicKey);
    assert.deepEqual(loaded.publicKey.key, suite.publicKey(secretKey));
    assert.equal(suite.verify(publicKey.key, loaded.signer.sign(MESSAGE), MESSAGE), true);
    assert.equal(Object.keys(loaded.signer).includes('secretKey'), false, 'the secret stays in a closure');

    await writeKeyFile(path, { suite, secretKey: suite.generateSecretKey() }, PASSPHRASE);
    assert.notDeepEqual((await readKeyFile(path, PASSPHRASE, nodeProvider)).publicKey, publicKey, 'a second write replaces the file');
    assert.deepEqual(await readdir(dir), ['node.key']);
  });

  it('opens the secret key itself for a library that must hold it, with the same refusals as openKey', async () => {
    const k1 = nodeProvider.suites.secp256k1;
    const chainSecret = k1.generateSecretKey();
    const path = join(dir, 'chain.key');
    await writeKeyFile(path, { suite: k1, secretKey: chainSecret }, PASSPHRASE);
    const opened = await readSecretKeyFile(path, PASSPHRASE, nodeProvider);
    assert.equal(opened.suite.name, 'secp256k1');
    assert.deepEqual(opened.secretKey, chainSecret);
    assert.deepEqual(opened.publicKey, { suite: 'secp256k1', key: k1.publicKey(chainSecret) });
    await refusedWith(() => readSecretKeyFile(path, 'wrong passphrase', nodeProvider), 'AEAD_FAILED', 'wrong passphrase');
    const encoded = await readFile(path);
    const altered = reencode(encoded, (file) => (file['box'] = flipByte(file['box'] as Uint8Array, 30)));
    await refusedWith(() => openSecretKey(altered, PASSPHRASE, nodeProvider), 'STATE_CORRUPT', 'altered box');
    const otherKey = reencode(encoded, (file) => (file['publicKey'] = k1.publicKey(k1.generateSecretKey())));
    await refusedWith(() => openSecretKey(otherKey, PASSPHRASE, nodeProvider), 'STATE_CORRUPT', 'another public key in the header');
  });

  it('writes the documented format: format 1, suite, public key, scrypt parameters, box', async () => {
    const file = decodeKeyFile(sealed);
    assert.equal(file.format, 1);
    assert.equal(file.suite, 'ed25519');
    assert.deepEqual(file.publicKey, suite.publicKey(secretKey));
    assert.deepEqual({ name: file.kdf.name, N: file.kdf.N, r: file.kdf.r, p: file.kdf.p }, { name: 'scrypt', ...SCRYPT_DEFAULTS });
    assert.equal(file.kdf.salt.length, 16);
    assert.equal(file.box.length, 24 + 32 + 16);
    const again = decodeKeyFile(await sealKey({ suite, secretKey }, PASSPHRASE));
    assert.notDeepEqual(again.kdf.salt, file.kdf.salt, 'a fresh salt per file');
    assert.notDeepEqual(again.box, file.box);
  });

  it('seals every suite', async () => {
    for (const name of SUITE_NAMES) {
      const s = nobleProvider.suites[name];
      const key = s.generateSecretKey();
      const loaded = await openKey(await sealKey({ suite: s, secretKey: key }, PASSPHRASE), PASSPHRASE, nodeProvider);
      assert.equal(loaded.publicKey.suite, name);
      assert.equal(s.verify(loaded.publicKey.key, loaded.signer.sign(MESSAGE), MESSAGE), true, name);
    }
  });

  it('refuses a wrong passphrase with AEAD_FAILED and a message that says what to do', async () => {
    const path = join(dir, 'wrong.key');
    await writeKeyFile(path, { suite, secretKey }, PASSPHRASE);
    const before = await readFile(path);
    await assert.rejects(readKeyFile(path, 'Correct horse battery staple', nodeProvider), {
      code: 'AEAD_FAILED',
      message: `wrong passphrase for ${path}: set TALLY_NODE_PASSPHRASE to the passphrase used when the node was created`,
    });
    assert.deepEqual(await readFile(path), before, 'nothing is written');
  });

  it('derives the same key from the NFC and NFD forms of a passphrase', async () => {
    const box = await sealKey({ suite, secretKey }, 'caf\u00e9');
    assert.deepEqual((await openKey(box, 'cafe\u0301', nodeProvider)).publicKey.key, suite.publicKey(secretKey));
  });

  it('refuses any changed byte, a truncated or a longer file', async () => {
    const seen = new Set<string>();
    const step = Math.max(1, Math.floor(sealed.length / 24));
    for (let i = 0; i < sealed.length; i += step) {
      await assert.rejects(openKey(flipByte(sealed, i), PASSPHRASE, nodeProvider), (e: unknown) => {
        assert.ok(isTallyError(e, 'STATE_CORRUPT') || isTallyError(e, 'AEAD_FAILED'), `byte ${i}: ${String(e)}`);
        seen.add(e.code);
        return true;
      });
    }
    const boxAt = Buffer.from(sealed).indexOf(Buffer.from(decodeKeyFile(sealed).box));
    await refusedWith(() => openKey(flipByte(sealed, boxAt + 71), PASSPHRASE, nodeProvider), 'STATE_CORRUPT', 'last byte of the box');
    await refusedWith(() => openKey(flipByte(sealed, sealed.length - 1), PASSPHRASE, nodeProvider), 'AEAD_FAILED', 'passphrase check (the last field)');
    await refusedWith(() => openKey(sealed.subarray(0, sealed.length - 1), PASSPHRASE, nodeProvider), 'STATE_CORRUPT', 'truncated');
    await refusedWith(() => openKey(sealed.subarray(0, 10), PASSPHRASE, nodeProvider), 'STATE_CORRUPT', 'cut short');
    await refusedWith(() => openKey(new Uint8Array([...sealed, 0]), PASSPHRASE, nodeProvider), 'STATE_CORRUPT', 'trailing byte');
    await refusedWith(() => openKey(new Uint8Array(0), PASSPHRASE, nodeProvider), 'STATE_CORRUPT', 'empty');
    assert.ok(seen.has('STATE_CORRUPT'));
  });

  it('refuses a well-formed file whose header was changed', async () => {
    const other = nodeProvider.suites.ed25519.publicKey(suite.generateSecretKey());
    await refusedWith(() => openKey(reencode(sealed, (f) => (f.publicKey = other)), PASSPHRASE, nodeProvider), 'STATE_CORRUPT', 'other public key');
    await refusedWith(() => openKey(reencode(sealed, (_, kdf) => (kdf.N = 2 ** 14)), PASSPHRASE, nodeProvider), 'AEAD_FAILED', 'other N');
    await refusedWith(() => openKey(reencode(sealed, (f) => (f.suite = 'p256')), PASSPHRASE, nodeProvider), 'STATE_CORRUPT', 'other suite');
    await refusedWith(() => openKey(reencode(sealed, (f) => (f.extra = 1)), PASSPHRASE, nodeProvider), 'STATE_CORRUPT', 'unknown field');
    await refusedWith(() => openKey(reencode(sealed, (f) => (f.format = 2)), PASSPHRASE, nodeProvider), 'STATE_CORRUPT', 'format 2');
  });

  it('refuses scrypt parameters that would hang or exhaust memory before deriving anything', async () => {
    const cases: [string, (kdf: Record<string, unknown>) => void][] = [
      ['N = 2^21', (kdf) => (kdf.N = 2 ** 21)],
      ['N = 2^30', (kdf) => (kdf.N = 2 ** 30)],
      ['N = 2^20 with r = 8 (1 GiB)', (kdf) => (kdf.N = 2 ** 20)],
      ['N not a power of two', (kdf) => (kdf.N = 3 * 2 ** 14)],
      ['N below the floor', (kdf) => (kdf.N = 2 ** 10)],
      ['r = 64', (kdf) => (kdf.r = 64)],
      ['p = 16', (kdf) => (kdf.p = 16)],
      ['p = 0', (kdf) => (kdf.p = 0)],
    ];
    for (const [what, change] of cases) {
      const started = performance.now();
      await refusedWith(() => openKey(reencode(sealed, (_, kdf) => change(kdf)), PASSPHRASE, nodeProvider), 'STATE_CORRUPT', what);
      assert.ok(performance.now() - started < 50, `${what}: refused without deriving`);
    }
    await assert.rejects(sealKey({ suite, secretKey }, PASSPHRASE, { kdf: { N: 2 ** 10, r: 8, p: 1 } }), RangeError);
    await assert.rejects(sealKey({ suite, secretKey }, PASSPHRASE, { kdf: { N: 2 ** 20, r: 8, p: 1 } }), RangeError);
    await assert.rejects(sealKey({ suite, secretKey }, '', {}), RangeError);
    await assert.rejects(sealKey({ suite, secretKey: secretKey.subarray(1) }, PASSPHRASE), RangeError);
  });

  it('is the scrypt of RFC 7914 (noble derives the same key), and refuses a secret that is not the named key', async () => {
    // Build a file by hand with noble's scrypt: another implementation can read and write the format.
    const real = decodeKeyFile(sealed);
    const derived = nobleScrypt(utf8(PASSPHRASE), real.kdf.salt, { N: real.kdf.N, r: real.kdf.r, p: real.kdf.p, dkLen: 48 });
    assert.deepEqual(derived.subarray(32), real.passphraseCheck, 'the stored check is scrypt output bytes 32..47');
    const { box: _box, ...fields } = real;
    const aad = encodeCbor([KEY_FILE_DOMAIN_TAG, { ...fields, kdf: { ...real.kdf } }]);
    const box = aeadSeal(derived.subarray(0, 32), suite.generateSecretKey(), aad);
    await refusedWith(() => openKey(encodeCbor({ ...fields, box }), PASSPHRASE, nodeProvider), 'KEY_INVALID', 'another secret');
    const honest = aeadSeal(derived.subarray(0, 32), secretKey, aad);
    assert.deepEqual((await openKey(encodeCbor({ ...fields, box: honest }), PASSPHRASE, nodeProvider)).publicKey.key, real.publicKey);
  });

  it('refuses a missing, oversized or non-CBOR file with STATE_CORRUPT', async () => {
    await refusedWith(() => readKeyFile(join(dir, 'absent.key'), PASSPHRASE, nodeProvider), 'STATE_CORRUPT', 'missing');
    await writeFile(join(dir, 'big.key'), new Uint8Array(4096));
    await refusedWith(() => readKeyFile(join(dir, 'big.key'), PASSPHRASE, nodeProvider), 'STATE_CORRUPT', 'oversized');
    await writeFile(join(dir, 'text.key'), 'not a key');
    await refusedWith(() => readKeyFile(join(dir, 'text.key'), PASSPHRASE, nodeProvider), 'STATE_CORRUPT', 'text');
    await refusedWith(() => readKeyFile(dir, PASSPHRASE, nodeProvider), 'STATE_CORRUPT', 'a folder');
  });

  it('takes well under 300 ms per derivation with the default parameters', async (t) => {
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      await openKey(sealed, PASSPHRASE, nodeProvider);
      times.push(performance.now() - started);
    }
    const best = Math.min(...times);
    t.diagnostic(`scrypt N=2^15 r=8 p=1 + open: best of 3 ${best.toFixed(0)} ms`);
    // A generous bound: a loaded CI machine is slower than a quiet one.
    assert.ok(best < 1000, `${best} ms`);
  });

  it('keeps the header CBOR canonical', () => {
    assert.deepEqual(encodeCbor(decodeCbor(sealed)), sealed);
  });
});
