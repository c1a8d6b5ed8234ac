/**
 * The host's key slot: a holder's secret sealed under the device master secret, openable only on
 * the same device and under the same label; the isolated process serves it even when its app
 * refuses to run.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { equalBytes } from '../core/bytes.ts';
import { randomBytes } from '../core/crypto/hash.ts';
import { isTallyError } from '../core/errors.ts';
import { toyPurse, type PurseState } from './apps/toy-purse.ts';
import { IsolatedHost, type IsolatedHostOptions } from './host-isolated.ts';
import { openSlot, sealSlot, SLOT_BOX_BYTES_MAX } from './key-slot.ts';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

describe('key slot (pure)', () => {
  const master = randomBytes(32);
  const secret = randomBytes(32);

  test('a box opens on its device under its label, and holds no clear secret', () => {
    const box = sealSlot(master, 'account', secret);
    assert.ok(box.length <= SLOT_BOX_BYTES_MAX);
    assert.equal(contains(box, secret), false);
    assert.deepEqual(openSlot(master, 'account', box), secret);
    // Two seals of one secret differ (fresh nonce).
    assert.equal(equalBytes(box, sealSlot(master, 'account', secret)), false);
  });

  test('another device, another label, an altered or oversized box: STATE_CORRUPT', () => {
    const box = sealSlot(master, 'account', secret);
    assert.throws(() => openSlot(randomBytes(32), 'account', box), (e) => isTallyError(e, 'STATE_CORRUPT') && /another device/.test(e.message));
    assert.throws(() => openSlot(master, 'backup', box), (e) => isTallyError(e, 'STATE_CORRUPT'));
    for (const at of [0, 24, box.length - 1]) {
      const altered = box.slice();
      altered[at] = (altered[at] ?? 0) ^ 1;
      assert.throws(() => openSlot(master, 'account', altered), (e) => isTallyError(e, 'STATE_CORRUPT'), `byte ${at}`);
    }
    assert.throws(() => openSlot(master, 'account', box.subarray(0, 10)), (e) => isTallyError(e, 'STATE_CORRUPT'));
    assert.throws(() => openSlot(master, 'account', new Uint8Array(SLOT_BOX_BYTES_MAX + 1)), (e) => isTallyError(e, 'STATE_CORRUPT') && e.details.reason === 'size');
  });

  test('a malformed label or secret is refused before sealing', () => {
    assert.throws(() => sealSlot(master, 'Account!', secret), (e) => isTallyError(e, 'DECODE_FAILED'));
    assert.throws(() => sealSlot(master, 'account', new Uint8Array(65)), (e) => isTallyError(e, 'DECODE_FAILED'));
    assert.throws(() => sealSlot(master, 'account', new Uint8Array(0)), (e) => isTallyError(e, 'DECODE_FAILED'));
    assert.throws(() => sealSlot(new Uint8Array(31), 'account', secret), RangeError);
  });
});

describe('key slot (isolated process)', () => {
  async function freshDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'tally-se-slot-'));
    dirs.push(dir);
    return dir;
  }
  function options(dir: string, extra: Partial<IsolatedHostOptions<PurseState, typeof toyPurse.commands>> = {}): IsolatedHostOptions<PurseState, typeof toyPurse.commands> {
    return {
      app: toyPurse,
      location: { module: new URL('./apps/toy-purse.ts', import.meta.url).href, export: 'toyPurse' },
      dir,
      counter: { kind: 'file', path: join(dir, 'toy-purse.counter') },
      ...extra,
    };
  }

  test('seals in the child, opens after a restart, and still opens when the app refuses to run', async () => {
    const dir = await freshDir();
    const secret = randomBytes(32);
    const se = await IsolatedHost.start(options(dir, { provision: true }));
    const box = await se.sealSecret('account', secret);
    assert.equal(contains(box, secret), false);
    assert.equal(contains(await readFile(join(dir, 'master.key')), secret), false);
    // Roll the app back: keep its state, spend, put the old state back.
    await copyFile(join(dir, 'toy-purse.sealed'), join(dir, 'old.sealed'));
    await se.call('load', { amount: 5n });
    await se.close();
    await copyFile(join(dir, 'old.sealed'), join(dir, 'toy-purse.sealed'));
    await assert.rejects(IsolatedHost.start(options(dir)), (e) => isTallyError(e, 'ROLLBACK_DETECTED'));

    const slot = await IsolatedHost.start(options(dir, { keySlotOnly: true }));
    try {
      assert.deepEqual(await slot.openSecret('account', box), secret);
      await assert.rejects(slot.openSecret('other', box), (e) => isTallyError(e, 'STATE_CORRUPT'));
      // The app is not open in such a process.
      await assert.rejects(slot.call('balance', {}), (e) => isTallyError(e, 'SE_UNAVAILABLE'));
    } finally {
      await slot.close();
    }
  });

  test('a box from another device does not open; a device never provisioned has no key slot', async () => {
    const [one, two, empty] = [await freshDir(), await freshDir(), await freshDir()];
    const a = await IsolatedHost.start(options(one, { provision: true }));
    const b = await IsolatedHost.start(options(two, { provision: true }));
    try {
      const box = await a.sealSecret('account', randomBytes(32));
      await assert.rejects(b.openSecret('account', box), (e) => isTallyError(e, 'STATE_CORRUPT') && /another device/.test(e.message));
      await assert.rejects(b.sealSecret('account', new Uint8Array(65)), (e) => isTallyError(e, 'DECODE_FAILED'));
      await assert.rejects(b.openSecret('account', new Uint8Array(SLOT_BOX_BYTES_MAX + 1)), (e) => isTallyError(e, 'STATE_CORRUPT'));
      await assert.rejects(b.sealSecret('Bad label', randomBytes(32)), (e) => isTallyError(e, 'DECODE_FAILED'));
    } finally {
      await a.close();
      await b.close();
    }
    const none = await IsolatedHost.start(options(empty, { keySlotOnly: true }));
    try {
      await assert.rejects(none.sealSecret('account', randomBytes(32)), (e) => isTallyError(e, 'SE_NOT_PROVISIONED'));
    } finally {
      await none.close();
    }
  });
});
