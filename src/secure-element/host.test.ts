import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { encodeCbor } from '../core/cbor.ts';
import { verifyRecord } from '../core/crypto/record.ts';
import { randomBytes } from '../core/crypto/hash.ts';
import { isTallyError } from '../core/errors.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { RECEIPT_TAG, toyPurse, type PurseState } from './apps/toy-purse.ts';
import { FileCounter } from './counter-file.ts';
import { InProcessHost, SimulatedCrash, type HostOptions } from './host.ts';
import { CRASH_POINTS, type CrashPoint } from './secure-element.ts';
import { FileStorage } from './storage-file.ts';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tally-se-'));
  dirs.push(dir);
  return dir;
}

type PurseOptions = HostOptions<PurseState, typeof toyPurse.commands>;

function options(dir: string, crashAt?: CrashPoint): PurseOptions {
  return {
    app: toyPurse,
    storage: new FileStorage(dir),
    counter: new FileCounter(join(dir, 'toy-purse.counter')),
    provider: nodeProvider,
    onCrashPoint: crashAt === undefined ? undefined : (point) => {
      if (point === crashAt) throw new SimulatedCrash(point);
    },
  };
}

const payee = new Uint8Array(32).fill(7);
const sealedPath = (dir: string) => join(dir, 'toy-purse.sealed');

