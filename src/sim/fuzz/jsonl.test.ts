/**
 * The fuzzer's `--jsonl FILE`: one JSON line per decoder, appended as soon as that decoder is done,
 * so that a run stopped early keeps the results of the decoders it finished. Runs the fuzzer's
 * command line as a child process.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tally-fuzz-jsonl-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function fuzz(args: readonly string[]) {
  return spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

function lines(file: string): Record<string, unknown>[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.endsWith('}'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('fuzz --jsonl', () => {
  test('a finished run appends one line per decoder, with its counts; stdout keeps its table', { timeout: 120_000 }, async () => {
    const file = join(dir, 'done.jsonl');
    const child = fuzz(['--only', 'frame/link', '--inputs', '500', '--seed', '5', '--jsonl', file]);
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const code = await new Promise<number | null>((done) => child.on('close', done));
    assert.equal(code, 0);
    const got = lines(file);
    assert.equal(got.length, 1);
    const line = got[0] as Record<string, unknown>;
    assert.equal(line.decoder, 'frame/link');
    assert.equal(line.group, 'frame');
    assert.equal(line.seed, 5);
    assert.equal(line.inputs, 500);
    assert.equal((line.accepted as number) + (line.refused as number), 500);
    assert.equal(line.findings, 0);
    assert.deepEqual(line.found, []);
    for (const key of ['seconds', 'inputsPerSecond', 'slowestMs']) assert.equal(typeof line[key], 'number', key);
    assert.match(stdout, /^seed 5\ndecoder +inputs/);
    assert.match(stdout, /frame\/link +500 /);
  });

  test('a run stopped after its first decoder has that decoder\'s line already', { timeout: 120_000 }, async () => {
    const file = join(dir, 'stopped.jsonl');
    // Six core decoders of 20,000 inputs each: the whole run takes far longer than its first decoder.
    const child = fuzz(['--only', 'core', '--inputs', '20000', '--seed', '5', '--jsonl', file]);
    const closed = new Promise<NodeJS.Signals | null>((done) => child.on('close', (_code, signal) => done(signal)));
    const deadline = Date.now() + 100_000;
    while (lines(file).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGTERM');
    assert.equal(await closed, 'SIGTERM', 'the run was stopped before its end');
    const got = lines(file);
    assert.ok(got.length >= 1 && got.length < 6, `${got.length} lines`);
    assert.equal(got[0]?.decoder, 'core/attestation');
    assert.equal(got[0]?.inputs, 20000);
  });

  test('a path that cannot be written is refused before any decoder runs', { timeout: 60_000 }, async () => {
    const child = fuzz(['--only', 'frame/link', '--inputs', '10', '--jsonl', join(dir, 'missing', 'x.jsonl')]);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((done) => child.on('close', done));
    assert.equal(code, 2);
    assert.match(stderr, /--jsonl .*missing/);
    assert.doesNotMatch(stderr, /\[1\/1\]/);
  });
});

describe('fuzz --input', () => {
  async function replay(only: string) {
    const child = fuzz(['--only', only, '--input', '00']);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((done) => child.on('close', done));
    return { code, out };
  }

  test("the replay line of a decoder whose name is also another's prefix replays that decoder; a prefix of two is refused", { timeout: 60_000 }, async () => {
    // message/ops/payment is a prefix of message/ops/payment-request: the finding's own replay line must still work.
    const exact = await replay('message/ops/payment');
    assert.equal(exact.code, 0, exact.out);
    assert.match(exact.out, /^message\/ops\/payment: rejected$/m);
    const prefix = await replay('message/ops/pay');
    assert.equal(prefix.code, 2);
    assert.match(prefix.out, /--input needs --only to name one decoder; 2 match/);
  });
});
