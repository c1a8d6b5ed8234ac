/**
 * The two tiers as an operator runs them: three processes with three databases (the central bank
 * and two intermediaries), every step a `tally` command of its own, ending with every audit
 * balanced; and `tally demo --two-tier` told from start to end.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BIN, cliOf, dropNodeDatabases, killChildren, nodeDatabaseArgs, startNode, type Json, type NodeProcess } from '../cli/e2e-process.ts';

const PASSPHRASE = 'two tiers e2e passphrase';
let base = '';
const nodes: NodeProcess[] = [];
after(async () => {
  for (const node of nodes) await node.stop().catch(() => undefined);
  killChildren();
  await dropNodeDatabases();
  if (base !== '') await rm(base, { recursive: true, force: true });
});

test('a central bank and two intermediaries, each its own process and database: enrolment, issuance, minting from the reserve, revocation, every audit balanced', { timeout: 300_000 }, async () => {
  base = await mkdtemp(join(tmpdir(), 'tally-two-tier-e2e-'));
  const env = { ...process.env, TALLY_NODE_PASSPHRASE: PASSPHRASE, TALLY_HOME: join(base, 'home') };
  const cli = cliOf(env);
  /** A command the node refused: exit 1, NODE_REFUSED, with the node's own code. */
  const nodeRefused = async (code: string, args: readonly string[]) => {
    const error = await cli.refused('NODE_REFUSED', args);
    assert.equal((error['details'] as Json)['code'], code, JSON.stringify(error));
  };
  const cbDir = join(base, 'cb');
  // Each node keeps its ledger in a PostgreSQL database of its own on the test server, when there is
  // one (nodeDatabaseArgs), as the processes of two-tier-fixture.ts do; `tally demo --two-tier`
  // below runs its three nodes on their embedded databases.
  const cb = await startNode(cbDir, 0, { passphrase: PASSPHRASE, args: ['--role', 'central-bank', ...(await nodeDatabaseArgs())] });
  nodes.push(cb);
  const atCb = ['--node', cb.url, '--data', cbDir];
  const info = (await (await fetch(`${cb.url}/v1/info`)).json()) as { role: string };
  assert.equal(info.role, 'central-bank');

  // Enrolment: asked, approved by the central bank's operator, completed.
  const banks: { dir: string; keyId: string; node?: NodeProcess }[] = [];
  for (const name of ['Bank A', 'Bank B']) {
    const dir = join(base, name === 'Bank A' ? 'bank-a' : 'bank-b');
    const asked = await cli.ok('node', 'enrol', '--central-bank', cb.url, '--name', name, '--data', dir);
    assert.equal(asked['status'], 'pending');
    banks.push({ dir, keyId: String(asked['keyId']) });
  }
  const [bankA, bankB] = banks as [(typeof banks)[number], (typeof banks)[number]];
  // Not approved yet: the node does not start, and says what the central bank must do.
  const early = await cli.run(['node', 'start', '--port', '0', '--data', bankA.dir, '--json']);
  assert.equal(early.code, 1);
  assert.match(early.stderr, new RegExp(`ENROLMENT_PENDING.*|tally cb approve ${bankA.keyId}`));
  const listed = await cli.ok('cb', 'intermediaries', ...atCb);
  assert.deepEqual((listed['intermediaries'] as Json[]).map((i) => [i['name'], i['status']]), [['Bank A', 'pending'], ['Bank B', 'pending']]);
  for (const bank of banks) assert.equal((await cli.ok('cb', 'approve', bank.keyId, ...atCb))['status'], 'approved');
  await nodeRefused('ALREADY_SETTLED', ['cb', 'approve', bankA.keyId, ...atCb]);
  for (const bank of banks) {
    bank.node = await startNode(bank.dir, 0, { passphrase: PASSPHRASE, args: await nodeDatabaseArgs() });
    nodes.push(bank.node);
  }
  await assert.rejects(stat(join(bankA.dir, 'identity', 'root.key')), { code: 'ENOENT' });
  const a = bankA.node as NodeProcess;
  const b = bankB.node as NodeProcess;
  const atA = ['--node', a.url, '--data', bankA.dir];
  const atB = ['--node', b.url, '--data', bankB.dir];

  // Issuance through the tiers.
  const issued = await cli.ok('cb', 'issue', bankA.keyId, '1000.00', ...atCb);
  assert.deepEqual([issued['amount'], issued['currency']], ['1000.00', 'EUR']);
  await cli.ok('cb', 'issue', bankB.keyId, '250.00', ...atCb);
  await nodeRefused('AMOUNT_INVALID', ['cb', 'issue', bankB.keyId, '1.005', ...atCb]);
  const reserveA = await cli.ok('node', 'reserve', ...atA);
  assert.deepEqual([reserveA['reserve'], reserveA['unallocated'], reserveA['revoked']], ['1000.00', '1000.00', false]);
  await nodeRefused('ROLE_MISMATCH', ['operator', 'mint', 'user:00', '1.00', ...atCb]);

  // A customer of each bank, with a secure element whose maker the bank itself certifies (no root
  // key at an intermediary); minting from the reserve, and no further.
  const homeA = ['--home', join(base, 'home-a')];
  const homeB = ['--home', join(base, 'home-b')];
  await cli.ok('operator', 'oem', ...atA, ...homeA);
  await cli.ok('operator', 'oem', ...atB, ...homeB);
  const alice = await cli.ok('wallet', 'create', 'alice', '--node', a.url, ...homeA);
  const bob = await cli.ok('wallet', 'create', 'bob', '--node', b.url, ...homeB);
  assert.ok(String(alice['account']).startsWith('user:') && String(bob['account']).startsWith('user:'));
  await cli.ok('operator', 'mint', 'alice', '700.00', ...atA, ...homeA);
  await nodeRefused('INSUFFICIENT_FUNDS', ['operator', 'mint', 'alice', '300.01', ...atA, ...homeA]);
  // B mints only what its books have recorded of its reserve: it syncs first (its own sync runs every few seconds).
  assert.equal((await cli.ok('node', 'reserve', ...atB))['unallocated'], '250.00');
  await cli.ok('operator', 'mint', 'bob', '250.00', ...atB, ...homeB);
  // alice moves value into her device: the bank's float now holds it, and its books still add up.
  const deposited = await cli.ok('wallet', 'deposit', 'alice', '200.00', ...homeA);
  assert.equal(deposited['offline'], '200.00');

  for (const at of [atA, atB]) {
    await cli.ok('node', 'reserve', ...at);
    const audit = await cli.ok('audit', ...at);
    assert.equal(audit['balanced'], true, JSON.stringify(audit));
  }
  const system = await cli.ok('cb', 'audit', ...atCb);
  assert.equal(system['balanced'], true, JSON.stringify(system));
  assert.deepEqual([system['issued'], system['reserves'], system['reportedReserves']], ['1250.00', '1250.00', '1250.00']);
  const lineA = (system['intermediaries'] as Json[]).find((i) => i['keyId'] === bankA.keyId);
  assert.deepEqual([(lineA?.['reported'] as Json)['online'], (lineA?.['reported'] as Json)['offlineFloat'], (lineA?.['reported'] as Json)['unallocated']], ['500.00', '200.00', '300.00']);

  // Revocation: B learns it; nothing more is issued to it. The books still add up.
  const revoked = await cli.ok('cb', 'revoke', bankB.keyId, 'licence withdrawn', ...atCb);
  assert.equal(revoked['version'], 2);
  assert.equal((await cli.ok('node', 'reserve', ...atB))['revoked'], true);
  assert.equal((await cli.ok('node', 'reserve', ...atA))['revoked'], false);
  await nodeRefused('CERT_REVOKED', ['cb', 'issue', bankB.keyId, '1.00', ...atCb]);
  assert.equal((await cli.ok('cb', 'audit', ...atCb))['balanced'], true);
});

