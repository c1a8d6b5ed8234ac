/**
 * CPU time for benchmarks: this process's (process.cpuUsage) and that of other processes, such as
 * isolated secure elements, read from /proc/PID/stat (Linux; 0 where /proc cannot tell).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/PID/stat's times (sysconf CLK_TCK; 100 where getconf is missing). */
const CLOCK_TICKS = (() => {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU of process `pid`, ms (fields 14 and 15 of /proc/PID/stat), or 0 where /proc cannot tell. */
export function processCpuMs(pid: number): number {
  return statCpuMs(pid, false);
}

/**
 * User + system CPU of process `pid`, ms, and with `reaped` that of its children that exited and
 * were waited for (fields 16 and 17), or 0 where /proc cannot tell.
 */
function statCpuMs(pid: number, reaped: boolean): number {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return 0;
  }
  // The command name (field 2) may hold spaces: the fields after it start past its closing parenthesis.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const times = (reaped ? [11, 12, 13, 14] : [11, 12]).map((k) => Number(fields[k]));
  return times.every(Number.isFinite) ? (times.reduce((s, t) => s + t, 0) * 1000) / CLOCK_TICKS : 0;
}

/** CPU time so far, ms: this process's, and the sum over `pids` (other processes). */
export function cpuNow(pids: readonly number[]): { bench: number; elements: number } {
  const own = process.cpuUsage();
  return { bench: (own.user + own.system) / 1000, elements: pids.reduce((s, pid) => s + processCpuMs(pid), 0) };
}

/** The process id of a secure element that runs in a process of its own (an isolated host), else undefined. */
export function pidOf(se: object): number | undefined {
  return 'pid' in se && typeof se.pid === 'number' ? se.pid : undefined;
}

/**
 * User + system CPU of every PostgreSQL process on this machine, ms: the sum over /proc/PID/stat of
 * the processes named `postgres` (the postmaster, its backends and workers), each with its exited
 * children's (a backend that closes is reaped by the postmaster, whose children's time then holds
 * it, so the sum does not drop when a pool closes an idle connection), or 0 where /proc cannot tell.
 * Another client of the same server adds to it.
 */
export function postgresCpuMs(): number {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return 0;
  }
  let total = 0;
  for (const entry of entries) {
    if (!/^[0-9]+$/.test(entry)) continue;
    let name: string;
    try {
      name = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
    } catch {
      continue; // gone since the listing
    }
    if (name === 'postgres') total += statCpuMs(Number(entry), true);
  }
  return total;
}
