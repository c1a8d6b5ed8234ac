/**
 * `npm run sim -- --seeds N --jobs J`: the campaign's seeds in J processes side by side. The seeds
 * and payments it counts must be those of the same campaign in one process (a seed is the same run
 * wherever it runs), and bad flags are refused before any process starts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

async function sim(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((done) => child.on('close', done));
  return { code, stdout, stderr };
}

type Answer = { ok: boolean; jobs?: number; summary: Array<{ scheme: string; seeds: number; payments: number; failed: unknown }> };

test('a campaign in two processes counts the seeds and payments of the same campaign in one, each seed run once', { timeout: 180_000 }, async () => {
  const flags = ['--scheme', 'ops', '--devices', '2', '--payments', '3', '--attackers', '0.5', '--start', '7', '--seeds', '3'];
  const [two, one] = await Promise.all([sim([...flags, '--jobs', '2', '--json']), sim([...flags, '--json'])]);
  assert.equal(two.code, 0, two.stderr);
  assert.equal(one.code, 0, one.stderr);
  const a = JSON.parse(two.stdout.trim()) as Answer;
  const b = JSON.parse(one.stdout.trim()) as Answer;
  assert.equal(a.ok, true);
  assert.equal(a.jobs, 2);
  assert.deepEqual(a.summary.map((s) => [s.scheme, s.seeds, s.payments, s.failed]), b.summary.map((s) => [s.scheme, s.seeds, s.payments, s.failed]));
  assert.deepEqual(a.summary.map((s) => [s.seeds, s.payments]), [[3, 9]]);
  // Each of seeds 7, 8 and 9 ran once, in one of the two processes.
  const ran = [...two.stderr.matchAll(/^ops seed (\d+): ok/gm)].map((m) => Number(m[1])).sort();
  assert.deepEqual(ran, [7, 8, 9]);
});

test('--jobs that is not a whole number from 1 to 64 is refused before anything runs', { timeout: 60_000 }, async () => {
  for (const jobs of ['0', '65', 'two', '1.5']) {
    const r = await sim(['--scheme', 'ops', '--seeds', '2', '--jobs', jobs]);
    assert.equal(r.code, 2, jobs);
    assert.match(r.stderr, /--jobs must be a whole number from 1 to 64/);
    assert.doesNotMatch(r.stderr, /seed \d+:/);
  }
});
