// Loaded into each test file's process when $TALLY_TEST_TIMES is set (run-tests.mjs): at its exit,
// appends the CPU the file used, its own and its finished child processes' (the `tally` nodes and
// commands it started and waited for), to the file $TALLY_TEST_CPU_LINES names, one JSON line.
// Linux only (/proc/self/stat); elsewhere it records nothing.
import { appendFileSync, readFileSync } from 'node:fs';

const out = process.env.TALLY_TEST_CPU_LINES;
const file = process.argv[1];
if (out !== undefined && out !== '' && file !== undefined && file.endsWith('.test.ts')) {
  process.on('exit', () => {
    try {
      // Fields after the command's name: utime, stime, cutime, cstime are the 14th to 17th of the line.
      const stat = readFileSync('/proc/self/stat', 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = (i) => Number(fields[i - 3]);
      const perSecond = 100;
      const own = (ticks(14) + ticks(15)) / perSecond;
      const children = (ticks(16) + ticks(17)) / perSecond;
      appendFileSync(out, `${JSON.stringify({ file, cpuMs: Math.round((own + children) * 1000), childrenMs: Math.round(children * 1000) })}\n`);
    } catch {
      // Not Linux, or /proc not mounted: no figure.
    }
  });
}
