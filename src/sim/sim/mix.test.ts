/**
 * Mixed populations: OPS, DOT-M and OTP on one node, one clock and one seed, each scheme's own
 * simulation making its payments, faults and attacks, interleaved in an order the seed draws. The
 * run must keep every scheme's invariants and the mix's (the whole ledger balanced, each scheme's
 * money in its own accounts and float), replay exactly from its seed, stop on a broken step with
 * the command that replays the mix, and see money that crosses from one scheme into another.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Signer } from '../../core/crypto/suite.ts';
import { idempotent, refusal, requireUser, transfer, type SchemeModule } from '../../issuer/plugin.ts';
import { SCHEMES } from '../../schemes/index.ts';
import type { Scheme } from '../../schemes/scheme.ts';
import { MIX_INVARIANT, mixWithoutTimings, runMix } from './mix.ts';
import { simParameters } from './options.ts';
import type { SimPlugin, SimWorld } from './plugin.ts';
import { closeSimDatabases, useNewSimDatabases } from './world.ts';
import { PGlite } from '@electric-sql/pglite';
import { newClusterDump } from '../../issuer/db/test-pglite-cluster.ts';

// A new database is the run's new cluster loaded (test-pglite-cluster.ts), not another initdb.
useNewSimDatabases(async () => PGlite.create({ loadDataDir: await newClusterDump() }));
after(() => closeSimDatabases());

const scheme = (name: string) => SCHEMES.find((s) => s.name === name) as Scheme;
/** Three holders a scheme (one attacker each), 5 payments a scheme, faults at 8 %: a short mix whose seed 1 draws an attack in every scheme. */
const SMALL = { devices: 3, payments: 5, attackers: 0.34, faults: 0.08, checkEvery: 1 } as const;

test('mix: ops, dotm and otp on one node keep every invariant under faults and attacks, and seed 1 replays its mixed run exactly', { timeout: 240_000 }, async () => {
  const mix = ['ops', 'dotm', 'otp'].map(scheme);
  const report = await runMix(mix, { seed: 1, ...SMALL });
  assert.equal(report.ok, true, report.violation?.message);
  assert.deepEqual(report.mix, ['ops', 'dotm', 'otp']);
  assert.deepEqual(report.schemes.map((r) => r.scheme), ['ops', 'dotm', 'otp']);
  for (const r of report.schemes) {
    assert.equal(r.counters['payments'], SMALL.payments, `${r.scheme}: every payment made`);
    assert.ok((r.counters['payments.credited'] ?? 0) > 0, `${r.scheme}: payments were credited`);
    assert.ok(r.attacks.reduce((s, a) => s + a.attempted, 0) > 0, `${r.scheme}: attacks were made`);
    for (const a of r.attacks) assert.equal(a.attempted, a.refusedOffline + a.detected + a.harmless, `${r.scheme} ${a.kind}: every attack is accounted for`);
    assert.ok(BigInt(r.lossMinor) <= BigInt(r.boundMinor), `${r.scheme}: the loss is within its bound`);
    assert.ok(r.steps > 0);
  }
  assert.equal(report.steps, report.schemes.reduce((s, r) => s + r.steps, 0), 'the steps of the mix are its schemes\' steps');
  assert.equal(report.total.counters['payments'], 3 * SMALL.payments);
  // The ledger at the end: balanced across every scheme's float, and each scheme's money where it was minted.
  const audit = report.audit;
  assert.ok(audit !== null);
  assert.equal(audit.balanced, true);
  assert.deepEqual(Object.keys(audit.floats), ['float:dotm', 'float:ops', 'float:otp']);
  const floats = Object.values(audit.floats).reduce((s, f) => s + BigInt(f), 0n);
  assert.equal(BigInt(audit.issuedMinor), BigInt(audit.onlineMinor) + floats);
  for (const [name, s] of Object.entries(audit.schemes)) {
    assert.equal(BigInt(s.mintedMinor), BigInt(s.onlineMinor) + BigInt(s.floatMinor), `${name}: minted = its accounts + its float`);
    assert.equal(s.floatMinor, audit.floats[`float:${name}`]);
  }
  // One seed reproduces one mixed run: the same interleaving, the same report, timings aside.
  const again = await runMix(mix, { seed: 1, ...SMALL });
  assert.deepEqual(mixWithoutTimings(again), mixWithoutTimings(report));
});