test('`tally demo --two-tier --json` tells the two tiers: enrolment (one refused), issuance, minting no further than the reserve, the system audit balanced, OPS payments across the banks (settled, waiting for a stopped bank, a clone refused as a double spend), a revocation', { timeout: 240_000 }, () => {
  const run = spawnSync(process.execPath, [BIN, 'demo', '--two-tier', '--json'], { encoding: 'utf8', timeout: 230_000 });
  assert.equal(run.status, 0, run.stderr + run.stdout);
  const steps = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as { step: string; [key: string]: unknown });
  // The tiers' own numbered steps; each scheme's chapter tells its own, prefixed with its name, before the audit after them.
  const chapter = /^(ops|dotm|otp|chain|opera|toy)-/;
  const told = steps.filter((s) => s['number'] !== undefined).map((s) => s.step);
  assert.deepEqual(told.filter((step) => !chapter.test(step) && step !== 'audit-after'), ['central-bank', 'enrol', 'decide', 'intermediaries', 'issue', 'mint', 'audit', 'revoke']);
  assert.deepEqual(told.filter((step) => step.startsWith('ops-')), ['ops-wallets', 'ops-pay-across', 'ops-claim', 'ops-settled', 'ops-bank-down', 'ops-bank-back', 'ops-clone', 'ops-double-spend']);
  assert.ok(told.indexOf('audit-after') > told.indexOf('ops-double-spend') && told.indexOf('revoke') > told.indexOf('audit-after'), 'the chapters come between the audit and the audit after them');
  const step = (name: string) => steps.find((s) => s.step === name) as { step: string; [key: string]: unknown };
  // OPS across the banks: alice's device at A pays bob at B offline; his collect is presented to A and settled.
  assert.equal(step('ops-wallets')['offline'], '60.00');
  assert.deepEqual(step('ops-pay-across')['peers'], { alice: 1, bob: 1 });
  assert.equal(step('ops-pay-across')['offline'], '12.50');
  assert.equal(step('ops-claim')['amount'], '12.50');
  assert.match(String(step('ops-claim')['claimId']), /^[0-9a-f]{64}$/);
  const settled = step('ops-settled');
  assert.equal(settled['status'], 'settled');
  assert.deepEqual(settled['reserves'], { before: { a: '1000.00', b: '500.00' }, after: { a: '987.50', b: '512.50' } });
  assert.deepEqual(settled['floatB'], { before: '0.00', after: '12.50' });
  assert.equal(settled['balanced'], true);
  // Bank A stopped: the claim waits at the central bank, then is settled once A is back.
  assert.equal(step('ops-bank-down')['status'], 'presented');
  assert.equal(step('ops-bank-back')['claimId'], step('ops-bank-down')['claimId']);
  assert.equal(step('ops-bank-back')['status'], 'settled');
  assert.deepEqual(step('ops-bank-back')['reserves'], { a: '980.50', b: '519.50' });
  // A clone pays carol at A and bob at B with the same index: A names and revokes the device, B's claim is refused.
  const clone = step('ops-clone');
  assert.equal(clone['carolIndex'], clone['bobIndex']);
  assert.equal(clone['carolCredited'], true);
  const spent = step('ops-double-spend');
  assert.equal(spent['status'], 'refused');
  assert.equal(spent['code'], 'DOUBLE_SPEND');
  assert.deepEqual(spent['fraud'], ['clone']);
  assert.equal(spent['device'], step('ops-wallets')['alice']);
  assert.ok(Number((spent['listVersion'] as { after: number }).after) > Number((spent['listVersion'] as { before: number }).before));
  assert.deepEqual(spent['floatB'], { before: '19.50', after: '19.50' }, 'nothing credited for the refused claim');
  assert.deepEqual((spent['reserves'] as { before: unknown }).before, (spent['reserves'] as { after: unknown }).after, 'no reserve moved');
  assert.deepEqual(spent['exposed'], { device: step('ops-wallets')['alice'], amount: '10.00', fraud: true });
  assert.equal(spent['balanced'], true);
  assert.equal(step('ops-revoked-refused')['code'], 'CERT_REVOKED');
  assert.equal(step('ops-audit')['balanced'], true);
  assert.equal(step('audit-after')['balanced'], true);
  assert.equal(steps.find((s) => s.step === 'refused')?.['code'], 'ENROLMENT_REFUSED');
  assert.equal(steps.find((s) => s.step === 'over-mint')?.['code'], 'INSUFFICIENT_FUNDS');
  assert.equal(steps.find((s) => s.step === 'revoked-issue')?.['code'], 'CERT_REVOKED');
  assert.equal(steps.find((s) => s.step === 'audit')?.['balanced'], true);
  assert.equal(steps.find((s) => s.step === 'revoke')?.['revoked'], true);
  assert.ok(!steps.some((s) => s.step === 'missed'), 'no refusal was missed');

  {
    // OPERA's chapter: A's tokens charged, B's wallet synced, paid offline, presented by B, a copy refused, settled, the reserves moved.
    const opera = (name: string) => steps.find((s) => s.step === `opera-${name}`) ?? assert.fail(`no step opera-${name}`);
    assert.deepEqual(told.filter((step) => step.startsWith('opera-')), ['opera-wallets', 'opera-charge', 'opera-sync', 'opera-pay', 'opera-deposit', 'opera-settled']);
    assert.deepEqual([opera('charge')['amount'], opera('charge')['tokens'], opera('charge')['offline']], ['35.00', 3, '35.00']);
    assert.ok(Number(opera('sync')['peers']) >= 1);
    assert.deepEqual([opera('pay')['amount'], opera('pay')['tokens'], opera('pay')['payer'], opera('pay')['payee']], ['15.00', 2, '20.00', '15.00']);
    assert.deepEqual([opera('deposit')['credited'], opera('deposit')['presented'], opera('deposit')['doubleSpent']], ['0.00', 2, 0]);
    assert.equal(opera('copy-refused')['code'], 'DOUBLE_SPEND');
    const settled = opera('settled') as unknown as { online: string; reserves: { before: { a: string; b: string }; after: { a: string; b: string } } };
    assert.equal(settled.online, '15.00');
    const minor = (decimal: string) => BigInt(decimal.replace('.', ''));
    assert.equal(minor(settled.reserves.after.a), minor(settled.reserves.before.a) - 1500n);
    assert.equal(minor(settled.reserves.after.b), minor(settled.reserves.before.b) + 1500n);
    assert.equal(opera('audit')['balanced'], true);
    assert.equal(steps.find((s) => s.step === 'audit-after')?.['balanced'], true);
  }

  // DOT-M: a block of Bank A paid offline to a wallet of Bank B, claimed at A, settled between the reserves; a clone's second spend refused at A.
  {
    const numbered = steps.filter((s) => s['number'] !== undefined && s.step.startsWith('dotm-')).map((s) => s.step);
    assert.deepEqual(numbered, ['dotm-wallets', 'dotm-sync', 'dotm-pay', 'dotm-redeem', 'dotm-settle', 'dotm-double-spend']);
    const step = (name: string) => steps.find((s) => s.step === name) as Record<string, unknown>;
    assert.deepEqual([step('dotm-wallets')['offline'], step('dotm-wallets')['blocks']], ['30.00', 3]);
    assert.deepEqual([step('dotm-pay')['amount'], step('dotm-pay')['payer'], step('dotm-pay')['payee']], ['10.00', 'completed', 'completed']);
    const redeemed = step('dotm-redeem');
    assert.deepEqual([redeemed['outcome'], redeemed['credited'], redeemed['online'], (redeemed['claims'] as string[]).length], ['claimed', false, '0.00', 1], JSON.stringify(redeemed));
    const settled = step('dotm-settle');
    const reserves = settled['reserves'] as { before: { a: string; b: string }; after: { a: string; b: string } };
    const cents = (d: string) => BigInt(d.replace('.', ''));
    assert.equal(cents(reserves.after.a), cents(reserves.before.a) - 1000n, JSON.stringify(reserves));
    assert.equal(cents(reserves.after.b), cents(reserves.before.b) + 1000n, JSON.stringify(reserves));
    assert.deepEqual([settled['bob'], settled['balanced']], ['10.00', true]);
    const twice = step('dotm-double-spend');
    assert.deepEqual([twice['outcome'], twice['code'], twice['online'], twice['revoked']], ['refused', 'DOUBLE_SPEND', '0.00', true], JSON.stringify(twice));
  }

  // OTP: coins of Bank A paid offline to a wallet of Bank B, presented to A, settled between the reserves; a clone's coins deposited again refused at A.
  {
    const numbered = steps.filter((s) => s['number'] !== undefined && s.step.startsWith('otp-')).map((s) => s.step);
    assert.deepEqual(numbered, ['otp-wallets', 'otp-sync', 'otp-pay', 'otp-deposit', 'otp-settle', 'otp-double-spend']);
    const step = (name: string) => steps.find((s) => s.step === name) as Record<string, unknown>;
    assert.deepEqual([step('otp-wallets')['offline'], step('otp-wallets')['coins']], ['17.00', 3]);
    assert.deepEqual([step('otp-pay')['amount'], step('otp-pay')['coins'], step('otp-pay')['payer'], step('otp-pay')['payee']], ['7.00', 2, '10.00', '7.00']);
    const deposited = step('otp-deposit');
    assert.deepEqual([deposited['credited'], deposited['presented'], deposited['doubleSpent'], deposited['refused']], ['0.00', 2, 0, 0], JSON.stringify(deposited));
    const settled = step('otp-settle');
    const reserves = settled['reserves'] as { before: { a: string; b: string }; after: { a: string; b: string } };
    const cents = (d: string) => BigInt(d.replace('.', ''));
    assert.equal(cents(reserves.after.a), cents(reserves.before.a) - 700n, JSON.stringify(reserves));
    assert.equal(cents(reserves.after.b), cents(reserves.before.b) + 700n, JSON.stringify(reserves));
    assert.deepEqual([settled['bob'], settled['balanced']], ['7.00', true]);
    const twice = step('otp-double-spend');
    assert.deepEqual([twice['code'], twice['online']], ['DOUBLE_SPEND', '0.00'], JSON.stringify(twice));
  }
});
