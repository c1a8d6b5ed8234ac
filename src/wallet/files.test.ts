/**
 * Files the wallet and the CLI read go through codecs: a malformed field is a STATE_CORRUPT naming
 * the file and the field, for the OEM key file, a staged device, the operator token and wallet.json.
 */
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isTallyError } from '../core/errors.ts';
import { loadOem } from './factory.ts';
import { record } from '../core/codec.ts';
import { base64urlText, keyIdHex } from '../core/fields.ts';
import { decodeJsonFile, decodeText, oemFileCodec, operatorTokenCodec } from './files.ts';
import { legacyWallet } from './store/test-fixtures.ts';
import { readLegacyWallet } from './store/open.ts';

const KEY = 'cd'.repeat(32);
/** A staged device file's shape, as a scheme's wallet reads it back in a recovery. */
const stagedDeviceCodec = record({ keyId: keyIdHex, certificate: base64urlText({ max: 256 * 1024 }) });
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test('the OEM key file: a malformed field is named, a good file loads', async () => {
  const home = await mkdtemp(join(tmpdir(), 'tally-files-'));
  dirs.push(home);
  await mkdir(join(home, 'oem'), { recursive: true, mode: 0o700 });
  const path = join(home, 'oem', 'oem.json');
  await writeFile(path, JSON.stringify({ format: 1, secret: 'ab'.repeat(32), enrolled: { 'http://127.0.0.1:1': 'zz' } }), { mode: 0o600 });
  await assert.rejects(loadOem(home), (e) => isTallyError(e, 'STATE_CORRUPT') && e.message.includes('file.enrolled["http://127.0.0.1:1"]'));
  await writeFile(path, JSON.stringify({ format: 1, secret: 'ab'.repeat(31), enrolled: {} }), { mode: 0o600 });
  await assert.rejects(loadOem(home), (e) => isTallyError(e, 'STATE_CORRUPT') && e.message.includes('file.secret'));
  await writeFile(path, JSON.stringify({ format: 1, secret: 'ab'.repeat(32), enrolled: { 'http://127.0.0.1:1': KEY } }), { mode: 0o600 });
  const oem = await loadOem(home);
  assert.equal(oem?.isEnrolledAt('http://127.0.0.1:1'), true);
  assert.throws(() => oemFileCodec.decode({ format: 1, secret: 'ab'.repeat(32), enrolled: [] }, 'file'), (e) => isTallyError(e, 'DECODE_FAILED') && e.details.path === 'file.enrolled');
});

test('a staged device file and the operator token are decoded, naming what is wrong', () => {
  assert.deepEqual(decodeJsonFile('/x/device.json', 'staged device file', stagedDeviceCodec, JSON.stringify({ keyId: KEY, certificate: 'QUJD' })), { keyId: KEY, certificate: 'QUJD' });
  assert.throws(() => decodeJsonFile('/x/device.json', 'staged device file', stagedDeviceCodec, JSON.stringify({ keyId: KEY })), (e) => isTallyError(e, 'STATE_CORRUPT') && /file\.certificate/.test(e.message));
  assert.throws(() => decodeJsonFile('/x/device.json', 'staged device file', stagedDeviceCodec, '{"keyId":'), (e) => isTallyError(e, 'STATE_CORRUPT') && /not JSON/.test(e.message));
  assert.equal(decodeText(operatorTokenCodec, 'A'.repeat(43), '/d/identity/operator-token'), 'A'.repeat(43));
  assert.throws(() => decodeText(operatorTokenCodec, 'two words here and more', '/d/identity/operator-token'), (e) => isTallyError(e, 'STATE_CORRUPT') && /operator-token/.test(e.message));
});

test('wallet.json (of an earlier version, read to migrate it): a malformed field deep inside is STATE_CORRUPT naming it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tally-files-'));
  dirs.push(dir);
  const path = join(dir, 'wallet.json');
  const good = legacyWallet(2);
  await writeFile(path, JSON.stringify(good), { mode: 0o600 });
  assert.equal((await readLegacyWallet(path))?.name, 'alice');
  const bad = structuredClone(good) as unknown as { sent: Record<string, unknown>[] };
  bad.sent[1]!['amount'] = 5;
  await writeFile(path, JSON.stringify(bad), { mode: 0o600 });
  await assert.rejects(readLegacyWallet(path), (e) => isTallyError(e, 'STATE_CORRUPT') && e.message.includes('wallet.sent[1].amount'));
});
