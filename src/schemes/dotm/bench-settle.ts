/**
 * DOT-M's side of `bench settle` (src/sim/bench/settle.ts): payments made offline between wallets
 * (the nine steps of §3.2, over links in memory), settled by the two wallets' event uploads
 * (§3.3.4, `POST /v1/dotm/events`): the payer's `sent` event and the payee's `received` event each
 * carry the block with its new record and R's notification, and the node verifies every path from
 * the central bank's signature to its tip, adds it to the block's tree and looks for a double spend
 * (§3.4.4).
 *
 * A wallet keeps at most EVENTS_MAX events before it must go online, so a row pays in pairs of
 * wallets, EVENTS_MAX payments a pair at most, one fresh block of one unit each (n_b = 1, n_d = 0,
 * the cheapest payment to settle: a longer record chain costs more verifications). Before each row,
 * untimed, the payers are issued the blocks they will pay with and the payees redeem what they
 * received (a wallet holds at most WALLET_BLOCKS_MAX blocks), so that every row starts with empty
 * event logs; the redemptions credit the payees' accounts, which is what `verify` checks. The
 * secure elements run in this process and in memory.
 */
import { fromBase64url, toBase64url } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { inBatches, upTo, type BenchNode, type DeviceLimits, type PreparedBody, type SettleContext, type SettleSubmitter, type SettleWorkload, type SettleWorld } from '../../sim/bench/plugin.ts';
import { openMemoryLinks, transact } from './bench-payment.ts';
import { BLOCK_VALUE_MINOR, drain, feedPayer, makeCarriers, onlineTimes, registerParty, worldOn, type BenchParty, type DotmWorld } from './bench-setup.ts';
import { BLOCKS_PER_PAYMENT_MAX, DOTM_SCHEME } from './messages.ts';
import { EVENTS_MAX, eventAckCodec, walletEventWire } from './online.ts';
import { EVENTS_UPLOAD_MAX } from './node-events.ts';
import { dotmTrustedApp } from './trusted-app.ts';

const EVENTS_ROUTE = '/v1/dotm/events';
/** A holding limit no bench wallet reaches. */
const HOLDING_LIMIT_MINOR = 10n ** 15n;
/** Wallets set up at once. */
const SETUP_CONCURRENCY = 8;

/** One upload of a wallet's events, encoded before the clock starts. */
interface PreparedUpload {
  readonly party: BenchParty;
  readonly body: PreparedBody;
  /** The `received` events in it: the payments its acceptance settles. */
  readonly settles: number;
  /** True for the wallet's last upload of the row, whose ack the wallet takes. */
  readonly last: boolean;
}

interface EventsAnswer {
  readonly ack: string;
  readonly crl: string;
  readonly results: ReadonlyArray<{ readonly seq: number; readonly status: string }>;
  readonly findings: readonly unknown[];
}

/** Sends one prepared upload; every event in it must be taken and nothing found. */
async function upload(node: BenchNode, u: PreparedUpload): Promise<EventsAnswer> {
  const response = await node.sendPrepared(u.party.account, 'POST', EVENTS_ROUTE, u.body);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`upload of ${u.party.name} refused: ${response.status} ${text.slice(0, 500)}`);
  const answer = JSON.parse(text) as EventsAnswer;
  const refused = answer.results.filter((r) => r.status !== 'taken');
  if (refused.length > 0 || answer.findings.length > 0) throw new Error(`upload of ${u.party.name}: ${JSON.stringify(refused).slice(0, 300)}, findings ${JSON.stringify(answer.findings).slice(0, 300)}`);
  return answer;
}

