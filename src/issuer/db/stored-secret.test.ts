/**
 * storedSecret: a secret made once per name, the same for every reader, raced starts included; a
 * table name that is not a plain identifier is refused before any statement runs.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { isTallyError } from '../../core/errors.ts';
import { storedSecret } from './stored-secret.ts';
import { closeTestTemplates, testBackends } from './test-databases.ts';

after(closeTestTemplates);

for (const backend of testBackends()) {
  describe(`storedSecret on ${backend.kind}`, { skip: backend.skip }, () => {
    test('made once per name: raced calls and later ones read the same 32 bytes; another name gets its own', async () => {
      const t = await backend.open();
      try {
        await t.db.exec('CREATE TABLE test_secrets (name TEXT PRIMARY KEY, secret BYTEA NOT NULL)');
        const raced = await Promise.all([1, 2, 3].map(() => storedSecret(t.db, 'test_secrets', 'a')));
        const [first] = raced;
        assert.ok(first !== undefined && first.length === 32);
        for (const s of raced) assert.deepEqual(s, first);
        assert.deepEqual(await storedSecret(t.db, 'test_secrets', 'a'), first);
        assert.notDeepEqual(await storedSecret(t.db, 'test_secrets', 'b'), first);
        assert.equal((await t.db.query('SELECT name FROM test_secrets')).rowCount, 2);
      } finally {
        await t.dispose();
      }
    });

    test('a table name that is not a plain identifier is refused and nothing is written', async () => {
      const t = await backend.open();
      try {
        await t.db.exec('CREATE TABLE test_secrets (name TEXT PRIMARY KEY, secret BYTEA NOT NULL)');
        for (const table of ['test_secrets; DROP TABLE test_secrets', 'Test', '', 'a-b']) {
          await assert.rejects(storedSecret(t.db, table, 'a'), (e: unknown) => isTallyError(e) && e.code === 'ASSERTION_FAILED');
        }
        assert.equal((await t.db.query('SELECT name FROM test_secrets')).rowCount, 0);
      } finally {
        await t.dispose();
      }
    });
  });
}
