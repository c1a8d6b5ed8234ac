/**
 * The evaluation page's generic parts: field paths read off a codec's shape and classed by the
 * longest prefix; every profile in the registry classes every field of the messages it names (so a
 * new field cannot slip through the privacy table unclassed); the common workload at a tiny size on
 * one scheme (payments made, commits read off the counters, signatures counted, the audit balanced);
 * and the page written from it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { array, bytes, optional, record, taggedUnion, text, uint } from '../../core/codec.ts';
import { SCHEMES } from '../../schemes/index.ts';
import { pageSchemes } from './all.ts';
import { commonSources, formatCommon, measureScheme, type CommonReport } from './common.ts';
import { commonFigure, evaluationPage, privacyRows } from './evaluation.ts';
import { makeHarness } from './harness.ts';
import { thisMachine } from './machine.ts';
import { classOf, fieldPaths, learned } from './privacy.ts';

test('field paths follow records, arrays, optionals and unions; the longest declared prefix classes a path', () => {
  const codec = record({
    amount: uint({ max: 10 }),
    sender: record({ key: bytes({ max: 32 }), name: optional(text({ max: 8 })) }),
    coins: array(record({ serial: bytes({ length: 16 }) }), { max: 4 }),
    note: taggedUnion('kind', { a: { x: uint({ max: 1 }) }, b: { y: uint({ max: 1 }) } }),
  });
  assert.deepEqual(fieldPaths(codec), ['amount', 'sender.key', 'sender.name', 'coins[].serial', 'note.kind', 'note.x', 'note.y'].filter((p) => p !== 'note.kind'));
  const fields = { sender: 'payer identity', 'sender.key': 'device key', coins: 'serial' } as const;
  assert.equal(classOf('sender.key', fields), 'device key');
  assert.equal(classOf('sender.name', fields), 'payer identity');
  assert.equal(classOf('coins[].serial', fields), 'serial');
  assert.equal(classOf('senders', fields), undefined, 'a prefix covers whole segments only');
  assert.equal(classOf('amount', fields), undefined);
});

test('every scheme profile names messages its wire lists and classes every field in them', async () => {
  const schemes = await pageSchemes(SCHEMES);
  assert.ok(schemes.length >= 5, `${schemes.length} profiles`);
  for (const scheme of schemes) {
    assert.ok(scheme.profile !== undefined);
    for (const party of ['payee', 'bank'] as const) {
      const l = learned(scheme.profile, scheme.wire, party);
      assert.deepEqual(l.unclassified, [], `${scheme.name}, ${party}: unclassified fields`);
      assert.ok(l.classes.size > 0, `${scheme.name}: the ${party} receives something`);
    }
  }
  const table = privacyRows(schemes).join('\n');
  // OPS's payee sees the payer's certificate; OTP's sees a coin, no identity.
  assert.match(table, /\| ops \| payer identity, payee identity, amount/);
  assert.doesNotMatch(table.split('\n').find((l) => l.startsWith('| otp ')) ?? '', /payer identity/);
});

test('the common workload at a tiny size on one scheme, and the page written from it', { timeout: 120_000 }, async () => {
  const source = commonSources(SCHEMES).find((s) => s.name === 'ops');
  assert.ok(source !== undefined);
  const { harness, close } = makeHarness({ quick: true, env: {}, progress: () => undefined });
  const row = await measureScheme(harness, source.name, await source.load(), { payments: 2, warmup: 0, floorIterations: 5, amountMinor: 1250n }).finally(close);
  assert.equal(row.payments, 2);
  assert.equal(row.currency, 'EUR');
  // One Pay in the payer's TA and one Collect in the payee's, each one commit.
  assert.deepEqual(row.commits, { payer: 1, payee: 1 });
  assert.ok(row.signs >= 1 && row.verifies >= 1, `${row.signs} signatures, ${row.verifies} verifications`);
  assert.ok(row.handshakeBytes > 0 && row.sessionBytes > 0);
  assert.ok(row.total.p50Ms >= row.session.p50Ms && row.floor.p50Ms > 0);
  assert.ok(!('none' in row.settle), 'OPS settles each payment by syncing');

  const report: CommonReport = { amountMinor: 1250, rows: [row], missing: ['dotm'], failed: [] };
  assert.match(formatCommon(report), /Not measured in this workload yet: dotm/);
  const page = evaluationPage({
    machine: thisMachine(),
    quick: true,
    loadAverage: { start: 0.5, end: 0.5 },
    seconds: 10,
    schemes: await pageSchemes(SCHEMES),
    common: report,
    commonWarnings: [],
    benches: [{ name: 'ops', paper: 'OPS', reproduces: 'Figure 7', text: '| a | b |', warnings: [], seconds: 1 }],
    figures: ['ops-x.svg', 'otp-ramp.svg'],
    commonFigure: 'evaluation-common.svg',
  });
  assert.match(page, /^# The five schemes side by side/);
  assert.match(page, /This is a `--quick` run/);
  assert.match(page, /\n\| ops \| [\d.]+ \/ [\d.]+ ms \| \d+ \| \d+ \/ \d+ \| 2 \|/);
  for (const heading of ['## Offline transitivity', '## What each party learns', '## What a broken secure element can do', "## Each paper's own evaluation", '### ops']) assert.ok(page.includes(heading), heading);
  assert.ok(page.includes('![ops-x.svg](ops-x.svg)') && !page.includes('![otp-ramp.svg]'), 'figures go under their own scheme only');
  const svg = commonFigure(report, 'test');
  assert.match(svg, /^<svg [^>]+>[\s\S]*<\/svg>\n$/);
  assert.ok(svg.includes('ops: total p50'));
  // A payment far above the floor still fits the axis: no bar runs past the figure.
  const slow = { ...row, total: { ...row.total, p50Ms: 1765 }, floor: { ...row.floor, p50Ms: 366 } };
  const widths = [...commonFigure({ ...report, rows: [slow] }, 'test').matchAll(/<rect x="(\d+)" y="\d+" width="([\d.]+)"/g)].map((m) => Number(m[1]) + Number(m[2]));
  assert.ok(widths.length >= 2 && widths.every((w) => w <= 760), `bars end at ${widths.join(', ')}`);
});
