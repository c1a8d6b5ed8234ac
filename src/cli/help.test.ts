/**
 * `tally --help`, `tally COMMAND --help` and mistyped commands, as a user runs them: each a
 * separate `tally` process. The commands come from the CLI's own table, so a new command without
 * its help fails here.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { BIN } from './e2e-process.ts';
import { COMMAND_NAMES, editDistance } from './main.ts';

function tally(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TALLY_HOME: '/nonexistent/tally-help-test' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => done({ code, stdout, stderr }));
  });
}

describe('tally --help', { timeout: 120_000 }, () => {
  it('lists every command and exits 0', async () => {
    const r = await tally('--help');
    assert.equal(r.code, 0, r.stderr);
    for (const name of COMMAND_NAMES) assert.match(r.stdout, new RegExp(`^  ${name} `, 'm'), `tally --help lists ${name}`);
    assert.ok(COMMAND_NAMES.includes('pay') && COMMAND_NAMES.includes('node start') && COMMAND_NAMES.includes('demo'), COMMAND_NAMES.join(', '));
  });

  it('every command answers --help with its usage, options and an example, and exits 0', async () => {
    const runs = await Promise.all(COMMAND_NAMES.map(async (name) => ({ name, run: await tally(...name.split(' '), '--help') })));
    for (const { name, run } of runs) {
      assert.equal(run.code, 0, `tally ${name} --help: ${run.stderr}`);
      assert.equal(run.stderr, '', `tally ${name} --help writes nothing on stderr`);
      assert.ok(run.stdout.startsWith(`usage: tally ${name}`), `tally ${name} --help starts with its usage: ${run.stdout}`);
      assert.match(run.stdout, /\noptions:\n {2}--/, `tally ${name} --help lists its options`);
      assert.match(run.stdout, new RegExp(`\\nexample:\\n {2}.*tally ${name}`), `tally ${name} --help shows an example of itself`);
    }
  });

  it('-h, `tally help COMMAND` and --help after arguments answer the same help', async () => {
    const reference = (await tally('wallet', 'deposit', '--help')).stdout;
    for (const args of [['wallet', 'deposit', '-h'], ['help', 'wallet', 'deposit'], ['wallet', 'deposit', 'alice', '1.00', '--help']]) {
      const r = await tally(...args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, reference, args.join(' '));
    }
  });

  it('a group word alone with --help lists its commands', async () => {
    const r = await tally('wallet', '--help');
    assert.equal(r.code, 0, r.stderr);
    for (const name of COMMAND_NAMES.filter((n) => n.startsWith('wallet '))) assert.match(r.stdout, new RegExp(`^  ${name} `, 'm'));
  });
});

describe('a mistyped command', { timeout: 60_000 }, () => {
  it('gets "did you mean" with the closest command, on stderr, exit 2', async () => {
    for (const [typed, meant] of [
      [['pya', 'alice'], 'pay'],
      [['recieve', 'bob', '1.00'], 'receive'],
      [['wallet', 'craete', 'alice'], 'wallet create'],
      [['walet', 'balance', 'alice'], 'wallet balance'],
      [['balance', 'alice'], 'wallet balance'],
      [['node', 'strat'], 'node start'],
    ] as const) {
      const r = await tally(...typed);
      assert.equal(r.code, 2, `${typed.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, new RegExp(`did you mean \`tally ${meant}\`\\?`), `${typed.join(' ')} -> ${meant}: ${r.stderr}`);
      assert.equal(r.stdout, '');
    }
  });

  it('gets no guess when nothing is close', async () => {
    const r = await tally('frobnicate');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command "frobnicate"/);
    assert.doesNotMatch(r.stderr, /did you mean/);
  });

  it('a bad option names the command and points at its help, exit 2', async () => {
    const r = await tally('wallet', 'balance', 'alice', '--colour');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^tally wallet balance: .*--colour/);
    assert.match(r.stderr, /see tally wallet balance --help/);
  });

  it('edit distance counts a swap of neighbours as one', () => {
    assert.equal(editDistance('pya', 'pay'), 1);
    assert.equal(editDistance('', 'sync'), 4);
    assert.equal(editDistance('claim', 'claim'), 0);
    assert.equal(editDistance('kitten', 'sitting'), 3);
  });
});
