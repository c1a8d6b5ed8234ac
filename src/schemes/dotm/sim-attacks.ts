/**
 * DOT-M in `tally sim`: the attacks of DOT-M's threat model (§2.3) by the attackers' share of the
 * holders. A broken secure element: its state and counter copied (a *clone*, spending the same
 * copies twice), an old state put back (a *rollback*: alone under the device's counter the host must
 * refuse it; the whole old device pays again), its keys extracted (usk and wsk: the attacker signs
 * a current record, γ and the success message itself and pays again a copy its wallet already paid
 * from, §3.4.4's double spend made outside the trusted app; and a *forged* block, a presentation
 * not signed by C, §3.4.6; a *forged event*, a redemption signed with wsk outside the trusted app).
 * Manipulated data transmission: an old σ *replayed* to a payee, the wallet's events uploaded again
 * to the node, and honest wallets' λ and σ *relayed* to wallets they were not meant for (§3.4.1).
 * Offline, only the forged block, the replays and the relays can be refused; the double spends are for settlement to detect and attribute (§3.4.4).
 */
import { fromHex, toHex } from '../../core/bytes.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { simRelayed, type SimAttack } from '../../sim/sim/plugin.ts';
import { blockTip } from './block.ts';
import { GAMMA_TAG, gammaSigned, notificationDigest, PRESENTATION_TAG, presentationSigned, RECORD_TAG, recordSigned, SUCCESS_TAG, successSigned, type CurrencyBlock, type TransactionMessage, type TransactionRecord } from './messages.ts';
import { EVENT_TAG, eventBodyWire, partsDigest, type EventBody } from './online.ts';
import { exchange } from './sim-exchange.ts';
import { eventsWire, refusal, SIM_PASSWORD, type DotmSim, type Element, type Holder } from './sim-population.ts';
import { USER_KEY_LABEL, WALLET_KEY_LABEL } from './trusted-app.ts';

/** How many payments a clone or a rolled-back wallet attempts. */
const ATTACK_PAYMENTS_MAX = 3;
/** The most an extracted key pays again at once, minor units. */
const EXTRACTED_PAYMENT_MAX = 2_000n;

/** The attacks a holder may make, drawn evenly. */
const KINDS = ['clone', 'rollback', 'extracted-key', 'forge', 'forge-event', 'replay', 'relay'] as const;
/** The most a relayed transaction pays, minor units. */
const RELAYED_PAYMENT_MAX = 2_000n;

/** One attack by `h`, of a kind drawn from the run's random source; answers how many payments honest wallets offered in it (a relay's). */
export async function attack(sim: DotmSim, h: Holder): Promise<number> {
  const kind = sim.world.random.pick(KINDS);
  if (h.revoked && kind !== 'replay' && kind !== 'forge' && kind !== 'relay') return 0;
  switch (kind) {
    case 'clone':
      await clone(sim, h);
      return 0;
    case 'rollback':
      await rollback(sim, h);
      return 0;
    case 'extracted-key':
      await extractedKey(sim, h);
      return 0;
    case 'forge':
      await forge(sim, h);
      return 0;
    case 'forge-event':
      await forgeEvent(sim, h);
      return 0;
    case 'replay':
      await replay(sim, h);
      return 0;
    case 'relay':
      return relay(sim, h);
  }
}

/** The wallet's storage and counter copied: a second device holding the same copies. */
async function clone(sim: DotmSim, h: Holder): Promise<void> {
  const { recorder, random } = sim.world;
  const el = await h.el.clone();
  const a = recorder.attack('clone', h.wallet, await exposure(sim, el));
  sim.books.duplicating++;
  sim.extras.push({ el, holder: h, attack: a, left: 1 + random.below(ATTACK_PAYMENTS_MAX) });
}

/** First the copies to bring back later; then the old storage alone (refused), then the whole old device paying again. */
async function rollback(sim: DotmSim, h: Holder): Promise<void> {
  const { world } = sim;
  const { recorder, random } = world;
  if (h.past === null) {
    h.past = { storage: h.el.snapshot(), whole: await h.el.clone() };
    return;
  }
  const { storage, whole } = h.past;
  h.past = null;
  const current = h.el.snapshot();
  const refused = await h.el.restore(storage);
  const storageAttack = recorder.attack('rollback-storage', h.wallet, 0n);
  if (refused === 'ROLLBACK_DETECTED') storageAttack.outcome = 'refused-offline';
  else if (refused === null) storageAttack.outcome = 'harmless';
  else world.violated('rollback-refused', `an old state put back on wallet ${h.index} was met with ${refused}, not ROLLBACK_DETECTED`);
  const back = await h.el.restore(current);
  if (back !== null) world.violated('rollback-refused', `putting back wallet ${h.index}'s own current state failed: ${back}`);
  if ((await h.el.se.call('status', {})).balance !== h.balance) world.violated('rollback-refused', `wallet ${h.index} changed balance across a refused rollback`);
  const a = recorder.attack('rollback', h.wallet, await exposure(sim, whole));
  sim.books.duplicating++;
  sim.extras.push({ el: whole, holder: h, attack: a, left: 1 + random.below(ATTACK_PAYMENTS_MAX) });
}

