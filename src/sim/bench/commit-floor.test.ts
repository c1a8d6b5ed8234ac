/**
 * The persistence floor timed a round at a time: each round makes one real commit per size (a
 * sealed file of that size, its counter one further), sides appear when a round first needs them.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { measureCommits, openCommitFloor } from './commit-floor.ts';

async function counterOf(dir: string, side: number): Promise<number> {
  return Number((await readFile(join(dir, `floor-${side}`, 'counter'), 'utf8')).trim());
}

test('a commit floor makes one durable commit per size and round, and refuses sizes it cannot write', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tally-commit-floor-'));
  const floor = openCommitFloor({ dir });
  try {
    assert.equal(await floor.round([]), 0, 'a payment without a commit has no floor');
    const first = await floor.round([300, 1700]);
    assert.ok(Number.isFinite(first) && first > 0, `round took ${first} ms`);
    // Five untimed commits when a side is made, then the timed one.
    assert.equal(await counterOf(dir, 0), 6);
    assert.equal(await counterOf(dir, 1), 6);
    assert.equal((await stat(join(dir, 'floor-1', 'floor.sealed'))).size, 1700);
    // A round with more commits makes a side more; the sizes follow the round.
    await floor.round([10, 20, 30]);
    assert.deepEqual([await counterOf(dir, 0), await counterOf(dir, 1), await counterOf(dir, 2)], [7, 7, 6]);
    assert.equal((await stat(join(dir, 'floor-1', 'floor.sealed'))).size, 20);
    for (const bad of [[0], [-1], [1.5], [Number.NaN]]) {
      await assert.rejects(floor.round(bad), RangeError, `size ${bad[0]}`);
    }
    assert.equal(await counterOf(dir, 0), 7, 'a refused round commits nothing');
  } finally {
    await floor.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('measureCommits times its rounds one after another', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tally-commit-floor-'));
  try {
    const latency = await measureCommits({ dir, sealedBytes: [500, 500], iterations: 4 });
    assert.equal(latency.samples, 4);
    assert.ok(latency.p50Ms > 0 && latency.p99Ms >= latency.p50Ms);
    assert.equal(await counterOf(dir, 0), 9);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
