/**
 * The offline payment of OTP's simulation (paper Figure 4, in session.ts's order), each message over
 * the simulation's network: the payer's hello with the boxes still waiting for an ACK, the payee's
 * terms, the payer's offer (coins and change, with its exchange keys for the change), the payee's
 * exchange keys, then the coins a round at a time, each round answered with ACKs, then the change
 * the same way. Every box is the TA's own `pay` (the coin's program run against the payee's key,
 * a new escrow tag, sealed to the key) and every `receive` and `acknowledge` is the TA's. A dropped
 * or late message cuts the exchange where it is: a coin sent stays in the payer's in-flight list
 * until its ACK comes back in a later session or the bank settles it. A duplicate is delivered
 * again and must be refused by the TA with its state unchanged. A relayer may hand the first box to
 * another TA as well, which must refuse it. The Noise link is not modelled.
 */
import { toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { planPayment } from './denominations.ts';
import type { ExchangeKey } from './exchange-key.ts';
import { COINS_PER_MESSAGE_MAX, KEYS_PER_MESSAGE_MAX } from './messages.ts';
import { COINS_PER_ROUND } from './session.ts';
import { carry, classValue, committed, Cut, digestOf, mustRefuse, refusal, stateOf, status, type Holder, type OtpSim, type Party, type Status } from './sim-context.ts';
import type { Ack, SealedCoin } from './transfer.ts';
import { simRelayed, type SimAttack } from '../../sim/sim/plugin.ts';

/** Coins by denomination, as the TA's status shows them. */
export function holdingsOf(s: Status): Map<bigint, number> {
  const out = new Map<bigint, number>();
  for (const c of s.classes) out.set(c.denomination, (out.get(c.denomination) ?? 0) + c.count);
  return out;
}

function spread(coins: ReadonlyMap<bigint, number>): bigint[] {
  return [...coins].flatMap(([d, n]) => Array.from({ length: n }, () => d));
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * A box taken by a TA. Taken a second time, by another TA, it was opened by two copies of one TA
 * (a clone shares its exchange keys): the coin is then held twice, which the attacks' bounds count.
 */
function takenBy(sim: OtpSim, party: Party, box: SealedCoin): void {
  const digest = digestOf(box);
  if (sim.received.has(digest)) {
    sim.world.recorder.count('boxes.taken-twice');
    // The copying attack of this device (the latest) bounds this coin too.
    const attack = party.attack ?? [...sim.world.recorder.attacks].reverse().find((a) => a.device === party.holder.device && (a.kind === 'clone' || a.kind === 'rollback'));
    if (attack === undefined) sim.world.violated('no-forgery', `device ${party.holder.device} took a box another TA took, and no TA of it was copied`);
    (attack as { bound: bigint }).bound += classValue(sim, box.classId);
  }
  sim.received.add(digest);
}

/**
 * A TA takes boxes (`receive`). When the wallet gives up after a crash, the boxes the TA committed
 * before it died are still taken: they are asked back with `ackAgain` (read-only), so the books know
 * which coins moved.
 */
export async function receiveBoxes(sim: OtpSim, sender: Party, party: Party, sealed: SealedCoin[], stage: string): Promise<Ack[]> {
  const took = () => {
    // An attack's coin a payee took is a copy: the attack must be found at deposit.
    if (sender.attack !== null) sim.spentAttacks.add(sender.attack);
  };
  try {
    const { acks } = await committed(sim, party.el, (requestId) => party.el.se.call('receive', { sealed }, { requestId }), stage);
    for (const box of sealed) takenBy(sim, party, box);
    took();
    return acks;
  } catch (e) {
    if (e instanceof Cut) {
      const { acks } = await party.el.se.call('ackAgain', { sealed });
      if (acks.length > 0) took();
      for (const a of acks) for (const box of sealed) if (digestOf(box) === toHex(a.digest)) takenBy(sim, party, box);
    }
    throw e;
  }
}

/** The TA's pay for coins named by denomination (each becomes a class it holds coins of): the boxes, each booked at its value. */
async function payCoins(sim: OtpSim, party: Party, items: ReadonlyArray<{ denomination: bigint; key: ExchangeKey }>, stage: string): Promise<SealedCoin[]> {
  const { classes } = await status(party.el);
  const left = new Map(classes.map((c) => [c, c.count]));
  const named = items.map((item) => {
    const cls = classes.find((c) => c.denomination === item.denomination && (left.get(c) ?? 0) > 0);
    if (cls === undefined) throw new Error(`the plan names a coin of ${item.denomination} the TA does not hold`);
    left.set(cls, (left.get(cls) ?? 0) - 1);
    return { classId: cls.classId, key: item.key };
  });
  const { sealed } = await committed(sim, party.el, (requestId) => party.el.se.call('pay', { items: named }, { requestId }), stage);
  if (sim.world.random.chance(0.2)) sim.captured.boxes.push(...sealed.slice(0, 1));
  return sealed;
}

/** A relayer between payer and payee: the first box of the payment also handed to TA `to`. */
export interface BoxRelay {
  readonly relayer: Holder;
  readonly to: Party;
  /** Set once the box was handed on. */
  done: boolean;
}

/**
 * The relayer hands `box`, sealed by the payer's TA to an exchange key of `payee` (OTP §2.7, HPKE),
 * to TA `to` too: `to` holds no private key for it and must refuse it (OTP_EXCHANGE_KEY_UNKNOWN),
 * unchanged; the box still goes on to `payee`.
 */
async function relayBox(sim: OtpSim, relay: BoxRelay, box: SealedCoin, payee: Party): Promise<void> {
  const { to } = relay;
  const before = stateOf(await status(to.el));
  let refused: string | null = null;
  try {
    await to.el.se.call('receive', { sealed: [box] });
  } catch (e) {
    refused = refusal(e);
    if (refused === null) throw e;
  }
  if (refused !== null && stateOf(await status(to.el)) !== before) sim.world.violated('no-forgery', `device ${to.holder.device} changed state on refusing a relayed box`);
  simRelayed(sim.world, { relayer: relay.relayer.device, variant: to.holder === relay.relayer ? 'box-to-relayer' : 'box-to-other', meant: payee.holder.device, refusal: refused, credited: refused === null ? to.holder.device : null });
}

/** One side sends a round of coins, the other takes them and answers ACKs, which the sender checks. */
async function round(sim: OtpSim, from: Party, to: Party, items: ReadonlyArray<{ denomination: bigint; key: ExchangeKey }>, stage: string, tamper: SimAttack | null, relay: BoxRelay | null = null): Promise<void> {
  const { random } = sim.world;
  const sealed = await payCoins(sim, from, items, stage);
  if (relay !== null && !relay.done) {
    relay.done = true;
    await relayBox(sim, relay, sealed[0] as SealedCoin, to);
  }
  if (tamper !== null && tamper.outcome === 'pending') {
    // The payer's wallet app changes one byte of a box on its way: the payee's TA must refuse it, unchanged.
    const box = sealed[0] as SealedCoin;
    const ciphertext = box.ciphertext.slice();
    const at = random.below(ciphertext.length);
    ciphertext[at] = (ciphertext[at] as number) ^ (1 + random.below(255));
    await mustRefuse(sim, to, () => to.el.se.call('receive', { sealed: [{ ...box, ciphertext }] }), 'an altered box');
    tamper.outcome = 'refused-offline';
  }
  const coins = carry(sim, encodeCbor({ kind: 'coins', sealed }), stage);
  const acks = await receiveBoxes(sim, from, to, sealed, stage);
  if (coins.duplicated) await mustRefuse(sim, to, () => to.el.se.call('receive', { sealed }), 'a duplicated box');
  const answer = carry(sim, encodeCbor({ kind: 'acks', acks }), stage);
  await committed(sim, from.el, (requestId) => from.el.se.call('acknowledge', { acks }, { requestId }), stage);
  // ACKs used by their payer, for the replay attack (one still unused would be the payee's true word).
  if (random.chance(0.2)) sim.captured.acks.push(...acks.slice(0, 1));
  if (answer.duplicated) await mustRefuse(sim, from, () => from.el.se.call('acknowledge', { acks }), 'a duplicated ACK');
}

/** How an exchange ended. */
export type ExchangeEnd = 'paid' | 'cut' | 'refused' | 'cannot-pay';

/**
 * The payment of `amount` from `payer` to `payee`. `tamper`: the attack of the payer's wallet app,
 * which alters the first box on its way; `relay`: a relayer handing the first box to another TA too. A payment is made once the payer's TA sealed its first
 * coin (its value has left the payer's coins), however the exchange ends.
 */
export async function exchange(sim: OtpSim, payer: Party, payee: Party, amount: bigint, tamper: SimAttack | null = null, relay: BoxRelay | null = null): Promise<ExchangeEnd> {
  const { recorder } = sim.world;
  const world = sim.world;
  sim.actions++;
  recorder.count('exchanges');
  let began = false;
  const made = () => {
    if (!began) return;
    began = false;
    sim.paymentsMade++;
    sim.lastPayment = amount;
    recorder.count('payments');
  };
  try {
    // hello: the boxes still waiting for an ACK are sent again; the payee acknowledges those it took
    // and takes those sealed to its keys that never reached it (session.ts's PayeeRole.resent).
    const resend = (await payer.el.se.call('inFlight', {})).sealed.slice(0, COINS_PER_ROUND);
    carry(sim, encodeCbor({ kind: 'hello', resend }), 'hello');
    const resentAcks: Ack[] = [];
    if (resend.length > 0) {
      const known = (await payee.el.se.call('ackAgain', { sealed: resend })).acks;
      resentAcks.push(...known);
      const knownDigests = new Set(known.map((a) => toHex(a.digest)));
      for (const box of resend) {
        if (knownDigests.has(digestOf(box))) continue;
        try {
          resentAcks.push(...(await receiveBoxes(sim, payer, payee, [box], 'hello')));
          recorder.count('exchanges.resent-taken');
        } catch (e) {
          if (e instanceof Cut || refusal(e) === null) throw e;
          // Sealed to another payee's key: not this one's to take.
        }
      }
    }
    const payeeBefore = await status(payee.el);
    carry(sim, encodeCbor({ kind: 'terms', amount: amount.toString(), holdings: [...holdingsOf(payeeBefore)].map(([d, n]) => [d.toString(), n]), acks: resentAcks }), 'terms');
    if (resentAcks.length > 0) {
      await committed(sim, payer.el, (requestId) => payer.el.se.call('acknowledge', { acks: resentAcks }, { requestId }), 'terms');
      recorder.count('exchanges.resent-acknowledged', resentAcks.length);
    }
    const payerBefore = await status(payer.el);
    const plan = planPayment(holdingsOf(payerBefore), amount, holdingsOf(payeeBefore));
    const pay = plan === null ? [] : spread(plan.pay);
    const change = plan === null ? [] : spread(plan.change);
    if (plan === null || pay.length > KEYS_PER_MESSAGE_MAX || change.length > KEYS_PER_MESSAGE_MAX) {
      recorder.count('exchanges.cannot-pay');
      return 'cannot-pay';
    }
    const changeKeys = change.length === 0 ? [] : (await committed(sim, payer.el, (requestId) => payer.el.se.call('offerKeys', { count: change.length }, { requestId }), 'offer')).keys;
    carry(sim, encodeCbor({ kind: 'offer', pay: pay.map(String), change: change.map(String), keys: changeKeys }), 'offer');
    const keys = (await committed(sim, payee.el, (requestId) => payee.el.se.call('offerKeys', { count: pay.length }, { requestId }), 'keys')).keys;
    carry(sim, encodeCbor({ kind: 'keys', keys }), 'keys');
    const payItems = pay.map((denomination, i) => ({ denomination, key: keys[i] as ExchangeKey }));
    for (const items of chunks(payItems, Math.min(COINS_PER_ROUND, COINS_PER_MESSAGE_MAX))) {
      began = true;
      await round(sim, payer, payee, items, 'coins', tamper, relay);
    }
    const changeItems = change.map((denomination, i) => ({ denomination, key: changeKeys[i] as ExchangeKey }));
    for (const items of chunks(changeItems, COINS_PER_ROUND)) await round(sim, payee, payer, items, 'change', null);
    // done: the payee has every coin already; a lost `done` only ends its wait.
    sim.net.send(encodeCbor({ kind: 'done' }), 1);
    sim.net.drain();
    made();
    const [payerAfter, payeeAfter] = [await status(payer.el), await status(payee.el)];
    // A payment finished in one session moved exactly its amount, change included, and left nothing in flight.
    if (payerBefore.balance - payerAfter.balance !== amount || payeeAfter.balance - payeeBefore.balance !== amount) {
      world.violated('conservation', `a payment of ${amount} moved ${payerBefore.balance - payerAfter.balance} from device ${payer.holder.device} and ${payeeAfter.balance - payeeBefore.balance} to device ${payee.holder.device}`);
    }
    if (payerAfter.inFlight.count > payerBefore.inFlight.count || payeeAfter.inFlight.count > payeeBefore.inFlight.count) {
      world.violated('exchange', `a finished payment left coins in flight (payer ${payer.holder.device}, payee ${payee.holder.device})`);
    }
    recorder.count('payments.credited');
    return 'paid';
  } catch (e) {
    made();
    if (e instanceof Cut) {
      recorder.count(`faults.cut.${e.stage}`);
      await remember(payer, payee);
      return 'cut';
    }
    const code = refusal(e);
    if (code === null) throw e;
    recorder.count(`refused.exchange.${code}`);
    await remember(payer, payee);
    return 'refused';
  }
}

/** After a cut or refused exchange: a side with coins in flight remembers its partner, to send them again. */
async function remember(payer: Party, payee: Party): Promise<void> {
  if ((await status(payer.el)).inFlight.count > 0) payer.partner = payee;
  if ((await status(payee.el)).inFlight.count > 0) payee.partner = payer;
}
