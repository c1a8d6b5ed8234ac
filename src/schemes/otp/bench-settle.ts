/**
 * OTP's side of `bench settle` (src/sim/bench/settle.ts): coins paid offline between real OTP
 * trusted apps, then deposited by their payees (OTP §2.7: the bank "will unwrap each token from the
 * OTP and store it in the customer's account"). For each coin the node opens the box sealed to its
 * deposit key (HPKE: one X25519 key agreement), makes the player's pre-condition check (the
 * class's RSA blind signature on the serial, RSASSA-PSS), spends the serial once and credits the
 * depositor; each request is one transaction of up to COINS_PER_MESSAGE_MAX coins with one signed
 * receipt.
 *
 * A payment here is one coin of the bank's smallest class (0.01). Payers withdraw each row's coins
 * through the node's blind withdrawal before the row and pay them COINS_PER_MESSAGE_MAX at a time
 * to payees' TAs (offerKeys, pay, receive, acknowledge: the OTP session without its link). A TA
 * holds one deposit under way at a time, so each payee receives at most one deposit's worth a row
 * and seals it to the bank's deposit key (prepareDeposit) before the clock starts; the node's
 * receipts are taken by the TAs (finishDeposit) after the row, untimed. The trusted apps run in
 * this process and in memory.
 */
import { fromBase64url, toBase64url } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { inBatches, upTo, type BenchNode, type DeviceLimits, type PreparedBody, type SettleContext, type SettleSubmitter, type SettleWorkload, type SettleWorld } from '../../sim/bench/plugin.ts';
import { classOf, makeParty, topUpKeys, withdrawCoins, worldOn, type OtpWorld, type Party } from './bench-setup.ts';
import { COINS_PER_MESSAGE_MAX, depositReceiptCodec, OTP_SCHEME, type ClassEntry } from './messages.ts';
import { DENOMINATION_MIN } from './node-common.ts';

const DEPOSIT_ROUTE = '/v1/otp/deposits';
/** Each payment is one coin of the smallest class. */
const PAYMENT_MINOR = DENOMINATION_MIN;
/** Parties set up at once. */
const SETUP_CONCURRENCY = 8;

/** A deposit encoded before the clock starts: the payee, its request id in the TA, the body, the coins. */
interface PreparedDeposit {
  readonly payee: Party;
  readonly requestId: Uint8Array;
  readonly body: PreparedBody;
  readonly coins: number;
}

/** The node's answer to a deposit, as the bench reads it. */
interface DepositAnswer {
  readonly credited: string;
  readonly receipt: string;
}

/** Runs `work` for `count` items, at most `limit` at once; answers the results in order. */
/** Sends one prepared deposit and checks that every coin in it was credited; answers the receipt for the TA to take later. */
async function deposit(node: BenchNode, d: PreparedDeposit): Promise<string> {
  const response = await node.sendPrepared(d.payee.signer, 'POST', DEPOSIT_ROUTE, d.body);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`deposit of ${d.payee.name} refused: ${response.status} ${text.slice(0, 500)}`);
  const answer = JSON.parse(text) as DepositAnswer;
  const expected = node.amount(BigInt(d.coins) * PAYMENT_MINOR);
  if (answer.credited !== expected) throw new Error(`deposit of ${d.payee.name}: ${answer.credited} credited for ${d.coins} coins worth ${expected}`);
  return answer.receipt;
}

/** `payer` pays `count` coins of `unit` to `payee`, COINS_PER_MESSAGE_MAX at a time, as the OTP session moves them. */
async function pay(payer: Party, payee: Party, unit: ClassEntry, count: number): Promise<void> {
  for (let left = count; left > 0; left -= COINS_PER_MESSAGE_MAX) {
    const n = Math.min(left, COINS_PER_MESSAGE_MAX);
    const { keys } = await payee.se.call('offerKeys', { count: n });
    const { sealed } = await payer.se.call('pay', { items: keys.map((key) => ({ classId: unit.coinClass.classId, key })) });
    const { acks } = await payee.se.call('receive', { sealed });
    const { acknowledged } = await payer.se.call('acknowledge', { acks });
    if (acknowledged !== n) throw new Error(`${payer.name} paid ${n} coins to ${payee.name}, ${acknowledged} acknowledged`);
  }
}

