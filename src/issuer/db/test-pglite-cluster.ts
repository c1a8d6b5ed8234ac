/**
 * For tests that start a node on a new data folder (not exported from index.ts): the embedded
 * database's cluster made once and copied into each new folder, instead of every first start
 * running PostgreSQL's initdb inside PGlite again (about 4 s of CPU each, a few hundred
 * milliseconds for the copy).
 *
 * Why a test may do so: a new cluster is what `PGlite.create(folder)` makes on an empty folder,
 * the same for every folder (initdb takes no input from the node), and the copy is one made by
 * that very call and closed cleanly. Everything a node's first start does to its database after
 * that (the migrations, the issuance and float accounts, the revocation list, each scheme's
 * tables and keys) still runs on the copy, as on a cluster of its own, since the copy holds no
 * table of the node's. The tests that check a first start as an operator runs it (src/cli/
 * node-start.test.ts) leave the folder empty, so the node's own initdb stays tested.
 *
 * The in-memory databases of the tests (test-databases.ts) start the same way from a tarball of a
 * new in-memory cluster, the form PGlite's own clone() passes from one instance to the next: each
 * test process loads it (about 1.3 s of CPU) instead of running initdb and then cloning (about 6
 * and 1.8 s).
 *
 * Both are made where $TALLY_TEST_PGLITE_CLUSTER says (scripts/run-tests.mjs names one folder for
 * a whole run and removes it at the end), else in a temporary folder of this process, removed
 * when it exits. Several test processes may make one at once: each builds its own beside it and
 * renames it into place; the first rename wins and the others use the winner's.
 */
import { PGlite } from '@electric-sql/pglite';
import { existsSync, rmSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** The environment variable naming the folder of the shared cluster. */
export const TEST_PGLITE_CLUSTER_VARIABLE = 'TALLY_TEST_PGLITE_CLUSTER';

let place: Promise<string> | undefined;
let made: Promise<string> | undefined;
let dumped: Promise<Blob> | undefined;

/** Where the shared cluster is (or goes); its tarball is beside it. */
function sharedPlace(): Promise<string> {
  place ??= (async () => {
    const named = process.env[TEST_PGLITE_CLUSTER_VARIABLE];
    if (named !== undefined && named !== '') return named;
    const own = await mkdtemp(join(tmpdir(), 'tally-test-pglite-'));
    process.once('exit', () => rmSync(own, { recursive: true, force: true }));
    return join(own, 'cluster');
  })();
  return place;
}

/** The folder of a clean, closed PGlite cluster with nothing of a node's in it, made on first use. */
function cluster(): Promise<string> {
  made ??= (async () => {
    const target = await sharedPlace();
    if (existsSync(join(target, 'PG_VERSION'))) return target;
    await mkdir(dirname(target), { recursive: true });
    const building = `${target}.${process.pid}.tmp`;
    await rm(building, { recursive: true, force: true });
    // What openPglite (pglite.ts) does on a node's first start: PGlite.create on an empty folder.
    const pg = await PGlite.create(building);
    await pg.close();
    try {
      await rename(building, target);
    } catch (e) {
      // Another process renamed its own first (ENOTEMPTY, EEXIST): use that one.
      await rm(building, { recursive: true, force: true });
      if (!existsSync(join(target, 'PG_VERSION'))) throw e;
    }
    return target;
  })();
  return made;
}

/**
 * The folder of the shared new cluster, to copy where a node keeps its embedded database (say, a
 * bench node's: BenchNodeOptions.pgliteCluster); never to open in place.
 */
export function newClusterFolder(): Promise<string> {
  return cluster();
}

/**
 * Puts a copy of the shared new cluster where a node on `dataDir` keeps its embedded database
 * (`<dataDir>/pglite`, services.ts), unless a database is already there (a restart).
 */
export async function seedPgliteCluster(dataDir: string): Promise<void> {
  const folder = join(dataDir, 'pglite');
  if (existsSync(folder)) return;
  const source = await cluster();
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await cp(source, folder, { recursive: true });
}

/**
 * A tarball of a new in-memory cluster, as `dumpDataDir` gives it, to load with
 * `PGlite.create({ loadDataDir })`: made once per run by the first process to need it.
 */
export function newClusterDump(): Promise<Blob> {
  dumped ??= (async () => {
    const file = `${await sharedPlace()}.tar`;
    if (!existsSync(file)) {
      await mkdir(dirname(file), { recursive: true });
      // What PGlite's clone() hands its new instance: a dump of the instance PGlite.create() made.
      const pg = await PGlite.create();
      const tarball = await pg.dumpDataDir('none');
      await pg.close();
      const building = `${file}.${process.pid}.tmp`;
      await writeFile(building, new Uint8Array(await tarball.arrayBuffer()));
      // Another process's may land first or last: either is a whole new cluster, and a reader
      // holds the one it opened.
      await rename(building, file);
    }
    return new Blob([await readFile(file)]);
  })();
  return dumped;
}
