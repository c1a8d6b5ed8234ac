import { SCHEMES } from '../src/schemes/index.ts';
import { makeHarness } from '../src/sim/bench/harness.ts';
import { benchSettle, formatSettleReport, settleSources } from '../src/sim/bench/settle.ts';
const only = (process.argv[2] ?? 'dotm').split(',');
const payments = Number(process.argv[3] ?? 100);
const { harness, close } = makeHarness({ quick: true, env: process.env as Record<string,string>, progress: (l) => process.stderr.write(l + '\n') });
const report = await benchSettle(harness, settleSources(SCHEMES), { devices: 2, payments, submitters: [1, 2], warmup: 10, floorMs: 200, postgres: process.env.PG === '1', only }).finally(close);
console.log(formatSettleReport(report));