/**
 * The most an attack on these serials can cost. Settlement credits each copy whole or not at all,
 * first come first served, so a payee whose copy passes through the over-spent node may lose the
 * whole copy, not only the amount spent twice, while the float keeps the difference (docs/sim.md,
 * "DOT-M, as simulated"). The honest copies of a serial are worth at most its value plus what
 * attacks duplicated of it (each at most its value): each serial counts twice for the first attack
 * that touches it, once for every later one.
 */
function bound(sim: DotmSim, serials: ReadonlyArray<{ serial: Uint8Array; value: bigint }>): bigint {
  let sum = 0n;
  const seen = new Set<string>();
  for (const { serial, value } of serials) {
    const key = toHex(serial);
    if (seen.has(key)) continue;
    seen.add(key);
    sum += sim.books.touched.has(key) ? value : 2n * value;
    sim.books.touched.add(key);
  }
  return sum;
}

/** The bound of a duplicated wallet: every serial it holds a copy of. */
async function exposure(sim: DotmSim, el: Element): Promise<bigint> {
  return bound(sim, (await el.se.call('status', {})).blocks);
}

/** A payee other than `h` whose wallet is not revoked, or none. */
function victim(sim: DotmSim, h: Holder): Holder | null {
  const others = sim.holders.filter((x) => x !== h && !x.revoked);
  return others.length === 0 ? null : sim.world.random.pick(others);
}

/** A payee opens a request for `v` (step 1); null when its wallet cannot now. */
async function requestOf(sim: DotmSim, payee: Holder, v: bigint) {
  try {
    return await payee.el.se.call('request', { v, now: sim.world.clock.now() });
  } catch (e) {
    if (refusal(e) === null) throw e;
    return null;
  }
}

/** σ for `payee`'s request, made outside the trusted app with `h`'s extracted keys: `block` paid from by `amount`. */
function sigmaWithExtractedKeys(sim: DotmSim, h: Holder, block: CurrencyBlock, amount: bigint, request: { tsn: Uint8Array; ucertR: Uint8Array }): TransactionMessage {
  const usk = h.el.extractKey(USER_KEY_LABEL);
  const wsk = h.el.extractKey(WALLET_KEY_LABEL);
  const fields = { prev: blockTip(block), amount, timestamp: sim.world.clock.now(), ucertP: h.ucert, ucertR: request.ucertR };
  const current: TransactionRecord = { ...fields, signature: signRecord(usk, RECORD_TAG, recordSigned(fields)) };
  const tsd = { tsn: request.tsn, v: amount, nb: 1, nd: block.records.length, blocks: [{ block, current }] };
  return { tsd, gamma: signRecord(wsk, GAMMA_TAG, gammaSigned(tsd)), wcertP: h.wcert };
}

/**
 * usk and wsk taken from the device: the copy the wallet last paid from (as σ carried it), paid
 * again to another payee, the record, γ and the success message all signed outside the trusted app.
 * The payee's checks all pass (§3.4.6 holds the keys unextractable); the node's tree sees the fork.
 */
async function extractedKey(sim: DotmSim, h: Holder): Promise<void> {
  const { world, books } = sim;
  const { recorder, random, clock } = world;
  const sent = h.lastPaid;
  const payee = victim(sim, h);
  const part = sent?.tsd.blocks[0];
  if (part === undefined || payee === null) return;
  const most = part.block.remaining < EXTRACTED_PAYMENT_MAX ? part.block.remaining : EXTRACTED_PAYMENT_MAX;
  if (most < 1n) return;
  const amount = random.bigint(1n, most);
  const request = await requestOf(sim, payee, amount);
  if (request === null) return;
  // The node credits a copy whole or not at all: a payee of this serial may lose up to its value.
  const a = recorder.attack('extracted-key', h.wallet, bound(sim, [part.block.presentation]));
  books.duplicating++;
  const own = { attack: a, amount, received: false, refused: false };
  books.attackPayments.push(own);
  recorder.count('payments.extracted-key');
  const transaction = sigmaWithExtractedKeys(sim, h, part.block, amount, request);
  let notification;
  try {
    notification = await payee.el.se.call('accept', { transaction, now: clock.now() });
  } catch (e) {
    const code = refusal(e);
    if (code === null) throw e;
    recorder.count(`refused.accept.${code}`);
    own.refused = true;
    return;
  }
  const fields = { tsn: request.tsn, notification: notificationDigest(notification) };
  const success = { ...fields, signature: signRecord(h.el.extractKey(WALLET_KEY_LABEL), SUCCESS_TAG, successSigned(fields)) };
  await payee.el.se.call('complete', { success });
  const tsn = toHex(request.tsn);
  if (books.completed.has(tsn)) world.violated('credited-once', `transaction ${tsn} completed twice`);
  books.completed.add(tsn);
  payee.balance += amount;
  own.received = true;
}

