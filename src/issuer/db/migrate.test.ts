import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { isTallyError } from '../../core/errors.ts';
import type { Database } from './database.ts';
import { ISSUER_MIGRATIONS_DIR, loadMigrations, migrate, migrateIssuer, migrationChecksum, type Migration } from './migrate.ts';
import { closeTestTemplates, testBackends, type TestDatabase } from './test-databases.ts';

after(closeTestTemplates);

const ONE: Migration = { number: 1, name: 'one', sql: 'CREATE TABLE one (id int PRIMARY KEY);' };
const TWO: Migration = { number: 2, name: 'two', sql: "CREATE TABLE two (id int PRIMARY KEY);\nINSERT INTO two VALUES (2);" };
const THREE: Migration = { number: 3, name: 'three', sql: 'CREATE TABLE three (id int PRIMARY KEY);' };

async function tables(db: Database): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>('SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1');
  return rows.map((r) => r.name);
}

async function recorded(db: Database): Promise<{ number: number; name: string; checksum: string }[]> {
  return (await db.query<{ number: number; name: string; checksum: string }>('SELECT number, name, checksum FROM schema_migrations ORDER BY number')).rows;
}

function isRefused(pattern: RegExp): (e: unknown) => boolean {
  return (e) => isTallyError(e, 'STATE_CORRUPT') && pattern.test(e.message);
}

test('the issuer migrations are numbered files read in order', async () => {
  const migrations = await loadMigrations(ISSUER_MIGRATIONS_DIR);
  assert.deepEqual(
    migrations.map((m) => [m.number, m.name]),
    [
      [1, 'ledger'],
      [2, 'idempotency'],
      [3, 'registry'],
      [4, 'devices'],
      [5, 'sm2'],
      [6, 'oem_removal'],
      [7, 'tiers'],
      [8, 'interbank'],
      [9, 'publications'],
      [10, 'shards'],
    ],
  );
  assert.equal(migrationChecksum('a\r\nb'), migrationChecksum('a\nb'), 'line endings do not count');
});

