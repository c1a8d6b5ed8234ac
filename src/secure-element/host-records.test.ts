/**
 * The host's append-only records: a trusted app's logs and the outbox live outside the sealed head,
 * so a command's cost does not grow with history, and every way of tampering with the records file
 * (an older copy, a truncation, records reordered or spliced from a clone, another device's file)
 * is refused, never silently accepted.
 */
import assert from 'node:assert/strict';
import { copyFile, cp, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { encodeCbor } from '../core/cbor.ts';
import { array, bigint, record, uint } from '../core/codec.ts';
import { randomBytes } from '../core/crypto/hash.ts';
import { isTallyError } from '../core/errors.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { nodeSealing } from '../providers/node-sealing.ts';
import { FileCounter } from './counter-file.ts';
import { InProcessHost, SimulatedCrash, type HostOptions } from './host.ts';
import { deriveDeviceKeys, RECORDS_PER_GENERATION_MAX, sealEnvelope } from './sealing.ts';
import type { SealingPrimitives } from './sealing-primitives.ts';
import { CRASH_POINTS, type CrashPoint } from './secure-element.ts';
import { FileStorage } from './storage-file.ts';
import { accept, command, defineTrustedApp, reject } from './trusted-app.ts';

const LOG_MAX = 5000;
const entryCodec = record({ n: uint({ max: 2 ** 32 }) });
type Entry = { readonly n: number };
interface LogState {
  readonly total: bigint;
  readonly log: readonly Entry[];
}

/** A test app with one log: add appends, settle drops the oldest, prune removes from the middle. */
const logApp = defineTrustedApp({
  name: 'log-app',
  state: record({ total: bigint({ min: 0n, max: 2n ** 62n }), log: array(entryCodec, { max: LOG_MAX }) }),
  logs: { log: { entry: entryCodec, max: LOG_MAX } },
  init: (): LogState => ({ total: 0n, log: [] }),
  commands: {
    add: command({
      input: record({ n: uint({ max: 2 ** 32 }) }),
      output: record({ total: bigint({ min: 0n, max: 2n ** 62n }), nonce: uint({ max: 2 ** 32 }) }),
      run(state: LogState, input, env) {
        if (state.log.length >= LOG_MAX) return reject('LOG_FULL', 'full');
        const total = state.total + BigInt(input.n);
        // A random part: a retry must answer the stored output, not run again.
        const nonce = new DataView(env.random(4).buffer).getUint32(0);
        return accept({ total, log: [...state.log, { n: input.n }] }, { total, nonce });
      },
    }),
    settle: command({
      input: record({ count: uint({ max: LOG_MAX }) }),
      output: record({}),
      run: (state: LogState, input) => accept({ ...state, log: state.log.slice(input.count) }, {}),
    }),
    prune: command({
      input: record({ n: uint({ max: 2 ** 32 }) }),
      output: record({}),
      run: (state: LogState, input) => accept({ ...state, log: state.log.filter((e) => e.n !== input.n) }, {}),
    }),
    read: command({
      input: record({}),
      output: record({ total: bigint({ min: 0n, max: 2n ** 62n }), log: array(entryCodec, { max: LOG_MAX }) }),
      readOnly: true,
      run: (state: LogState) => accept(state, { total: state.total, log: [...state.log] }),
    }),
  },
});

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tally-se-records-'));
  dirs.push(dir);
  return dir;
}

function options(dir: string, crashAt?: CrashPoint, sealing?: SealingPrimitives): HostOptions<LogState, typeof logApp.commands> {
  return {
    app: logApp,
    storage: new FileStorage(dir),
    counter: new FileCounter(join(dir, 'log-app.counter')),
    provider: nodeProvider,
    sealing,
    onCrashPoint: crashAt === undefined ? undefined : (point) => {
      if (point === crashAt) throw new SimulatedCrash(point);
    },
  };
}

async function recordsFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.endsWith('.records')).sort();
}

async function onlyRecordsFile(dir: string): Promise<string> {
  const files = await recordsFiles(dir);
  assert.equal(files.length, 1, `one records file, found ${files.join(', ')}`);
  return join(dir, files[0] as string);
}

const ns = (log: readonly Entry[]) => log.map((e) => e.n);

