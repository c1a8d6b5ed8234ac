/**
 * The attacks of chain-tee's simulation, from the paper's threat model (§III: a payer who breaks or
 * copies its own TEE, an adversary on the channel) and the common ones:
 * - clone: the TEE's storage and counter copied, a second device holding the same account paying
 *   other holders; nothing offline can tell them apart, and the chain proves the fork when two
 *   payments with one (payer, counter) are uploaded: it freezes the account and names it
 *   (`ForkProved`), honouring the second payee up to what the account holds on chain;
 * - rollback: an old sealed state put back alone under the device's counter, which the host must
 *   refuse; then the whole old device (state and counter) paying again: a clone of the past;
 * - replay: a tx_off a payee's TEE took sent to it again and to another holder, an ack its payer
 *   used sent again, an upload sent to the chain twice: never credited or applied twice;
 * - forge: a tx_off whose σ_att and σ_1 the attacker made up with keys of its own: the payee's TEE
 *   answers ack_fail and credits nothing;
 * - extracted-key: with the enclave key extracted from its device, the attacker attests a fresh
 *   account of its own with a balance it never deposited and pays an honest payee: the payee's TEE
 *   cannot tell (the attestation is genuine) and credits it; on chain the payment waits owed
 *   forever, and the payee's upload binds the fresh account to the attacker's enclave, which the
 *   judge reads as the proof (an enclave with two open accounts) and attributes;
 * - relay: between two honest holders, the payer's tx_off also handed to another TEE (the
 *   relayer's own or a third one): it names the payee's account, and is refused.
 */
import { toHex } from '../../core/bytes.ts';
import { signerFromSecret } from '../../core/crypto/suite.ts';
import { buildTxOff } from './tx-off.ts';
import { committed, hashOf, mustNotCredit, partyOf, roomy, status, type ChainSim, type Element, type Holder, type Party } from './sim-context.ts';
import { holding } from './sim-invariants.ts';
import { payOffline } from './sim-offline.ts';
import { sync } from './sim-online.ts';
import { ENCLAVE_KEY_LABEL } from './trusted-app.ts';
import { PAYMENT_KIND } from './typed-data.ts';
import { uploadItem } from './upload.ts';
import { reconcileOnChain } from './wallet-chain.ts';

/** How many payments a clone or a rolled-back TEE attempts. */
const ATTACK_PAYMENTS_MAX = 3;
/** The largest payment a forged or extracted-key payer makes (and a relayed one), minor units. */
const FORGED_AMOUNT_MAX = 500n;

const hex = (bytes: Uint8Array): `0x${string}` => `0x${toHex(bytes)}`;

/** An extra device of `h` (a clone, a rolled-back copy) making payments for an attack of `kind`. */
async function extra(sim: ChainSim, h: Holder, el: Element, kind: 'clone' | 'rollback', payments?: number): Promise<void> {
  const { world } = sim;
  const attack = world.recorder.attack(kind, h.device, 0n);
  const party: Party = { holder: h, el, attack };
  // What the copy can spend (its balance, and what it held for acks, which it may void and spend again): the most it can cost.
  (attack as { bound: bigint }).bound = await holding(sim, party);
  sim.duplicatingAttacks++;
  world.recorder.count(`attacks.${kind}`);
  sim.extras.push({ party, left: payments ?? 1 + world.random.below(ATTACK_PAYMENTS_MAX) });
}

async function rollback(sim: ChainSim, h: Holder): Promise<void> {
  const { world } = sim;
  if (h.past === null) {
    h.past = { storage: h.el.snapshot(), whole: await h.el.clone() };
    return;
  }
  const { storage, whole } = h.past;
  h.past = null;
  // The old sealed state alone, under the device's counter: the host must refuse it.
  const current = h.el.snapshot();
  const before = await status(h.el);
  const refused = await h.el.restore(storage);
  world.recorder.count('attacks.rollback-storage');
  const storageAttack = world.recorder.attack('rollback-storage', h.device, 0n);
  if (refused === 'ROLLBACK_DETECTED') storageAttack.outcome = 'refused-offline';
  else if (refused === null) storageAttack.outcome = 'harmless';
  else world.violated('rollback-refused', `an old state put back on device ${h.device} was met with ${refused}, not ROLLBACK_DETECTED`);
  const back = await h.el.restore(current);
  if (back !== null) world.violated('rollback-refused', `putting back device ${h.device}'s own current state failed: ${back}`);
  if (refused === null && (await status(h.el)).counter !== before.counter) world.violated('rollback-refused', `device ${h.device} changed across a rollback`);
  // The whole old device (state and counter) pays again while the current one goes on.
  await extra(sim, h, whole, 'rollback');
}

