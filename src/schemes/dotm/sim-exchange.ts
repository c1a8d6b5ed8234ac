/**
 * DOT-M in `tally sim`: one dual offline transaction (§3.3.3, Figure 7) between two simulated
 * devices, driven as session.ts drives it (λ, σ, the notification, the success message), each
 * message over the simulation's network: dropped, or delayed past the session's wait, it cuts the
 * transaction there; duplicated, its copy reaches the receiving trusted app again afterwards and
 * must be refused with the app unchanged. A secure element may crash at a commit point of any call;
 * a quarter of those crashes end the transaction (the device rebooted). However it ends, each side
 * then does what §3.3.5 says: a payer with an open offer withdraws it (situations 1 and 4), a payee
 * with a received transaction rolls it back (situations 2, 3, 5), so that the two exceptional
 * situations where the payer paid and the payee rolled back (3 and 5) are left to the node's refund.
 * An attacking payer's wallet app may also alter σ on its way (the payee's app must refuse it), and
 * a relayer between the two devices may hand σ to another wallet too (which must refuse it).
 */
import { fromHex, toHex } from '../../core/bytes.ts';
import { simCarry, simRelayed, type SimAttack } from '../../sim/sim/plugin.ts';
import { encodeNotification, encodeSuccessNotice, encodeTransactionMessage, encodeTransactionRequest, type Notification, type SuccessNotice, type TransactionMessage } from './messages.ts';
import { SESSION_STEP_TIMEOUT_MS } from './session.ts';
import { refusal, SIM_PASSWORD, type DotmSim, type Element, type Holder } from './sim-population.ts';

/** The transaction stopped at a step (a message lost or too late, or a device rebooted). */
class Cut extends Error {
  constructor(readonly step: string) {
    super(`transaction cut at ${step}`);
  }
}

/** How a transaction ended, as the two trusted apps' balances show it. */
export interface ExchangeEnd {
  /** σ was made (the payer's trusted app built it): a payment for the report. */
  readonly offered: boolean;
  /** The payer's side deducted v (step 7). */
  readonly paid: boolean;
  /** The payee completed (step 9). */
  readonly received: boolean;
  /** The payee's trusted app refused σ (steps 4–5): what it said. */
  readonly refusedBy: string | null;
}

/** A copy delivered again to a trusted app: it must refuse it, unchanged. */
async function refusedUnchanged(sim: DotmSim, el: Element, what: string, deliver: () => Promise<unknown>): Promise<void> {
  const before = await el.se.call('status', {});
  try {
    await deliver();
  } catch (e) {
    const code = refusal(e);
    if (code === null) throw e;
    sim.world.recorder.count(`refused.copy.${code}`);
    const after = await el.se.call('status', {});
    if (after.balance !== before.balance || after.unsyncedEvents !== before.unsyncedEvents) sim.world.violated('no-forgery', `a trusted app changed while refusing a ${what}`);
    return;
  }
  sim.world.violated('no-forgery', `a trusted app took a ${what}`);
}

/**
 * σ made for `payee`'s request handed by a relayer to wallet `to` as well, which has a request of
 * the same amount open: its trusted app must refuse it (step 4.1: σ answers no open request of
 * `to`, its tsn being `payee`'s; step 4.4: its records pay another ucert_R, §3.4.1), unchanged.
 */
async function relaySigma(sim: DotmSim, relay: { relayer: Holder; to: Holder }, transaction: TransactionMessage, payee: Holder): Promise<void> {
  const { world } = sim;
  const { to } = relay;
  try {
    await to.el.se.call('request', { v: transaction.tsd.v, now: world.clock.now() });
  } catch (e) {
    if (refusal(e) === null) throw e;
  }
  const before = await to.el.se.call('status', {});
  let refused: string | null = null;
  try {
    await to.el.se.call('accept', { transaction, now: world.clock.now() });
  } catch (e) {
    refused = refusal(e);
    if (refused === null) throw e;
  }
  if (refused !== null && (await to.el.se.call('status', {})).balance !== before.balance) world.violated('no-forgery', `wallet ${to.index} changed while refusing a relayed σ`);
  simRelayed(world, { relayer: relay.relayer.wallet, variant: to === relay.relayer ? 'sigma-to-relayer' : 'sigma-to-other', meant: payee.wallet, refusal: refused, credited: refused === null ? to.wallet : null });
}

/**
 * One transaction of `v` from `payer` (the holder's own secure element, or an attacker's extra
 * copy `by`) to `payee`. Answers null when the payee's or payer's wallet could not start one.
 */
