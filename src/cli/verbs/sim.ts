/** `tally sim`: a seeded, deterministic simulation of a scheme's population with faults and attacks. */
import type { Scheme } from '../../schemes/index.ts';
import { SIM_FLAGS, SIM_OPTION_HELP, simParameters } from '../../sim/sim/options.ts';
import { JSON_OPTION, parse, UsageError, type Verb } from '../plugin.ts';

/** The verb over the registry's schemes that have a simulation. */
export function simVerb(schemes: readonly Scheme[]): Verb {
  const simulated = schemes.filter((s) => s.sim !== undefined).map((s) => s.name);
  return {
    usage: 'tally sim --scheme NAME|NAME,NAME,...|all --seed N [--devices D] [--payments P] [--attackers F] [--faults F] [--check-every K] [--quick] [--svg FILE] [--json]',
    summary:
      'Simulates a population paying offline on the real node (in memory) and real secure elements, with a simulated clock and one seeded random source: secure elements crash at commit points, messages are dropped, duplicated and delayed, syncs are cut, the node restarts, and attackers clone, roll back, replay and forge. The invariants are checked after every step; a violation stops the run, prints the command that replays it and exits 1. The same seed gives the same report, timings aside. Several schemes joined by commas make one mixed population: one node and ledger serving them all, one clock and one seed, their steps interleaved in an order the seed draws, each scheme with D holders making P payments among themselves, and the whole node audited across every scheme\'s float.',
    options: [
      ['--scheme NAME|A,B,...|all', `the scheme to simulate, all of them side by side (each on its own node), or several joined by commas (${simulated.slice(0, 3).join(',')}) as one mixed population on one node (simulated now: ${simulated.join(', ') || 'none'})`],
      ['--seed N', 'the seed of every choice of the run (default 1)'],
      ...SIM_OPTION_HELP,
      ['--svg FILE', 'also write the figure of money lost and detections over simulated time'],
      JSON_OPTION,
    ],
    example: `tally sim --scheme ${simulated[0] ?? 'all'} --seed 7 --quick`,
    async run(argv, io) {
      const { values } = parse(argv, SIM_FLAGS, []);
      // The simulator (the node, PGlite, the hosts) loads only when this verb runs.
      const [{ runSim }, { mixTable, reportFigure, reportTable }, { closeSimDatabases }] = await Promise.all([import('../../sim/sim/run.ts'), import('../../sim/sim/report.ts'), import('../../sim/sim/world.ts')]);
      const name = values.scheme;
      if (name === undefined) throw new UsageError(`--scheme is required: one of ${simulated.join(', ')}, several joined by commas, or all`);
      const names = name === 'all' ? simulated : name.split(',');
      const chosen = names.map((n) => schemes.find((s) => s.name === n));
      const unknown = names.find((_n, k) => chosen[k] === undefined);
      if (unknown !== undefined) throw new UsageError(`no scheme ${JSON.stringify(unknown)}: one of ${schemes.map((s) => s.name).join(', ')}, several joined by commas, or all`);
      const found = chosen.filter((s): s is Scheme => s !== undefined);
      const missing = found.find((s) => s.sim === undefined);
      if (missing !== undefined) throw new UsageError(`scheme ${missing.name} has no simulation yet (simulated now: ${simulated.join(', ')})`);
      if (new Set(names).size !== names.length) throw new UsageError(`--scheme names each scheme once, got ${name}`);
      let params;
      try {
        params = simParameters(values);
      } catch (e) {
        throw new UsageError(e instanceof Error ? e.message : String(e));
      }
      if (name !== 'all' && found.length > 1) {
        // One mixed population on one node.
        const { runMix } = await import('../../sim/sim/mix.ts');
        io.progress(`${name}: seed ${params.seed}, ${params.devices} devices and ${params.payments} payments per scheme, one node`);
        const wanted = params.payments * found.length;
        let shown = 0;
        let report;
        try {
          report = await runMix(found, params, (_step, payments) => {
            const tenth = Math.floor((payments * 10) / wanted);
            if (tenth > shown) {
              shown = tenth;
              io.progress(`${name}: ${payments}/${wanted} payments`);
            }
          });
        } finally {
          await closeSimDatabases();
        }
        if (values.svg !== undefined) {
          const { writeFile } = await import('node:fs/promises');
          await writeFile(values.svg, reportFigure([...report.schemes, report.total]));
        }
        return { text: mixTable(report), json: { currency: 'EUR', ok: report.ok, mix: report }, exitCode: report.ok ? 0 : 1 };
      }
      const reports = [];
      try {
        for (const scheme of found) {
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