async function replay(sim: ChainSim, h: Holder): Promise<void> {
  const { world, captured, credited } = sim;
  const { random, recorder } = world;
  recorder.count('attacks.replay');
  // A tx_off some TEE credited, to that TEE again (answered with the same ack, or refused) and to another holder (not its payee).
  const taken = captured.txOffs.filter((t) => credited.has(hashOf(t)));
  if (taken.length > 0) {
    const txOff = random.pick(taken);
    const payee = credited.get(hashOf(txOff)) as Party;
    if (!payee.holder.closed) {
      await mustNotCredit(sim, payee, () => payee.el.se.call('receive', { txOff, now: world.clock.now() }), 'a replayed tx_off');
      recorder.attack('replay', h.device, 0n).outcome = 'refused-offline';
    }
    const other = random.pick(sim.holders.filter((x) => x !== payee.holder && !x.closed));
    await mustNotCredit(sim, partyOf(sim, other), () => other.el.se.call('receive', { txOff, now: world.clock.now() }), "a tx_off for another account");
    recorder.attack('replay', h.device, 0n).outcome = 'refused-offline';
  }
  // An ack its payer used, to that payer again: no payment of it waits for it any more.
  const used = captured.acks.filter((a) => sim.holders.some((x) => !x.closed && toHex(x.account) !== toHex(a.payee)));
  if (used.length > 0) {
    const ack = random.pick(used);
    const payer = random.pick(sim.holders.filter((x) => !x.closed));
    await mustNotCredit(sim, partyOf(sim, payer), () => payer.el.se.call(ack.ok ? 'pay' : 'abort', { ack }), 'a replayed ack');
    recorder.attack('replay', h.device, 0n).outcome = 'refused-offline';
  }
  // Its own upload sent to the chain twice: the second is a Duplicate of each item (readChain checks nothing is applied twice).
  if (h.online && !h.frozen && !h.closed) {
    const upload = await h.el.se.call('onchainUpdate', {}).catch(() => null);
    if (upload !== null && upload.items.length > 0) {
      await sim.chain.follow();
      const sent = { account: hex(upload.account), items: upload.items.map((i) => uploadItem(i.txOff, i.ack)), signature: hex(upload.signature) };
      for (let k = 0; k < 2; k++) await reconcileOnChain(h.clients, sim.contracts, sent).catch(() => null);
      await sync(sim, partyOf(sim, h), false);
      recorder.attack('replay', h.device, 0n).outcome = 'harmless';
    }
  }
}

/** A payee for an attacker's made-up payment: an honest holder that can take one. */
async function victimFor(sim: ChainSim, h: Holder): Promise<Party | null> {
  const victims = sim.holders.filter((x) => x !== h && !x.attacker && !x.closed && !x.frozen);
  if (victims.length === 0) return null;
  const v = sim.world.random.pick(victims);
  const s = await status(v.el);
  return roomy(s) ? partyOf(sim, v) : null;
}

async function forge(sim: ChainSim, h: Holder): Promise<void> {
  const { world } = sim;
  const { random, recorder } = world;
  const victim = await victimFor(sim, h);
  if (victim === null) return;
  recorder.count('attacks.forge');
  // Keys of the attacker's own, the device's certificate: σ_att is not the enclave's.
  const made = () => signerFromSecret(world.provider.suites.secp256k1, random.bytes(32));
  const txOff = buildTxOff(sim.domain, { enclave: made(), account: made(), certificate: h.certificate }, forgedFields(sim, victim, random.bigint(1n, FORGED_AMOUNT_MAX)));
  await mustNotCredit(sim, victim, () => victim.el.se.call('receive', { txOff, now: world.clock.now() }), 'a forged tx_off');
  recorder.attack('forge', h.device, 0n).outcome = 'refused-offline';
}

