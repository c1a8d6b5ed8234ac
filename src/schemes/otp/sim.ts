/**
 * OTP in `tally sim`: a population of account holders, each with the OTP trusted app (the paper's
 * player, §2.7) on an in-process secure element, withdrawing coins the bank signs blindly, paying
 * each other offline by the paper's Figure 4 exchange (sim-exchange.ts) over an in-memory network
 * that drops, duplicates and delays messages, syncing (the in-flight report, exchange keys, the
 * bank's time) and depositing online (sim-bank.ts). Secure elements crash at commit points, exchanges
 * are cut at every stage, the node restarts. Attackers clone and roll back their TA and spend the
 * same coins twice, replay and alter messages, and forge coins with their device key extracted
 * (sim-attacks.ts). After each step the invariants of sim-invariants.ts hold: the audit balances and
 * float:otp equals the coins still out; what the TAs hold equals float:otp until an attack copies a
 * TA, and never exceeds the attacks' bounds; nothing is credited twice; no forgery is taken; a
 * finding names an attacker. At the end every holder deposits every coin, the in-flight lists are
 * settled by the bank after the deposit window, and every double spend met at deposit was attributed.
 */
import { fromBase64url, fromHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor } from '../../core/cbor.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import type { SimPlugin, SimWorld } from '../../sim/sim/plugin.ts';
import { classPool } from './sim-classes.ts';
import { claimsUntil, paramsCodec, OTP_SCHEME } from './messages.ts';
import { otpNodePartWith } from './node.ts';
import { attack } from './sim-attacks.ts';
import { deposit, sync, withdraw } from './sim-bank.ts';
import { allParties, partyOf, status, type Holder, type OtpSim, type Party } from './sim-context.ts';
import { exchange } from './sim-exchange.ts';
import { conservation, duplicating, pollFindings } from './sim-invariants.ts';
import { otpTrustedApp } from './trusted-app.ts';

/** The TA build the simulated OEM attests and the node allows. */
const SIM_MEASUREMENT = sha256(utf8('tally otp trusted app, sim build'));
/** What each holder's account is minted at the start, minor units. */
const MINTED_MINOR = 200_000n;
/** A withdrawal: between these, minor units. */
const WITHDRAWAL_MIN = 500n;
const WITHDRAWAL_MAX = 3_000n;
/** The largest amount a payee asks, minor units. */
const PAYMENT_MAX = 500n;
/** Steps a run may take per payment before it is stuck (a liveness check). */
const STEPS_PER_PAYMENT_MAX = 60;
/** Deposits at the end per TA, at most (each moves up to a message's worth of coins). */
const END_DEPOSITS_MAX = 64;

async function setup(world: SimWorld): Promise<OtpSim> {
  const { params, clock } = world;
  // The node's class keys come from a pool shared by the runs of a process (2048-bit RSA keys take seconds to make).
  const node = await world.openNode(otpNodePartWith({ classKey: classPool() }));
  const oem = await node.enrolOem(OTP_SCHEME, SIM_MEASUREMENT);
  const paramsAnswer = await node.request('operator', 'GET', '/v1/otp/params');
  const bankParams = paramsCodec.decode(decodeCbor(fromBase64url((paramsAnswer.body as { params: string }).params)), 'params');
  const root = encodeCertificate(node.certificates.root);
  const intermediary = encodeCertificate(node.certificates.intermediary);
  const issuerNode = encodeCertificate(node.certificates.issuerNode);
  const attackersWanted = Math.round(params.devices * params.attackers);
  const holders: Holder[] = [];
  for (let index = 0; index < params.devices; index++) {
    const user = await node.registerUser();
    const el = await world.element(otpTrustedApp);
    const init = await el.se.call('init', { root, owner: fromHex(user.keyId) });
    const { keyId: device } = await node.registerDevice(user.signer, oem, { scheme: OTP_SCHEME, publicKey: init.publicKey, proof: init.proof, model: 'Sim SE', measurement: SIM_MEASUREMENT });
    await el.se.call('certInit', { intermediary, issuerNode, now: clock.now() });
    await el.se.call('setParams', { params: bankParams });
    await node.mint(user.account, MINTED_MINOR);
    holders.push({ index, user: user.signer, account: user.account, device, el, attacker: index < attackersWanted, online: true, revoked: false, past: null });
  }
  const own = new Map<Holder, Party>(holders.map((h) => [h, { holder: h, el: h.el, attack: null, partner: null }]));
  return {
    world,
    node,
    net: world.network<Uint8Array>(),
    holders,
    own,
    extras: [],
    bankParams,
    received: new Set(),
    spentAttacks: new Set(),
    captured: { boxes: [], acks: [], deposits: [] },
    duplicatingAttacks: 0,
    paymentsMade: 0,
    lastPayment: 0n,
    lost: 0n,
    findingsSeen: 0,
    actions: 0,
  };
}

