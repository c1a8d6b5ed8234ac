/**
 * A child process for the store's crash tests: `mid PATH` starts a step and kills itself with
 * SIGKILL halfway through it; `loop PATH` commits steps until it is killed from outside. Each step
 * writes an inbox entry, a sent entry and a history line, so a test can check they go together.
 */
import { WalletStore } from './store.ts';
import { inboxEntry, sentEntry } from './test-fixtures.ts';

const [mode, path] = process.argv.slice(2);
if (path === undefined) throw new Error('usage: crash-child.ts mid|loop PATH');
const store = WalletStore.open(path);
let n = store.counts().inbox;
if (mode === 'mid') {
  store.step((tx) => {
    tx.putInbox(inboxEntry(n));
    tx.putSent(sentEntry(n));
    process.kill(process.pid, 'SIGKILL');
    tx.history({ at: Date.now(), kind: 'step', detail: String(n) });
  });
} else {
  process.stdout.write('ready\n');
  for (;;) {
    store.step((tx) => {
      tx.putInbox(inboxEntry(n));
      tx.putSent(sentEntry(n));
      tx.history({ at: Date.now(), kind: 'step', detail: String(n) });
    });
    n++;
  }
}
