/**
 * The trusted app's side of the link payment (session.ts) for a wallet: the roles that map the
 * session's denominations to the coins and classes the TA holds, and plan the coins and the change.
 */
import { equalBytes } from '../../core/bytes.ts';
import { TallyError } from '../../core/errors.ts';
import type { SecureElement } from '../../secure-element/secure-element.ts';
import { planPayment } from './denominations.ts';
import type { ExchangeKey } from './exchange-key.ts';
import { KEYS_PER_MESSAGE_MAX } from './messages.ts';
import type { PayeeRole, PayerRole, Plan } from './session.ts';
import { sealedDigest, type Ack, type SealedCoin } from './transfer.ts';
import type { otpTrustedApp } from './trusted-app.ts';

type Se = SecureElement<typeof otpTrustedApp.commands>;

async function holdings(se: Se): Promise<Map<bigint, number>> {
  const { classes } = await se.call('status', {});
  const out = new Map<bigint, number>();
  for (const c of classes) out.set(c.denomination, (out.get(c.denomination) ?? 0) + c.count);
  return out;
}

/** The TA's pay for coins named by denomination: each becomes a class it holds coins of. */
async function payByDenomination(se: Se, items: readonly { denomination: bigint; key: ExchangeKey }[]): Promise<SealedCoin[]> {
  const { classes } = await se.call('status', {});
  const left = new Map(classes.map((c) => [c, c.count]));
  const named = items.map((item) => {
    const cls = classes.find((c) => c.denomination === item.denomination && (left.get(c) ?? 0) > 0);
    if (cls === undefined) throw new TallyError('SE_REJECTED', `no coin of ${item.denomination} minor units is left to pay`, { command: 'pay', reason: 'INSUFFICIENT_FUNDS' });
    left.set(cls, (left.get(cls) ?? 0) - 1);
    return { classId: cls.classId, key: item.key };
  });
  return (await se.call('pay', { items: named })).sealed;
}

/**
 * `count` of the TA's exchange keys, asked KEYS_PER_MESSAGE_MAX at a time (a payment may take more
 * coins than one command gives keys). The fresh keys are counted first, so a payee short of keys
 * refuses before any is marked given.
 */
async function offerKeys(se: Se, count: number): Promise<ExchangeKey[]> {
  const { keys } = await se.call('status', {});
  if (keys.fresh < count) throw new TallyError('SE_REJECTED', `the TA has ${keys.fresh} exchange keys to give and ${count} are needed: sync online to get more`, { command: 'offerKeys', reason: 'OTP_KEYS_SHORT' });
  const out: ExchangeKey[] = [];
  while (out.length < count) out.push(...(await se.call('offerKeys', { count: Math.min(KEYS_PER_MESSAGE_MAX, count - out.length) })).keys);
  return out;
}

async function acknowledge(se: Se, acks: readonly Ack[]): Promise<void> {
  if (acks.length > 0) await se.call('acknowledge', { acks: [...acks] });
}

/** The payer's role: `amount` planned from the coins held, with change from the payee when needed. */
export function payerRole(se: Se, onChange: (plan: Plan) => void): PayerRole {
  return {
    inFlight: async () => (await se.call('inFlight', {})).sealed,
    acknowledge: (acks) => acknowledge(se, acks),
    async plan(amount, payee) {
      const planned = planPayment(await holdings(se), amount, payee);
      if (planned === null) throw new TallyError('SE_REJECTED', 'the coins held cannot pay that amount, even with change from the payee', { command: 'pay', reason: 'INSUFFICIENT_FUNDS' });
      const spread = (coins: ReadonlyMap<bigint, number>) => [...coins].flatMap(([d, n]) => Array.from({ length: n }, () => d));
      const plan = { pay: spread(planned.pay), change: spread(planned.change) };
      onChange(plan);
      return plan;
    },
    offerKeys: (count) => offerKeys(se, count),
    pay: (items) => payByDenomination(se, items),
    receive: async (sealed) => (await se.call('receive', { sealed: [...sealed] })).acks,
  };
}

/** The payee's role: takes what it is paid, gives change, answers for boxes sent again. */
export function payeeRole(se: Se): PayeeRole {
  return {
    holdings: () => holdings(se),
    async resent(sealed) {
      const known = (await se.call('ackAgain', { sealed: [...sealed] })).acks;
      const fresh = sealed.filter((s) => !known.some((a) => equalBytes(a.digest, sealedDigest(s))));
      const taken: Ack[] = [];
      for (const box of fresh) {
        // A box sealed to one of this TA's keys and never taken (the link was cut before it came).
        const got = await se.call('receive', { sealed: [box] }).catch(() => null);
        if (got !== null) taken.push(...got.acks);
      }
      return [...known, ...taken];
    },
    async accept(amount, plan) {
      const paid = plan.pay.reduce((s, d) => s + d, 0n);
      const change = plan.change.reduce((s, d) => s + d, 0n);
      if (paid - change !== amount) throw new TallyError('PAYMENT_INVALID', `the coins offered (${paid}) less the change asked (${change}) are not the amount (${amount})`, { reason: 'amount' });
    },
    offerKeys: (count) => offerKeys(se, count),
    receive: async (sealed) => (await se.call('receive', { sealed: [...sealed] })).acks,
    pay: (items) => payByDenomination(se, items),
    acknowledge: (acks) => acknowledge(se, acks),
  };
}
