import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { encodeCbor } from '../core/cbor.ts';
import { randomBytes } from '../core/crypto/hash.ts';
import { isTallyError } from '../core/errors.ts';
import { toyPurse, type PurseState } from './apps/toy-purse.ts';
import { encodeFrame } from './frame.ts';
import { spawn } from 'node:child_process';
import { IsolatedHost, prestartIsolatedHost, type IsolatedHostOptions } from './host-isolated.ts';
import { CRASH_POINTS } from './secure-element.ts';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tally-se-iso-'));
  dirs.push(dir);
  return dir;
}

function options(dir: string, provision = false): IsolatedHostOptions<PurseState, typeof toyPurse.commands> {
  return {
    app: toyPurse,
    location: { module: new URL('./apps/toy-purse.ts', import.meta.url).href, export: 'toyPurse' },
    dir,
    counter: { kind: 'file', path: join(dir, 'toy-purse.counter') },
    provision,
  };
}

const payee = new Uint8Array(32).fill(9);

describe('isolated secure element host (child process)', () => {
  test('runs commands in a child process and persists across restarts', async () => {
    const dir = await freshDir();
    const se = await IsolatedHost.start(options(dir, true));
    assert.notEqual(se.pid, process.pid);
    assert.deepEqual(await se.call('load', { amount: 50n }), { balance: 50n });
    const receipt = await se.call('spend', { amount: 20n, payee });
    assert.equal(receipt.amount, 20n);
    await assert.rejects(se.call('spend', { amount: 31n, payee }), (e) => isTallyError(e, 'SE_REJECTED') && e.details.reason === 'INSUFFICIENT_FUNDS');
    await se.close();
    assert.equal(se.alive, false);
    await assert.rejects(se.call('balance', {}), (e) => isTallyError(e, 'SE_UNAVAILABLE'));

    const again = await IsolatedHost.start(options(dir));
    assert.deepEqual(await again.call('balance', {}), { balance: 30n, spent: 1n });
    assert.deepEqual(again.deviceId, se.deviceId);
    await again.close();
  });

  test('a prestarted child (its app preloaded) is taken by the next start; the start after spawns its own', async () => {
    const dir = await freshDir();
    const opts = options(dir, true);
    const pid = prestartIsolatedHost(opts.location.module);
    assert.equal(typeof pid, 'number');
    assert.equal(prestartIsolatedHost(opts.location.module), pid, 'a second prestart keeps the waiting child');
    const se = await IsolatedHost.start(opts);
    assert.equal(se.pid, pid);
    assert.deepEqual(await se.call('load', { amount: 5n }), { balance: 5n });
    await se.close();
    const again = await IsolatedHost.start(options(dir));
    assert.notEqual(again.pid, pid);
    assert.deepEqual(await again.call('balance', {}), { balance: 5n, spent: 0n });
    await again.close();
  });

  test('a prestarted child that is never taken does not keep its parent alive, and exits with it', async () => {
    const script = `import { prestartIsolatedHost } from ${JSON.stringify(new URL('./host-isolated.ts', import.meta.url).href)}; console.log(prestartIsolatedHost());`;
    const parent = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    parent.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const code = await new Promise<number | null>((done, fail) => {
      const timer = setTimeout(() => fail(new Error('the parent did not exit within 20 s')), 20_000);
      parent.on('exit', (c) => {
        clearTimeout(timer);
        done(c);
      });
    });
    assert.equal(code, 0);
    const child = Number(out.trim());
    assert.ok(Number.isInteger(child) && child > 0, `expected the child's pid, got ${JSON.stringify(out)}`);
    // The child reads end-of-file on its standard input and exits.
    const deadline = Date.now() + 20_000;
    const alive = () => {
      try {
        process.kill(child, 0);
        return true;
      } catch {
        return false;
      }
    };
    while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(alive(), false, 'the prestarted child is still running');
  });

  test('errors from the child cross the pipe with their codes', async () => {
    const dir = await freshDir();
    await assert.rejects(IsolatedHost.start(options(dir)), (e) => isTallyError(e, 'SE_NOT_PROVISIONED'));
    const se = await IsolatedHost.start(options(dir, true));
    await assert.rejects(se.call('spend', { amount: 1n, payee: payee.subarray(2) }), (e) => isTallyError(e, 'DECODE_FAILED') && e.details.path === 'spend.input.payee');
    await se.close();
  });

  for (const point of CRASH_POINTS) {
    test(`killing the child at ${point} leaves the old or the new state; a retry returns the same bytes`, async () => {
      const dir = await freshDir();
      const se = await IsolatedHost.start(options(dir, true));
      await se.call('load', { amount: 100n });
      await se.armCrash(point);
      const requestId = randomBytes(16);
      await assert.rejects(se.call('spend', { amount: 25n, payee }, { requestId }), (e) => isTallyError(e, 'SE_CRASHED') && e.details.point === point);
      assert.equal(se.alive, false);

      const restarted = await IsolatedHost.start(options(dir));
      const committed = point === 'after-rename' || point === 'after-increment';
      assert.deepEqual(await restarted.call('balance', {}), committed ? { balance: 75n, spent: 1n } : { balance: 100n, spent: 0n });
      const first = await restarted.call('spend', { amount: 25n, payee }, { requestId });
      const second = await restarted.call('spend', { amount: 25n, payee }, { requestId });
      assert.deepEqual(encodeCbor(second), encodeCbor(first));
      assert.deepEqual(await restarted.call('balance', {}), { balance: 75n, spent: 1n });
      await restarted.close();
    });
  }

  test('survives malformed frames from the parent with an error, not a crash', async () => {
    const dir = await freshDir();
    const se = await IsolatedHost.start(options(dir, true));

    // A well-framed body that is not CBOR.
    se.sendRaw(new Uint8Array([0, 0, 0, 3, 0xff, 0xfe, 0xfd]));
    const garbage = await se.nextStrayError();
    assert.ok(isTallyError(garbage, 'CBOR_MALFORMED'), garbage.message);

    // Valid CBOR that is no request.
    se.sendRaw(encodeFrame({ type: 'format-disk', id: 1 }));
    assert.ok(isTallyError(await se.nextStrayError(), 'DECODE_FAILED'));

    // A request with a field of the wrong type.
    se.sendRaw(encodeFrame({ type: 'call', id: 'one', command: 'load', input: new Uint8Array(0) }));
    assert.ok(isTallyError(await se.nextStrayError(), 'DECODE_FAILED'));

    // A header announcing 4 GiB: refused at once, not waited for.
    se.sendRaw(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    const oversized = await se.nextStrayError();
    assert.ok(isTallyError(oversized, 'FRAME_INVALID') && oversized.details.reason === 'oversized');

    assert.equal(se.alive, true);
    assert.deepEqual(await se.call('load', { amount: 5n }), { balance: 5n });
    await se.close();
  });
});
