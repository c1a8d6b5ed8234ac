/**
 * The attacks of OTP's simulation, as the paper's threat model gives them (OTP §3: a payer who
 * breaks or copies its own TEE, an adversary on the channel, forged coins) and the common ones:
 * - clone: the TA's storage and counter copied (a second device with the same keys and coins)
 *   paying the same coins to other holders; nothing offline can tell them, and the copies meet at
 *   deposit, where the escrow tags name the device (§3.4);
 * - rollback: an old sealed state put back alone under the device's counter, which the host must
 *   refuse; then the whole old device (state and counter) paying again, a clone of the past;
 * - replay: a box a TA took sent to it (or another) again, an ACK the payer already used sent again,
 *   and a deposit the node credited sent again under a new idempotency key: all refused, nothing
 *   credited twice;
 * - alter: the payer's wallet app changes one byte of a box on its way: the payee's TA refuses it;
 * - forge: with the device key extracted, a coin the attacker made itself (the bank's blind RSA
 *   signature it cannot make) paid to an honest payee and deposited, and an in-flight report of it:
 *   the payee's TA refuses the coin, the bank refuses the deposit and refunds nothing;
 * - relay: between two honest holders paying each other, the first box also handed to another TA
 *   (the relayer's own or a third one): sealed to the payee's exchange key, it is refused.
 */
import { toBase64url } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import type { SimAttack } from '../../sim/sim/plugin.ts';
import { SERIAL_BYTES, type Coin } from './coin.ts';
import { appendTag } from './escrow.ts';
import { exchangeKeyId } from './exchange-key.ts';
import { IN_FLIGHT_TAG, inFlightBodyCodec, NONCE_BYTES, signed } from './messages.ts';
import { exchange, type BoxRelay } from './sim-exchange.ts';
import { digestOf, mustRefuse, partyOf, status, type Element, type Holder, type OtpSim, type Party } from './sim-context.ts';
import { holding } from './sim-invariants.ts';
import { sealCoin } from './transfer.ts';
import { TA_KEY_LABEL } from './trusted-app.ts';

/** How many payments a clone or a rolled-back TA attempts. */
const ATTACK_PAYMENTS_MAX = 3;
/** The largest amount an attacker's wallet app pays while it alters a box (and a relayed payment), minor units. */
const ALTER_AMOUNT_MAX = 500n;

/** An extra device of `h` (a clone, a rolled-back copy) making payments for `attack`. */
async function extra(sim: OtpSim, h: Holder, el: Element, kind: 'clone' | 'rollback'): Promise<void> {
  const bound = await holding(sim, { holder: h, el, attack: null, partner: null });
  const attack = sim.world.recorder.attack(kind, h.device, bound);
  sim.duplicatingAttacks++;
  sim.world.recorder.count(`attacks.${kind}`);
  sim.extras.push({ party: { holder: h, el, attack, partner: null }, left: 1 + sim.world.random.below(ATTACK_PAYMENTS_MAX) });
}

async function rollback(sim: OtpSim, h: Holder): Promise<void> {
  const { world } = sim;
  if (h.past === null) {
    h.past = { storage: h.el.snapshot(), whole: await h.el.clone() };
    return;
  }
  const { storage, whole } = h.past;
  h.past = null;
  // The old sealed state alone, under the device's counter: the host must refuse it.
  const current = h.el.snapshot();
  const before = (await status(h.el)).balance;
  const refused = await h.el.restore(storage);
  world.recorder.count('attacks.rollback-storage');
  const storageAttack = world.recorder.attack('rollback-storage', h.device, 0n);
  if (refused === 'ROLLBACK_DETECTED') storageAttack.outcome = 'refused-offline';
  else if (refused === null) storageAttack.outcome = 'harmless';
  else world.violated('rollback-refused', `an old state put back on device ${h.device} was met with ${refused}, not ROLLBACK_DETECTED`);
  const back = await h.el.restore(current);
  if (back !== null) world.violated('rollback-refused', `putting back device ${h.device}'s own current state failed: ${back}`);
  if (refused === null && (await status(h.el)).balance !== before) world.violated('rollback-refused', `device ${h.device} changed across a rollback`);
  // The whole old device (state and counter) pays again while the current one goes on.
  await extra(sim, h, whole, 'rollback');
}

async function replay(sim: OtpSim, h: Holder, victims: Party[]): Promise<void> {
  const { world, node, captured } = sim;
  const { random, recorder } = world;
  recorder.count('attacks.replay');
  // Only boxes some TA took are replayed: a box that never arrived is still its payee's to take.
  const taken = captured.boxes.filter((b) => sim.received.has(digestOf(b)));
  if (taken.length > 0) {
    const victim = random.pick(victims);
    await mustRefuse(sim, victim, () => victim.el.se.call('receive', { sealed: [random.pick(taken)] }), 'a replayed box');
    recorder.attack('replay', h.device, 0n).outcome = 'refused-offline';
  }
  if (captured.acks.length > 0) {
    const victim = random.pick(victims);
    await mustRefuse(sim, victim, () => victim.el.se.call('acknowledge', { acks: [random.pick(captured.acks)] }), 'a replayed ACK');
    recorder.attack('replay', h.device, 0n).outcome = 'refused-offline';
  }
  if (captured.deposits.length > 0 && !h.revoked) {
    // A deposit the node credited, sent again by the attacker under a new idempotency key: credited once.
    const again = random.pick(captured.deposits);
    const online = (await node.audit()).online;
    await node.request(h.user, 'POST', '/v1/otp/deposits', { device: h.device, coins: again.coins });
    if ((await node.audit()).online !== online) world.violated('credited-once', `a deposit replayed by ${h.device} was credited again`);
    recorder.attack('replay', h.device, 0n).outcome = 'refused-offline';
  }
}

