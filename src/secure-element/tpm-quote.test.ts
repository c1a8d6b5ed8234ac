import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { concatBytes, utf8 } from '../core/bytes.ts';
import { randomBytes, sha256 } from '../core/crypto/hash.ts';
import { isTallyError } from '../core/errors.ts';
import { expectedPcrValue, verifyQuote } from '../pki/tpm-quote.ts';
import { measureTrustedApp } from './measure.ts';
import type { Swtpm } from './swtpm.ts';
import { silentPair, swtpmGate, SwtpmFixture } from './tpm-fixtures.ts';
import { AK_KEY_FILE, createAttestationKey, extendMeasurement, ODW_PCR, quote, type TpmQuote } from './tpm-quote.ts';

const skip = await swtpmGate();
const TIMEOUT_MS = 5_000;

const fixture = new SwtpmFixture('tally-quote-');
const freshDir = () => fixture.freshDir();
const start = (stateDir?: string) => fixture.start(stateDir);

/** A fresh TPM (PCR 23 at zero) with an AK in a fresh directory. */
async function device(): Promise<{ tpm: Swtpm; dir: string; ak: Uint8Array }> {
  const tpm = await start();
  const dir = await freshDir();
  return { tpm, dir, ak: await createAttestationKey(tpm.tcti, dir, { timeoutMs: TIMEOUT_MS }) };
}

function quoteOdw(tpm: Swtpm, dir: string, nonce: Uint8Array): Promise<TpmQuote> {
  return quote(tpm.tcti, dir, { pcrs: [ODW_PCR], qualifyingData: nonce, timeoutMs: TIMEOUT_MS });
}

function refused(field: string) {
  return (e: unknown): boolean => isTallyError(e, 'TPM_QUOTE_INVALID') && e.details.field === field;
}

/** Runs tpm2_checkquote on a quote; true when it accepts it (exit 0). */
async function checkquote(q: TpmQuote, ak: Uint8Array, nonce: Uint8Array): Promise<boolean> {
  const dir = await freshDir();
  const file = (name: string) => join(dir, name);
  const pem = createPublicKey({ key: Buffer.from(ak), format: 'der', type: 'spki' }).export({ format: 'pem', type: 'spki' });
  // The TPMT_SIGNATURE tpm2_checkquote reads: ECDSA (0x0018), SHA-256 (0x000b), then r and s as TPM2Bs.
  const tpmt = concatBytes(Uint8Array.of(0x00, 0x18, 0x00, 0x0b, 0x00, 0x20), q.signature.subarray(0, 32), Uint8Array.of(0x00, 0x20), q.signature.subarray(32));
  await writeFile(file('ak.pem'), pem);
  await writeFile(file('attest'), q.attest);
  await writeFile(file('sig'), tpmt);
  await writeFile(file('pcrs'), concatBytes(...q.pcrValues.values()));
  await writeFile(file('nonce'), nonce);
  const args = ['-u', file('ak.pem'), '-m', file('attest'), '-s', file('sig'), '-f', file('pcrs'), '-l', `sha256:${[...q.pcrValues.keys()].join(',')}`, '-g', 'sha256', '-q', file('nonce')];
  return new Promise((resolve) => execFile('tpm2_checkquote', args, { timeout: TIMEOUT_MS }, (error) => resolve(error === null)));
}

