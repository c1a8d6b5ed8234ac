/**
 * The fuzzer's short pass, as CI runs it: every decoder in the registry fed a fixed number of inputs
 * from a fixed seed (the HTTP routes fewer: each is a request to a real node with its database).
 * Any finding fails the test with the input and the line that replays it. Then checks that the
 * fuzzer itself catches what it must: a decoder that throws a plain Error, one that hangs, one that
 * accepts an input over its limit.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { TallyError } from '../../core/errors.ts';
import { allTargets, closeTargets } from './registry.ts';
import { runTarget, type TargetReport } from './run.ts';
import { codecTarget, FUZZ_GROUPS, type FuzzTarget } from './target.ts';
import { hostTarget } from './targets-se.ts';
import { SCHEMES } from '../../schemes/index.ts';

after(() => closeTargets());

const SEED = 20261206;
const INPUTS = 300;
const HTTP_INPUTS = 10;

function explain(report: TargetReport): string {
  return report.findings.map((f) => `${f.target}: ${f.message}\n  input (${f.kind}): ${f.inputHex}\n  replay: npm run fuzz -- --only '${f.target}' --input ${f.inputHex}`).join('\n');
}

describe('fuzz: the short pass over every decoder', () => {
  test('every decoder answers each input or refuses it with a TallyError (routes: a 4xx problem), in time, round trips, and changes nothing when it refuses', { timeout: 240_000 }, async () => {
    const targets = await allTargets();
    // Every group of exposure has decoders, and every scheme's messages are there.
    for (const group of ['http', 'core', 'message', 'frame', 'secure-element', 'token', 'file'] as const) assert.ok(targets.some((t) => t.group === group), group);
    assert.ok(targets.length >= 80, `${targets.length} decoders`);
    let tried = 0;
    for (const target of targets) {
      const report = await runTarget(target, { seed: SEED, inputs: target.group === 'http' ? HTTP_INPUTS : INPUTS });
      assert.equal(report.findingCount, 0, explain(report));
      assert.equal(report.accepted + report.rejected, report.tried);
      tried += report.tried;
    }
    assert.ok(tried > 10_000);
  });
});

/** A decoder for the fuzzer's own checks: takes bytes, does what `behave` says. */
function probe(behave: (input: Uint8Array) => 'accepted' | 'rejected' | Promise<'accepted' | 'rejected'>, timeoutMs = 200): FuzzTarget {
  return { name: 'probe', group: 'core', bytesMax: 16, timeoutMs, valid: fc.uint8Array({ maxLength: 8 }), feed: behave };
}

describe('fuzz: the fuzzer finds what it must', () => {
  test('a TallyError is a refusal; any other exception is a finding, shown with its input', async () => {
    const decoder = (fail: (input: Uint8Array) => never) => codecTarget({ name: 'probe', group: 'core', codec: { expected: 'nothing', decode: () => undefined }, bytesMax: 16, decode: fail, valid: fc.uint8Array({ maxLength: 8 }) });
    const clean = await runTarget(decoder(() => { throw new TallyError('DECODE_FAILED', 'no', { path: 'x', expected: 'y', got: 'z' }); }), { seed: 1, inputs: 300 });
    assert.equal(clean.findingCount, 0);
    assert.equal(clean.rejected, 300);
    const broken = await runTarget(decoder(() => { throw new RangeError('offset out of bounds'); }), { seed: 1, inputs: 300 });
    assert.equal(broken.findingCount, 300);
    assert.match(broken.findings[0]?.message ?? '', /RangeError: offset out of bounds/);
  });

  test('an input that takes longer than the bound is a finding (a hang)', async () => {
    const report = await runTarget(probe((input) => (input.length === 0 ? new Promise(() => undefined) : 'accepted'), 50), { seed: 3, inputs: 400 });
    assert.ok(report.findings.some((f) => /no answer within 50 ms/.test(f.message)), JSON.stringify(report.findings));
  });

  test('a decoder that answers at once is held to the CPU it took: a busy loop over the bound is a finding, a thread kept waiting is not', async () => {
    const spin = (ms: number) => {
      const until = performance.now() + ms;
      while (performance.now() < until);
    };
    const busy = await runTarget(probe((input) => (input.length === 0 ? (spin(80), 'accepted') : 'accepted'), 50), { seed: 3, inputs: 400 });
    assert.ok(busy.findings.some((f) => /over the bound of 50 ms/.test(f.message) && /ms of CPU/.test(f.message)), JSON.stringify(busy.findings));
    // Blocked without running (as a nice'd process on a busy machine is): wall time over the bound, no CPU.
    const cell = new Int32Array(new SharedArrayBuffer(4));
    const waited = await runTarget(probe((input) => (input.length === 0 ? (Atomics.wait(cell, 0, 0, 80), 'accepted') : input.length > 16 ? 'rejected' : 'accepted'), 50), { seed: 3, inputs: 400 });
    assert.ok(waited.tried === 400 && waited.slowestMs >= 80, `an input was kept waiting (${waited.slowestMs} ms)`);
    assert.deepEqual(waited.findings, []);
  });

  test('accepting an input over the declared limit is a finding', async () => {
    const report = await runTarget(probe(() => 'accepted'), { seed: 4, inputs: 400 });
    assert.ok(report.findings.some((f) => /over the declared limit of 16/.test(f.message)), JSON.stringify(report.findings));
  });

  test('a secure element target replaces its host after its share of inputs, and a fresh host answers', async () => {
    const ops = SCHEMES.find((scheme) => scheme.name === 'ops');
    assert.ok(ops?.trustedApp !== undefined);
    const target = hostTarget('ops', await ops.trustedApp(), 2);
    try {
      const outcomes: string[] = [];
      for (let k = 0; k < 5; k++) outcomes.push(await target.feed(new Uint8Array([0xff, k])));
      assert.deepEqual(outcomes, ['rejected', 'rejected', 'rejected', 'rejected', 'rejected']);
      assert.equal(target.hosts, 3, 'hosts for inputs 1-2, 3-4 and 5');
    } finally {
      await target.close?.();
    }
  });

  test('the registry lists the groups in order of exposure, HTTP first', async () => {
    const targets = await allTargets('core');
    assert.ok(targets.length > 0 && targets.every((t) => t.name.startsWith('core')));
    assert.deepEqual(FUZZ_GROUPS.slice(0, 3), ['http', 'core', 'message']);
  });
});
