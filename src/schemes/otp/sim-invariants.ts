/**
 * The invariants of OTP's simulation, and the judge of the node's findings.
 *
 * Conservation: the node's audit balances, nothing sits in settlement, issued = online + float:otp,
 * and the audit's exposure check finds float:otp equal to the coins signed and neither deposited nor
 * refunded. Then what the TAs hold, Σ over every TA (clones included) of its coins + a deposit under
 * way + its boxes in flight that no TA took (a box taken is a coin that moved on; the payer keeps it
 * in flight only until the ACK), less float:otp, is the value created offline: exactly 0 while no
 * attack duplicated a TA, never below 0, and never above the attacks' bounds.
 *
 * Attribution (OTP §3.4, escrow tags): a finding names the device that signed both branches of a
 * coin paid twice; it must be an attacker's, whose attacks it detects and attributes, and the node
 * revokes it. A deposit that met a copy deposited before must leave a finding.
 */
import type { SimAttack } from '../../sim/sim/plugin.ts';
import { allParties, classValue, digestOf, status, type OtpSim, type Party } from './sim-context.ts';
import { OTP_FLOAT_ACCOUNT } from './node.ts';
import { OTP_SCHEME } from './messages.ts';

/** What a TA holds towards float:otp: its coins, a deposit under way, its boxes in flight no TA took. */
export async function holding(sim: OtpSim, party: Party): Promise<bigint> {
  const s = await status(party.el);
  let held = s.balance + (s.deposit?.amount ?? 0n);
  if (s.inFlight.count > 0) {
    for (const box of (await party.el.se.call('inFlight', {})).sealed) {
      // A box names its class in the clear: its value is the class's.
      if (!sim.received.has(digestOf(box))) held += classValue(sim, box.classId);
    }
  }
  return held;
}

/** Registers the conservation invariant. */
export function conservation(sim: OtpSim): void {
  const { world, node } = sim;
  world.invariant('conservation', async () => {
    const audit = await node.audit();
    const float = audit.floats.get(OTP_FLOAT_ACCOUNT) ?? 0n;
    if (!audit.balanced) return "the node's audit does not balance";
    if (audit.settlement !== 0n) return `${audit.settlement} sits in settlement between steps`;
    if (audit.issued !== audit.online + float) return `issued ${audit.issued} ≠ online ${audit.online} + float ${float}`;
    const exposure = ((await node.request('operator', 'GET', '/v1/audit')).body as { exposure: Array<{ scheme: string; difference: string; balanced: boolean }> }).exposure.find((e) => e.scheme === OTP_SCHEME);
    if (exposure === undefined || !exposure.balanced || exposure.difference !== '0.00') return `float:otp is not the coins still out: ${JSON.stringify(exposure)}`;
    let held = 0n;
    for (const p of allParties(sim)) held += await holding(sim, p);
    if (world.params.sabotage === 'forget-payment' && sim.paymentsMade > 0) held -= sim.lastPayment;
    const created = held - float;
    if (created < 0n) return `value destroyed offline: TAs hold ${held} < float ${float}`;
    if (sim.duplicatingAttacks === 0 && created !== 0n) return `value created offline (${created}) with no attack that copied a TA`;
    const bound = world.recorder.attacks.reduce((sum, a) => sum + a.bound, 0n);
    if (created > bound) return `value created offline (${created}) above the attacks' bound (${bound})`;
    if (sim.lost > bound) return `honest holders lost ${sim.lost} to double spends, above the attacks' bound ${bound}`;
    return null;
  });
}

/**
 * Reads the findings the node recorded since the last look and judges each. `after`: a deposit
 * that met `doubleSpent` copies deposited before: the node must hold a finding by then.
 */
export async function pollFindings(sim: OtpSim, after: { doubleSpent: number } | null = null): Promise<void> {
  const answer = await sim.node.request('operator', 'GET', '/v1/otp/operator/findings');
  const findings = (answer.body as { findings: Array<{ serial: string; device: string; hop: number }> }).findings.slice().reverse();
  for (const f of findings.slice(sim.findingsSeen)) judge(sim, f);
  sim.findingsSeen = findings.length;
  if (after !== null && after.doubleSpent > 0 && findings.length === 0) {
    sim.world.violated('double-spend-detected', `a deposit met ${after.doubleSpent} coin(s) deposited before, and the escrow tags named nobody`);
  }
}

/** A finding must name an attacker's device; its attacks made so far are detected and attributed to it. */
function judge(sim: OtpSim, f: { serial: string; device: string; hop: number }): void {
  const { world } = sim;
  world.recorder.count('findings.double-spend');
  const named = sim.holders.find((h) => h.device === f.device);
  if (named === undefined || !named.attacker) sim.world.violated('attribution', `the node named ${f.device} for paying coin ${f.serial} twice, which is no attacker`);
  named.revoked = true;
  for (const a of world.recorder.attacks) {
    if (a.device !== f.device || !duplicating(a) || a.outcome !== 'pending') continue;
    a.outcome = 'detected';
    a.detectedAt = world.clock.now();
    a.attributed = true;
  }
}

/** The attacks that make a second TA holding the same coins. */
export function duplicating(a: SimAttack): boolean {
  return a.kind === 'clone' || a.kind === 'rollback';
}