async function forge(sim: OtpSim, h: Holder, victims: Party[]): Promise<void> {
  const { world, node, bankParams } = sim;
  const { random, recorder } = world;
  recorder.count('attacks.forge');
  const key = h.el.extractKey(TA_KEY_LABEL);
  const entry = random.pick(bankParams.body.classes);
  // A coin of a real class and program, its bank signature made up: the one thing a device key cannot give.
  const coin: Coin = { serial: random.bytes(SERIAL_BYTES), classId: entry.coinClass.classId, prefix: random.bytes(32), program: entry.program, signature: random.bytes(256) };
  const carriedTo = (payee: Uint8Array) => ({ coin, tags: appendTag({ serial: coin.serial, tags: [], payee: exchangeKeyId(payee), device: key, escrowPublicKey: bankParams.body.escrowKey }) });
  // Offline: paid to an honest payee's exchange key.
  const victim = random.pick(victims);
  const offered = await victim.el.se.call('offerKeys', { count: 1 }).catch(() => null);
  if (offered !== null) {
    const payeeKey = (offered.keys[0] as { body: { publicKey: Uint8Array } }).body.publicKey;
    await mustRefuse(sim, victim, () => victim.el.se.call('receive', { sealed: [sealCoin(carriedTo(payeeKey), payeeKey).sealed] }), 'a forged coin');
  }
  recorder.attack('forge', h.device, 0n).outcome = 'refused-offline';
  if (h.revoked) return;
  // At the bank: deposited, and reported in flight for a refund.
  const online = (await node.audit()).online;
  const depositKey = bankParams.body.depositKey;
  const box = sealCoin(carriedTo(depositKey), depositKey).sealed;
  const answer = await node.request(h.user, 'POST', '/v1/otp/deposits', { device: h.device, coins: [toBase64url(encodeCbor(box))] });
  if (answer.status === 200 && (answer.body as { credited: string }).credited !== node.amount(0n)) world.violated('no-forgery', `the node credited a forged coin deposited by ${h.device}`);
  const report = signed(inFlightBodyCodec, key, IN_FLIGHT_TAG, { coins: [{ serial: coin.serial, classId: coin.classId, prefix: coin.prefix, signature: coin.signature, tags: carriedTo(random.bytes(32)).tags }], nonce: random.bytes(NONCE_BYTES) });
  const refund = await node.request(h.user, 'POST', '/v1/otp/in-flight', { device: h.device, report: toBase64url(encodeCbor(report)) });
  if (refund.status === 200 && (refund.body as { refunded: string }).refunded !== node.amount(0n)) world.violated('no-forgery', `the node refunded a forged coin reported by ${h.device}`);
  if ((await node.audit()).online !== online) world.violated('no-forgery', `a forged coin of ${h.device} moved money online`);
}

/**
 * A relayer between two honest holders: the payer pays the payee it chose, and the relayer hands the
 * payment's first box to another TA as well (sealed to the payee's exchange key: refused). Nothing
 * is recorded when the exchange ends before its first box.
 */
async function relay(sim: OtpSim, h: Holder, victims: Party[]): Promise<void> {
  const { random } = sim.world;
  const payers = [];
  for (const v of victims) if ((await status(v.el)).balance > 0n) payers.push(v);
  if (payers.length === 0) return;
  const payer = random.pick(payers);
  const payees = sim.holders.filter((x) => x !== h && x !== payer.holder).map((x) => partyOf(sim, x));
  if (payees.length === 0) return;
  const payee = random.pick(payees);
  const others = victims.filter((v) => v !== payer && v !== payee);
  const to = others.length === 0 || random.chance(0.5) ? partyOf(sim, h) : random.pick(others);
  const balance = (await status(payer.el)).balance;
  const relayed: BoxRelay = { relayer: h, to, done: false };
  await exchange(sim, payer, payee, random.bigint(1n, balance < ALTER_AMOUNT_MAX ? balance : ALTER_AMOUNT_MAX), null, relayed);
}

/** One attack by `h` (an attacker), of a kind drawn from the run's random source. */
export async function attack(sim: OtpSim, h: Holder): Promise<void> {
  const { random, recorder } = sim.world;
  if (h.revoked) return;
  sim.actions++;
  const victims = sim.holders.filter((x) => x !== h && !x.attacker).map((x) => partyOf(sim, x));
  if (victims.length === 0) return;
  const kind = random.pick(['clone', 'rollback', 'replay', 'alter', 'forge', 'relay'] as const);
  if (kind === 'clone') await extra(sim, h, await h.el.clone(), 'clone');
  else if (kind === 'rollback') await rollback(sim, h);
  else if (kind === 'replay') await replay(sim, h, victims);
  else if (kind === 'forge') await forge(sim, h, victims);
  else if (kind === 'relay') await relay(sim, h, victims);
  else {
    const s = await status(h.el);
    if (s.balance === 0n) return;
    recorder.count('attacks.alter');
    const a: SimAttack = recorder.attack('alter', h.device, 0n);
    const max = s.balance < ALTER_AMOUNT_MAX ? s.balance : ALTER_AMOUNT_MAX;
    await exchange(sim, partyOf(sim, h), random.pick(victims), random.bigint(1n, max), a);
    // Cut before the first box went out: nothing was altered.
    if (a.outcome === 'pending') a.outcome = 'harmless';
  }
}