export async function exchange(sim: DotmSim, payer: Holder, by: Element, payee: Holder, v: bigint, options: { alter?: boolean; attack?: SimAttack | null; relay?: { relayer: Holder; to: Holder } } = {}): Promise<ExchangeEnd | null> {
  const { world } = sim;
  const { clock, recorder } = world;
  const net = world.network<Uint8Array>();
  const duplicates: Array<() => Promise<void>> = [];
  const payerBefore = (await by.se.call('status', {})).balance;
  const payeeBefore = (await payee.el.se.call('status', {})).balance;
  let offered = false;
  let refusedBy: string | null = null;

  /** One message: lost or later than the wait cuts the transaction; a duplicate is kept for afterwards. */
  const carry = (bytes: Uint8Array, step: string): boolean => {
    const { arrived, duplicated } = simCarry(world, net, bytes, bytes.length, SESSION_STEP_TIMEOUT_MS);
    if (!arrived) throw new Cut(step);
    return duplicated;
  };
  const cut = (step: string) => () => new Cut(step);

  let tsn = '';
  let sent: TransactionMessage | null = null;
  try {
    // Step 1: λ.
    let request;
    try {
      request = await sim.committed(payee.el, (requestId) => payee.el.se.call('request', { v, now: clock.now() }, { requestId }), cut('step-1'));
    } catch (e) {
      const code = refusal(e);
      if (code === null) throw e;
      recorder.count(`refused.request.${code}`);
      return null;
    }
    tsn = toHex(request.tsn);
    carry(encodeTransactionRequest(request), 'step-1');
    // Steps 2–3: σ.
    let transaction: TransactionMessage;
    try {
      const paid = await sim.committed(by, (requestId) => by.se.call('pay', { request, password: SIM_PASSWORD, expect: { v, payee: fromHex(payee.userKeyId) }, now: clock.now() }, { requestId }), cut('step-3'));
      const made = paid.transaction;
      if (paid.kind !== 'transaction' || made === undefined) return world.violated('se-balance', `wallet ${payer.index} refused its own password`);
      transaction = made;
    } catch (e) {
      const code = refusal(e);
      if (code === null) throw e;
      recorder.count(`refused.pay.${code}`);
      return null;
    }
    offered = true;
    sent = transaction;
    recorder.count('payments');
    if (options.alter === true) {
      // The payer's wallet app raises a block's remaining value on its way: γ covers it.
      const first = transaction.tsd.blocks[0];
      if (first !== undefined) {
        const altered: TransactionMessage = { ...transaction, tsd: { ...transaction.tsd, blocks: [{ ...first, block: { ...first.block, remaining: first.block.remaining + 1n } }, ...transaction.tsd.blocks.slice(1)] } };
        await refusedUnchanged(sim, payee.el, 'altered σ', () => payee.el.se.call('accept', { transaction: altered, now: clock.now() }));
      }
    }
    if (options.relay !== undefined) await relaySigma(sim, options.relay, transaction, payee);
    const sigmaBytes = encodeTransactionMessage(transaction);
    // A copy of σ is only a replay once the payee took σ (its request is closed); before, a crash
    // that ended the transaction leaves the request open and the payee's app may take it again.
    let accepted = false;
    if (carry(sigmaBytes, 'step-3')) duplicates.push(async () => (accepted ? refusedUnchanged(sim, payee.el, 'σ delivered twice', () => payee.el.se.call('accept', { transaction, now: clock.now() })) : undefined));
    // Steps 4–6: the payee verifies σ, links the records, signs the notification.
    let notification: Notification;
    try {
      notification = await sim.committed(payee.el, (requestId) => payee.el.se.call('accept', { transaction, now: clock.now() }, { requestId }), cut('step-5'));
    } catch (e) {
      const code = refusal(e);
      if (code === null) throw e;
      recorder.count(`refused.accept.${code}`);
      refusedBy = code;
      throw new Cut('step-4');
    }
    accepted = true;
    if (carry(encodeNotification(notification), 'step-6')) duplicates.push(() => refusedUnchanged(sim, by, 'notification delivered twice', () => by.se.call('confirm', { notification })));
    // Steps 7–8: the payer deducts and answers the success message.
    const success: SuccessNotice = await sim.committed(by, (requestId) => by.se.call('confirm', { notification }, { requestId }), cut('step-7'));
    if (carry(encodeSuccessNotice(success), 'step-8')) duplicates.push(() => refusedUnchanged(sim, payee.el, 'success message delivered twice', () => payee.el.se.call('complete', { success })));
    // Step 9.
    await sim.committed(payee.el, (requestId) => payee.el.se.call('complete', { success }, { requestId }), cut('step-9'));
  } catch (e) {
    if (!(e instanceof Cut)) throw e;
    recorder.count(`cut.${e.step}`);
  }
  // §3.3.5: whatever happened, each side closes what it left open.
  await close(sim, by);
  await close(sim, payee.el);
  for (const again of duplicates) await again();

  const payerAfter = (await by.se.call('status', {})).balance;
  const payeeAfter = (await payee.el.se.call('status', {})).balance;
  const paid = payerBefore - payerAfter;
  const received = payeeAfter - payeeBefore;
  if ((paid !== 0n && paid !== v) || (received !== 0n && received !== v)) world.violated('conservation', `a transaction of ${v} moved ${paid} out of the payer and ${received} into the payee`);
  if (received !== 0n && paid === 0n) world.violated('conservation', `the payee completed a transaction of ${v} the payer never paid`);
  if (received !== 0n) {
    if (sim.books.completed.has(tsn)) world.violated('credited-once', `transaction ${tsn} completed twice`);
    sim.books.completed.add(tsn);
    recorder.count('payments.credited');
  } else if (offered) {
    recorder.count('payments.stranded');
  }
  if (by === payer.el) payer.balance -= paid;
  if (by === payer.el && received !== 0n) payer.lastPaid = sent;
  payee.balance += received;
  if (paid !== 0n && received === 0n) {
    recorder.count('situations.paid-rolled-back');
    // Only the holder's own wallet uploads its `sent`: the node refunds it once both sides are in.
    if (by === payer.el) sim.books.refunds.set(tsn, { holder: payer, amount: v });
  }
  return { offered, paid: paid !== 0n, received: received !== 0n, refusedBy };
}

/** What a wallet does on reopening or at step 9's timeout: withdraw an open offer, roll back a received transaction. */
export async function close(sim: DotmSim, el: Element): Promise<void> {
  const status = await el.se.call('status', {});
  if (status.offer !== undefined) {
    await sim.committed(el, (requestId) => el.se.call('abandon', {}, { requestId }));
    sim.world.recorder.count('abandoned');
  }
  if (status.receiving !== undefined) {
    await sim.committed(el, (requestId) => el.se.call('rollback', {}, { requestId }));
    sim.world.recorder.count('rolled-back');
  }
}
