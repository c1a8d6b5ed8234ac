/**
 * Collect against the length of the payee's payment log. Collect keeps every payment it takes in
 * T.inPaymentLog (OPS §4, Figure 4) until its sender's certificate ends; the secure element host
 * keeps that log in append-only records, so a Collect should cost the same with an empty log and
 * with thousands of entries. Times Collect (the call to the payee's isolated TA, its PayVerify and
 * its commit) with the log empty, then fills it with real payments and times it again.
 */
import { summarise, type BenchHarness, type BenchNode, type Latency } from '../../sim/bench/plugin.ts';
import { deviceClient, enrolOem, fundDevice, syncDevice, type BenchDevice } from './bench-setup.ts';
import { opsNodePart } from './node.ts';
import { REPORT_ENTRIES_MAX } from './messages.ts';

/** Collect timed at one length of the payee's log. */
export interface CollectLogRow {
  /** Entries in T.inPaymentLog before the first timed Collect. */
  readonly logEntries: number;
  readonly collect: Latency;
  /** Size of the payee's sealed head after these Collects, in bytes (what every command reseals). */
  readonly sealedBytes: number;
}

/** How much to measure. */
export interface CollectLogOptions {
  /** Entries in the payee's log for the second row. */
  readonly entries: number;
  /** Collects timed per row. */
  readonly samples: number;
  readonly deviceLimits: NonNullable<Parameters<BenchHarness['openNode']>[0]['deviceLimits']>;
  readonly dir: string;
}

/** Each payment: one minor unit, so thousands fit under the holding limit. */
const AMOUNT = 1n;

async function syncIfFull(node: BenchNode, payer: BenchDevice, payee: BenchDevice): Promise<void> {
  if ((await payer.se.call('status', {})).unsyncedPayments >= Math.min(node.deviceLimits.offlinePaymentsMax, REPORT_ENTRIES_MAX)) await syncDevice(node, payer);
  if ((await payee.se.call('status', {})).unsyncedCollects >= REPORT_ENTRIES_MAX) await syncDevice(node, payee);
}

/** Pays one payment and collects it; answers Collect's time in ms. */
async function payAndCollect(payer: BenchDevice, payee: BenchDevice): Promise<number> {
  const payment = await payer.se.call('pay', { amount: AMOUNT, receiver: payee.taCertificate });
  const start = performance.now();
  await payee.se.call('collect', { payment });
  return performance.now() - start;
}

/** Collect with an empty payee log and with `entries` in it (isolated secure elements, file counters, a real node). */
export async function measureCollectLog(harness: BenchHarness, options: CollectLogOptions): Promise<CollectLogRow[]> {
  const node = await harness.openNode({ schemes: [opsNodePart], database: 'pglite', deviceLimits: options.deviceLimits });
  const devices: BenchDevice[] = [];
  try {
    const oem = await enrolOem(node);
    const payer = await deviceClient(harness, node, oem, `${options.dir}/payer`);
    devices.push(payer);
    const payee = await deviceClient(harness, node, oem, `${options.dir}/payee`);
    devices.push(payee);
    const total = BigInt(options.entries + 2 * options.samples);
    await fundDevice(node, payer, node.amount(total * AMOUNT));
    await syncDevice(node, payer);
    await syncDevice(node, payee);
    const sealed = `${options.dir}/payee/se/ops.sealed`;

    const row = async (logEntries: number): Promise<CollectLogRow> => {
      const samples: number[] = [];
      for (let k = 0; k < options.samples; k++) {
        await syncIfFull(node, payer, payee);
        samples.push(await payAndCollect(payer, payee));
      }
      return { logEntries, collect: summarise(samples), sealedBytes: await harness.fileBytes(sealed) };
    };
    let collected = 0;
    harness.progress(`collect log: ${options.samples} collects with the payee's log empty`);
    const empty = await row(0);
    collected += options.samples;
    harness.progress(`collect log: filling the payee's log to ${options.entries} entries with real payments`);
    while (collected < options.entries) {
      await syncIfFull(node, payer, payee);
      await payAndCollect(payer, payee);
      collected++;
      if (collected % 1000 === 0) harness.progress(`collect log: ${collected} of ${options.entries}`);
    }
    harness.progress(`collect log: ${options.samples} collects with ${collected} entries in the payee's log`);
    const full = await row(collected);
    return [empty, full];
  } finally {
    for (const device of devices) await device.se.close();
    await node.stop();
  }
}