async function openWorld(context: SettleContext): Promise<SettleWorld> {
  const { harness, node } = context;
  const world: OtpWorld = await worldOn(harness, node);
  const unit = classOf(world, PAYMENT_MINOR);
  // One deposit a payee a row: a row needs its coins over COINS_PER_MESSAGE_MAX payees, and one more per submitter for the rounding.
  const payeesMax = Math.ceil(context.paymentsPerRow / COINS_PER_MESSAGE_MAX) + context.submittersMax;
  const parties: Party[] = [];
  const make = async (name: string) => {
    const party = await makeParty(world, name, '', { kind: 'memory' });
    parties.push(party);
    return party;
  };
  let payers: Party[] = [];
  let payees: Party[] = [];
  try {
    payers = await inBatches(upTo(context.devices), SETUP_CONCURRENCY, (k) => make(`payer ${k}`));
    payees = await inBatches(upTo(payeesMax), SETUP_CONCURRENCY, (k) => make(`payee ${k}`));
  } catch (e) {
    await Promise.all(parties.map((p) => p.se.close()));
    throw e;
  }
  const deposited = new Map<Party, bigint>();
  /** Receipts the node gave in the last row, taken by their TAs before the next row. */
  const receipts: Array<{ deposit: PreparedDeposit; receipt: string }> = [];

  async function takeReceipts(): Promise<void> {
    for (const { deposit: d, receipt } of receipts.splice(0)) {
      const out = await d.payee.se.call('finishDeposit', { requestId: d.requestId, receipt: depositReceiptCodec.decode(decodeCbor(fromBase64url(receipt)), 'receipt') });
      if (out.coins !== d.coins || out.doubleSpent > 0 || out.refused > 0 || out.credited !== BigInt(d.coins) * PAYMENT_MINOR) throw new Error(`${d.payee.name}: the receipt credits ${out.credited} for ${out.coins} coins (${out.doubleSpent} double spent, ${out.refused} refused), ${d.coins} deposited`);
    }
  }

  return {
    async prepare(row) {
      await takeReceipts();
      // Each submitter's share, in deposits of at most COINS_PER_MESSAGE_MAX coins, one payee each.
      const shares = Array.from({ length: row.submitters }, (_, w) => Math.floor(row.payments / row.submitters) + (w < row.payments % row.submitters ? 1 : 0));
      const plan = shares.map((share) => Array.from({ length: Math.ceil(share / COINS_PER_MESSAGE_MAX) }, (_, j) => Math.min(COINS_PER_MESSAGE_MAX, share - j * COINS_PER_MESSAGE_MAX)));
      const slots = plan.flat();
      if (slots.length > payees.length) throw new RangeError(`a row of ${row.payments} payments needs ${slots.length} payees, ${payees.length} were made`);
      // Each payee's coins come from one payer; the payers take the payees in turn, and withdraw what they pay first.
      const byPayer = payers.map(() => [] as number[]);
      slots.forEach((_, s) => (byPayer[s % payers.length] as number[]).push(s));
      await Promise.all(
        payers.map(async (payer, p) => {
          for (const s of byPayer[p] as number[]) {
            const payee = payees[s] as Party;
            const count = slots[s] as number;
            await withdrawCoins(world, payer, Array.from({ length: count }, () => unit));
            await topUpKeys(world, payee, count);
            await pay(payer, payee, unit, count);
            row.made(count);
          }
        }),
      );
      // Sealed to the bank's deposit key by each payee's TA, and encoded, before the clock starts.
      const prepared = await Promise.all(
        slots.map(async (count, s): Promise<PreparedDeposit> => {
          const payee = payees[s] as Party;
          const requestId = randomBytes(16);
          const { sealed } = await payee.se.call('prepareDeposit', { requestId, classIds: Array.from({ length: count }, () => unit.coinClass.classId) });
          deposited.set(payee, (deposited.get(payee) ?? 0n) + BigInt(count) * PAYMENT_MINOR);
          return { payee, requestId, coins: count, body: node.prepare({ device: payee.device, coins: sealed.map((box) => toBase64url(encodeCbor(box))) }) };
        }),
      );
      let next = 0;
      return plan.map((deposits): SettleSubmitter => {
        const mine = prepared.slice(next, next + deposits.length);
        next += deposits.length;
        return {
          requests: mine.length,
          async submit(i) {
            const d = mine[i];
            if (d === undefined) throw new RangeError(`request ${i} of ${mine.length}`);
            receipts.push({ deposit: d, receipt: await deposit(node, d) });
            return d.coins;
          },
        };
      });
    },
    async verify() {
      await takeReceipts();
      for (const [payee, amount] of deposited) {
        const held = ((await node.call(payee.signer, 'GET', `/v1/accounts/${payee.account}`)) as { balance: string }).balance;
        if (held !== node.amount(amount)) throw new Error(`${payee.name} holds ${held}, deposited ${node.amount(amount)}`);
        const status = await payee.se.call('status', {});
        if (status.depositPending !== 0 || status.balance !== 0n) throw new Error(`${payee.name}'s TA still holds ${status.balance} or a deposit under way`);
      }
    },
    async close() {
      await Promise.all(parties.map((p) => p.se.close()));
    },
  };
}

/** OTP coins deposited by their payees, for `npm run bench -- settle`. */
export const otpSettle: SettleWorkload = {
  name: 'deposits',
  // The coin carries no Ed25519 signature: its cryptography is the class's RSA signature and the HPKE box.
  verificationsPerPayment: 0,
  floorOperations: { 'rsa2048-pss-verify': 1, x25519: 1 },
  schemes: [OTP_SCHEME],
  describes: `OTP coins of 0.01 paid offline between trusted apps, deposited by their payees (${DEPOSIT_ROUTE}, up to ${COINS_PER_MESSAGE_MAX} coins a request, one payment a coin); the node opens each coin's box (HPKE, one X25519 agreement), checks the class's RSA-2048 blind signature (RSASSA-PSS), spends the serial once and credits the payee`,
  deviceLimits: (defaults: DeviceLimits): DeviceLimits => defaults,
  open: openWorld,
};
