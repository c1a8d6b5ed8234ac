/**
 * A progress bar on stderr for a long step of a benchmark: redrawn in place on a terminal, and a
 * line at every tenth where stderr is a file or a pipe (a log stays short).
 */

/** A bar for one step. */
export interface ProgressBar {
  /** `n` more items done. */
  advance(n: number): void;
  /** The step is over: the bar is finished (with the time it took). */
  done(): void;
}

/** Width of the bar, characters. */
const BAR_CHARS = 30;
/** Least time between two redraws on a terminal. */
const REDRAW_MS = 100;

/** Where a bar draws: a terminal (redrawn in place) or a line writer. */
export interface ProgressTarget {
  readonly isTTY?: boolean | undefined;
  write(text: string): unknown;
}

/** A bar of `total` items labelled `label`, drawn on `target` (lines through `line` when it is no terminal). */
export function progressBar(label: string, total: number, target: ProgressTarget, line: (text: string) => void): ProgressBar {
  const started = performance.now();
  let count = 0;
  let drawnAt = 0;
  let tenth = 0;
  const draw = () => {
    const share = total > 0 ? Math.min(1, count / total) : 1;
    const filled = Math.round(share * BAR_CHARS);
    target.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(BAR_CHARS - filled)}] ${count}/${total}`);
  };
  return {
    advance(n) {
      count += n;
      const now = performance.now();
      if (target.isTTY === true) {
        if (now - drawnAt >= REDRAW_MS) {
          drawnAt = now;
          draw();
        }
        return;
      }
      const reached = total > 0 ? Math.floor((10 * Math.min(count, total)) / total) : 10;
      if (reached > tenth && reached < 10) {
        tenth = reached;
        line(`${label}: ${tenth * 10}% (${count}/${total})`);
      }
    },
    done() {
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      if (target.isTTY === true) {
        draw();
        target.write(` ${seconds} s\n`);
      } else {
        line(`${label}: ${count}/${total} in ${seconds} s`);
      }
    },
  };
}
