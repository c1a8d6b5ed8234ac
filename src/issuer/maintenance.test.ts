import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { REQUEST_WINDOW_MS, signRequest } from './client/request-auth.ts';
import { closeTestTemplates, testBackends } from './db/test-databases.ts';
import { expectError, setup } from './http/test-harness.ts';
import { IDEMPOTENCY_RETENTION_MS, sweepExpired } from './maintenance.ts';

after(() => closeTestTemplates());

for (const backend of testBackends()) {
  describe(`sweeping expired rows on ${backend.kind}`, { skip: backend.skip }, () => {
    test('drops expired nonces and old answers only; a replay after the sweep still moves money once', async () => {
      const h = await setup(backend);
      try {
        const { db } = h.node.services;
        const count = async (table: string) => Number((await db.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM ${table}`)).rows[0]?.n);
        const alice = await h.register(81);
        const bob = await h.register(82);
        await h.asOperator('POST', '/v1/operator/mint', { account: alice.account, amount: '3.00' });
        const path = `/v1/accounts/${alice.account}`;
        const original = signRequest({ signer: alice.user, keyId: alice.keyId, method: 'GET', path, body: '', timestamp: h.now(), nonce: new Uint8Array(16).fill(3) });
        const pay = () => h.signed(alice.user, 'POST', '/v1/transfers', { to: bob.account, amount: '1.00' }, { 'idempotency-key': 'sweep-pay-1' });
        assert.equal((await h.send('GET', path, { headers: original })).status, 200);
        assert.equal((await pay()).status, 200);
        // An answer still being written has no status yet; the sweep must leave it.
        await db.query(`INSERT INTO idempotency (scope, key, request_hash, created_at) VALUES ('transfers', 'in-flight', $1, now() - interval '30 days')`, [new Uint8Array(32)]);
        const noncesBefore = await count('request_nonces');
        const answersBefore = await count('idempotency');
        assert.ok(noncesBefore >= 4 && answersBefore >= 5, `${noncesBefore} nonces, ${answersBefore} answers`);

        // Inside the window nothing goes.
        assert.deepEqual(await sweepExpired(db, h.now()), { nonces: 0, idempotency: 0 });
        assert.equal(await count('request_nonces'), noncesBefore);

        // Past the window every nonce goes; answers are younger than the retention, so they stay.
        h.tick(3 * REQUEST_WINDOW_MS);
        assert.deepEqual(await sweepExpired(db, h.now()), { nonces: noncesBefore, idempotency: 0 });
        // The request replayed after its nonce is gone is still refused, by its timestamp.
        await expectError(await h.send('GET', path, { headers: original }), 401, 'TIMESTAMP_OUT_OF_WINDOW');

        // Past the retention the answered rows go, the one in flight stays.
        assert.equal((await sweepExpired(db, h.now(), IDEMPOTENCY_RETENTION_MS)).idempotency, 0);
        const report = await sweepExpired(db, h.now(), 0);
        assert.equal(report.idempotency, answersBefore - 1);
        assert.equal(await count('idempotency'), 1);
        // The same transfer sent again under its key: the ledger's own key stops a second payment.
        assert.equal((await pay()).status, 200);
        assert.equal(await h.balance(alice), '2.00');
        assert.equal(await h.balance(bob), '1.00');
        assert.equal((await h.audit()).balanced, true);
      } finally {
        await h.close();
      }
    });
  });
}