describe('TPM quotes on swtpm', { skip }, () => {
  let measurement: Uint8Array;

  before(async () => {
    measurement = await measureTrustedApp('schemes/ops/trusted-app.ts');
  });

  after(() => fixture.cleanup());

  test('an AK is ECC P-256, made once per directory, which keeps only its context', async () => {
    const { tpm, dir, ak } = await device();
    const key = createPublicKey({ key: Buffer.from(ak), format: 'der', type: 'spki' });
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.deepEqual(await createAttestationKey(tpm.tcti, dir), ak, 'a second call reuses the key');
    assert.deepEqual(await readdir(dir), [AK_KEY_FILE], 'no scratch file is left');
    const other = await createAttestationKey(tpm.tcti, await freshDir());
    assert.notDeepEqual(other, ak, 'another directory, another AK');
    const racing = await freshDir();
    const [a, b] = await Promise.all([createAttestationKey(tpm.tcti, racing), createAttestationKey(tpm.tcti, racing)]);
    assert.deepEqual(a, b, 'two calls at once on one directory answer the same key');
  });

  test('a quote of the extended trusted-app measurement verifies, and tpm2_checkquote agrees', async () => {
    const { tpm, dir, ak } = await device();
    await extendMeasurement(tpm.tcti, ODW_PCR, measurement);
    const nonce = randomBytes(32);
    const q = await quoteOdw(tpm, dir, nonce);
    const expected = expectedPcrValue([measurement]);
    assert.deepEqual(q.pcrValues, new Map([[ODW_PCR, expected]]));
    assert.equal(q.signature.length, 64);
    const info = verifyQuote({ attest: q.attest, signature: q.signature, akPublicKey: ak, nonce, pcrs: [ODW_PCR], expectedPcrValues: [expected] });
    assert.deepEqual(info.extraData, nonce);
    assert.deepEqual(await readdir(dir), [AK_KEY_FILE], 'the quote left no scratch file');
    assert.equal(await checkquote(q, ak, nonce), true, 'tpm2_checkquote accepts what we accept');

    // Refusals agree too: a changed byte of the attest, another nonce, another PCR value.
    const tampered = q.attest.slice();
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 1;
    const other = randomBytes(32);
    const wrongValue = new Map([[ODW_PCR, expectedPcrValue([sha256(utf8('another build'))])]]);
    assert.throws(() => verifyQuote({ attest: tampered, signature: q.signature, akPublicKey: ak, nonce, pcrs: [ODW_PCR], expectedPcrValues: [expected] }), refused('signature'));
    assert.equal(await checkquote({ ...q, attest: tampered }, ak, nonce), false);
    assert.throws(() => verifyQuote({ attest: q.attest, signature: q.signature, akPublicKey: ak, nonce: other, pcrs: [ODW_PCR], expectedPcrValues: [expected] }), refused('nonce'));
    assert.equal(await checkquote(q, ak, other), false);
    assert.throws(() => verifyQuote({ attest: q.attest, signature: q.signature, akPublicKey: ak, nonce, pcrs: [ODW_PCR], expectedPcrValues: [...wrongValue.values()] }), refused('pcrValue'));
    assert.equal(await checkquote({ ...q, pcrValues: wrongValue }, ak, nonce), false);
  });

  test('another build extended, or the same one twice, is refused with its PCR value; another AK with the signature', async () => {
    const { tpm, dir, ak } = await device();
    await extendMeasurement(tpm.tcti, ODW_PCR, sha256(utf8('a patched wallet')));
    const nonce = randomBytes(32);
    const q = await quoteOdw(tpm, dir, nonce);
    const expect = (akPublicKey: Uint8Array) => () =>
      verifyQuote({ attest: q.attest, signature: q.signature, akPublicKey, nonce, pcrs: [ODW_PCR], expectedPcrValues: [expectedPcrValue([measurement])] });
    assert.throws(expect(ak), refused('pcrValue'));
    assert.throws(expect(await createAttestationKey(tpm.tcti, await freshDir())), refused('signature'));

    const twice = await device();
    await extendMeasurement(twice.tpm.tcti, ODW_PCR, measurement);
    await extendMeasurement(twice.tpm.tcti, ODW_PCR, measurement);
    const q2 = await quoteOdw(twice.tpm, twice.dir, nonce);
    assert.throws(() => verifyQuote({ ...q2, akPublicKey: twice.ak, nonce, pcrs: [ODW_PCR], expectedPcrValues: [expectedPcrValue([measurement])] }), refused('pcrValue'));
    verifyQuote({ ...q2, akPublicKey: twice.ak, nonce, pcrs: [ODW_PCR], expectedPcrValues: [expectedPcrValue([measurement, measurement])] });
  });

  test('a restart on the same state resets PCR 23 and keeps the AK usable, after an orderly stop or a power loss', async () => {
    const stateDir = await freshDir();
    const dir = await freshDir();
    let tpm = await start(stateDir);
    const ak = await createAttestationKey(tpm.tcti, dir);
    for (const stop of ['stop', 'kill'] as const) {
      await extendMeasurement(tpm.tcti, ODW_PCR, measurement);
      const nonce = randomBytes(16);
      const before = await quoteOdw(tpm, dir, nonce);
      verifyQuote({ ...before, akPublicKey: ak, nonce, pcrs: [ODW_PCR], expectedPcrValues: [expectedPcrValue([measurement])] });
      await tpm[stop]();
      tpm = await start(stateDir);
      assert.deepEqual(await createAttestationKey(tpm.tcti, dir), ak, `the same AK after ${stop}`);
      const after = await quoteOdw(tpm, dir, nonce);
      assert.deepEqual(after.pcrValues.get(ODW_PCR), new Uint8Array(32), `PCR 23 is zero again after ${stop}`);
      verifyQuote({ ...after, akPublicKey: ak, nonce, pcrs: [ODW_PCR], expectedPcrValues: [expectedPcrValue([])] });
      assert.throws(() => verifyQuote({ ...after, akPublicKey: ak, nonce, pcrs: [ODW_PCR], expectedPcrValues: [expectedPcrValue([measurement])] }), refused('pcrValue'));
    }
  });

  test('quotes and extensions at once on one TPM neither collide nor run out of object slots', async () => {
    const { tpm, dir, ak } = await device();
    const nonces = Array.from({ length: 6 }, () => randomBytes(32));
    const [, ...quotes] = await Promise.all([extendMeasurement(tpm.tcti, 16, measurement), ...nonces.map((n) => quote(tpm.tcti, dir, { pcrs: [16, ODW_PCR], qualifyingData: n }))]);
    quotes.forEach((q, i) => {
      const values = [...q.pcrValues.values()];
      verifyQuote({ ...q, akPublicKey: ak, nonce: nonces[i] as Uint8Array, pcrs: [...q.pcrValues.keys()], expectedPcrValues: values });
    });
    const last = await quote(tpm.tcti, dir, { pcrs: [ODW_PCR, 16], qualifyingData: new Uint8Array(0) });
    verifyQuote({ ...last, akPublicKey: ak, nonce: new Uint8Array(0), pcrs: [16, ODW_PCR], expectedPcrValues: [expectedPcrValue([measurement]), new Uint8Array(32)] });
  });

  test('an AK directory of another TPM, or none, is refused', async () => {
    const first = await device();
    const second = await start();
    const nonce = randomBytes(8);
    await assert.rejects(quoteOdw(second, first.dir, nonce), (e) => isTallyError(e, 'TPM_COMMAND_FAILED') && e.details.tool === 'tpm2_load');
    await assert.rejects(createAttestationKey(second.tcti, first.dir), (e) => isTallyError(e, 'TPM_COMMAND_FAILED') && e.details.tool === 'tpm2_load');
    await assert.rejects(quoteOdw(second, await freshDir(), nonce), (e) => isTallyError(e, 'TPM_COMMAND_FAILED') && /createAttestationKey first/.test(e.message));
    assert.deepEqual(await readdir(first.dir), [AK_KEY_FILE], 'failed calls leave no scratch file');
  });

  test('a stopped TPM fails at once, a silent one within the timeout, missing tools say what to install', async () => {
    const { tpm, dir } = await device();
    await tpm.stop();
    const begun = Date.now();
    await assert.rejects(extendMeasurement(tpm.tcti, ODW_PCR, measurement), (e) => isTallyError(e, 'TPM_COMMAND_FAILED') && /tpm2_pcrextend PCR 23 on swtpm:.* failed: .*connect/is.test(e.message));
    await assert.rejects(quoteOdw(tpm, dir, new Uint8Array(0)), (e) => isTallyError(e, 'TPM_COMMAND_FAILED'));
    assert.ok(Date.now() - begun < TIMEOUT_MS, 'refused connections fail fast');

    const silent = await silentPair();
    try {
      const tcti = `swtpm:host=127.0.0.1,port=${silent.port}`;
      const timeoutMs = 300;
      const at = Date.now();
      await assert.rejects(extendMeasurement(tcti, ODW_PCR, measurement, { timeoutMs }), (e) => isTallyError(e, 'TPM_TIMEOUT') && e.details.timeoutMs === 300 && e.details.tool === 'tpm2_pcrextend');
      await assert.rejects(createAttestationKey(tcti, await freshDir(), { timeoutMs }), (e) => isTallyError(e, 'TPM_TIMEOUT') && e.details.tool === 'tpm2_createek');
      assert.ok(Date.now() - at < 2 * timeoutMs + 2_000, `took ${Date.now() - at} ms`);
    } finally {
      await silent.close();
    }

    const path = process.env['PATH'];
    process.env['PATH'] = '/nonexistent';
    try {
      const missing = (tool: string) => (e: unknown) => isTallyError(e, 'TPM_TOOL_MISSING') && e.details.tool === tool && /install the Debian package tpm2-tools/.test(e.message);
      await assert.rejects(extendMeasurement(tpm.tcti, ODW_PCR, measurement), missing('tpm2_pcrextend'));
      await assert.rejects(createAttestationKey(tpm.tcti, await freshDir()), missing('tpm2_createek'));
      await assert.rejects(quoteOdw(tpm, dir, new Uint8Array(0)), missing('tpm2_createek'), 'a quote first makes the EK to load the AK under');
    } finally {
      process.env['PATH'] = path;
    }
  });

  test('bad arguments are refused with TypeErrors and RangeErrors, before any tool runs', async () => {
    const tcti = 'swtpm:host=127.0.0.1,port=1';
    await assert.rejects(extendMeasurement(tcti, 24, measurement), RangeError);
    await assert.rejects(extendMeasurement(tcti, ODW_PCR, measurement.subarray(1)), RangeError);
    await assert.rejects(Reflect.apply(extendMeasurement, undefined, [tcti, ODW_PCR, [...measurement]]), TypeError);
    for (const request of [{ pcrs: [], qualifyingData: new Uint8Array(0) }, { pcrs: [23, 23], qualifyingData: new Uint8Array(0) }, { pcrs: [-1], qualifyingData: new Uint8Array(0) }, { pcrs: [23], qualifyingData: new Uint8Array(65) }]) {
      await assert.rejects(quote(tcti, '/nonexistent', request), RangeError);
    }
  });

  test('timing of an AK, an extension and a quote', async (t) => {
    const tpm = await start();
    const dir = await freshDir();
    let begun = performance.now();
    const ak = await createAttestationKey(tpm.tcti, dir);
    const akMs = performance.now() - begun;
    const rounds = 10;
    begun = performance.now();
    for (let i = 0; i < rounds; i++) await extendMeasurement(tpm.tcti, ODW_PCR, measurement);
    const extendMs = (performance.now() - begun) / rounds;
    const nonce = randomBytes(32);
    begun = performance.now();
    let last: TpmQuote | undefined;
    for (let i = 0; i < rounds; i++) last = await quoteOdw(tpm, dir, nonce);
    const quoteMs = (performance.now() - begun) / rounds;
    assert.ok(last !== undefined);
    begun = performance.now();
    verifyQuote({ ...last, akPublicKey: ak, nonce, pcrs: [ODW_PCR], expectedPcrValues: [expectedPcrValue(Array.from({ length: rounds }, () => measurement))] });
    const verifyMs = performance.now() - begun;
    t.diagnostic(`AK ${akMs.toFixed(0)} ms, extend ${extendMs.toFixed(1)} ms, quote ${quoteMs.toFixed(1)} ms (mean of ${rounds}), verify ${verifyMs.toFixed(1)} ms (swtpm)`);
  });
});
