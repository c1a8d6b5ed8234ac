/**
 * A process that contends for a wallet lock, for lock.test.ts: started with the wallet folder as
 * its argument, it waits for a line on stdin, tries to take the lock once, prints `won` or `busy`,
 * and, having won, holds the lock until its stdin ends.
 */
import { createInterface } from 'node:readline';
import { isTallyError } from '../core/errors.ts';
import { lockWallet, walletPaths } from './home.ts';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: lock-contender.ts WALLET_DIR');
const lines = createInterface({ input: process.stdin });
process.stdout.write('ready\n');
lines.once('line', () => {
  void (async () => {
    try {
      const unlock = await lockWallet(walletPaths(dir), 'contended');
      process.stdout.write('won\n');
      lines.once('close', () => void unlock());
    } catch (e) {
      process.stdout.write(isTallyError(e, 'WALLET_BUSY') ? 'busy\n' : `error ${String(e)}\n`);
      lines.close();
    }
  })();
});
