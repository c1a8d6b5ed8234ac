/**
 * A node serving only some schemes (`tally node start --schemes`): a request under another
 * scheme's prefix is SCHEME_NOT_SERVED naming the schemes served, /v1/info lists them, and the
 * offline float a scheme left in the ledger before the node stopped serving it still counts in the
 * audit's sums and is named under `floatsUnchecked` (its devices' holdings are not compared).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { closeTestTemplates, testBackends } from '../db/test-databases.ts';
import { transfer } from '../ledger/transfer.ts';
import { createIssuerApp, type SchemeModule } from './app.ts';
import { setup } from './test-harness.ts';

/** A scheme with an offline float and one route. */
const held: SchemeModule = {
  name: 'held',
  floatAccount: 'float:held',
  register(app) {
    app.get('/ping', (c) => c.json({ pong: true }));
  },
};

after(closeTestTemplates);

for (const backend of testBackends()) {
  describe(`a node serving only some schemes on ${backend.kind}`, { skip: backend.skip }, () => {
    test('another scheme is refused by name; its float counts in the audit and is named as unchecked', async () => {
      const h = await setup(backend, { schemes: [held] });
      try {
        const alice = await h.register(7);
        assert.equal((await h.asOperator('POST', '/v1/operator/mint', { account: alice.account, amount: '12.00' })).status, 200);
        const moved = await h.node.services.db.transaction((tx) => transfer(tx, { idempotencyKey: 'held-deposit', debit: alice.account, credit: 'float:held', amount: 500n, kind: 'offline-deposit' }));
        assert.ok(moved.ok, moved.ok ? '' : moved.message);
        assert.deepEqual(await (await h.send('GET', '/v1/held/ping')).json(), { pong: true });
        const served = (await (await h.send('GET', '/v1/audit', { headers: h.operator })).json()) as Record<string, unknown>;
        assert.equal(served['balanced'], true);
        assert.deepEqual(served['floatsUnchecked'], [], 'the scheme that holds the float is served');

        // The same node's data served without the scheme.
        const without = createIssuerApp(h.node.services, []);
        const info = (await (await without.request('/v1/info')).json()) as Record<string, unknown>;
        assert.deepEqual(info['schemes'], {});
        const refused = await without.request('/v1/held/ping');
        assert.equal(refused.status, 404);
        assert.deepEqual(((await refused.json()) as { error: unknown }).error, {
          code: 'SCHEME_NOT_SERVED',
          message: 'no route GET /v1/held/ping: this node does not serve a scheme held (it serves none)',
          details: { scheme: 'held', served: [] },
        });
        const audit = (await (await without.request('/v1/audit', { headers: h.operator })).json()) as Record<string, unknown>;
        assert.equal(audit['balanced'], true, 'the money is all there: issued = online + offline float');
        assert.deepEqual(audit['floatsUnchecked'], [{ account: 'float:held', amount: '5.00' }]);
        assert.deepEqual(audit['exposure'], []);
      } finally {
        await h.close();
      }
    });
  });
}
