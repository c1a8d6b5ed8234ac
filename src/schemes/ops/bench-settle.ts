/**
 * OPS's side of `bench settle` (src/sim/bench/settle.ts): payments made beforehand by real OPS
 * trusted apps to account holders without a TA, claimed by them in bulk (OPS Figure 9: the node
 * checks each payment's signature and its sender's certificate chain, records it against the
 * sender's report and credits the claimer). Many devices pay, so that no one device's lock decides;
 * their secure elements run in this process and in memory, since the thousands of commits made
 * ahead of the timed part are not what it measures. Each device is funded by a deposit and pays the
 * row's claimers round robin, syncing whenever it reaches the most payments a report holds. Each
 * submitter owns one claimer and sends that claimer's payments in requests as large as the route
 * takes, encoded and hashed before the clock starts: only the request signature is left per request.
 */
import { toBase64url } from '../../core/bytes.ts';
import { inBatches, type BenchNode, type BenchUser, type DeviceLimits, type PreparedBody, type SettleContext, type SettleSubmitter, type SettleWorkload, type SettleWorld } from '../../sim/bench/plugin.ts';
import { batchesFor } from './bench-claims.ts';
import { accountBalance, enrolOem, fundDevice, memoryDeviceClient, syncDevice, type BenchDevice } from './bench-setup.ts';
import { encodePayment, OPS_SCHEME, REPORT_ENTRIES_MAX } from './messages.ts';
import { CLAIMS_BULK_BODY_BYTES_MAX, CLAIMS_BULK_PAYMENTS_MAX } from './node.ts';

/** Where the claims go, and how many payments (and body bytes) one request may carry. */
const SETTLE_ROUTE = '/v1/ops/claims/bulk';
const SETTLE_PAYMENTS_MAX = CLAIMS_BULK_PAYMENTS_MAX;
const SETTLE_BODY_BYTES_MAX = CLAIMS_BULK_BODY_BYTES_MAX;
/** Each payment is one cent. */
const PAYMENT_MINOR = 1n;
/** A holding limit no bench device reaches (the node's default would refuse a deposit for tens of thousands of payments). */
const HOLDING_LIMIT_MINOR = 10n ** 15n;
/** Devices set up at once (each registers, certifies and deposits over the node's routes). */
const SETUP_CONCURRENCY = 8;
/** Payments made between two progress reports. */
const PROGRESS_EVERY = 16;

/** The answer of a bulk claim, as far as the bench reads it: how many payments it judged, credited and refused. */
interface ClaimAnswer {
  readonly payments: number;
  readonly credited: number;
  readonly refused: ReadonlyArray<{ readonly item: number; readonly code: string }>;
}

/** Sends one prepared bulk claim (`POST /claims/bulk`: one transaction, one transfer for what it credits) and checks that every payment in it was credited; answers how many were. */
async function claim(node: BenchNode, who: BenchUser, body: PreparedBody, count: number): Promise<number> {
  const response = await node.sendPrepared(who.signer, 'POST', SETTLE_ROUTE, body);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`bulk claim refused: ${response.status} ${text.slice(0, 500)}`);
  const answer = JSON.parse(text) as ClaimAnswer;
  if (answer.payments !== count || answer.credited !== count || answer.refused.length > 0) throw new Error(`bulk claim: ${answer.credited} of ${count} payments credited: ${text.slice(0, 500)}`);
  return answer.credited;
}

