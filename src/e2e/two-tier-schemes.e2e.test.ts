/**
 * OPS, DOT-M, OTP and OPERA across two banks through the `tally` command line, on one system of
 * processes: a central bank and two intermediaries (two-tier-fixture.ts). Each scheme's story
 * (two-tier-*.e2e.ts) has wallets of its own in a folder of its own, stops and starts the banks it
 * needs down, and ends with every audit balanced; starting the three processes once for the four,
 * rather than once a scheme, saves their start-up (the databases, the keys, the enrolment) three
 * times over. chain-tee has a system of its own (two-tier-chain.e2e.test.ts): its bank B settles
 * on bank A's chain, which a story that stops bank A would take away from B.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import { killChildren } from '../cli/e2e-process.ts';
import { swtpmGate } from '../secure-element/tpm-fixtures.ts';
import { DOTM_ACROSS_BANKS, dotmAcrossBanks } from './two-tier-dotm.e2e.ts';
import { startTwoTierProcesses, type TwoTierProcesses } from './two-tier-fixture.ts';
import { OPERA_ACROSS_BANKS, operaAcrossBanks } from './two-tier-opera.e2e.ts';
import { OPS_ACROSS_BANKS, opsAcrossBanks } from './two-tier-ops.e2e.ts';
import { OTP_ACROSS_BANKS, otpAcrossBanks } from './two-tier-otp.e2e.ts';

const operaSkip = await swtpmGate();
const TIMEOUT = 600_000;
let base = '';
let tiers: TwoTierProcesses | undefined;

before(async () => {
  base = await mkdtemp(join(tmpdir(), 'tally-two-tier-schemes-'));
  tiers = await startTwoTierProcesses({ base, passphrase: 'two tier schemes e2e' });
}, { timeout: TIMEOUT });

// A story that failed with a bank stopped leaves it stopped: the next story starts with both running.
beforeEach(() => tiers?.restartStopped());

after(async () => {
  await tiers?.stop();
  killChildren();
  if (base !== '') await rm(base, { recursive: true, force: true });
});

/** The running system (started by `before`). */
function system(): TwoTierProcesses {
  if (tiers === undefined) throw new Error('the two tiers did not start');
  return tiers;
}

test(OPS_ACROSS_BANKS, { timeout: TIMEOUT }, () => opsAcrossBanks(system(), join(base, 'ops')));
test(DOTM_ACROSS_BANKS, { timeout: TIMEOUT }, () => dotmAcrossBanks(system(), join(base, 'dotm')));
test(OTP_ACROSS_BANKS, { timeout: TIMEOUT }, () => otpAcrossBanks(system(), join(base, 'otp')));
test(OPERA_ACROSS_BANKS, { skip: operaSkip, timeout: TIMEOUT }, () => operaAcrossBanks(system(), join(base, 'opera')));
