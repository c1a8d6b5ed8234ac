import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isTallyError } from '../core/errors.ts';
import { TPM_COUNTER_NV_INDEX_DEFAULT, TpmCounter } from './counter-tpm.ts';
import { startSwtpm, swtpmAvailable, type Swtpm } from './swtpm.ts';
import { silentPair, swtpmGate, SwtpmFixture } from './tpm-fixtures.ts';

const skipReason = await swtpmGate();
const TIMEOUT_MS = 2_000;

const fixture = new SwtpmFixture('tally-swtpm-');
const freshDir = () => fixture.freshDir();
const start = (stateDir: string, port?: number) => fixture.start(stateDir, port);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function isCounterFailed(e: unknown): boolean {
  return isTallyError(e, 'COUNTER_FAILED') && e.details.reason.length > 0;
}

/** Runs a tpm2 tool directly, for set-ups the counter API does not offer (undefine, a non-counter). */
function tpm2(tcti: string, tool: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(tool, args, { env: { ...process.env, TPM2TOOLS_TCTI: tcti }, timeout: TIMEOUT_MS }, (error, _stdout, stderr) =>
      error === null ? resolve() : reject(new Error(`${tool} ${args.join(' ')}: ${stderr}`)),
    );
  });
}

let nextIndex = 0x01800100;
function freshIndex(): number {
  return nextIndex++;
}

test('without swtpm on the PATH, startSwtpm says what to install', async () => {
  const path = process.env['PATH'];
  process.env['PATH'] = '/nonexistent';
  try {
    assert.equal(await swtpmAvailable(), false);
    await assert.rejects(
      startSwtpm({ stateDir: join(tmpdir(), 'tally-swtpm-never-created') }),
      (e) => isTallyError(e, 'SE_UNAVAILABLE') && e.message === 'swtpm not found: install the Debian packages swtpm swtpm-tools tpm2-tools',
    );
  } finally {
    process.env['PATH'] = path;
  }
});

