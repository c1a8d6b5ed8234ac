import { SCHEMES } from '../src/schemes/index.ts';
import { makeHarness } from '../src/sim/bench/harness.ts';
import { benchSettle, formatSettleReport, settleSources } from '../src/sim/bench/settle.ts';
const { harness, close } = makeHarness({ quick: true, env: process.env as Record<string, string>, progress: (l) => process.stderr.write(l + '\n') });
const report = await benchSettle(harness, settleSources(SCHEMES), { devices: 2, payments: Number(process.argv[2] ?? 3000), submitters: [4], warmup: 10, floorMs: 200, postgres: true, only: ['ops/sync'] }).finally(close);
console.log(formatSettleReport(report));
