/**
 * OPERA's side of the common workload (`bench all`, src/sim/bench/common.ts): the amount charged
 * into the payer's ODW in the bank's denominations (the fewest tokens) before each payment
 * (untimed), paid over TCP and the anonymous Noise link in the three stages of §3.3
 * (bench-payment.ts), then deposited by the payee (timed: the settlement); and OPERA's profile for
 * the evaluation page.
 */
import type { CommonWorkload, SchemeProfile } from '../../sim/bench/plugin.ts';
import { payOnce } from './bench-payment.ts';
import { assertAuditBalanced, chargeMix, depositAll, heldValue, makeParty, openWorld, type Party } from './bench-setup.ts';
import { PAYABLE_TAGS_MAX } from './escrow.ts';
import { DENOMINATIONS } from './node-common.ts';

/** What OPERA declares of itself (the OPERA paper). */
export const OPERA_PROFILE: SchemeProfile = {
  transitivity: {
    hops: PAYABLE_TAGS_MAX,
    until: `a token carries at most ${PAYABLE_TAGS_MAX + 1} escrow tags: after ${PAYABLE_TAGS_MAX} payments it can only be deposited (the paper itself sets no limit of hops)`,
    cite: 'OPERA §3.1 (offline transferability); the tag limit is Tally\'s (docs/opera.md, "What OPERA can and cannot attribute")',
  },
  messages: [
    { wire: 'deposit-request', to: 'payee', within: 'body.tokens' },
    { wire: 'deposit-request', to: 'bank' },
    { wire: 'settle-report', to: 'bank' },
  ],
  fields: {
    'body.tokens': 'serial',
    'body.tokens[].body.serial': 'serial',
    'body.tokens[].body.value': 'amount',
    'body.tokens[].body.currency': 'protocol',
    'body.tokens[].body.issued': 'time',
    'body.tokens[].signature': 'signature',
    'body.tokens[].tags': 'proof',
    'body.nonce': 'protocol',
    signature: 'device key',
    'body.txid': 'serial',
    'body.mode': 'protocol',
    'body.self': 'payer identity',
    'body.partner': 'payee identity',
    'body.amount': 'amount',
    'body.change': 'amount',
    'body.count': 'protocol',
    'body.done': 'protocol',
    'body.flag': 'protocol',
    'body.released': 'protocol',
    'body.accepted': 'protocol',
    'body.release': 'proof',
  },
  link: 'anonymous Noise XX, and an anonymous credential shown to the partner (no identity); the tokens travel sealed between the ODWs; an observer sees sizes, timing and addresses',
  brokenSe: {
    can: 'a cloned ODW (state and file counter copied) pays the same tokens twice offline; with its keys extracted it could also write escrow tags that name nobody',
    bound: 'the second deposit of a serial is refused; the sealed tags at the fork name the ODW, which is revoked (it can still pay offline with what it holds, since the anonymous credential is not revocable); a TPM NV counter refuses a restored state; loss is bounded by the tokens the clone held',
    cite: 'OPERA §3.2 (the ODW, one-time readable memory), §4.2 (safety against attacks); Tally\'s tags in docs/opera.md',
  },
};

/** The fewest tokens of the bank's denominations that make `amount`. */
function tokensOf(amount: bigint): { value: bigint; count: number }[] {
  const out: { value: bigint; count: number }[] = [];
  let left = amount;
  for (const value of [...DENOMINATIONS].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0))) {
    if (left < value) continue;
    out.push({ value, count: Number(left / value) });
    left %= value;
  }
  if (left !== 0n) throw new RangeError(`${amount} is not a sum of the bank's denominations`);
  return out;
}

/** OPERA's common workload. */
export const operaCommon: CommonWorkload = {
  profile: OPERA_PROFILE,
  async open({ harness, amountMinor, meter }) {
    const world = await openWorld(harness);
    const root = await harness.tempDir('common-opera');
    const payer = await makeParty(world, 'A', `${root}/payer`, { kind: 'isolated' });
    const payee = await makeParty(world, 'B', `${root}/payee`, { kind: 'isolated' });
    const payerIn = await makeParty(world, 'A (in-process)', `${root}/payer-in`, { kind: 'in-process', provider: meter.provider });
    const payeeIn = await makeParty(world, 'B (in-process)', `${root}/payee-in`, { kind: 'in-process', provider: meter.provider });
    const parties = [payer, payee, payerIn, payeeIn];
    const tokens = tokensOf(amountMinor);
    const count = tokens.reduce((n, t) => n + t.count, 0);
    const tokensText = tokens.map((t) => `${t.count} × ${(Number(t.value) / 100).toFixed(2)}`).join(' + ');
    const settle = async (from: Party, to: Party) => {
      const [left, got] = await Promise.all([heldValue(from), heldValue(to)]);
      if (left !== 0n || got !== amountMinor) throw new Error(`after the payment the payer holds ${left} and the payee ${got}`);
      const started = performance.now();
      const deposited = await depositAll(world, to);
      const ms = performance.now() - started;
      if (deposited.credited !== amountMinor || deposited.tokens !== count) throw new Error(`the payee deposited ${deposited.tokens} tokens for ${deposited.credited}`);
      return ms;
    };
    return {
      currency: world.node.currency.code,
      carries: `${count} tokens (${tokensText})`,
      elementDirs: [`${root}/payer`, `${root}/payee`],
      async prepare() {
        await chargeMix(world, payer, tokens);
      },
      async pay(server) {
        const s = await payOnce(server, payer, payee, amountMinor, count);
        const stageBytes = Object.values(s.stageBytes).reduce((a, b) => a + b, 0);
        return { linkMs: s.linkMs, sessionMs: s.totalMs - s.linkMs, handshakeBytes: s.linkBytes, sessionBytes: stageBytes };
      },
      async settle() {
        return { ms: await settle(payer, payee), what: `the payee deposits the ${count} tokens (POST /v1/opera/deposit)` };
      },
      async metered(server) {
        await chargeMix(world, payerIn, tokens);
        const counted = await meter.measure(() => payOnce(server, payerIn, payeeIn, amountMinor, count));
        await settle(payerIn, payeeIn);
        return counted;
      },
      async verify() {
        const float = await assertAuditBalanced(world.node);
        if (float !== 0n) throw new Error(`float:opera holds ${float} after every token was deposited`);
      },
      async close() {
        for (const party of parties) await party.se.close();
      },
    };
  },
};