describe('TpmCounter on swtpm', { skip: skipReason }, () => {
  let tpm: Swtpm;

  before(async () => {
    tpm = await start(await freshDir());
  });

  after(async () => {
    await fixture.cleanup();
    for (const t of fixture.started) assert.equal(alive(t.pid), false, `swtpm ${t.pid} is still running`);
  });

  test('open defines the counter and returns its value; open again returns the same', async () => {
    const nvIndex = freshIndex();
    const counter = new TpmCounter({ tcti: tpm.tcti, nvIndex, timeoutMs: TIMEOUT_MS });
    assert.equal(counter.description, `tpm:0x${nvIndex.toString(16).padStart(8, '0')}@${tpm.tcti}`);
    const value = await counter.open();
    assert.equal(await counter.read(), value);
    assert.equal(await counter.open(), value, 'a second open neither redefines nor increments');
    assert.equal(await new TpmCounter({ tcti: tpm.tcti, nvIndex }).open(), value);
  });

  test('each increment adds exactly one', async () => {
    const counter = new TpmCounter({ tcti: tpm.tcti, nvIndex: freshIndex(), timeoutMs: TIMEOUT_MS });
    let expected = await counter.open();
    for (let i = 0; i < 10; i++) {
      expected += 1n;
      assert.equal(await counter.increment(), expected);
      assert.equal(await counter.read(), expected);
    }
  });

  test('two objects on one index see the same value and never lose an increment', async () => {
    const nvIndex = freshIndex();
    const left = new TpmCounter({ tcti: tpm.tcti, nvIndex, timeoutMs: TIMEOUT_MS });
    const right = new TpmCounter({ tcti: tpm.tcti, nvIndex, timeoutMs: TIMEOUT_MS });
    const start = await left.open();
    assert.equal(await right.open(), start);
    assert.equal(await left.increment(), start + 1n);
    assert.equal(await right.read(), start + 1n);
    assert.equal(await right.increment(), start + 2n);
    assert.equal(await left.read(), start + 2n);
    // Concurrent: each increment lands; the value each returns is the one read right after.
    await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? left : right).increment()));
    assert.equal(await left.read(), start + 12n);
  });

  test('the value survives close and reopen, an orderly swtpm restart, and power losses', async () => {
    const stateDir = await freshDir();
    let own = await start(stateDir);
    const nvIndex = freshIndex();
    const counter = new TpmCounter({ tcti: own.tcti, nvIndex, timeoutMs: TIMEOUT_MS });
    await counter.open();
    await counter.increment();
    const value = await counter.increment();
    await counter.close();
    assert.equal(await new TpmCounter({ tcti: own.tcti, nvIndex }).open(), value);

    await own.stop();
    assert.equal(alive(own.pid), false);
    own = await start(stateDir, own.port);
    assert.equal(await new TpmCounter({ tcti: own.tcti, nvIndex }).open(), value, 'same state dir, same port');

    // Four restarts without TPM2_Shutdown would lock out an index authorised by its own authValue
    // (TPM_RC_LOCKOUT after three); owner authorisation and no_da keep the counter usable.
    let current = value;
    for (let i = 0; i < 4; i++) {
      const reopened = new TpmCounter({ tcti: own.tcti, nvIndex, timeoutMs: TIMEOUT_MS });
      assert.equal(await reopened.open(), current);
      current = await reopened.increment();
      await own.kill();
      own = await start(stateDir);
    }
    assert.equal(await new TpmCounter({ tcti: own.tcti, nvIndex }).read(), current, 'an increment that returned is durable');
  });

  test('a fresh counter starts above every deleted counter, never back at 0', async () => {
    const own = await start(await freshDir());
    const first = new TpmCounter({ tcti: own.tcti });
    await first.open();
    let last = 0n;
    for (let i = 0; i < 5; i++) last = await first.increment();
    await tpm2(own.tcti, 'tpm2_nvundefine', ['-C', 'o', `0x${TPM_COUNTER_NV_INDEX_DEFAULT.toString(16)}`]);
    const again = new TpmCounter({ tcti: own.tcti });
    const value = await again.open();
    assert.ok(value > last, `a redefined counter opened at ${value}, after ${last}`);
  });

  test('an index that is not a counter is refused', async () => {
    const nvIndex = freshIndex();
    await tpm2(tpm.tcti, 'tpm2_nvdefine', ['-C', 'o', '-s', '8', '-a', 'ownerread|ownerwrite', `0x${nvIndex.toString(16)}`]);
    const counter = new TpmCounter({ tcti: tpm.tcti, nvIndex, timeoutMs: TIMEOUT_MS });
    await assert.rejects(counter.open(), (e) => isCounterFailed(e) && isTallyError(e, 'COUNTER_FAILED') && /not an 8-byte/.test(e.details.reason));
  });

  test('a bad TCTI fails with COUNTER_FAILED and the tool stderr', async () => {
    for (const tcti of ['device:/nonexistent/tpm', 'no-such-tcti', 'swtpm:host=127.0.0.1,port=1']) {
      const counter = new TpmCounter({ tcti, timeoutMs: TIMEOUT_MS });
      await assert.rejects(counter.open(), (e) => isCounterFailed(e) && isTallyError(e, 'COUNTER_FAILED') && / failed: .*tcti/is.test(e.details.reason));
      await assert.rejects(counter.read(), isCounterFailed);
      await assert.rejects(counter.increment(), isCounterFailed);
    }
  });

  test('a stopped swtpm fails with COUNTER_FAILED at once', async () => {
    const own = await start(await freshDir());
    const counter = new TpmCounter({ tcti: own.tcti, nvIndex: freshIndex(), timeoutMs: TIMEOUT_MS });
    await counter.open();
    await own.stop();
    const begun = Date.now();
    await assert.rejects(counter.increment(), isCounterFailed);
    await assert.rejects(counter.read(), isCounterFailed);
    assert.ok(Date.now() - begun < TIMEOUT_MS, 'refused connections fail fast');
  });

  test('a TPM that never answers fails with COUNTER_FAILED within timeoutMs', async () => {
    const silent = await silentPair();
    try {
      const timeoutMs = 300;
      const counter = new TpmCounter({ tcti: `swtpm:host=127.0.0.1,port=${silent.port}`, timeoutMs });
      for (const call of [() => counter.open(), () => counter.read(), () => counter.increment()]) {
        const begun = Date.now();
        await assert.rejects(call(), (e) => isCounterFailed(e) && isTallyError(e, 'COUNTER_FAILED') && /timed out after 300 ms/.test(e.details.reason));
        const elapsed = Date.now() - begun;
        assert.ok(elapsed >= timeoutMs - 50 && elapsed < timeoutMs + 2_000, `took ${elapsed} ms`);
      }
    } finally {
      await silent.close();
    }
  });

  test('swtpms started together get ports of their own', async () => {
    const tpms = await Promise.all([1, 2, 3].map(async () => start(await freshDir())));
    assert.equal(new Set(tpms.map((t) => t.port)).size, 3);
    const values = await Promise.all(tpms.map((t) => new TpmCounter({ tcti: t.tcti, timeoutMs: TIMEOUT_MS }).open()));
    assert.deepEqual(values, [1n, 1n, 1n], 'each is a TPM of its own, its first counter at 1');
    await Promise.all(tpms.map((t) => t.stop()));
    for (const t of tpms) assert.equal(alive(t.pid), false);
  });

  test('startSwtpm refuses a port already in use', async () => {
    await assert.rejects(startSwtpm({ stateDir: await freshDir(), port: tpm.port }), (e) => isTallyError(e, 'SE_UNAVAILABLE'));
  });

  test('bad options are RangeErrors', () => {
    assert.throws(() => new TpmCounter({ tcti: tpm.tcti, nvIndex: 0x81000001 }), RangeError);
    assert.throws(() => new TpmCounter({ tcti: tpm.tcti, nvIndex: 1.5 }), RangeError);
    assert.throws(() => new TpmCounter({ tcti: tpm.tcti, timeoutMs: 0 }), RangeError);
    assert.throws(() => new TpmCounter({ tcti: '' }), RangeError);
  });

  test('timing of increment and read', async (t) => {
    const counter = new TpmCounter({ tcti: tpm.tcti, nvIndex: freshIndex(), timeoutMs: TIMEOUT_MS });
    const rounds = 30;
    let expected = await counter.open();
    let begun = performance.now();
    for (let i = 0; i < rounds; i++) assert.equal(await counter.increment(), ++expected);
    const incrementMs = (performance.now() - begun) / rounds;
    begun = performance.now();
    for (let i = 0; i < rounds; i++) assert.equal(await counter.read(), expected);
    const readMs = (performance.now() - begun) / rounds;
    t.diagnostic(`increment ${incrementMs.toFixed(1)} ms, read ${readMs.toFixed(1)} ms (mean of ${rounds}, swtpm)`);
  });
});
