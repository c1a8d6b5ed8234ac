/**
 * Runs `bench chain` until the scheme's index.ts names it (then `npm run bench -- chain` does the
 * same): `npx tsx scripts/bench-chain.ts [--quick] [--json]`.
 */
import { parseArgs } from 'node:util';
import { chainBench } from '../src/schemes/chain/bench.ts';
import { runBench } from '../src/sim/bench/harness.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, json: { type: 'boolean' } } });
const output = await runBench(chainBench, { quick: values.quick === true, env: process.env, progress: (line) => process.stderr.write(`bench chain: ${line}\n`) });
process.stdout.write(values.json === true ? `${JSON.stringify(output.json, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n` : `${output.text}\n`);
for (const warning of output.warnings) process.stderr.write(`bench chain: ${warning}\n`);
