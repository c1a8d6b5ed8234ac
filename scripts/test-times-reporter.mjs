// A node:test reporter that records the time of each file's top-level tests, one JSON line each,
// in the file $TALLY_TEST_TIMES_LINES names, as they end (the run may be ended by
// --test-force-exit before a reporter's last words). run-tests.mjs sums them per file.
import { appendFileSync } from 'node:fs';

export default async function* testTimes(source) {
  const out = process.env.TALLY_TEST_TIMES_LINES;
  for await (const event of source) {
    if ((event.type !== 'test:pass' && event.type !== 'test:fail') || event.data.nesting !== 0 || out === undefined) continue;
    appendFileSync(out, `${JSON.stringify({ file: event.data.file ?? '(unknown)', ms: event.data.details?.duration_ms ?? 0, failed: event.type === 'test:fail' })}\n`);
  }
  yield '';
}
