/** `tally sim`: a seeded, deterministic simulation of a scheme's population with faults and attacks. */
import type { Scheme } from '../../schemes/index.ts';
import { SIM_FLAGS, SIM_OPTION_HELP, simParameters } from '../../sim/sim/options.ts';
import { JSON_OPTION, parse, UsageError, type Verb } from '../plugin.ts';

/** The verb over the registry's schemes that have a simulation. */
export function simVerb(schemes: readonly Scheme[]): Verb {
  const simulated = schemes.filter((s) => s.sim !== undefined).map((s) => s.name);
  return {
    usage: 'tally sim --scheme NAME|all --seed N [--devices D] [--payments P] [--attackers F] [--faults F] [--check-every K] [--quick] [--svg FILE] [--json]',
    summary:
      'Simulates a population paying offline on the real node (in memory) and real secure elements, with a simulated clock and one seeded random source: secure elements crash at commit points, messages are dropped, duplicated and delayed, syncs are cut, the node restarts, and attackers clone, roll back, replay and forge. The invariants are checked after every step; a violation stops the run, prints the command that replays it and exits 1. The same seed gives the same report, timings aside.',
    options: [
      ['--scheme NAME|all', `the scheme to simulate, or all of them side by side (simulated now: ${simulated.join(', ') || 'none'})`],
      ['--seed N', 'the seed of every choice of the run (default 1)'],
      ...SIM_OPTION_HELP,
      ['--svg FILE', 'also write the figure of money lost and detections over simulated time'],
      JSON_OPTION,
    ],
    example: `tally sim --scheme ${simulated[0] ?? 'all'} --seed 7 --quick`,
    async run(argv, io) {
      const { values } = parse(argv, SIM_FLAGS, []);
      // The simulator (the node, PGlite, the hosts) loads only when this verb runs.
      const [{ runSim }, { reportFigure, reportTable }, { closeSimDatabases }] = await Promise.all([import('../../sim/sim/run.ts'), import('../../sim/sim/report.ts'), import('../../sim/sim/world.ts')]);
      const name = values.scheme;
      if (name === undefined) throw new UsageError(`--scheme is required: one of ${simulated.join(', ')}, or all`);
      const chosen = name === 'all' ? schemes.filter((s) => s.sim !== undefined) : schemes.filter((s) => s.name === name);
      if (chosen.length === 0) throw new UsageError(`no scheme ${JSON.stringify(name)}: one of ${schemes.map((s) => s.name).join(', ')}, or all`);
      const missing = chosen.find((s) => s.sim === undefined);
      if (missing !== undefined) throw new UsageError(`scheme ${missing.name} has no simulation yet (simulated now: ${simulated.join(', ')})`);
      let params;
      try {
        params = simParameters(values);
      } catch (e) {
        throw new UsageError(e instanceof Error ? e.message : String(e));
      }
      const reports = [];
      try {
        for (const scheme of chosen) {
          io.progress(`${scheme.name}: seed ${params.seed}, ${params.devices} devices, ${params.payments} payments`);
          let shown = 0;
          reports.push(
            await runSim(scheme, params, (_step, payments) => {
              // A line at every tenth of the payments (stderr; silent with --json).
              const tenth = Math.floor((payments * 10) / params.payments);
              if (tenth > shown) {
                shown = tenth;
                io.progress(`${scheme.name}: ${payments}/${params.payments} payments`);
              }
            }),
          );
        }
      } finally {
        await closeSimDatabases();
      }
      if (values.svg !== undefined) {
        const { writeFile } = await import('node:fs/promises');
        await writeFile(values.svg, reportFigure(reports));
      }
      const failed = reports.some((r) => !r.ok);
      return { text: reportTable(reports), json: { currency: 'EUR', ok: !failed, reports }, exitCode: failed ? 1 : 0 };
    },
  };
}
