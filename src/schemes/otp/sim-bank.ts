/**
 * What OTP's simulated holders do online, as the wallet does it (wallet.ts), through the real node's
 * routes: a blind withdrawal (`prepareWithdrawal`, `POST /v1/otp/withdrawals`, `finishWithdrawal`),
 * a deposit (`prepareDeposit`, `POST /v1/otp/deposits`, `finishDeposit`), and a sync (the in-flight
 * report and its settlement, exchange keys topped up with the bank's time). Each TA call may crash
 * at a commit point and is retried under its request id; the node's calls carry idempotency keys.
 */
import { fromBase64url, toBase64url, toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import type { Codec } from '../../core/codec.ts';
import { exchangeKeyCodec } from './exchange-key.ts';
import { COINS_PER_MESSAGE_MAX, depositReceiptCodec, settledCodec, timeCodec } from './messages.ts';
import { classValue, committed, errorCode, status, type Holder, type OtpSim, type Party } from './sim-context.ts';
import { pollFindings } from './sim-invariants.ts';
import { EXCHANGE_KEYS_TARGET } from './wallet-base.ts';

/** The largest denomination a withdrawal asks two of, so that its holder can give change. */
const CHANGE_DENOMINATION_MAX = 50n;

function cbor<T>(codec: Codec<T>, text: string, what: string): T {
  return codec.decode(decodeCbor(fromBase64url(text)), what);
}

/** The coins a withdrawal of `amount` asks for: two of each small denomination, the rest in the fewest coins. */
function withdrawalClasses(sim: OtpSim, amount: bigint): Uint8Array[] {
  const byValue = new Map<bigint, Uint8Array>();
  for (const c of sim.bankParams.body.classes) byValue.set(BigInt(c.coinClass.denomination), c.coinClass.classId);
  const values = [...byValue.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const out: Uint8Array[] = [];
  let rest = amount;
  for (const value of values) {
    if (value > CHANGE_DENOMINATION_MAX || 2n * value > rest) break;
    out.push(byValue.get(value) as Uint8Array, byValue.get(value) as Uint8Array);
    rest -= 2n * value;
  }
  for (const value of values.reverse()) {
    while (rest >= value) {
      out.push(byValue.get(value) as Uint8Array);
      rest -= value;
    }
  }
  return out.slice(0, COINS_PER_MESSAGE_MAX);
}

/** Online account → coins: the bank signs blindly the coins the TA drew; a refusal abandons the withdrawal. */
export async function withdraw(sim: OtpSim, h: Holder, amount: bigint): Promise<void> {
  sim.actions++;
  const { random, recorder } = sim.world;
  const classIds = withdrawalClasses(sim, amount);
  const stepId = random.bytes(16);
  const { blinded } = await committed(sim, h.el, (requestId) => h.el.se.call('prepareWithdrawal', { requestId: stepId, classIds }, { requestId }));
  const answer = await sim.node.request(h.user, 'POST', '/v1/otp/withdrawals', { device: h.device, items: blinded.map((b, i) => ({ classId: toBase64url(classIds[i] as Uint8Array), blinded: toBase64url(b) })) }, { idempotencyKey: `sim-withdrawal-${toHex(stepId)}` });
  if (answer.status !== 200) {
    recorder.count(`refused.node.withdrawal.${errorCode(answer.body)}`);
    await committed(sim, h.el, (requestId) => h.el.se.call('abandonWithdrawal', { requestId: stepId }, { requestId }));
    return;
  }
  const signatures = (answer.body as { signatures: string[] }).signatures.map(fromBase64url);
  const out = await committed(sim, h.el, (requestId) => h.el.se.call('finishWithdrawal', { requestId: stepId, signatures }, { requestId }));
  const asked = classIds.reduce((s, id) => s + classValue(sim, id), 0n);
  if (out.amount !== asked) sim.world.violated('conservation', `device ${h.device} asked coins worth ${asked} and took ${out.amount}`);
  recorder.count('withdrawals');
}

/**
 * Deposits up to a message's worth of the coins a TA holds (or the deposit it still holds
 * unreceipted, under its request id). A coin of an honest holder refused as deposited before is its
 * loss to a double spend. Answers false when there was nothing to deposit or the node refused.
 */
export async function deposit(sim: OtpSim, party: Party): Promise<boolean> {
  const { random, recorder } = sim.world;
  const h = party.holder;
  const s = await status(party.el);
  if (s.balance === 0n && s.deposit === undefined) return false;
  sim.actions++;
  const stepId = s.deposit?.requestId ?? random.bytes(16);
  const classIds = s.deposit !== undefined ? [] : s.classes.flatMap((c) => Array.from({ length: c.count }, () => c.classId)).slice(0, COINS_PER_MESSAGE_MAX);
  const { sealed } = await committed(sim, party.el, (requestId) => party.el.se.call('prepareDeposit', { requestId: stepId, classIds }, { requestId }));
  const coins = sealed.map((box) => toBase64url(encodeCbor(box)));
  const answer = await sim.node.request(h.user, 'POST', '/v1/otp/deposits', { device: h.device, coins }, { idempotencyKey: `sim-deposit-${toHex(stepId)}` });
  if (answer.status !== 200) {
    recorder.count(`refused.node.deposit.${errorCode(answer.body)}`);
    if (party.attack === null && !h.attacker) sim.world.violated('deposit', `the node refused an honest deposit of device ${h.device}: ${answer.status} ${JSON.stringify(answer.body)}`);
    return false;
  }
  const receipt = cbor(depositReceiptCodec, (answer.body as { receipt: string }).receipt, 'receipt');
  const out = await committed(sim, party.el, (requestId) => party.el.se.call('finishDeposit', { requestId: stepId, receipt }, { requestId }));
  recorder.count('deposits');
  sim.captured.deposits.push({ holder: h, coins });
  let doubleSpent = 0;
  receipt.body.coins.forEach((c, i) => {
    if (c.outcome === 'refused') sim.world.violated('no-forgery', `the node refused a coin device ${h.device} took from genuine TAs`);
    if (c.outcome !== 'double-spend') return;
    doubleSpent++;
    recorder.count('deposits.double-spend');
    // The copy deposited second is worth nothing: an honest holder's loss (the bank spends each serial once).
    if (party.attack === null && !h.attacker) sim.lost += classValue(sim, (sealed[i] as { classId: Uint8Array }).classId);
  });
  recorder.loss(sim.lost);
  if (out.doubleSpent !== doubleSpent) sim.world.violated('deposit', `the TA counted ${out.doubleSpent} coins spent before, the receipt ${doubleSpent}`);
  if (doubleSpent > 0) await pollFindings(sim, { doubleSpent });
  return true;
}

/** Online: the coins in flight reported and settled by the bank, exchange keys topped up (with the bank's time). */
export async function sync(sim: OtpSim, party: Party, keys = true): Promise<void> {
  const { recorder } = sim.world;
  const h = party.holder;
  sim.actions++;
  const before = await status(party.el);
  if (before.inFlight.count > 0) {
    const report = await committed(sim, party.el, (requestId) => party.el.se.call('inFlightReport', {}, { requestId }));
    const answer = await sim.node.request(h.user, 'POST', '/v1/otp/in-flight', { device: h.device, report: toBase64url(encodeCbor(report)) }, { idempotencyKey: `sim-in-flight-${toHex(report.body.nonce)}` });
    if (answer.status !== 200) {
      recorder.count(`refused.node.in-flight.${errorCode(answer.body)}`);
      if (party.attack === null && !h.attacker) sim.world.violated('settlement', `the node refused an honest in-flight report of device ${h.device}: ${answer.status} ${JSON.stringify(answer.body)}`);
      return;
    }
    const settled = cbor(settledCodec, (answer.body as { settled: string }).settled, 'settled');
    const out = await committed(sim, party.el, (requestId) => party.el.se.call('settle', { settled }, { requestId }));
    recorder.count('settled.deposited', out.deposited);
    recorder.count('settled.taken', out.taken);
    if (out.refunded > 0n) recorder.count('settled.refunded', settled.body.coins.filter((c) => c.outcome === 'refunded').length);
    if (out.lost > 0n) {
      // A branch of a coin paid twice: an honest holder's loss to the double spend.
      recorder.count('lost.double-spent-in-flight', settled.body.coins.filter((c) => c.outcome === 'double-spent').length);
      if (!h.attacker) {
        sim.lost += out.lost;
        recorder.loss(sim.lost);
      }
    }
  }
  if (!keys) return;
  const wanted = Math.max(0, EXCHANGE_KEYS_TARGET - before.keys.fresh);
  if (wanted === 0) return;
  const request = await committed(sim, party.el, (requestId) => party.el.se.call('keyRequest', { count: wanted }, { requestId }));
  const answer = await sim.node.request(h.user, 'POST', '/v1/otp/exchange-keys', { device: h.device, request: toBase64url(encodeCbor(request)) }, { idempotencyKey: `sim-keys-${toHex(request.body.nonce)}` });
  if (answer.status !== 200) {
    recorder.count(`refused.node.exchange-keys.${errorCode(answer.body)}`);
    if (party.attack === null && !h.attacker) sim.world.violated('settlement', `the node refused exchange keys to device ${h.device}: ${answer.status} ${JSON.stringify(answer.body)}`);
    return;
  }
  const body = answer.body as { keys: string[]; time: string };
  await committed(sim, party.el, (requestId) => party.el.se.call('takeKeys', { keys: body.keys.map((k) => cbor(exchangeKeyCodec, k, 'exchange key')), time: cbor(timeCodec, body.time, 'time') }, { requestId }));
  recorder.count('syncs');
}