describe('in-process secure element host', () => {
  test('provisions, runs commands, persists across reopen, signs with a key that verifies', async () => {
    const dir = await freshDir();
    const se = await InProcessHost.provision(options(dir));
    assert.deepEqual(await se.call('load', { amount: 500n }), { balance: 500n });
    const receipt = await se.call('spend', { amount: 120n, payee });
    assert.equal(receipt.index, 1n);
    const key = await se.call('publicKey', {});
    const { signature, ...body } = receipt;
    assert.ok(verifyRecord(nodeProvider, key, RECEIPT_TAG, body, signature));
    assert.ok(!verifyRecord(nodeProvider, key, RECEIPT_TAG, { ...body, amount: 121n }, signature));
    await se.close();

    const again = await InProcessHost.open(options(dir));
    assert.deepEqual(await again.call('balance', {}), { balance: 380n, spent: 1n });
    assert.deepEqual(again.deviceId, se.deviceId);
    assert.deepEqual(await again.call('publicKey', {}), key);
    await again.close();
  });

  test('a second provisioning of the same app is refused; opening an empty folder is refused', async () => {
    const dir = await freshDir();
    await (await InProcessHost.provision(options(dir))).close();
    await assert.rejects(InProcessHost.provision(options(dir)), (e) => isTallyError(e, 'SE_ALREADY_PROVISIONED'));
    await assert.rejects(InProcessHost.open(options(await freshDir())), (e) => isTallyError(e, 'SE_NOT_PROVISIONED'));
  });

  test('a rejected command or a malformed input changes nothing: state file, counter and version stay', async () => {
    const dir = await freshDir();
    const se = await InProcessHost.provision(options(dir));
    await se.call('load', { amount: 10n });
    const sealedBefore = await readFile(sealedPath(dir));
    const counterBefore = await readFile(join(dir, 'toy-purse.counter'));
    const versionBefore = se.version;

    await assert.rejects(se.call('spend', { amount: 11n, payee }), (e) => isTallyError(e, 'SE_REJECTED') && e.details.reason === 'INSUFFICIENT_FUNDS');
    await assert.rejects(se.callEncoded('spend', encodeCbor({ amount: 1n, payee: payee.subarray(1) })), (e) => isTallyError(e, 'DECODE_FAILED') && e.message.startsWith('spend.input.payee: expected 32 bytes'));
    await assert.rejects(se.callEncoded('spend', encodeCbor({ amount: -1n, payee })), (e) => isTallyError(e, 'DECODE_FAILED'));
    await assert.rejects(se.callEncoded('spend', new Uint8Array([0xa1, 0x61])), (e) => isTallyError(e, 'CBOR_MALFORMED'));
    await assert.rejects(se.callEncoded('mint', encodeCbor({})), (e) => isTallyError(e, 'SE_COMMAND_UNKNOWN'));

    assert.deepEqual(await readFile(sealedPath(dir)), sealedBefore);
    assert.deepEqual(await readFile(join(dir, 'toy-purse.counter')), counterBefore);
    assert.equal(se.version, versionBefore);
    assert.deepEqual(await se.call('balance', {}), { balance: 10n, spent: 0n });
    await se.close();
  });

  test('a retry with the same request id returns the same bytes and runs once', async () => {
    const dir = await freshDir();
    const se = await InProcessHost.provision(options(dir));
    await se.call('load', { amount: 100n });
    const requestId = randomBytes(16);
    const first = await se.call('spend', { amount: 30n, payee }, { requestId });
    const second = await se.call('spend', { amount: 30n, payee }, { requestId });
    assert.deepEqual(encodeCbor(second), encodeCbor(first));
    assert.deepEqual(await se.call('balance', {}), { balance: 70n, spent: 1n });
    await assert.rejects(se.call('load', { amount: 1n }, { requestId }), (e) => isTallyError(e, 'SE_REJECTED') && e.details.reason === 'REQUEST_ID_REUSED');
    await assert.rejects(se.call('load', { amount: 1n }, { requestId: new Uint8Array(15) }), (e) => isTallyError(e, 'DECODE_FAILED'));
    await se.close();
  });

  for (const point of CRASH_POINTS) {
    test(`a crash at ${point} leaves exactly the old or the new state, and the output can be fetched again`, async () => {
      const dir = await freshDir();
      const setup = await InProcessHost.provision(options(dir));
      await setup.call('load', { amount: 100n });
      await setup.close();

      const se = await InProcessHost.open(options(dir, point));
      const requestId = randomBytes(16);
      await assert.rejects(se.call('spend', { amount: 40n, payee }, { requestId }), (e) => e instanceof SimulatedCrash && e.point === point);
      await assert.rejects(se.call('balance', {}), (e) => isTallyError(e, 'SE_UNAVAILABLE'));

      const reopened = await InProcessHost.open(options(dir));
      const committed = point === 'after-rename' || point === 'after-increment';
      assert.deepEqual(await reopened.call('balance', {}), committed ? { balance: 60n, spent: 1n } : { balance: 100n, spent: 0n });
      const retried = await reopened.call('spend', { amount: 40n, payee }, { requestId });
      const again = await reopened.call('spend', { amount: 40n, payee }, { requestId });
      assert.deepEqual(encodeCbor(again), encodeCbor(retried));
      assert.equal(retried.index, 1n);
      // Whatever the crash point, the spend happened exactly once.
      assert.deepEqual(await reopened.call('balance', {}), { balance: 60n, spent: 1n });
      await reopened.close();
    });
  }

  test('a restored older sealed file is detected as rollback with the file counter', async () => {
    const dir = await freshDir();
    const se = await InProcessHost.provision(options(dir));
    await se.call('load', { amount: 100n });
    await copyFile(sealedPath(dir), join(dir, 'saved'));
    await se.call('spend', { amount: 100n, payee });
    await se.close();

    await copyFile(join(dir, 'saved'), sealedPath(dir));
    await assert.rejects(InProcessHost.open(options(dir)), (e) => isTallyError(e, 'ROLLBACK_DETECTED') && e.details.counter === '3' && e.details.stateVersion === '2');
  });

  test('the file counter is defeated by restoring it too: the documented limit of development counters', async () => {
    const dir = await freshDir();
    const se = await InProcessHost.provision(options(dir));
    await se.call('load', { amount: 100n });
    await copyFile(sealedPath(dir), join(dir, 'saved'));
    await copyFile(join(dir, 'toy-purse.counter'), join(dir, 'saved-counter'));
    await se.call('spend', { amount: 100n, payee });
    await se.close();

    await copyFile(join(dir, 'saved'), sealedPath(dir));
    await copyFile(join(dir, 'saved-counter'), join(dir, 'toy-purse.counter'));
    const cloned = await InProcessHost.open(options(dir));
    assert.deepEqual(await cloned.call('balance', {}), { balance: 100n, spent: 0n });
    await cloned.close();
  });

  test('a tampered, foreign or missing sealed state is refused', async () => {
    const dir = await freshDir();
    await (await InProcessHost.provision(options(dir))).close();
    const sealed = await readFile(sealedPath(dir));

    const flipped = new Uint8Array(sealed);
    flipped[flipped.length - 5]! ^= 1;
    await writeFile(sealedPath(dir), flipped);
    await assert.rejects(InProcessHost.open(options(dir)), (e) => isTallyError(e, 'STATE_CORRUPT'));

    const other = await freshDir();
    await (await InProcessHost.provision(options(other))).close();
    await copyFile(sealedPath(other), sealedPath(dir));
    await assert.rejects(InProcessHost.open(options(dir)), (e) => isTallyError(e, 'STATE_CORRUPT'));

    await rm(sealedPath(dir));
    await assert.rejects(InProcessHost.open(options(dir)), (e) => isTallyError(e, 'STATE_CORRUPT') && e.details.reason === 'missing');
  });

  test('a counter moved behind the host\'s back is reported, not silently accepted', async () => {
    const dir = await freshDir();
    const se = await InProcessHost.provision(options(dir));
    await new FileCounter(join(dir, 'toy-purse.counter')).increment();
    await assert.rejects(se.call('load', { amount: 1n }), (e) => isTallyError(e, 'ROLLBACK_DETECTED'));
    await assert.rejects(se.call('balance', {}), (e) => isTallyError(e, 'SE_UNAVAILABLE'));
    await assert.rejects(InProcessHost.open(options(dir)), (e) => isTallyError(e, 'ROLLBACK_DETECTED'));
  });
});