/** The next payment of a party: to the partner it owes ACKs to (its boxes go again), or to someone else. */
async function pay(sim: OtpSim, p: Party): Promise<void> {
  const { random } = sim.world;
  const s = await status(p.el);
  if (s.balance === 0n) return;
  const others = sim.holders.filter((h) => h !== p.holder).map((h) => partyOf(sim, h));
  const to = s.inFlight.count > 0 && p.partner !== null && p.partner.attack === null && random.chance(0.5) ? p.partner : random.pick(others);
  const max = s.balance < PAYMENT_MAX ? s.balance : PAYMENT_MAX;
  await exchange(sim, p, to, random.bigint(1n, max));
}

/** The end: every TA syncs and deposits every coin; after the deposit window the bank settles what is still in flight. */
async function end(sim: OtpSim): Promise<void> {
  const { world } = sim;
  const live = () => allParties(sim).filter((p) => !p.holder.revoked);
  for (const p of live()) {
    for (let k = 0; k < END_DEPOSITS_MAX && (await deposit(sim, p)); k++);
    await sync(sim, p, false);
  }
  // Past every class's claim window, a coin still in flight that nobody deposited goes back to the
  // holder whose report carries it furthest.
  const until = Math.max(...sim.bankParams.body.classes.map((c) => claimsUntil(c)));
  world.clock.advance(Math.max(0, until - world.clock.now()) + 1);
  for (const p of live()) await sync(sim, p, false);
  await pollFindings(sim);
  for (const h of sim.holders) {
    if (h.attacker) continue;
    const s = await status(h.el);
    if (s.balance !== 0n || s.deposit !== undefined) world.violated('settlement', `honest device ${h.device} ends holding ${s.balance}${s.deposit === undefined ? '' : ' and a deposit unreceipted'}`);
    if (s.inFlight.count === 0) continue;
    // Past the window every coin in flight reported is settled (refunded, taken on, or lost to a
    // twin). One left was not in the report (more than one report holds), or the bank could not
    // settle it (claims parting at a tag two devices signed). Without a copied TA there is no such coin.
    if (sim.duplicatingAttacks === 0) world.violated('settlement', `honest device ${h.device} ends with ${s.inFlight.count} coin(s) in flight the bank did not settle, and no TA was copied`);
    world.recorder.count('lost.left-in-flight', s.inFlight.count);
    sim.lost += s.inFlight.amount;
    world.recorder.loss(sim.lost);
  }
  await world.step(true);
  for (const a of world.recorder.attacks) {
    if (!duplicating(a) || a.outcome !== 'pending') continue;
    // No second copy reached a deposit: the twin is kept by a revoked device, was refused offline by
    // a TA already holding the serial, or was refunded from flight (its cost is in the loss above).
    a.outcome = 'harmless';
  }
}

/** The OTP simulation. */
export const otpSim: SimPlugin = {
  scheme: 'otp',
  async run(world: SimWorld) {
    const { params, random, clock, recorder } = world;
    const sim = await setup(world);
    const attackersWanted = sim.holders.filter((h) => h.attacker).length;
    conservation(sim);
    for (const h of sim.holders) await sync(sim, partyOf(sim, h));
    let steps = 0;
    while (sim.paymentsMade < params.payments) {
      if (++steps > STEPS_PER_PAYMENT_MAX * params.payments) world.violated('progress', `${sim.paymentsMade} of ${params.payments} payments after ${steps} steps: the population is stuck`);
      clock.advance(1 + random.below(10_000));
      const asked = sim.actions;
      const roll = random.below(100);
      const h = random.pick(sim.holders);
      if (random.chance(0.02)) h.online = !h.online;
      const online = h.online && !h.revoked;
      if (roll < 55) await pay(sim, partyOf(sim, h));
      else if (roll < 70) {
        if (online) await sync(sim, partyOf(sim, h));
      } else if (roll < 85) {
        if (online) {
          const s = await status(h.el);
          if (s.balance < WITHDRAWAL_MIN && s.deposit === undefined) await withdraw(sim, h, random.bigint(WITHDRAWAL_MIN, WITHDRAWAL_MAX));
          else if (s.balance > 3n * WITHDRAWAL_MAX || s.deposit !== undefined) await deposit(sim, partyOf(sim, h));
        }
      } else if (roll < 92) {
        if (attackersWanted > 0) await attack(sim, sim.holders[random.below(attackersWanted)] as Holder);
      } else {
        const x = sim.extras.find((e) => e.left > 0);
        if (x !== undefined) {
          x.left--;
          await pay(sim, x.party);
        }
      }
      if (random.chance(params.faults / 50)) {
        recorder.count('faults.node-restart');
        await sim.node.restart();
        sim.actions++;
      }
      if (sim.actions !== asked) await world.step();
    }
    await end(sim);
  },
};
