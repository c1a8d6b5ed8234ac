/**
 * Collect against the length of the payee's payment log. Collect keeps every payment it takes in
 * T.inPaymentLog (OPS §4, Figure 4) until its sender's certificate ends; the secure element host
 * keeps that log in append-only records, so a Collect should cost the same with an empty log and
 * with thousands of entries. Times Collect (the call to the payee's isolated TA, its PayVerify and
 * its commit) with the log empty, then fills it with real payments and times it again.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { formatMinor } from '../../issuer/http/json.ts';
import type { DeviceLimits } from '../../issuer/http/context.ts';
import { REPORT_ENTRIES_MAX } from '../../schemes/ops/messages.ts';
import { BENCH_CURRENCY, deviceClient, enrolOem, fundDevice, openBenchNode, syncDevice, type BenchDevice, type BenchNode } from './ops-setup.ts';
import { summarise, type Latency } from './stats.ts';

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
  readonly deviceLimits: DeviceLimits;
  readonly dir: string;
  readonly progress: (line: string) => void;
}

/** Each payment: one minor unit, so thousands fit under the holding limit. */
const AMOUNT = 1n;

async function syncIfFull(node: BenchNode, payer: BenchDevice, payee: BenchDevice, limits: DeviceLimits): Promise<void> {
  if ((await payer.se.call('status', {})).unsyncedPayments >= Math.min(limits.offlinePaymentsMax, REPORT_ENTRIES_MAX)) await syncDevice(node, payer);
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
export async function measureCollectLog(options: CollectLogOptions): Promise<CollectLogRow[]> {
  const node = await openBenchNode({ database: 'pglite', deviceLimits: options.deviceLimits });
  const devices: BenchDevice[] = [];
  try {
    const oem = await enrolOem(node);
    const payer = await deviceClient(node, oem, join(options.dir, 'payer'));
    devices.push(payer);
    const payee = await deviceClient(node, oem, join(options.dir, 'payee'));
    devices.push(payee);
    const total = BigInt(options.entries + 2 * options.samples);
    await fundDevice(node, payer, formatMinor(BENCH_CURRENCY, total * AMOUNT));
    await syncDevice(node, payer);
    await syncDevice(node, payee);
    const sealed = join(options.dir, 'payee', 'se', 'ops.sealed');

    const row = async (logEntries: number): Promise<CollectLogRow> => {
      const samples: number[] = [];
      for (let k = 0; k < options.samples; k++) {
        await syncIfFull(node, payer, payee, options.deviceLimits);
        samples.push(await payAndCollect(payer, payee));
      }
      return { logEntries, collect: summarise(samples), sealedBytes: (await stat(sealed)).size };
    };
    let collected = 0;
    options.progress(`collect log: ${options.samples} collects with the payee's log empty`);
    const empty = await row(0);
    collected += options.samples;
    options.progress(`collect log: filling the payee's log to ${options.entries} entries with real payments`);
    while (collected < options.entries) {
      await syncIfFull(node, payer, payee, options.deviceLimits);
      await payAndCollect(payer, payee);
      collected++;
      if (collected % 1000 === 0) options.progress(`collect log: ${collected} of ${options.entries}`);
    }
    options.progress(`collect log: ${options.samples} collects with ${collected} entries in the payee's log`);
    const full = await row(collected);
    return [empty, full];
  } finally {
    for (const device of devices) await device.se.close();
    await node.stop();
  }
}
