/**
 * The offline payment of chain-tee's simulation, in session.ts's order, each message over the
 * simulation's network: the payer's hello, the payee's terms (its account), the payer's `tx_off`
 * (Algorithm 3 `transfer`) with its earlier payments to this payee still waiting for their ack,
 * the payee's acks (Algorithm 4 `receive`: ack_win, or ack_fail for what it cannot take), which
 * the payer's TEE takes (`pay` / `abort`). A dropped or late message cuts the payment where it is:
 * the payer's TEE holds the amount until an ack comes in a later session or the chain settles it
 * (docs/chain.md, "A lost acknowledgement creates no money"). A duplicate is delivered again and
 * must not be credited twice. A relayer may hand the tx_off to another TEE as well, which must refuse
 * it. The Noise link and the session's binding are not modelled.
 */
import { toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { seRefusal, simCarry, simRelayed } from '../../sim/sim/plugin.ts';
import type { SignedAck, TxOff } from './messages.ts';
import { committed, Cut, hashOf, mustNotCredit, stateOf, status, STEP_TIMEOUT_MS, type ChainSim, type Holder, type Party } from './sim-context.ts';

/** Earlier payments to the same payee a payer sends again in one session (session.ts's RESEND_MAX). */
const RESEND_MAX = 8;

/** One message between the two devices: a dropped or late one cuts the payment; answers whether a duplicate follows. */
function carry(sim: ChainSim, message: unknown, stage: string): { duplicated: boolean } {
  const bytes = encodeCbor(message);
  const { arrived, duplicated } = simCarry(sim.world, sim.net, bytes, bytes.length, STEP_TIMEOUT_MS);
  if (!arrived) throw new Cut(stage);
  return { duplicated };
}

/** The payee's TEE takes one tx_off: its ack, and the books learn what it credited. */
async function receive(sim: ChainSim, payer: Party, payee: Party, txOff: TxOff): Promise<SignedAck> {
  const took = () => {
    const hash = hashOf(txOff);
    if (sim.credited.has(hash)) sim.world.violated('credited-once', `payment ${hash} was credited by a second TA (device ${payee.holder.device})`);
    sim.credited.set(hash, payee);
    // A copy's payment an honest payee took: the fork must be found on chain.
    if (payer.attack !== null && !payee.holder.attacker) sim.spentAttacks.add(payer.attack);
  };
  let answer;
  try {
    answer = await committed(sim, payee.el, (requestId) => payee.el.se.call('receive', { txOff, now: sim.world.clock.now() }, { requestId }), 'pay');
  } catch (e) {
    // The wallet gave up after a crash: the TEE may have committed the credit before it died (its upload lists what it took).
    if (e instanceof Cut && (await holdsIncoming(payee, txOff))) took();
    throw e;
  }
  if (answer.credited) took();
  else sim.world.recorder.count(`payments.ack-fail.${answer.reason === undefined ? 'other' : answer.reason.startsWith('T_gen') ? 'drift' : 'refused'}`);
  return answer.ack;
}

/** Whether a TEE holds `txOff` among what it took (credited, or declined with ack_fail). */
async function holdsIncoming(party: Party, txOff: TxOff): Promise<boolean> {
  const hash = hashOf(txOff);
  const upload = await party.el.se.call('onchainUpdate', {});
  return upload.items.some((i) => i.ack !== undefined && i.ack.ok && toHex(i.txOff.payment.payee) === toHex(upload.account) && hashOf(i.txOff) === hash);
}

/** A relayer between payer and payee, handing the payer's tx_off to TEE `to` as well. */
export interface TxOffRelay {
  readonly relayer: Holder;
  readonly to: Party;
}

/**
 * The relayer hands `txOff`, signed by the payer's TEE for `payee`'s account (Algorithm 3: the
 * payee's address is in the signed payment), to TEE `to` too: its `receive` refuses a payment for
 * another account (`CHAIN_NOT_PAYEE`; the paper's MITM case: the enclave cannot be confused about
 * the recipient's key), with its state unchanged.
 */
async function relayTxOff(sim: ChainSim, relay: TxOffRelay, txOff: TxOff, payee: Party): Promise<void> {
  const { world } = sim;
  const { to } = relay;
  const before = stateOf(await status(to.el));
  let refused: string | null = null;
  let credited = false;
  try {
    const answer = await to.el.se.call('receive', { txOff, now: world.clock.now() });
    if (answer.credited) credited = true;
    else refused = 'ack-fail';
  } catch (e) {
    refused = seRefusal(e);
    if (refused === null) throw e;
  }
  if (refused !== null && stateOf(await status(to.el)) !== before) world.violated('no-forgery', `device ${to.holder.device} changed state on refusing a relayed tx_off`);
  simRelayed(world, { relayer: relay.relayer.device, variant: to.holder === relay.relayer ? 'tx-off-to-relayer' : 'tx-off-to-other', meant: payee.holder.device, refusal: refused, credited: credited ? to.holder.device : null });
}

/** How a payment ended. */
export type PaymentEnd = 'paid' | 'cut' | 'refused';

/**
 * The payment of `amount` from `payer` to `payee`. A payment is made once the payer's TA signed its
 * `tx_off` (the amount has left its balance), however the session ends. `relay`: a relayer handing
 * the tx_off to another TEE as well.
 */
export async function payOffline(sim: ChainSim, payer: Party, payee: Party, amount: bigint, relay: TxOffRelay | null = null): Promise<PaymentEnd> {
  const { world } = sim;
  const { recorder, random, clock } = world;
  sim.actions++;
  recorder.count('sessions');
  let signed = false;
  const made = () => {
    if (!signed) return;
    signed = false;
    sim.paymentsMade++;
    sim.lastPayment = amount;
    recorder.count('payments');
  };
  try {
    carry(sim, { kind: 'hello' }, 'hello');
    carry(sim, { kind: 'terms', amount: amount.toString(), account: payee.holder.account }, 'terms');
    const resend = (await payer.el.se.call('pendingTo', { payee: payee.holder.account })).txOffs.slice(0, RESEND_MAX);
    const payerBefore = await status(payer.el);
    const payeeBefore = await status(payee.el);
    let txOff: TxOff;
    try {
      ({ txOff } = await committed(sim, payer.el, (requestId) => payer.el.se.call('transfer', { payee: payee.holder.account, amount, now: clock.now() }, { requestId }), 'transfer'));
    } finally {
      // Given up after a crash, the TEE may still have signed (its counter moved): the payment was made.
      signed = (await status(payer.el)).counter !== payerBefore.counter;
    }
    signed = true;
    if (relay !== null) await relayTxOff(sim, relay, txOff, payee);
    if (random.chance(0.2)) sim.captured.txOffs.push(txOff);
    const sent = [txOff, ...resend];
    const delivery = carry(sim, { kind: 'pay', txOffs: sent }, 'pay');
    const before = world.params.sabotage === 'credit-twice' ? await payee.el.clone() : null;
    const acks: SignedAck[] = [];
    acks.push(await receive(sim, payer, payee, txOff));
    for (const t of resend) {
      try {
        acks.push(await receive(sim, payer, payee, t));
      } catch (e) {
        // A resent payment the payee's TEE settled and forgot gets no ack (docs/chain.md, "Crashes"): the payer's sync frees it.
        const code = seRefusal(e);
        if (code === null) throw e;
        recorder.count(`payments.resent-refused.${code}`);
      }
    }
    if (resend.length > 0) recorder.count('payments.resent', resend.length);
    // The same tx_off delivered twice is answered with the same ack and credited once.
    if (delivery.duplicated) await mustNotCredit(sim, payee, () => payee.el.se.call('receive', { txOff, now: clock.now() }), 'a duplicated tx_off');
    const answer = carry(sim, { kind: 'acks', acks }, 'acks');
    for (const ack of acks) {
      await committed(sim, payer.el, (requestId) => payer.el.se.call(ack.ok ? 'pay' : 'abort', { ack }, { requestId }), 'acks');
      if (random.chance(0.2)) sim.captured.acks.push(ack);
    }
    if (answer.duplicated) await mustNotCredit(sim, payer, () => payer.el.se.call(acks[0]?.ok === true ? 'pay' : 'abort', { ack: acks[0] as SignedAck }), 'a duplicated ack');
    // done: nothing waits on it.
    sim.net.send(encodeCbor({ kind: 'done' }), 1);
    sim.net.drain();
    made();
    const ok = acks[0]?.ok === true;
    if (ok) {
      // A payment finished in one session moved exactly its amount (and what was resent and credited now).
      const [payerAfter, payeeAfter] = [await status(payer.el), await status(payee.el)];
      const worth = (s: typeof payeeAfter) => s.balance - s.debt;
      if (worth(payerBefore) - worth(payerAfter) !== amount || worth(payeeAfter) < worth(payeeBefore) + amount) {
        world.violated('conservation', `a payment of ${amount} moved ${worth(payerBefore) - worth(payerAfter)} from device ${payer.holder.device} and ${worth(payeeAfter) - worth(payeeBefore)} to device ${payee.holder.device}`);
      }
      recorder.count('payments.credited');
      // A test-only broken step: the same tx_off taken by a copy of the payee's TEE made before it, as a wallet restored from a backup would.
      if (before !== null) await receive(sim, payer, { ...payee, el: before }, txOff);
    }
    return ok ? 'paid' : 'refused';
  } catch (e) {
    made();
    if (e instanceof Cut) {
      recorder.count(`faults.cut.${e.stage}`);
      return 'cut';
    }
    const code = seRefusal(e);
    if (code === null) throw e;
    recorder.count(`refused.payment.${code}`);
    return 'refused';
  }
}
