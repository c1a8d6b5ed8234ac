/**
 * For the chain tests (not exported): a process that starts the embedded anvil of the data folder
 * given as its argument, prints `{pid, rpcUrl}` as one JSON line, and runs until it is killed.
 */
import { startAnvil } from './anvil.ts';

const dataDir = process.argv[2];
if (dataDir === undefined) throw new Error('usage: test-anvil-child.ts DATA_DIR');
const anvil = await startAnvil({ dataDir });
process.stdout.write(`${JSON.stringify({ pid: anvil.pid, rpcUrl: anvil.rpcUrl })}\n`);
// Something to keep this process alive: the anvil and its pipe do not.
setInterval(() => {}, 60_000);
