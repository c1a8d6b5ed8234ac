/**
 * OPS's second side of `bench settle` (src/sim/bench/settle.ts): payments between trusted apps,
 * collected offline by the payee's TA, settled by the two devices' syncs (OPS §4, Figure 8's Sync):
 * the payer's signed report lists what it paid, the payee's what it collected, and the node
 * records each payment under its (sender, index), matches the two sides and reconciles each
 * device's balance. The node checks one signature per report, not per payment, so a report of
 * REPORT_ENTRIES_MAX payments costs one verification; a payment is in two reports.
 *
 * Each row needs one report of at most REPORT_ENTRIES_MAX entries per device and side, so the
 * world has as many payers and payees as the largest row needs; every payment of a row goes from
 * one payer to one payee, spread so that no device pays or collects more than a report holds. The
 * trusted apps run in this process and in memory (the commits made ahead of the timed part are not
 * what it measures). The reports are taken and encoded before the clock starts; the node's acks are
 * taken by the devices before the next row's payments, untimed.
 */
import { fromBase64url, toBase64url } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { inBatches, type BenchNode, type DeviceLimits, type PreparedBody, type SettleContext, type SettleSubmitter, type SettleWorkload, type SettleWorld } from '../../sim/bench/plugin.ts';
import { enrolOem, fundDevice, memoryDeviceClient, type BenchDevice } from './bench-setup.ts';
import { OPS_SCHEME, REPORT_ENTRIES_MAX, syncAckCodec } from './messages.ts';

const SYNC_ROUTE = '/v1/ops/sync';
/** Each payment is one cent. */
const PAYMENT_MINOR = 1n;
/** A holding limit no bench device reaches. */
const HOLDING_LIMIT_MINOR = 10n ** 15n;
/** Devices set up at once. */
const SETUP_CONCURRENCY = 8;
/** Payments made between two progress reports. */
const PROGRESS_EVERY = 16;

/** A report encoded before the clock starts, and what the node's answer must be for it. */
interface PreparedReport {
  readonly device: BenchDevice;
  readonly body: PreparedBody;
  /** Payments this report settles for the row: its collected entries (a payer's report counts none, its payee's counts them). */
  readonly settles: number;
}

/** The node's answer to a sync, as the bench reads it. */
interface SyncAnswer {
  readonly ack: string;
  readonly crl: string;
  readonly fraud: readonly unknown[];
}

/** Devices that each register, certify and (for payers) deposit `fund` through the node's routes. */
async function devicesFor(context: SettleContext, count: number, fund: bigint | null): Promise<BenchDevice[]> {
  const { harness, node } = context;
  const oem = await enrolOem(node);
  const made: BenchDevice[] = [];
  try {
    await inBatches(
      Array.from({ length: count }, (_, k) => k),
      SETUP_CONCURRENCY,
      async () => {
        const device = await memoryDeviceClient(harness, node, oem);
        made.push(device);
        if (fund !== null) await fundDevice(node, device, node.amount(fund));
      },
    );
  } catch (e) {
    await Promise.all(made.map((d) => d.se.close()));
    throw e;
  }
  return made;
}

/** Sends one prepared sync and checks that the node found nothing wrong; answers the ack for the device to take later. */
async function sync(node: BenchNode, report: PreparedReport): Promise<SyncAnswer> {
  const response = await node.sendPrepared(report.device.signer, 'POST', SYNC_ROUTE, report.body);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`sync of ${report.device.device} refused: ${response.status} ${text.slice(0, 500)}`);
  const answer = JSON.parse(text) as SyncAnswer;
  if (answer.fraud.length > 0) throw new Error(`sync of ${report.device.device} found fraud: ${JSON.stringify(answer.fraud).slice(0, 500)}`);
  return answer;
}