/** A block whose presentation the attacker signed itself (with its extracted usk), not C: the payee must refuse it at step 4.3. */
async function forge(sim: DotmSim, h: Holder): Promise<void> {
  const { world } = sim;
  const { recorder, random } = world;
  const payee = victim(sim, h);
  if (payee === null) return;
  const value = random.bigint(100n, 5_000n);
  const request = await requestOf(sim, payee, value);
  if (request === null) return;
  const status = await h.el.se.call('status', {});
  const unsigned = { serial: random.bytes(16), value, currency: status.currency, owner: fromHex(h.userKeyId) };
  const block: CurrencyBlock = { presentation: { ...unsigned, signature: signRecord(h.el.extractKey(USER_KEY_LABEL), PRESENTATION_TAG, presentationSigned(unsigned)) }, records: [], remaining: value, count: 0 };
  const transaction = sigmaWithExtractedKeys(sim, h, block, value, request);
  const before = await payee.el.se.call('status', {});
  try {
    await payee.el.se.call('accept', { transaction, now: world.clock.now() });
  } catch (e) {
    const code = refusal(e);
    if (code === null) throw e;
    recorder.count(`refused.forged-block.${code}`);
    const after = await payee.el.se.call('status', {});
    if (after.balance !== before.balance) world.violated('no-forgery', `wallet ${payee.index} changed while refusing a forged block`);
    recorder.attack('forge', h.wallet, 0n).outcome = 'refused-offline';
    return;
  }
  world.violated('no-forgery', `wallet ${payee.index} accepted a block the central bank never signed`);
}

/**
 * An event signed with the extracted wsk: a redemption of the copy the wallet last paid from, at
 * the value it had before that payment, under the log's next number. The node may credit it before
 * the payee uploads (nothing yet shows the copy spent); then the payee's upload over-spends the
 * node, and the wallet's own next event conflicts with the forged one: either way the node names
 * the wallet's user.
 */
async function forgeEvent(sim: DotmSim, h: Holder): Promise<void> {
  const { world, node, books } = sim;
  const { recorder, random, clock } = world;
  const part = h.lastPaid?.tsd.blocks[0];
  if (part === undefined) return;
  const view = await node.request(h.user, 'GET', `/v1/dotm/wallets/${h.wallet}`);
  if (view.status !== 200) return;
  const seq = (view.body as { lastSeq: number }).lastSeq + 1;
  const parts = [{ block: part.block }];
  const body: EventBody = { wallet: fromHex(h.wallet), seq, kind: 'redeemed', tsn: random.bytes(16), transaction: partsDigest(parts), amount: part.block.remaining, time: clock.now(), parts };
  const event = { body, signature: signRecord(h.el.extractKey(WALLET_KEY_LABEL), EVENT_TAG, eventBodyWire(body)) };
  const a = recorder.attack('forge-event', h.wallet, bound(sim, [part.block.presentation]));
  books.duplicating++;
  const answer = await node.request(h.user, 'POST', '/v1/dotm/events', { wallet: h.wallet, events: eventsWire([event]) });
  if (answer.status !== 200) {
    recorder.count(`refused.forged-event.${answer.status}`);
    a.outcome = 'refused-offline';
    return;
  }
  const result = (answer.body as { results: Array<{ status: string; code?: string; credited?: string }> }).results[0];
  recorder.count(`forged-event.${result?.status ?? 'none'}`);
  const credited = result?.credited === undefined ? 0n : sim.minor(result.credited);
  // Credited, it is value paid out twice: the payee's copy and this credit; settlement must name the wallet.
  if (credited > 0n) books.attackPayments.push({ attack: a, amount: credited, received: true, refused: false });
  await sim.pollFindings();
}