for (const backend of testBackends()) {
  describe(`migrations on ${backend.kind}`, { skip: backend.skip }, () => {
    async function withFresh(fn: (db: Database) => Promise<void>): Promise<void> {
      const t: TestDatabase = await backend.open({ poolSize: 3 });
      try {
        await fn(t.db);
      } finally {
        await t.dispose();
      }
    }

    test('the issuer schema applies once; running again applies nothing', () =>
      withFresh(async (db) => {
        assert.deepEqual((await migrateIssuer(db)).applied, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert.deepEqual((await migrateIssuer(db)).applied, []);
        assert.deepEqual(await tables(db), ['accounts', 'cb_claims', 'cb_intermediaries', 'cb_positions', 'cb_publications', 'cb_revocation_lists', 'devices', 'idempotency', 'interbank_claims', 'interbank_decisions', 'oems', 'request_nonces', 'revocation_lists', 'revoked_certificates', 'schema_migrations', 'shard_inbox', 'shard_outbox', 'shard_places', 'shard_self', 'ta_measurements', 'tier_link', 'tier_peer_publications', 'tier_peers', 'tier_published', 'transfers', 'users']);
        const rows = await recorded(db);
        assert.deepEqual(
          rows.map((r) => [r.number, r.name]),
          [
            [1, 'ledger'],
            [2, 'idempotency'],
            [3, 'registry'],
            [4, 'devices'],
            [5, 'sm2'],
            [6, 'oem_removal'],
            [7, 'tiers'],
            [8, 'interbank'],
            [9, 'publications'],
            [10, 'shards'],
          ],
        );
        const applied = await db.query<{ applied_at: unknown }>('SELECT applied_at FROM schema_migrations');
        assert.ok(applied.rows.every((r) => r.applied_at instanceof Date));
      }));

    test('new migrations apply in order after the old ones; concurrent runs apply each once', () =>
      withFresh(async (db) => {
        assert.deepEqual((await migrate(db, [ONE])).applied, [1]);
        const runs = await Promise.all([migrate(db, [ONE, TWO, THREE]), migrate(db, [ONE, TWO, THREE]), migrate(db, [ONE, TWO, THREE])]);
        assert.deepEqual(runs.flatMap((r) => r.applied).sort(), [2, 3]);
        assert.deepEqual((await db.query('SELECT id FROM two')).rows, [{ id: 2 }]);
        assert.deepEqual(
          (await recorded(db)).map((r) => r.checksum),
          [ONE, TWO, THREE].map((m) => migrationChecksum(m.sql)),
        );
      }));

    test('a migration changed after it was applied is refused, and nothing else is applied', () =>
      withFresh(async (db) => {
        await migrate(db, [ONE]);
        const changed = { ...ONE, sql: 'CREATE TABLE one (id int PRIMARY KEY, extra text);' };
        await assert.rejects(migrate(db, [changed, TWO]), isRefused(/001_one changed after it was applied/));
        await assert.rejects(migrate(db, [{ ...ONE, name: 'renamed' }]), isRefused(/changed after it was applied/));
        assert.deepEqual(await tables(db), ['one', 'schema_migrations']);
      }));

    test('an applied migration the code does not know, or a new one numbered below an applied one, is refused', () =>
      withFresh(async (db) => {
        await migrate(db, [ONE, THREE]);
        await assert.rejects(migrate(db, [ONE]), isRefused(/003_three, which this code does not know/));
        await assert.rejects(migrate(db, [ONE, TWO, THREE]), isRefused(/002_two is new but sorts before the applied 003_three/));
        assert.deepEqual(await tables(db), ['one', 'schema_migrations', 'three']);
      }));

    test("a new migration of one owner's hundred applies after another owner's applied ones (an upgraded node), and the order within a hundred still holds", () =>
      withFresh(async (db) => {
        const scheme: Migration = { number: 101, name: 'scheme', sql: 'CREATE TABLE scheme_one (id int);' };
        const schemeLater: Migration = { number: 103, name: 'scheme_later', sql: 'CREATE TABLE scheme_three (id int);' };
        assert.deepEqual((await migrate(db, [ONE, scheme, schemeLater])).applied, [1, 101, 103]);
        // The issuer's next migration, shipped after the scheme's were applied.
        assert.deepEqual((await migrate(db, [ONE, TWO, scheme, schemeLater])).applied, [2]);
        assert.deepEqual((await recorded(db)).map((r) => r.number), [1, 2, 101, 103]);
        // Below an applied one of its own hundred: refused, nothing applied.
        const schemeBetween: Migration = { number: 102, name: 'scheme_between', sql: 'CREATE TABLE scheme_two (id int);' };
        await assert.rejects(migrate(db, [ONE, TWO, scheme, schemeBetween, schemeLater]), isRefused(/102_scheme_between is new but sorts before the applied 103_scheme_later/));
        assert.deepEqual((await recorded(db)).map((r) => r.number), [1, 2, 101, 103]);
      }));

    test('a failing migration is rolled back whole and not recorded', () =>
      withFresh(async (db) => {
        const broken: Migration = { number: 2, name: 'broken', sql: 'CREATE TABLE half (id int);\nSELECT 1 / 0;' };
        await assert.rejects(migrate(db, [ONE, broken]));
        assert.deepEqual(await tables(db), ['one', 'schema_migrations']);
        assert.deepEqual((await recorded(db)).map((r) => r.number), [1]);
        assert.deepEqual((await migrate(db, [ONE, TWO])).applied, [2], 'a fixed migration applies');
      }));

    test('a malformed list is a bug', () =>
      withFresh(async (db) => {
        await assert.rejects(migrate(db, [TWO, ONE]), (e: unknown) => isTallyError(e, 'ASSERTION_FAILED'));
        await assert.rejects(migrate(db, [{ ...ONE, name: 'Bad Name' }]), (e: unknown) => isTallyError(e, 'ASSERTION_FAILED'));
        await assert.rejects(migrate(db, [{ ...ONE, number: 1000 }]), (e: unknown) => isTallyError(e, 'ASSERTION_FAILED'));
      }));
  });
}