async function openWorld(context: SettleContext): Promise<SettleWorld> {
  const { node } = context;
  const side = Math.max(1, Math.ceil(context.paymentsPerRow / REPORT_ENTRIES_MAX));
  // A payer pays at most its share of a row rounded up, and up to a whole report in a smaller row
  // (the warm-up) that uses fewer payers: its share of the total and two reports' worth covers both.
  const perPayer = BigInt(Math.ceil(context.paymentsTotal / side) + 2 * REPORT_ENTRIES_MAX) * PAYMENT_MINOR;
  const payers = await devicesFor(context, side, perPayer);
  let payees: BenchDevice[] = [];
  try {
    payees = await devicesFor(context, side, null);
  } catch (e) {
    await Promise.all(payers.map((d) => d.se.close()));
    throw e;
  }
  const paid = new Map<BenchDevice, bigint>(payers.map((d) => [d, 0n]));
  const collected = new Map<BenchDevice, bigint>(payees.map((d) => [d, 0n]));
  /** Acks the node gave in the last row, taken by their devices before the next row pays. */
  const acks: Array<{ device: BenchDevice; answer: SyncAnswer }> = [];

  async function takeAcks(): Promise<void> {
    for (const { device, answer } of acks.splice(0)) {
      await device.se.call('syncAck', { ack: syncAckCodec.decode(decodeCbor(fromBase64url(answer.ack)), 'ack'), crl: fromBase64url(answer.crl) });
    }
  }

  async function report(device: BenchDevice, settles: number): Promise<PreparedReport> {
    const r = await device.se.call('report', {});
    return { device, settles, body: node.prepare({ device: device.device, report: toBase64url(encodeCbor({ body: { ...r.body }, signature: r.signature })) }) };
  }

  return {
    async prepare(row) {
      await takeAcks();
      if (row.payments > side * REPORT_ENTRIES_MAX) throw new RangeError(`a row of ${row.payments} payments needs more than the ${side} devices a side made`);
      const used = Math.max(1, Math.ceil(row.payments / REPORT_ENTRIES_MAX));
      const collects = new Map<BenchDevice, number>();
      let unreported = 0;
      for (let k = 0; k < row.payments; k++) {
        // Round r pairs payer p with payee p + r: every round a permutation, so no payee collects more than a report holds.
        const p = k % used;
        const payer = payers[p] as BenchDevice;
        const payee = payees[(p + Math.floor(k / used)) % used] as BenchDevice;
        const payment = await payer.se.call('pay', { amount: PAYMENT_MINOR, receiver: payee.taCertificate });
        await payee.se.call('collect', { payment });
        paid.set(payer, (paid.get(payer) ?? 0n) + PAYMENT_MINOR);
        collected.set(payee, (collected.get(payee) ?? 0n) + PAYMENT_MINOR);
        collects.set(payee, (collects.get(payee) ?? 0) + 1);
        if (++unreported === PROGRESS_EVERY) {
          row.made(unreported);
          unreported = 0;
        }
      }
      row.made(unreported);
      // A payer's report and a payee's in turn, so that each side meets the other's half the time.
      const reports: PreparedReport[] = [];
      for (let d = 0; d < used; d++) {
        const payee = payees[d] as BenchDevice;
        reports.push(await report(payers[d] as BenchDevice, 0), await report(payee, collects.get(payee) ?? 0));
      }
      return Array.from({ length: row.submitters }, (_, w): SettleSubmitter => {
        const mine = reports.filter((_, k) => k % row.submitters === w);
        return {
          requests: mine.length,
          async submit(i) {
            const r = mine[i];
            if (r === undefined) throw new RangeError(`request ${i} of ${mine.length}`);
            acks.push({ device: r.device, answer: await sync(node, r) });
            return r.settles;
          },
        };
      });
    },
    async verify() {
      await takeAcks();
      // Every device's balance at the node is what it was funded with, less what it paid, plus what it collected.
      for (const [device, amount] of [...paid.entries(), ...collected.entries()]) {
        const view = (await node.call('operator', 'GET', `/v1/ops/devices/${device.device}`)) as { reportedBalance: string | null; fraud: unknown[] };
        const funded = paid.has(device) ? perPayer : 0n;
        const expected = node.amount(paid.has(device) ? funded - amount : amount);
        if (view.reportedBalance !== expected) throw new Error(`device ${device.device} reported ${view.reportedBalance}, expected ${expected}`);
        if (view.fraud.length > 0) throw new Error(`device ${device.device} has fraud cases: ${JSON.stringify(view.fraud)}`);
      }
    },
    async close() {
      await Promise.all([...payers, ...payees].map((d) => d.se.close()));
    },
  };
}

/** OPS payments between trusted apps settled by the two devices' syncs, for `npm run bench -- settle`. */
export const opsSyncSettle: SettleWorkload = {
  name: 'sync',
  // One report signature on each side, each report carrying up to REPORT_ENTRIES_MAX payments.
  verificationsPerPayment: 2 / REPORT_ENTRIES_MAX,
  schemes: [OPS_SCHEME],
  describes: `OPS payments between trusted apps (collected offline by the payee's TA), settled by the payer's and the payee's syncs (${SYNC_ROUTE}, one signed report of up to ${REPORT_ENTRIES_MAX} entries per device and side); the node checks each report's signature, records every payment under its sender and index, matches the two sides and reconciles each device`,
  deviceLimits: (defaults: DeviceLimits): DeviceLimits => ({ ...defaults, holdingLimitMinor: HOLDING_LIMIT_MINOR, offlinePaymentsMax: REPORT_ENTRIES_MAX }),
  open: openWorld,
};
