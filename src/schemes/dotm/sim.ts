/**
 * DOT-M in `tally sim`: a population of account holders, each with a DOT-M wallet (the trusted app
 * on an in-process secure element, registered and certified by the real node), issued currency
 * blocks out of their accounts, paying each other by the nine steps of §3.3.3 over an in-memory
 * network that drops, duplicates and delays messages, uploading their signed events when online
 * and redeeming copies, while secure elements crash at commit points and the node restarts.
 * Attackers clone their wallet, roll it back, pay again with extracted keys, forge a block and
 * replay σ and events (sim-attacks.ts). After each step the invariants of sim-invariants.ts; at the
 * end every holder uploads and redeems everything, and every double spend a payee took must have
 * been detected at settlement and attributed to the attacker (§3.4.4).
 *
 * The parts: sim-population.ts (holders, issue, sync, redeem, the books and the findings),
 * sim-exchange.ts (one transaction with its faults), sim-attacks.ts, sim-invariants.ts.
 */
import { utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import type { SimPlugin, SimWorld } from '../../sim/sim/plugin.ts';
import { WALLET_BLOCKS_MAX } from './trusted-app.ts';
import { dotmNodePart } from './node.ts';
import { attack, recordAttackPayment } from './sim-attacks.ts';
import { exchange } from './sim-exchange.ts';
import { doubleSpendsDetected, registerInvariants } from './sim-invariants.ts';
import { openDotmSim, issue, population, redeem, type DotmSim, type Holder } from './sim-population.ts';

/** The DOT-M build the simulated OEM attests and the node allows. */
const SIM_MEASUREMENT = sha256(utf8('tally dotm trusted app, sim build'));
/** What each holder's account is minted at the start, minor units. */
const MINTED_MINOR = 200_000n;
/** A holder below this asks the node for blocks; above HIGH it redeems some (minor units). */
const LOW_MINOR = 2_000n;
const HIGH_MINOR = 20_000n;
/** One issue: between these, minor units, in 1 to ISSUE_BLOCKS_MAX blocks. */
const ISSUE_MIN = 2_000n;
const ISSUE_MAX = 10_000n;
const ISSUE_BLOCKS_MAX = 4;
/** The largest payment, minor units. */
const PAYMENT_MAX = 2_000n;
/** Steps a run may take per payment before it is stuck (a liveness check). */
const STEPS_PER_PAYMENT_MAX = 60;
/** Redemptions at the end between two uploads (the log keeps 32 events). */
const END_REDEMPTIONS_PER_SYNC = 8;

function smaller(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

/** A payee for `payer`: any other holder. */
function payeeFor(world: SimWorld, holders: readonly Holder[], payer: Holder): Holder | null {
  const others = holders.filter((h) => h !== payer);
  return others.length === 0 ? null : world.random.pick(others);
}

/** Asks for blocks when `h` is low, redeems some when it is high (online, not revoked). */
async function keepBalance(sim: DotmSim, h: Holder): Promise<void> {
  const { random } = sim.world;
  if (h.balance < LOW_MINOR) {
    const blocks = 1 + random.below(ISSUE_BLOCKS_MAX);
    const held = (await h.el.se.call('status', {})).blocks.length;
    if (held + blocks <= WALLET_BLOCKS_MAX) await issue(sim, h, random.bigint(ISSUE_MIN, ISSUE_MAX), blocks);
  } else if (h.balance > HIGH_MINOR) {
    await redeem(sim, h, random.bigint(1n, h.balance / 2n));
  }
}

/** At the end: `h` uploads, gives every copy up (one at a time, largest first) and uploads again. */
async function redeemAll(sim: DotmSim, h: Holder): Promise<void> {
  await sim.sync(h, false);
  let since = 0;
  for (;;) {
    const status = await h.el.se.call('status', {});
    const largest = status.blocks.reduce((m, b) => (b.remaining > m ? b.remaining : m), 0n);
    if (largest === 0n) break;
    if (!(await redeem(sim, h, largest))) {
      await sim.sync(h, false);
      if (!(await redeem(sim, h, largest))) {
        // An attacker whose copy's log the node took instead of its own cannot clear its log.
        if (h.attacker) break;
        sim.world.violated('progress', `wallet ${h.index} cannot give up its copies at the end`);
      }
    }
    if (++since === END_REDEMPTIONS_PER_SYNC) {
      await sim.sync(h, false);
      since = 0;
    }
  }
  await sim.sync(h, false);
}

/** The DOT-M simulation. */
export const dotmSim: SimPlugin = {
  scheme: 'dotm',
  async run(world: SimWorld) {
    const { params, random, clock, recorder } = world;
    const node = await world.openNode(dotmNodePart);
    const holders = await population(world, node, SIM_MEASUREMENT, MINTED_MINOR);
    const sim = openDotmSim(world, node, holders);
    let lastPayment = 0n;
    registerInvariants(sim, () => lastPayment);
    const attackers = holders.filter((h) => h.attacker);
    for (const h of holders) await issue(sim, h, random.bigint(ISSUE_MIN, ISSUE_MAX), 1 + random.below(ISSUE_BLOCKS_MAX));

    let paymentsMade = 0;
    let steps = 0;
    while (paymentsMade < params.payments) {
      if (++steps > STEPS_PER_PAYMENT_MAX * params.payments) world.violated('progress', `${paymentsMade} of ${params.payments} payments after ${steps} steps: the population is stuck`);
      clock.advance(1 + random.below(10_000));
      const roll = random.below(100);
      const h = random.pick(holders);
      if (random.chance(0.02)) h.online = !h.online;
      if (roll < 50) {
        const payee = payeeFor(world, holders, h);
        if (payee !== null && h.balance > 0n) {
          const v = random.bigint(1n, smaller(h.balance, PAYMENT_MAX));
          const alter = h.attacker && random.chance(0.1);
          const end = await exchange(sim, h, h.el, payee, v, { alter });
          if (alter && end?.offered === true) recorder.attack('alter', h.wallet, 0n).outcome = 'refused-offline';
          if (end?.offered === true) paymentsMade++;
          if (end?.received === true) lastPayment = v;
          // A payee refused a copy whose path a revoked user signed: the payer takes its value online.
          if (end?.refusedBy === 'CERT_REVOKED' && h.online && !h.attacker) await redeem(sim, h, h.balance);
        }
      } else if (roll < 65) {
        if (h.online) await sim.sync(h, random.chance(params.faults));
      } else if (roll < 80) {
        if (h.online && !h.revoked) await keepBalance(sim, h);
      } else if (roll < 88) {
        if (attackers.length > 0) paymentsMade += await attack(sim, random.pick(attackers));
      } else if (roll < 95) {
        const x = sim.extras.find((e) => e.left > 0);
        const payee = x === undefined ? null : payeeFor(world, holders, x.holder);
        if (x !== undefined && random.chance(0.2)) {
          // The copy goes online: its log and the wallet's carry different events under the same numbers.
          recorder.count('extras.uploads');
          await sim.sync(x.holder, false, x.el);
        } else if (x !== undefined && payee !== null) {
          x.left--;
          const balance = (await x.el.se.call('status', {})).balance;
          if (balance > 0n) {
            const v = random.bigint(1n, smaller(balance, PAYMENT_MAX));
            const end = await exchange(sim, x.holder, x.el, payee, v, { attack: x.attack });
            if (end !== null) recordAttackPayment(sim, x.attack, v, end);
            if (end?.offered === true) paymentsMade++;
          }
        }
      }
      if (random.chance(params.faults / 50)) {
        recorder.count('faults.node-restart');
        await node.restart();
      }
      await world.step();
    }

    // The end: every holder goes online, uploads and gives everything up, twice (the second round
    // meets the revocation lists and the findings the first caused); every double spend must be
    // accounted for.
    for (let round = 0; round < 2; round++) {
      for (const h of holders) {
        h.online = true;
        await redeemAll(sim, h);
      }
    }
    await sim.pollFindings();
    await world.step(true);
    doubleSpendsDetected(sim);
  },
};
