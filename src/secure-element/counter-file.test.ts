import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isTallyError } from '../core/errors.ts';
import { FileCounter } from './counter-file.ts';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tally-counter-file-'));
  dirs.push(dir);
  return dir;
}

function isCounterFailed(e: unknown): boolean {
  return isTallyError(e, 'COUNTER_FAILED') && typeof e.details.reason === 'string' && e.details.reason.length > 0;
}

describe('FileCounter', () => {
  test('open creates the file at 0, in a directory it creates', async () => {
    const path = join(await freshDir(), 'nested', 'counter');
    const counter = new FileCounter(path);
    assert.equal(await counter.open(), 0n);
    assert.equal(await counter.read(), 0n);
    assert.equal(await readFile(path, 'utf8'), '0\n');
    assert.equal(counter.description, `file:${path}`);
  });

  test('increment adds exactly one and returns the new value', async () => {
    const counter = new FileCounter(join(await freshDir(), 'counter'));
    await counter.open();
    assert.deepEqual([await counter.increment(), await counter.increment(), await counter.increment()], [1n, 2n, 3n]);
    assert.equal(await counter.read(), 3n);
  });

  test('the value persists across instances, and open does not reset it', async () => {
    const path = join(await freshDir(), 'counter');
    const first = new FileCounter(path);
    await first.open();
    for (let i = 0; i < 5; i++) await first.increment();
    await first.close();
    const second = new FileCounter(path);
    assert.equal(await second.open(), 5n);
    assert.equal(await second.increment(), 6n);
    assert.equal(await new FileCounter(path).read(), 6n);
  });

  test('leaves no temp files behind', async () => {
    const dir = await freshDir();
    const counter = new FileCounter(join(dir, 'counter'));
    await counter.open();
    for (let i = 0; i < 3; i++) await counter.increment();
    assert.deepEqual(await readdir(dir), ['counter']);
  });

  for (const [name, content] of [
    ['empty', ''],
    ['not a number', 'abc\n'],
    ['negative', '-1\n'],
    ['leading zero', '01\n'],
    ['no newline', '7'],
    ['trailing garbage', '7\nx'],
    ['above 2^64-1', '18446744073709551616\n'],
    ['too long', `${'9'.repeat(40)}\n`],
    ['binary', '\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0001'],
  ] as const) {
    test(`a corrupt file (${name}) is refused by open, read and increment`, async () => {
      const path = join(await freshDir(), 'counter');
      await writeFile(path, content);
      const counter = new FileCounter(path);
      await assert.rejects(counter.open(), isCounterFailed);
      await assert.rejects(counter.read(), isCounterFailed);
      await assert.rejects(counter.increment(), isCounterFailed);
      assert.equal(await readFile(path, 'utf8'), content, 'a refused file is left as it was');
    });
  }

  test('read and increment before open, or after the file vanished, fail', async () => {
    const path = join(await freshDir(), 'counter');
    const counter = new FileCounter(path);
    await assert.rejects(counter.read(), isCounterFailed);
    await assert.rejects(counter.increment(), isCounterFailed);
    await counter.open();
    await counter.increment();
    await rm(path);
    await assert.rejects(counter.increment(), isCounterFailed);
  });

  test('stops at 2^64-1', async () => {
    const path = join(await freshDir(), 'counter');
    await writeFile(path, '18446744073709551614\n');
    const counter = new FileCounter(path);
    assert.equal(await counter.open(), 2n ** 64n - 2n);
    assert.equal(await counter.increment(), 2n ** 64n - 1n);
    await assert.rejects(counter.increment(), isCounterFailed);
    assert.equal(await counter.read(), 2n ** 64n - 1n);
  });

  test('concurrent increments from two instances in one process are serialised', async () => {
    const path = join(await freshDir(), 'counter');
    const left = new FileCounter(path);
    const right = new FileCounter(path);
    await Promise.all([left.open(), right.open()]);
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? left : right).increment()));
    const sorted = [...results].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    assert.deepEqual(sorted, Array.from({ length: 40 }, (_, i) => BigInt(i + 1)), 'every increment got its own value');
    assert.equal(await left.read(), 40n);
  });

  test('concurrent opens of an absent file agree and do not reset an incremented counter', async () => {
    const path = join(await freshDir(), 'counter');
    const counters = Array.from({ length: 5 }, () => new FileCounter(path));
    assert.deepEqual(await Promise.all(counters.map((c) => c.open())), [0n, 0n, 0n, 0n, 0n]);
    const first = counters[0];
    assert.ok(first !== undefined);
    await first.increment();
    assert.equal(await new FileCounter(path).open(), 1n);
  });
});