/** An old σ sent to a payee's new request, and the wallet's events uploaded to the node again under a new idempotency key. */
async function replay(sim: DotmSim, h: Holder): Promise<void> {
  const { world, node } = sim;
  const { recorder, random } = world;
  const paid = sim.holders.filter((x) => x.lastPaid !== null);
  const payee = victim(sim, h);
  if (paid.length > 0 && payee !== null) {
    const old = random.pick(paid).lastPaid as TransactionMessage;
    const request = await requestOf(sim, payee, old.tsd.v);
    if (request !== null) {
      const before = await payee.el.se.call('status', {});
      try {
        await payee.el.se.call('accept', { transaction: old, now: world.clock.now() });
        world.violated('no-forgery', `wallet ${payee.index} accepted a σ replayed from another transaction`);
      } catch (e) {
        const code = refusal(e);
        if (code === null) throw e;
        recorder.count(`refused.replayed-sigma.${code}`);
      }
      if ((await payee.el.se.call('status', {})).balance !== before.balance) world.violated('no-forgery', `wallet ${payee.index} changed while refusing a replayed σ`);
      recorder.attack('replay', h.wallet, 0n).outcome = 'refused-offline';
    }
  }
  if (h.lastUpload.length === 0) return;
  const online = (await node.audit()).online;
  const answer = await node.request(h.user, 'POST', '/v1/dotm/events', { wallet: h.wallet, events: h.lastUpload });
  recorder.attack('replay-events', h.wallet, 0n).outcome = 'refused-offline';
  if (answer.status === 200) {
    const results = (answer.body as { results: Array<{ status: string }> }).results;
    if (results.some((r) => r.status === 'taken')) world.violated('credited-once', `events of wallet ${h.index} uploaded again were taken again: ${JSON.stringify(results)}`);
  } else {
    recorder.count(`refused.replayed-events.${answer.status}`);
  }
  if ((await node.audit()).online !== online) world.violated('credited-once', `events of wallet ${h.index} uploaded again moved money online`);
}

/** An attacker's extra copy pays: a clone's or a rolled-back wallet's payment, a double spend. */
export function recordAttackPayment(sim: DotmSim, attack: SimAttack, amount: bigint, end: { offered: boolean; received: boolean; refusedBy: string | null }): void {
  if (!end.offered) return;
  sim.books.attackPayments.push({ attack, amount, received: end.received, refused: end.refusedBy !== null });
}

/**
 * A relayer between honest wallets (§3.4.1: it can only forward what they send). An honest payer
 * means to pay payee B; the relayer hands it B's own λ (the transaction goes on as the payer meant),
 * or another payee's λ of the same amount (the payer's trusted app refuses it at step 2.3: λ's
 * ucert_R is not the payee it was told), or hands the σ the payer made for B to another wallet as
 * well, the relayer's own or a third one (refused at step 4). Answers the payments offered.
 */
async function relay(sim: DotmSim, h: Holder): Promise<number> {
  const { world } = sim;
  const { random, clock } = world;
  const payers = sim.holders.filter((x) => x !== h && !x.attacker && !x.revoked && x.balance > 0n);
  if (payers.length === 0) return 0;
  const payer = random.pick(payers);
  const payees = sim.holders.filter((x) => x !== h && x !== payer && !x.revoked);
  if (payees.length === 0) return 0;
  const payee = random.pick(payees);
  const others = payees.filter((x) => x !== payee);
  const v = random.bigint(1n, payer.balance < RELAYED_PAYMENT_MAX ? payer.balance : RELAYED_PAYMENT_MAX);
  const roll = random.below(3);
  if (roll === 0 || (roll === 1 && others.length === 0)) {
    const end = await exchange(sim, payer, payer.el, payee, v);
    if (end === null) return 0;
    simRelayed(world, { relayer: h.wallet, variant: 'request-as-meant', meant: payee.wallet, refusal: null, credited: end.received ? payee.wallet : null });
    return end.offered ? 1 : 0;
  }
  if (roll === 1) {
    const other = random.pick(others);
    const request = await requestOf(sim, other, v);
    if (request === null) return 0;
    let refused: string | null = null;
    try {
      await payer.el.se.call('pay', { request, password: SIM_PASSWORD, expect: { v, payee: fromHex(payee.userKeyId) }, now: clock.now() });
    } catch (e) {
      refused = refusal(e);
      if (refused === null) throw e;
    }
    simRelayed(world, { relayer: h.wallet, variant: 'request-to-payer', meant: payee.wallet, refusal: refused, credited: refused === null ? other.wallet : null });
    return 0;
  }
  const to = others.length === 0 || random.chance(0.5) ? h : random.pick(others);
  const end = await exchange(sim, payer, payer.el, payee, v, { relay: { relayer: h, to } });
  return end?.offered === true ? 1 : 0;
}