async function openSettleWorld(context: SettleContext): Promise<SettleWorld> {
  const { harness, node } = context;
  const world: DotmWorld = await worldOn(harness, node, 'ed25519');
  const carriers = await makeCarriers(world);
  const pairs = Math.max(1, Math.ceil(context.paymentsPerRow / EVENTS_MAX));
  const parties: BenchParty[] = [];
  const party = async (name: string) => {
    const se = await harness.startMemoryElement({ app: dotmTrustedApp, suite: world.suite });
    try {
      const p = await registerParty(world, name, se);
      parties.push(p);
      return p;
    } catch (e) {
      await se.close();
      throw e;
    }
  };
  let payers: BenchParty[];
  let payees: BenchParty[];
  try {
    payers = await inBatches(upTo(pairs), SETUP_CONCURRENCY, (k) => party(`P${k}`));
    payees = await inBatches(upTo(pairs), SETUP_CONCURRENCY, (k) => party(`R${k}`));
  } catch (e) {
    await Promise.all(parties.map((p) => p.se.close()));
    throw e;
  }
  const received = new Map<BenchParty, bigint>(payees.map((p) => [p, 0n]));
  /** Acks of the last row's uploads, taken by their wallets before the next row. */
  const acks: Array<{ party: BenchParty; answer: EventsAnswer }> = [];
  /** Payees that received in the last row and must redeem before the next. */
  let toRedeem: BenchParty[] = [];
  const untimed = onlineTimes();

  async function settleUp(): Promise<void> {
    for (const { party: p, answer } of acks.splice(0)) await p.se.call('ack', { ack: eventAckCodec.decode(decodeCbor(fromBase64url(answer.ack)), 'ack'), crl: fromBase64url(answer.crl) });
    await inBatches(toRedeem.splice(0), SETUP_CONCURRENCY, (p) => drain(world, p, { redeem: true }, untimed));
  }

  async function uploadsOf(p: BenchParty): Promise<PreparedUpload[]> {
    const { events } = await p.se.call('events', {});
    const out: PreparedUpload[] = [];
    for (let k = 0; k < events.length; k += EVENTS_UPLOAD_MAX) {
      const chunk = events.slice(k, k + EVENTS_UPLOAD_MAX);
      out.push({
        party: p,
        body: node.prepare({ wallet: p.wallet, events: chunk.map((e) => toBase64url(encodeCbor(walletEventWire(e)))) }),
        settles: chunk.filter((e) => e.body.kind === 'received').length,
        last: k + EVENTS_UPLOAD_MAX >= events.length,
      });
    }
    return out;
  }

  return {
    async prepare(row) {
      await settleUp();
      const used = Math.ceil(row.payments / EVENTS_MAX);
      if (used > pairs) throw new RangeError(`a row of ${row.payments} payments needs more than the ${pairs} pairs of wallets made`);
      const counts = Array.from({ length: used }, (_, k) => Math.floor(row.payments / used) + (k < row.payments % used ? 1 : 0));
      await inBatches(
        counts.map((count, k) => ({ count, k })),
        SETUP_CONCURRENCY,
        async ({ count, k }) => {
          const payer = payers[k] as BenchParty;
          const payee = payees[k] as BenchParty;
          // One fresh block of one unit per payment, issued (at most BLOCKS_PER_PAYMENT_MAX at once) and loaded untimed.
          for (let fed = 0; fed < count; fed += BLOCKS_PER_PAYMENT_MAX) {
            await feedPayer(world, carriers, payer, Array.from({ length: Math.min(BLOCKS_PER_PAYMENT_MAX, count - fed) }, () => 0), untimed, BLOCK_VALUE_MINOR);
          }
          const links = openMemoryLinks(payee);
          try {
            for (let n = 0; n < count; n++) {
              await transact(links, { pinned: node.certificates, payer, payee, v: BLOCK_VALUE_MINOR, provider: harness.provider });
              row.made(1);
            }
          } finally {
            links.close();
          }
          received.set(payee, (received.get(payee) ?? 0n) + BigInt(count) * BLOCK_VALUE_MINOR);
        },
      );
      toRedeem = payees.slice(0, used);
      // Each wallet's uploads in order, in one submitter; payers and payees alternate among the submitters.
      const wallets: PreparedUpload[][] = [];
      for (let k = 0; k < used; k++) wallets.push(await uploadsOf(payers[k] as BenchParty), await uploadsOf(payees[k] as BenchParty));
      return Array.from({ length: row.submitters }, (_, w): SettleSubmitter => {
        const mine = wallets.filter((_, k) => k % row.submitters === w).flat();
        return {
          requests: mine.length,
          async submit(i) {
            const u = mine[i];
            if (u === undefined) throw new RangeError(`request ${i} of ${mine.length}`);
            const answer = await upload(node, u);
            if (u.last) acks.push({ party: u.party, answer });
            return u.settles;
          },
        };
      });
    },
    async verify() {
      await settleUp();
      // Every payee redeemed what it received: its account holds exactly that.
      for (const [p, amount] of received) {
        const held = ((await node.call(p.account, 'GET', `/v1/accounts/${p.user.account}`)) as { balance: string }).balance;
        if (held !== node.amount(amount)) throw new Error(`${p.name} holds ${held}, received ${node.amount(amount)}`);
      }
    },
    async close() {
      await Promise.all(parties.map((p) => p.se.close()));
    },
  };
}

/** DOT-M payments settled by their wallets' event uploads, for `npm run bench -- settle`. */
export const dotmSettle: SettleWorkload = {
  name: 'events',
  // At the least, each signature once: the two events', the central bank's on the block, the
  // payer's record and R's notification (the node checks the shared ones in both events).
  verificationsPerPayment: 5,
  // Each payment is made over the nine steps beforehand and settles at tens a second: a full row of
  // the bench's size would take most of an hour.
  paymentsPerRowMax: 1_000,
  schemes: [DOTM_SCHEME],
  describes: `DOT-M payments of one fresh block each (n_b = 1, n_d = 0) between wallet pairs, settled by the payer's and the payee's event uploads (${EVENTS_ROUTE}, up to ${EVENTS_UPLOAD_MAX} events a request, at most ${EVENTS_MAX} per wallet between uploads); the node checks each event's signature, every path from the central bank's signature to its tip and R's notification, and adds the records to the block's tree`,
  deviceLimits: (defaults: DeviceLimits): DeviceLimits => ({ ...defaults, holdingLimitMinor: HOLDING_LIMIT_MINOR }),
  open: openSettleWorld,
};
