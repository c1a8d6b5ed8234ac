/**
 * A child process for the book's crash test: opens wallet `alice` of the home given and runs pay
 * steps as the shell does (the journal line, then the sent entry, the line removed and the history
 * line in one commit), until it is killed from outside.
 */
import { openFolderOf } from './folder.ts';
import { payStepOf, TEST_FORMAT } from './book-fixtures.ts';

const [home] = process.argv.slice(2);
if (home === undefined) throw new Error('usage: book-crash-child.ts HOME');
const { book } = await openFolderOf(home, 'alice', 'purse', TEST_FORMAT);
let n = book.snapshot().sent.length + book.state.pending.length;
process.stdout.write('ready\n');
for (;;) {
  const { step, entry, line } = payStepOf(n);
  book.commit({ put: [step] });
  book.commit({ drop: [step.id], sent: [entry], history: [line] });
  n++;
}
