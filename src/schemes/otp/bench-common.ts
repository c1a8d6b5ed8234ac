/**
 * OTP's side of the common workload (`bench all`, src/sim/bench/common.ts): the amount paid in the
 * bank's denominations (the fewest coins, as a wallet withdraws them), one OTP per coin, over TCP
 * and the anonymous Noise link (bench-payment.ts); before each payment (untimed) the payer
 * withdraws exactly those coins and the payee is topped up with exchange keys; after it the payee
 * deposits them (timed: the settlement); and OTP's profile for the evaluation page.
 */
import type { CommonWorkload, SchemeProfile } from '../../sim/bench/plugin.ts';
import { payOnce } from './bench-payment.ts';
import { assertAuditBalanced, classOf, depositAll, heldValue, makeParty, openWorld, topUpKeys, withdrawCoins, type Party } from './bench-setup.ts';
import { withdrawalMix } from './denominations.ts';
import { HOPS } from './node-common.ts';
import { DENOMINATIONS } from './node-classes.ts';

/** What OTP declares of itself (the OTP paper). */
export const OTP_PROFILE: SchemeProfile = {
  transitivity: {
    hops: HOPS,
    until: `each coin's program allows ${HOPS} offline transfers (the bank's default), then the coin can only be deposited; a coin also ends with its class's period`,
    cite: 'OTP §2.7 (the one-time program and its conditions); the number of hops is the bank\'s parameter in Tally (docs/otp.md, "Accountable anonymity")',
  },
  messages: [
    { wire: 'carried-coin', to: 'payee' },
    { wire: 'carried-coin', to: 'bank' },
  ],
  fields: {
    'coin.serial': 'serial',
    'coin.classId': 'amount',
    'coin.prefix': 'protocol',
    'coin.signature': 'signature',
    'coin.program': 'protocol',
    tags: 'proof',
  },
  link: 'anonymous Noise XX (no certificate either way); the coins travel sealed to the payee TA\'s exchange keys; an observer sees sizes, timing and addresses',
  brokenSe: {
    can: 'a cloned or rolled-back TA pays the same coin to two payees offline; both accept it',
    bound: 'the second deposit of a serial is refused; the sealed tags of the two copies, opened only then, name the device that paid twice and the bank revokes it; loss is bounded by the coins the clone held',
    cite: 'OTP §3.3 (security evaluation); Tally\'s escrow tags and findings in docs/otp.md ("What a lying or broken device can do")',
  },
};

/** OTP's common workload. */
export const otpCommon: CommonWorkload = {
  profile: OTP_PROFILE,
  async open({ harness, amountMinor, meter }) {
    const world = await openWorld(harness);
    const root = await harness.tempDir('common-otp');
    const payer = await makeParty(world, 'P', `${root}/payer`, { kind: 'isolated' });
    const payee = await makeParty(world, 'Q', `${root}/payee`, { kind: 'isolated' });
    const payerIn = await makeParty(world, 'P (in-process)', `${root}/payer-in`, { kind: 'in-process', provider: meter.provider });
    const payeeIn = await makeParty(world, 'Q (in-process)', `${root}/payee-in`, { kind: 'in-process', provider: meter.provider });
    const parties = [payer, payee, payerIn, payeeIn];
    const mix = withdrawalMix(amountMinor, [...DENOMINATIONS]);
    const classes = [...mix].flatMap(([d, n]) => Array.from({ length: n }, () => classOf(world, d)));
    const coinsText = [...mix].map(([d, n]) => `${n} × ${(Number(d) / 100).toFixed(2)}`).join(' + ');
    const prepare = async (from: Party, to: Party) => {
      const got = await withdrawCoins(world, from, classes);
      if (got !== amountMinor) throw new Error(`${from.name} withdrew ${got}, not ${amountMinor}`);
      await topUpKeys(world, to, classes.length);
    };
    const settle = async (from: Party, to: Party) => {
      const [left, got] = await Promise.all([heldValue(from), heldValue(to)]);
      if (left !== 0n || got !== amountMinor) throw new Error(`after the payment the payer holds ${left} and the payee ${got}`);
      const started = performance.now();
      const credited = await depositAll(world, to);
      const ms = performance.now() - started;
      if (credited !== amountMinor) throw new Error(`the payee deposited ${credited}, not ${amountMinor}`);
      return ms;
    };
    return {
      currency: world.node.currency.code,
      carries: `${classes.length} coins (${coinsText}), one OTP each`,
      elementDirs: [`${root}/payer`, `${root}/payee`],
      prepare: () => prepare(payer, payee),
      async pay(server) {
        const s = await payOnce(server, payer, payee, amountMinor);
        if (s.coins !== classes.length) throw new Error(`${s.coins} coins moved, ${classes.length} paid`);
        return { linkMs: s.linkMs, sessionMs: s.sessionMs, handshakeBytes: s.handshakeBytes, sessionBytes: s.sessionBytes };
      },
      async settle() {
        return { ms: await settle(payer, payee), what: `the payee deposits the ${classes.length} coins (POST /v1/otp/deposits)` };
      },
      async metered(server) {
        await prepare(payerIn, payeeIn);
        const counted = await meter.measure(() => payOnce(server, payerIn, payeeIn, amountMinor));
        await settle(payerIn, payeeIn);
        return counted;
      },
      async verify() {
        const float = await assertAuditBalanced(world.node);
        if (float !== 0n) throw new Error(`float:otp holds ${float} after every coin was deposited`);
      },
      async close() {
        for (const party of parties) await party.se.close();
      },
    };
  },
};