function forgedFields(sim: ChainSim, victim: Party, amount: bigint) {
  return { payee: victim.holder.account, amount, counter: 0n, tGen: BigInt(Math.floor(sim.world.clock.now() / 1000)), kind: PAYMENT_KIND.payment, balance: amount };
}

async function extractedKey(sim: ChainSim, h: Holder): Promise<void> {
  const { world } = sim;
  const { random, recorder } = world;
  const victim = await victimFor(sim, h);
  if (victim === null || h.frozen) return;
  recorder.count('attacks.extracted-key');
  const amount = random.bigint(1n, FORGED_AMOUNT_MAX);
  const enclave = h.el.extractKey(ENCLAVE_KEY_LABEL, 'secp256k1');
  const account = signerFromSecret(world.provider.suites.secp256k1, random.bytes(32));
  const txOff = buildTxOff(sim.domain, { enclave, account, certificate: h.certificate }, forgedFields(sim, victim, amount));
  // Its bound: what it pays, which no deposit backs (chain-tee puts no limit on a TEE's balance).
  const attack = recorder.attack('extracted-key', h.device, amount);
  const answer = await committed(sim, victim.el, (requestId) => victim.el.se.call('receive', { txOff, now: world.clock.now() }, { requestId }));
  if (!answer.credited) {
    recorder.count('refused.offline.extracted-key');
    attack.outcome = 'refused-offline';
    return;
  }
  sim.credited.set(hashOf(txOff), victim);
  sim.forged.set(toHex(txOff.payment.payer), { attack, amount });
  // The payee holds what no deposit will ever pay: the honest holder's loss.
  sim.lost += amount;
  recorder.loss(sim.lost);
}

/**
 * A test-only broken step: an honest holder's TEE copied (as if the sim had picked the wrong
 * holder), whose copy then pays. The chain proves the fork against an honest account, which the
 * attribution invariant must refuse.
 */
export async function sabotageHonestClone(sim: ChainSim): Promise<void> {
  const h = sim.holders.find((x) => !x.attacker) as Holder;
  await extra(sim, h, await h.el.clone(), 'clone', ATTACK_PAYMENTS_MAX);
}

/** One attack by `h` (an attacker), of a kind drawn from the run's random source. */
/** A relayer between two honest holders: the payer pays the payee it chose, and its tx_off is handed to another TEE too. */
async function relay(sim: ChainSim, h: Holder): Promise<void> {
  const { random } = sim.world;
  const usable = sim.holders.filter((x) => x !== h && !x.closed && !x.frozen);
  const payers = [];
  for (const x of usable) {
    const s = await status(x.el);
    if (!x.attacker && s.status === 'open' && s.balance > 0n && roomy(s)) payers.push(x);
  }
  if (payers.length === 0) return;
  const payer = random.pick(payers);
  const payees = [];
  for (const x of usable) if (x !== payer && roomy(await status(x.el))) payees.push(x);
  if (payees.length === 0) return;
  const payee = random.pick(payees);
  const others = usable.filter((x) => x !== payer && x !== payee);
  const to = others.length === 0 || random.chance(0.5) ? h : random.pick(others);
  const balance = (await status(payer.el)).balance;
  await payOffline(sim, partyOf(sim, payer), partyOf(sim, payee), random.bigint(1n, balance < FORGED_AMOUNT_MAX ? balance : FORGED_AMOUNT_MAX), { relayer: h, to: partyOf(sim, to) });
}

export async function attack(sim: ChainSim, h: Holder): Promise<void> {
  const { random } = sim.world;
  if (h.frozen || h.closed) return;
  sim.actions++;
  const kind = random.pick(['clone', 'rollback', 'replay', 'forge', 'extracted-key', 'relay'] as const);
  if (kind === 'relay') await relay(sim, h);
  else if (kind === 'clone') await extra(sim, h, await h.el.clone(), 'clone');
  else if (kind === 'rollback') await rollback(sim, h);
  else if (kind === 'replay') await replay(sim, h);
  else if (kind === 'forge') await forge(sim, h);
  else await extractedKey(sim, h);
}
