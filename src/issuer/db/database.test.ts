import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isTallyError } from '../../core/errors.ts';
import { sqlState } from './database.ts';
import { openPglite } from './pglite.ts';
import { dropPostgresSchema, openPostgres } from './postgres.ts';
import { closeTestTemplates, TEST_DATABASE_URL_VARIABLE, testBackends, type TestDatabase } from './test-databases.ts';

after(closeTestTemplates);

const INT8_MAX = 2n ** 63n - 1n;
const INT8_MIN = -(2n ** 63n);

function serializationFailure(): Error {
  return Object.assign(new Error('could not serialize access (simulated)'), { code: '40001', severity: 'ERROR' });
}

for (const backend of testBackends()) {
  describe(`database on ${backend.kind}`, { skip: backend.skip }, () => {
    let t: TestDatabase;
    before(async () => {
      t = await backend.open();
      await t.db.exec('CREATE TABLE counter (id int PRIMARY KEY, n int8 NOT NULL); INSERT INTO counter VALUES (1, 0);');
    });
    after(() => t.dispose());

    test('int8 comes back as bigint at every size, and bigint parameters are exact', async () => {
      const { rows } = await t.db.query<{ max: unknown; min: unknown; small: unknown; param: unknown; total: unknown; fraction: unknown }>(
        'SELECT $1::int8 AS max, $2::int8 AS min, 5::int8 AS small, $3::int8 + 1 AS param, sum(x) AS total, 1.5::numeric AS fraction FROM (VALUES ($1::int8), ($1::int8)) v(x)',
        [INT8_MAX, INT8_MIN, 41n],
      );
      assert.deepEqual(rows, [{ max: INT8_MAX, min: INT8_MIN, small: 5n, param: 42n, total: 2n * INT8_MAX, fraction: '1.5' }]);
    });

    test('bytea, JSON given as text, null and booleans round-trip', async () => {
      const bytes = new Uint8Array([0, 1, 254, 255]);
      const { rows } = await t.db.query<{ b: Uint8Array; j: unknown; n: unknown; flag: unknown }>('SELECT $1::bytea AS b, $2::text::jsonb AS j, $3::text AS n, $4::boolean AS flag', [
        bytes,
        JSON.stringify({ a: [1, 'x'], s: '9007199254740993' }),
        null,
        true,
      ]);
      const row = rows[0];
      assert.ok(row !== undefined);
      assert.deepEqual(new Uint8Array(row.b), bytes);
      assert.deepEqual(row.j, { a: [1, 'x'], s: '9007199254740993' });
      assert.equal(row.n, null);
      assert.equal(row.flag, true);
    });

    test('a transaction commits what it did, and rolls everything back when it throws', async () => {
      await t.db.transaction(async (tx) => {
        await tx.query('UPDATE counter SET n = n + 10 WHERE id = 1');
      });
      await assert.rejects(
        t.db.transaction(async (tx) => {
          await tx.query('UPDATE counter SET n = n + 100 WHERE id = 1');
          throw new Error('boom');
        }),
        /boom/,
      );
      const { rows } = await t.db.query<{ n: bigint }>('SELECT n FROM counter WHERE id = 1');
      assert.deepEqual(rows, [{ n: 10n }]);
    });

    test('the isolation level is the one asked for', async () => {
      for (const isolation of ['serializable', 'read committed'] as const) {
        const level = await t.db.transaction(async (tx) => (await tx.query<{ level: string }>("SELECT current_setting('transaction_isolation') AS level")).rows[0]?.level, { isolation });
        assert.equal(level, isolation);
      }
    });

    test('a serialization failure runs the transaction again; other errors do not', async () => {
      let calls = 0;
      const value = await t.db.transaction(async (tx) => {
        calls++;
        await tx.query('UPDATE counter SET n = n + 1 WHERE id = 1');
        if (calls < 3) throw serializationFailure();
        return 'done';
      });
      assert.equal(value, 'done');
      assert.equal(calls, 3);
      const { rows } = await t.db.query<{ n: bigint }>('SELECT n FROM counter WHERE id = 1');
      assert.deepEqual(rows, [{ n: 11n }], 'the failed attempts were rolled back');

      let failing = 0;
      await assert.rejects(
        t.db.transaction(
          async () => {
            failing++;
            throw serializationFailure();
          },
          { attemptsMax: 4 },
        ),
        (e: unknown) => sqlState(e) === '40001',
      );
      assert.equal(failing, 4, 'gives up after attemptsMax attempts with the last error');

      let plain = 0;
      await assert.rejects(
        t.db.transaction(async () => {
          plain++;
          throw Object.assign(new Error('unique'), { code: '23505', severity: 'ERROR' });
        }),
      );
      assert.equal(plain, 1);
    });

    test('concurrent serializable read-modify-writes all land, through retries', async () => {
      const before = (await t.db.query<{ n: bigint }>('SELECT n FROM counter WHERE id = 1')).rows[0]?.n ?? 0n;
      await Promise.all(
        Array.from({ length: 5 }, () =>
          t.db.transaction(
            async (tx) => {
              const n = (await tx.query<{ n: bigint }>('SELECT n FROM counter WHERE id = 1')).rows[0]?.n ?? 0n;
              await tx.query('UPDATE counter SET n = $1 WHERE id = 1', [n + 1n]);
            },
            { isolation: 'serializable' },
          ),
        ),
      );
      const after = (await t.db.query<{ n: bigint }>('SELECT n FROM counter WHERE id = 1')).rows[0]?.n;
      assert.equal(after, before + 5n);
    });

    test('the database refuses calls from inside its own transaction, and a handle refuses calls after it', async () => {
      let leaked: { query: (sql: string) => Promise<unknown> } | undefined;
      await assert.rejects(
        t.db.transaction(async (tx) => {
          leaked = tx;
          await t.db.query('SELECT 1');
        }),
        (e: unknown) => isTallyError(e, 'ASSERTION_FAILED') && /use the transaction handle/.test(e.message),
      );
      await assert.rejects(
        t.db.transaction(() => t.db.transaction(async () => 1)),
        (e: unknown) => isTallyError(e, 'ASSERTION_FAILED'),
      );
      assert.ok(leaked !== undefined);
      await assert.rejects(
        async () => leaked?.query('SELECT 1'),
        (e: unknown) => isTallyError(e, 'ASSERTION_FAILED') && /after its transaction ended/.test(e.message),
      );
      assert.deepEqual((await t.db.query('SELECT 1 AS one')).rows, [{ one: 1 }], 'the database still works');
    });

    test('a failed statement surfaces its SQLSTATE; other errors have none', async () => {
      await assert.rejects(t.db.query('SELECT 1 / 0'), (e: unknown) => sqlState(e) === '22012');
      assert.equal(sqlState(Object.assign(new Error('broken pipe'), { code: 'EPIPE' })), undefined);
    });
  });
}