test('mix: a broken step stops the whole mix with the invariant of its scheme and the command that replays the mix', { timeout: 120_000 }, async () => {
  // A test-only sabotage (as in sim.test.ts): each simulation forgets a payment in flight from its books.
  const mix = ['ops', 'dotm'].map(scheme);
  const report = await runMix(mix, { seed: 5, ...SMALL, payments: 4, sabotage: 'forget-payment' });
  assert.equal(report.ok, false);
  const violation = report.violation;
  assert.ok(violation !== null);
  assert.equal(violation.invariant, 'conservation');
  assert.ok(['ops', 'dotm'].includes(violation.scheme));
  assert.match(violation.message, /value destroyed offline/);
  assert.equal(violation.replay, 'tally sim --scheme ops,dotm --seed 5 --devices 3 --payments 4 --attackers 0.34 --faults 0.08');
  assert.equal(report.schemes.find((r) => r.scheme === violation.scheme)?.violation?.invariant, 'conservation');
  // The replay command's flags make the same mix stop at the same step with the same violation.
  const flags = Object.fromEntries([...violation.replay.matchAll(/--([a-z-]+) (\S+)/g)].map((m) => [m[1] as string, m[2] as string]));
  const names = (flags['scheme'] as string).split(',');
  const replayed = await runMix(names.map(scheme), { ...simParameters(flags), sabotage: 'forget-payment' });
  assert.deepEqual(replayed.violation, violation);
});

test('mix: money moved from one scheme\'s holders into another\'s float is caught by the mix\'s invariant', { timeout: 120_000 }, async () => {
  // Two stand-in schemes without devices: "left" mints into its holder's account; "right" has a
  // route that takes an amount from the caller's account into right's float, and calls it with
  // left's holder's key, as a bug letting one scheme load another's customer's money would.
  let leftUser: { signer: Signer; account: string } | null = null;
  const leftModule: SchemeModule = { name: 'left', register: () => undefined };
  const rightModule: SchemeModule = {
    name: 'right',
    floatAccount: 'float:right',
    register(app, services) {
      app.post('/take', async (c) => {
        const user = requireUser(c.get('caller'));
        return idempotent(services, c, 'right/take', user.keyId, async (tx) => {
          const moved = await transfer(tx, { idempotencyKey: `right-take:${user.keyId}`, debit: user.accountId, credit: 'float:right', amount: 7n, kind: 'right-take', reference: {}, currency: services.currency });
          return moved.ok ? { status: 200, body: {} } : refusal(moved.code, moved.message);
        });
      });
    },
  };
  const left: SimPlugin = {
    scheme: 'left',
    async run(world: SimWorld) {
      const node = await world.openNode(leftModule);
      const user = await node.registerUser();
      await node.mint(user.account, 1_000n);
      leftUser = { signer: user.signer, account: user.account };
      for (let k = 0; k < 20; k++) await world.step();
    },
  };
  const right: SimPlugin = {
    scheme: 'right',
    async run(world: SimWorld) {
      const node = await world.openNode(rightModule);
      await node.mint((await node.registerUser()).account, 500n);
      while (leftUser === null) await world.step();
      const answer = await node.request(leftUser.signer, 'POST', '/v1/right/take', {});
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      await world.step();
    },
  };
  const report = await runMix([{ name: 'left', sim: async () => left }, { name: 'right', sim: async () => right }], { seed: 1, ...SMALL });
  assert.equal(report.ok, false);
  assert.equal(report.violation?.scheme, 'mix');
  assert.equal(report.violation?.invariant, MIX_INVARIANT);
  assert.match(report.violation?.message ?? '', /left: issued 1000 ≠ its holders' accounts 993 \+ its float 0: money crossed between schemes/);
});

test('mix: a mix names at least two schemes, each once', async () => {
  await assert.rejects(runMix([scheme('ops')], { seed: 1, ...SMALL }), /a mix needs two schemes or more/);
  await assert.rejects(runMix([scheme('ops'), scheme('ops')], { seed: 1, ...SMALL }), /names each scheme once/);
});