/** Splits a records file into its frames (4-byte length + sealed record). */
function frames(file: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < file.length) {
    const length = new DataView(file.buffer, file.byteOffset + at, 4).getUint32(0);
    out.push(file.subarray(at, at + 4 + length));
    at += 4 + length;
  }
  return out;
}

const join_ = (parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

async function withAdds(dir: string, values: number[]): Promise<InProcessHost<LogState, typeof logApp.commands>> {
  const se = await InProcessHost.provision(options(dir));
  for (const n of values) await se.call('add', { n });
  return se;
}

describe('secure element records', () => {
  test('appends, drops from the front and prunes persist across reopen, with one records file left', async () => {
    const dir = await freshDir();
    const se = await withAdds(dir, [1, 2, 3, 4, 5]);
    await se.call('settle', { count: 2 });
    await se.call('add', { n: 6 });
    await se.close();
    let again = await InProcessHost.open(options(dir));
    assert.deepEqual(ns((await again.call('read', {})).log), [3, 4, 5, 6]);
    assert.equal((await again.call('read', {})).total, 21n);
    // A removal from the middle starts a new generation; the old file goes.
    const before = await onlyRecordsFile(dir);
    await again.call('prune', { n: 4 });
    const compacted = await onlyRecordsFile(dir);
    assert.notEqual(compacted, before);
    await again.call('add', { n: 7 });
    await again.close();
    again = await InProcessHost.open(options(dir));
    assert.deepEqual(ns((await again.call('read', {})).log), [3, 5, 6, 7]);
    await again.close();
  });

  test('the sealed head stays the same size as the log grows: a command does not reseal history', async () => {
    const dir = await freshDir();
    const se = await withAdds(dir, [1]);
    const small = (await stat(join(dir, 'log-app.sealed'))).size;
    for (let n = 2; n <= 120; n++) await se.call('add', { n });
    // A few bytes more for the larger total and record count, never the log's entries.
    const large = (await stat(join(dir, 'log-app.sealed'))).size;
    assert.ok(large - small <= 8, `head grew from ${small} to ${large} bytes`);
    await se.close();
    const again = await InProcessHost.open(options(dir));
    assert.equal((await again.call('read', {})).log.length, 120);
    await again.close();
  });

  test('a full generation is compacted into the next one, the log and the latest outputs carried over', async () => {
    const dir = await freshDir();
    const se = await withAdds(dir, []);
    assert.deepEqual(await recordsFiles(dir), ['log-app.1.records']);
    const requestId = randomBytes(16);
    let kept;
    for (let n = 1; n <= RECORDS_PER_GENERATION_MAX; n++) {
      const output = await se.call('add', { n }, n === RECORDS_PER_GENERATION_MAX - 2 ? { requestId } : undefined);
      if (n === RECORDS_PER_GENERATION_MAX - 2) kept = output;
    }
    assert.deepEqual(await recordsFiles(dir), ['log-app.2.records']);
    await se.close();
    const again = await InProcessHost.open(options(dir));
    assert.equal((await again.call('read', {})).log.length, RECORDS_PER_GENERATION_MAX);
    assert.deepEqual(await again.call('add', { n: RECORDS_PER_GENERATION_MAX - 2 }, { requestId }), kept);
    await again.close();
  });

  test('a retry with the same request id is answered from the records, also after a reopen and after a compaction', async () => {
    const dir = await freshDir();
    const se = await withAdds(dir, [1]);
    const requestId = randomBytes(16);
    const first = await se.call('add', { n: 2 }, { requestId });
    await se.close();
    const reopened = await InProcessHost.open(options(dir));
    assert.deepEqual(await reopened.call('add', { n: 2 }, { requestId }), first);
    await reopened.call('prune', { n: 1 });
    assert.deepEqual(await reopened.call('add', { n: 2 }, { requestId }), first);
    assert.deepEqual(ns((await reopened.call('read', {})).log), [2]);
    await reopened.close();
  });

  for (const command of ['add', 'prune'] as const) {
    for (const point of CRASH_POINTS) {
      test(`a crash at ${point} during ${command === 'add' ? 'an append' : 'a compaction'} leaves the old or the new state, and the retry runs once`, async () => {
        const dir = await freshDir();
        await (await withAdds(dir, [1, 2, 3])).close();
        const se = await InProcessHost.open(options(dir, point));
        const requestId = randomBytes(16);
        const input = command === 'add' ? { n: 9 } : { n: 2 };
        await assert.rejects(se.call(command, input as never, { requestId }), (e) => e instanceof SimulatedCrash && e.point === point);
        const reopened = await InProcessHost.open(options(dir));
        const committed = point === 'after-rename' || point === 'after-increment';
        const old = [1, 2, 3];
        const next = command === 'add' ? [1, 2, 3, 9] : [1, 3];
        assert.deepEqual(ns((await reopened.call('read', {})).log), committed ? next : old);
        await reopened.call(command, input as never, { requestId });
        await reopened.call(command, input as never, { requestId });
        assert.deepEqual(ns((await reopened.call('read', {})).log), next);
        await reopened.call('add', { n: 10 });
        await reopened.close();
        const last = await InProcessHost.open(options(dir));
        assert.deepEqual(ns((await last.call('read', {})).log), [...next, 10]);
        assert.equal((await recordsFiles(dir)).length, 1);
        await last.close();
      });
    }
  }

  test('a torn append past the committed records is dropped, and the next commit writes over it', async () => {
    const dir = await freshDir();
    await (await withAdds(dir, [1, 2])).close();
    const path = await onlyRecordsFile(dir);
    await writeFile(path, join_([await readFile(path), new Uint8Array([0, 0, 1, 0, 7, 7, 7])]));
    const se = await InProcessHost.open(options(dir));
    await se.call('add', { n: 3 });
    await se.close();
    const again = await InProcessHost.open(options(dir));
    assert.deepEqual(ns((await again.call('read', {})).log), [1, 2, 3]);
    await again.close();
  });

  test('an older copy of the records file, or a truncated one, is detected as rollback', async () => {
    const dir = await freshDir();
    const se = await withAdds(dir, [1, 2]);
    const path = await onlyRecordsFile(dir);
    await copyFile(path, join(dir, 'saved'));
    await se.call('add', { n: 3 });
    await se.close();
    const current = await readFile(path);

    await copyFile(join(dir, 'saved'), path);
    await assert.rejects(InProcessHost.open(options(dir)), (e) => isTallyError(e, 'ROLLBACK_DETECTED'));
    // Cut inside the last record, and cut exactly before it.
    await writeFile(path, current.subarray(0, current.length - 3));
    await assert.rejects(InProcessHost.open(options(dir)), (e) => isTallyError(e, 'ROLLBACK_DETECTED'));
    const parts = frames(current);
    await writeFile(path, join_(parts.slice(0, -1)));
    await assert.rejects(InProcessHost.open(options(dir)), (e) => isTallyError(e, 'ROLLBACK_DETECTED'));
    await writeFile(path, new Uint8Array(0));
    await assert.rejects(InProcessHost.open(options(dir)), (e) => isTallyError(e, 'ROLLBACK_DETECTED'));
    // Put back, it opens: the refusals above were about the records alone.
    await writeFile(path, current);
    const ok = await InProcessHost.open(options(dir));
    assert.deepEqual(ns((await ok.call('read', {})).log), [1, 2, 3]);
    await ok.close();
  });

  test('reordered, flipped, spliced-from-a-clone, foreign or missing records are refused as corrupt', async () => {
    const dir = await freshDir();
    await (await withAdds(dir, [1, 2, 3])).close();
    // A clone: the same device's files copied, then each copy runs its own commands.
    const clone = await freshDir();
    await cp(dir, clone, { recursive: true });
    const mine = await InProcessHost.open(options(dir));
    await mine.call('add', { n: 4 });
    await mine.call('add', { n: 5 });
    await mine.close();
    const theirs = await InProcessHost.open(options(clone));
    await theirs.call('add', { n: 40 });
    await theirs.call('add', { n: 50 });
    await theirs.close();

    const path = await onlyRecordsFile(dir);
    const current = await readFile(path);
    const parts = frames(current);
    assert.equal(parts.length, 6);
    const refused = async (bytes: Uint8Array, what: string) => {
      await writeFile(path, bytes);
      await assert.rejects(InProcessHost.open(options(dir)), (e) => isTallyError(e, 'STATE_CORRUPT'), what);
    };
    const swapped = [...parts];
    [swapped[4], swapped[5]] = [swapped[5] as Uint8Array, swapped[4] as Uint8Array];
    await refused(join_(swapped), 'two records swapped');
    const flipped = new Uint8Array(current);
    flipped[current.length - 5]! ^= 1;
    await refused(flipped, 'a flipped byte');
    const cloneParts = frames(await readFile(await onlyRecordsFile(clone)));
    await refused(join_([...parts.slice(0, 4), cloneParts[4] as Uint8Array, parts[5] as Uint8Array]), 'one record from the clone');
    await refused(join_([...parts.slice(0, 4), ...cloneParts.slice(4)]), "the clone's last records");

    const other = await freshDir();
    await (await withAdds(other, [1, 2, 3, 4, 5])).close();
    await refused(await readFile(await onlyRecordsFile(other)), "another device's records file");

    await rm(path);
    await assert.rejects(InProcessHost.open(options(dir)), (e) => isTallyError(e, 'STATE_CORRUPT') && e.details.reason === 'records missing');
    await writeFile(path, current);
    const ok = await InProcessHost.open(options(dir));
    assert.deepEqual(ns((await ok.call('read', {})).log), [1, 2, 3, 4, 5]);
    await ok.close();
  });

  test('a head sealed before records (format 1, outbox inside) opens, keeps its outbox, and moves to records on the next commit', async () => {
    const dir = await freshDir();
    // Provision, then replace the head by the format-1 envelope the older host wrote for the same state.
    const se = await InProcessHost.provision(options(dir));
    await se.close();
    const keys = deriveDeviceKeys(await readFile(join(dir, 'master.key')), nodeProvider);
    const requestId = randomBytes(16);
    const kept = encodeCbor({ total: 7n, nonce: 42 });
    const state = encodeCbor({ total: 7n, log: [{ n: 7 }] });
    await writeFile(join(dir, 'log-app.sealed'), sealEnvelope(keys, { format: 1, app: 'log-app', version: se.version, state, outbox: [{ requestId, command: 'add', output: kept }] }));
    for (const name of await recordsFiles(dir)) await rm(join(dir, name));

    const old = await InProcessHost.open(options(dir));
    assert.deepEqual(await old.call('add', { n: 7 }, { requestId }), { total: 7n, nonce: 42 });
    assert.deepEqual(ns((await old.call('read', {})).log), [7]);
    await old.call('add', { n: 8 });
    await old.close();
    assert.equal((await recordsFiles(dir)).length, 1);
    const moved = await InProcessHost.open(options(dir));
    assert.deepEqual(ns((await moved.call('read', {})).log), [7, 8]);
    assert.deepEqual(await moved.call('add', { n: 7 }, { requestId }), { total: 7n, nonce: 42 });
    await moved.close();
  });

  test('a command that would pass a log bound commits nothing', async () => {
    const dir = await freshDir();
    const overflowing = defineTrustedApp({ ...logApp, logs: { log: { entry: entryCodec, max: 2 } } });
    const opts = { ...options(dir), app: overflowing };
    const se = await InProcessHost.provision(opts);
    await se.call('add', { n: 1 });
    await se.call('add', { n: 2 });
    const version = se.version;
    await assert.rejects(se.call('add', { n: 3 }), (e) => isTallyError(e, 'TOO_LARGE'));
    assert.equal(se.version, version);
  });
});

describe('sealing with node:crypto', () => {
  test('a state sealed by node:crypto opens with noble and one sealed by noble opens with node:crypto, records and head alike', async () => {
    const dir = await freshDir();
    const requestId = randomBytes(16);
    const node = await InProcessHost.provision(options(dir, undefined, nodeSealing));
    await node.call('add', { n: 1 });
    const kept = await node.call('add', { n: 2 }, { requestId });
    await node.call('settle', { count: 1 });
    await node.close();
    const noble = await InProcessHost.open(options(dir));
    assert.deepEqual(ns((await noble.call('read', {})).log), [2]);
    assert.deepEqual(await noble.call('add', { n: 2 }, { requestId }), kept);
    await noble.call('add', { n: 3 });
    await noble.call('prune', { n: 2 });
    await noble.call('add', { n: 4 });
    await noble.close();
    const again = await InProcessHost.open(options(dir, undefined, nodeSealing));
    assert.deepEqual(ns((await again.call('read', {})).log), [3, 4]);
    assert.equal((await again.call('read', {})).total, 10n);
    await again.close();
  });

  test('a records file or head altered under node:crypto is refused as under noble', async () => {
    const dir = await freshDir();
    const se = await InProcessHost.provision(options(dir, undefined, nodeSealing));
    for (const n of [1, 2, 3]) await se.call('add', { n });
    await se.close();
    const path = await onlyRecordsFile(dir);
    const file = await readFile(path);
    const head = await readFile(join(dir, 'log-app.sealed'));
    for (const sealing of [nodeSealing, undefined]) {
      // One bit of the last record's tag: the chain no longer matches.
      const tampered = new Uint8Array(file);
      tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 1;
      await writeFile(path, tampered);
      await assert.rejects(InProcessHost.open(options(dir, undefined, sealing)), (e) => isTallyError(e, 'STATE_CORRUPT'));
      await writeFile(path, file);
      const badHead = new Uint8Array(head);
      badHead[30] = (badHead[30] as number) ^ 0x80;
      await writeFile(join(dir, 'log-app.sealed'), badHead);
      await assert.rejects(InProcessHost.open(options(dir, undefined, sealing)), (e) => isTallyError(e, 'STATE_CORRUPT'));
      await writeFile(join(dir, 'log-app.sealed'), head);
    }
    const ok = await InProcessHost.open(options(dir, undefined, nodeSealing));
    assert.deepEqual(ns((await ok.call('read', {})).log), [1, 2, 3]);
    await ok.close();
  });
});

describe('file storage records', () => {
  test('appends through the handle kept open; a write short of the end drops what follows; a read starts afresh', async () => {
    const dir = await freshDir();
    const storage = new FileStorage(dir);
    const a = randomBytes(100);
    const b = randomBytes(50);
    const c = randomBytes(30);
    await storage.writeRecords('app', 1n, 0, a);
    await storage.writeRecords('app', 1n, 100, b);
    assert.deepEqual(await storage.readRecords('app', 1n), join_([a, b]));
    // Rewriting from an earlier offset (an append whose commit never finished) drops the rest.
    await storage.writeRecords('app', 1n, 100, c);
    assert.deepEqual(await storage.readRecords('app', 1n), join_([a, c]));
    // Something else made the file longer (a restored copy): after the read that an open makes, the write truncates it.
    await writeFile(join(dir, 'app.1.records'), join_([a, b, b]));
    assert.deepEqual(await storage.readRecords('app', 1n), join_([a, b, b]));
    await storage.writeRecords('app', 1n, 150, c);
    assert.deepEqual(await storage.readRecords('app', 1n), join_([a, b, c]));
    // Another generation, then the first removed: writes land in the file that is named now.
    await storage.writeRecords('app', 2n, 0, b);
    await storage.removeRecords('app', 2n);
    assert.deepEqual(await recordsFiles(dir), ['app.2.records']);
    await storage.writeRecords('app', 2n, 50, c);
    await storage.removeRecords('app', 3n);
    assert.deepEqual(await recordsFiles(dir), []);
    await storage.writeRecords('app', 2n, 0, a);
    assert.deepEqual(await storage.readRecords('app', 2n), a);
    await storage.close();
    await storage.writeRecords('app', 2n, 100, b);
    assert.deepEqual(await storage.readRecords('app', 2n), join_([a, b]));
    await storage.close();
  });

  test('a host opened again on the same storage after a failed commit writes where its head says', async () => {
    const dir = await freshDir();
    const storage = new FileStorage(dir);
    let crash: CrashPoint | null = null;
    const opts: HostOptions<LogState, typeof logApp.commands> = {
      ...options(dir),
      storage,
      onCrashPoint: (point) => {
        if (point === crash) throw new SimulatedCrash(point);
      },
    };
    const se = await InProcessHost.provision(opts);
    await se.call('add', { n: 1 });
    // The record of n: 2 is written and the head is not renamed: the file holds a record past the head's count.
    crash = 'after-write';
    await assert.rejects(se.call('add', { n: 2 }), (e) => e instanceof SimulatedCrash);
    crash = null;
    const again = await InProcessHost.open(opts);
    assert.deepEqual(ns((await again.call('read', {})).log), [1]);
    await again.call('add', { n: 3 });
    await again.close();
    const last = await InProcessHost.open(options(dir));
    assert.deepEqual(ns((await last.call('read', {})).log), [1, 3]);
    await last.close();
  });
});