describe('openPglite', () => {
  test('a data folder keeps its tables and rows across close and open', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tally-pglite-'));
    try {
      const first = await openPglite(dir);
      await first.exec('CREATE TABLE kept (n int8); INSERT INTO kept VALUES (9007199254740993);');
      await first.close();
      const second = await openPglite(dir);
      assert.deepEqual((await second.query('SELECT n FROM kept')).rows, [{ n: 9007199254740993n }]);
      assert.equal(second.kind, 'pglite');
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('openPostgres', () => {
  test('refuses a malformed schema name or pool size before connecting', async () => {
    await assert.rejects(openPostgres('postgres://nobody@127.0.0.1:1/none', { schema: 'x; DROP TABLE y' }), RangeError);
    await assert.rejects(openPostgres('postgres://nobody@127.0.0.1:1/none', { poolSize: 0 }), RangeError);
  });

  const url = process.env[TEST_DATABASE_URL_VARIABLE];
  test('a parameterised statement is prepared once on its connection and then executed, even across a change of its table; never when told not to', { skip: url === undefined || url === '' ? `${TEST_DATABASE_URL_VARIABLE} is not set` : false }, async () => {
    const schema = `tally_prepared_${Date.now().toString(36)}`;
    const sql = 'SELECT n + $1::int8 AS n FROM counter WHERE id = $2';
    const named = (q: { query: TestDatabase['db']['query'] }) =>
      q.query<{ name: string; statement: string }>("SELECT name, statement FROM pg_prepared_statements WHERE name LIKE 'tally\\_%'", []);
    const separator = (url as string).includes('?') ? '&' : '?';
    for (const [preparedStatements, how] of [[true, {}], [false, { preparedStatements: false }], [false, { url: `${url}${separator}tally_prepared_statements=off` }]] as const) {
      const db = await openPostgres('url' in how ? how.url : (url as string), { schema, poolSize: 1, ...('preparedStatements' in how ? how : {}) });
      try {
        await db.exec('CREATE TABLE IF NOT EXISTS counter (id int PRIMARY KEY, n int8 NOT NULL); INSERT INTO counter VALUES (1, 40) ON CONFLICT DO NOTHING;');
        await db.transaction(async (tx) => {
          assert.deepEqual((await tx.query<{ n: bigint }>(sql, [1n, 1])).rows, [{ n: 41n }]);
          assert.deepEqual((await tx.query<{ n: bigint }>(sql, [2n, 1])).rows, [{ n: 42n }]);
          const statements = (await named(tx)).rows.filter((r) => r.statement === sql);
          assert.equal(statements.length, preparedStatements ? 1 : 0);
        });
        if (preparedStatements) {
          // The table changes under the prepared statement: the server plans it again.
          await db.exec('ALTER TABLE counter ADD COLUMN IF NOT EXISTS note text');
          assert.deepEqual((await db.query<{ n: bigint }>(sql, [3n, 1])).rows, [{ n: 43n }]);
          // A column changing type changes the statement's result: its first run fails on the
          // server, and the transaction runs again.
          await db.exec('ALTER TABLE counter ALTER COLUMN n TYPE numeric');
          assert.deepEqual(await db.transaction(async (tx) => (await tx.query<{ n: bigint }>(sql, [4n, 1])).rows), [{ n: 44n }]);
          await db.exec('ALTER TABLE counter ALTER COLUMN n TYPE int8');
          assert.deepEqual((await db.query<{ n: bigint }>(sql, [5n, 1])).rows, [{ n: 45n }], 'outside a transaction, run again at once');
        }
      } finally {
        await db.close();
      }
    }
    await dropPostgresSchema(url as string, schema);
    await assert.rejects(openPostgres(`${url}${separator}tally_prepared_statements=maybe`, { schema }), /tally_prepared_statements: expected on or off/);
  });
});
