/**
 * OPS's routes on the node, PGlite and PostgreSQL: a route under a method it does not take answers
 * 405 with Allow, as every route of the node does (src/issuer/http/app.test.ts checks the node's own).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError, setup } from '../../issuer/http/test-harness.ts';
import { opsNodePart } from './node.ts';

after(() => closeTestTemplates());

for (const backend of testBackends()) {
  describe(`OPS routes on ${backend.kind}`, { skip: backend.skip }, () => {
    test('an OPS route under a method it does not take answers 405 with Allow', async () => {
      const h = await setup(backend, { schemes: [opsNodePart] });
      try {
        const res = await h.send('GET', '/v1/ops/claims');
        assert.equal(res.headers.get('allow'), 'POST', 'GET /v1/ops/claims');
        await expectError(res, 405, 'METHOD_NOT_ALLOWED');
        assert.equal((await h.audit()).balanced, true);
      } finally {
        await h.close();
      }
    });
  });
}