/** The world on one node: paying devices, claimers, and what each claimer was paid so far. */
async function openWorld(context: SettleContext): Promise<SettleWorld> {
  const { harness, node } = context;
  const oem = await enrolOem(node);
  const slots = Array.from({ length: context.devices }, (_, d) => d);
  // Payments go to the devices in turn across all rows, so none pays more than its share of the total.
  const perDevice = BigInt(Math.ceil(context.paymentsTotal / context.devices)) * PAYMENT_MINOR;
  const devices: BenchDevice[] = [];
  try {
    await inBatches(slots, SETUP_CONCURRENCY, async () => {
      const device = await memoryDeviceClient(harness, node, oem);
      devices.push(device);
      await fundDevice(node, device, node.amount(perDevice));
    });
  } catch (e) {
    await Promise.all(devices.map((d) => d.se.close()));
    throw e;
  }
  const claimers: BenchUser[] = [];
  for (let w = 0; w < context.submittersMax; w++) claimers.push(await node.registerUser());
  const claimed = new Map<BenchUser, bigint>();
  let nextDevice = 0;

  /** Device `device` makes `count` payments, to `receivers` in turn from `first`; answers each receiver's encoded payments. */
  async function pay(device: BenchDevice, count: number, receivers: readonly BenchUser[], first: number, made: (n: number) => void): Promise<string[][]> {
    const texts: string[][] = receivers.map(() => []);
    const status = await device.se.call('status', {});
    const between = Math.min(status.offlinePaymentsMax, REPORT_ENTRIES_MAX);
    let unsynced = status.unsyncedPayments;
    let unreported = 0;
    for (let k = 0; k < count; k++) {
      if (unsynced >= between) {
        await syncDevice(node, device);
        unsynced = 0;
      }
      const w = (first + k) % receivers.length;
      const payment = await device.se.call('pay', { amount: PAYMENT_MINOR, receiver: (receivers[w] as BenchUser).certificate });
      (texts[w] as string[]).push(toBase64url(encodePayment(payment)));
      unsynced++;
      if (++unreported === PROGRESS_EVERY) {
        made(unreported);
        unreported = 0;
      }
    }
    made(unreported);
    // Reported before they are claimed, as a payer that synced after paying would have.
    if (unsynced > 0) await syncDevice(node, device);
    return texts;
  }

  return {
    async prepare(row) {
      const receivers = claimers.slice(0, row.submitters);
      const counts = devices.map(() => 0);
      for (let k = 0; k < row.payments; k++) {
        const d = (nextDevice + k) % devices.length;
        counts[d] = (counts[d] ?? 0) + 1;
      }
      nextDevice = (nextDevice + row.payments) % devices.length;
      const made = await Promise.all(devices.map((device, d) => pay(device, counts[d] ?? 0, receivers, d, row.made)));
      return receivers.map((who, w): SettleSubmitter => {
        // Each submitter starts at another device, so that concurrent requests name other senders
        // (the node locks each sender of a request) rather than all queueing on the same ones.
        const start = Math.floor((w * devices.length) / receivers.length);
        const texts = devices.flatMap((_, j) => (made[(start + j) % devices.length] as string[][])[w] as string[]);
        const bodies = batchesFor(texts, SETTLE_BODY_BYTES_MAX, SETTLE_PAYMENTS_MAX).map((batch) => ({ count: batch.length, body: node.prepare({ payments: batch }) }));
        claimed.set(who, (claimed.get(who) ?? 0n) + BigInt(texts.length) * PAYMENT_MINOR);
        return {
          requests: bodies.length,
          submit: (i) => {
            const request = bodies[i];
            if (request === undefined) throw new RangeError(`request ${i} of ${bodies.length}`);
            return claim(node, who, request.body, request.count);
          },
        };
      });
    },
    async verify() {
      for (const [who, amount] of claimed) {
        const held = await accountBalance(node, who);
        if (held !== node.amount(amount)) throw new Error(`claimer ${who.keyId} holds ${held}, was paid ${node.amount(amount)}`);
      }
    },
    async close() {
      await Promise.all(devices.map((d) => d.se.close()));
    },
  };
}

/** OPS payments claimed in bulk, for `npm run bench -- settle`. */
export const opsSettle: SettleWorkload = {
  name: 'claims',
  verificationsPerPayment: 1,
  schemes: [OPS_SCHEME],
  sharded: true,
  describes: `OPS payments made beforehand by trusted apps to account holders without a TA, claimed in bulk (${SETTLE_ROUTE}, up to ${SETTLE_PAYMENTS_MAX} a request); the node checks each payment's signature (its sender's certificate chain once per node), records it and credits the claimer`,
  deviceLimits: (defaults: DeviceLimits): DeviceLimits => ({ ...defaults, holdingLimitMinor: HOLDING_LIMIT_MINOR, offlinePaymentsMax: REPORT_ENTRIES_MAX }),
  open: openWorld,
};
