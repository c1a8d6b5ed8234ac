import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { toBase64url } from '../../core/bytes.ts';
import { signRequest } from '../client/request-auth.ts';
import { closeTestTemplates, testBackends } from '../db/test-databases.ts';
import type { SchemeModule } from './scheme-module.ts';
import { expectError, setup } from './test-harness.ts';

after(() => closeTestTemplates());

/** A scheme of this test only: one route, `POST /v1/sample/receipts`, mounted like any scheme's. */
const sampleScheme: SchemeModule = {
  name: 'sample',
  register(app) {
    app.post('/receipts', (c) => c.json({ ok: true }));
  },
};

for (const backend of testBackends()) {
  describe(`issuer HTTP API on ${backend.kind}`, { skip: backend.skip }, () => {
    test('register, mint, pay online, read balances; the audit stays balanced', async () => {
      const h = await setup(backend);
      try {
        assert.equal((await h.send('GET', '/v1/health')).status, 200);
        const info = (await (await h.send('GET', '/v1/info')).json()) as { currency: { code: string } };
        assert.equal(info.currency.code, 'EUR');
        const alice = await h.register(1);
        const bob = await h.register(2);
        const minted = await h.send('POST', '/v1/operator/mint', { body: { account: alice.account, amount: '100.00' }, headers: { ...h.operator, 'idempotency-key': 'mint-0001' } });
        assert.equal(minted.status, 200, await minted.clone().text());
        const paid = await h.signed(alice.user, 'POST', '/v1/transfers', { to: bob.account, amount: '12.50' }, { 'idempotency-key': 'pay-000001' });
        assert.equal(paid.status, 200, await paid.clone().text());
        assert.equal(await h.balance(alice), '87.50');
        assert.equal(await h.balance(bob), '12.50');
        const audit = await h.audit();
        assert.equal(audit.balanced, true);
        const spec = (await (await h.send('GET', '/openapi.json')).json()) as { paths: Record<string, unknown> };
        for (const path of ['/v1/users', '/v1/transfers', '/v1/accounts/{id}', '/v1/operator/mint', '/v1/audit', '/v1/info', '/v1/health']) assert.ok(path in spec.paths, path);
      } finally {
        await h.close();
      }
    });

    test('every refused request changes nothing', async () => {
      const h = await setup(backend);
      try {
        const alice = await h.register(3);
        const bob = await h.register(4);
        await h.send('POST', '/v1/operator/mint', { body: { account: alice.account, amount: '10.00' }, headers: { ...h.operator, 'idempotency-key': 'mint-0002' } });
        const before = await h.audit();
        const key = (k: string) => ({ 'idempotency-key': k });

        await expectError(await h.signed(alice.user, 'POST', '/v1/transfers', { to: bob.account, amount: '10.01' }, key('k-overdraw')), 422, 'INSUFFICIENT_FUNDS');
        await expectError(await h.signed(alice.user, 'POST', '/v1/transfers', { to: bob.account, amount: '1.00', extra: 1 }, key('k-unknown-field')), 400, 'BODY_INVALID');
        await expectError(await h.signed(alice.user, 'POST', '/v1/transfers', { to: bob.account, amount: 1 }, key('k-wrong-type')), 400, 'BODY_INVALID');
        await expectError(await h.signed(alice.user, 'POST', '/v1/transfers', { to: bob.account, amount: '1.001' }, key('k-decimals')), 400, 'AMOUNT_INVALID');
        await expectError(await h.signed(alice.user, 'POST', '/v1/transfers', { to: 'user:nobody', amount: '1.00' }, key('k-no-payee')), 404, 'ACCOUNT_UNKNOWN');
        await expectError(await h.signed(alice.user, 'POST', '/v1/transfers', { to: bob.account, amount: '1.00' }), 400, 'IDEMPOTENCY_KEY_REQUIRED');
        await expectError(await h.send('POST', '/v1/transfers', { raw: '{"to":', headers: key('k-malformed') }), 400, 'BODY_INVALID');
        await expectError(await h.send('POST', '/v1/transfers', { raw: JSON.stringify({ to: bob.account, amount: '1.00', pad: 'x'.repeat(70_000) }), headers: key('k-huge') }), 413, 'BODY_TOO_LARGE');
        await expectError(await h.send('POST', '/v1/transfers', { body: { to: bob.account, amount: '1.00' }, headers: key('k-unsigned') }), 401, 'UNAUTHENTICATED');

        // A forged signature: Bob's key id, Alice's key.
        const forged = signRequest({ signer: alice.user, keyId: bob.keyId, method: 'POST', path: '/v1/transfers', body: JSON.stringify({ to: alice.account, amount: '1.00' }), timestamp: 1_800_000_000_000 });
        await expectError(await h.send('POST', '/v1/transfers', { raw: JSON.stringify({ to: alice.account, amount: '1.00' }), headers: { ...forged, ...key('k-forged') } }), 401, 'SIGNATURE_INVALID');
        // A replayed nonce.
        const nonce = new Uint8Array(16).fill(9);
        assert.equal((await h.signed(alice.user, 'GET', `/v1/accounts/${alice.account}`, undefined, {}, nonce)).status, 200);
        await expectError(await h.signed(alice.user, 'GET', `/v1/accounts/${alice.account}`, undefined, {}, nonce), 401, 'NONCE_REPLAYED');
        // A stale timestamp.
        const stale = signRequest({ signer: alice.user, keyId: alice.keyId, method: 'GET', path: `/v1/accounts/${alice.account}`, body: '', timestamp: 1_800_000_000_000 - 10 * 60_000 });
        await expectError(await h.send('GET', `/v1/accounts/${alice.account}`, { headers: stale }), 401, 'TIMESTAMP_OUT_OF_WINDOW');
        // Someone else's account, the operator's calls, a wrong token.
        await expectError(await h.signed(bob.user, 'GET', `/v1/accounts/${alice.account}`), 403, 'FORBIDDEN');
        await expectError(await h.signed(alice.user, 'POST', '/v1/operator/mint', { account: alice.account, amount: '1.00' }, key('k-self-mint')), 403, 'FORBIDDEN');
        await expectError(await h.send('POST', '/v1/operator/mint', { body: { account: alice.account, amount: '1.00' }, headers: { authorization: 'Bearer wrong-token', ...key('k-bad-token') } }), 401, 'UNAUTHENTICATED');
        await expectError(await h.send('GET', '/v1/audit'), 401, 'UNAUTHENTICATED');
        // Registering twice, and with a key the request is not signed by.
        const again = await h.signed(alice.user, 'POST', '/v1/users', { publicKey: { suite: 'ed25519', key: toBase64url(alice.user.publicKey.key) } }, key('k-register-again'));
        await expectError(again, 409, 'ALREADY_REGISTERED');
        await expectError(await h.signed(alice.user, 'POST', '/v1/users', { publicKey: { suite: 'ed25519', key: toBase64url(bob.user.publicKey.key) } }, key('k-register-other')), 401, 'SIGNATURE_INVALID');
        await expectError(await h.send('GET', '/v1/nowhere'), 404, 'NOT_FOUND');

        const afterAll = await h.audit();
        assert.equal(afterAll.balanced, true);
        assert.equal(afterAll.transferCount, before.transferCount);
        assert.equal(await h.balance(alice), '10.00');
        assert.equal(await h.balance(bob), '0.00');
      } finally {
        await h.close();
      }
    });

    test('the same request replayed answers the same and moves money once; another request under the key is refused', async () => {
      const h = await setup(backend);
      try {
        const alice = await h.register(5);
        const bob = await h.register(6);
        await h.send('POST', '/v1/operator/mint', { body: { account: alice.account, amount: '5.00' }, headers: { ...h.operator, 'idempotency-key': 'mint-0003' } });
        const pay = () => h.signed(alice.user, 'POST', '/v1/transfers', { to: bob.account, amount: '1.00' }, { 'idempotency-key': 'same-key-1' });
        const answers = await Promise.all(Array.from({ length: 50 }, pay));
        const bodies = await Promise.all(answers.map((r) => r.text()));
        assert.ok(answers.every((r) => r.status === 200), bodies.find((_b, i) => answers[i]!.status !== 200));
        assert.equal(new Set(bodies).size, 1);
        // Exactly one answer ran the transfer; the other 49 are marked as replays.
        assert.deepEqual(answers.map((r) => r.headers.get('idempotent-replayed')).sort((a, b) => String(a).localeCompare(String(b))), ['false', ...Array<string>(49).fill('true')]);
        await expectError(await h.signed(alice.user, 'POST', '/v1/transfers', { to: bob.account, amount: '2.00' }, { 'idempotency-key': 'same-key-1' }), 409, 'IDEMPOTENCY_CONFLICT');
        assert.equal(await h.balance(alice), '4.00');
        assert.equal(await h.balance(bob), '1.00');
        // Keys of the full 128 characters that differ only at the end are different keys.
        const long = 'k'.repeat(120);
        for (const last of ['-0000001', '-0000002']) {
          const res = await h.signed(alice.user, 'POST', '/v1/transfers', { to: bob.account, amount: '0.50' }, { 'idempotency-key': `${long}${last}` });
          assert.equal(res.status, 200, await res.text());
        }
        assert.equal(await h.balance(bob), '2.00');
        assert.equal((await h.audit()).balanced, true);
      } finally {
        await h.close();
      }
    });

    test('text the database cannot store is refused as BODY_INVALID naming the field, and changes nothing', async () => {
      const h = await setup(backend);
      try {
        const alice = await h.register(7);
        const bob = await h.register(8);
        await h.asOperator('POST', '/v1/operator/mint', { account: alice.account, amount: '5.00' });
        const before = await h.audit();
        for (const [name, memo] of [['nul', 'rent\u0000'], ['high surrogate', 'rent \ud800'], ['low surrogate', '\udc00 rent']] as const) {
          const res = await h.signed(alice.user, 'POST', '/v1/transfers', { to: bob.account, amount: '1.00', memo }, { 'idempotency-key': `memo-${name.replace(' ', '-')}` });
          const body = (await res.json()) as { error: { code: string; message: string } };
          assert.equal(res.status, 400, `${name}: ${JSON.stringify(body)}`);
          assert.equal(body.error.code, 'BODY_INVALID');
          assert.match(body.error.message, /body\.memo/);
        }
        // A memo of ordinary text, emoji (a surrogate pair) included, is stored and read back.
        const paid = await h.signed(alice.user, 'POST', '/v1/transfers', { to: bob.account, amount: '1.00', memo: 'rent 🏠' }, { 'idempotency-key': 'memo-ok-01' });
        assert.equal(paid.status, 200, await paid.clone().text());
        assert.deepEqual(((await paid.json()) as { transfer: { reference: unknown } }).transfer.reference, { memo: 'rent 🏠' });
        const afterAll = await h.audit();
        assert.equal(afterAll.balanced, true);
        assert.equal(BigInt(afterAll.transferCount), BigInt(before.transferCount) + 1n);
        assert.equal(await h.balance(bob), '1.00');
      } finally {
        await h.close();
      }
    });

    test('a known path under a method it does not take answers 405 with Allow; an unknown path 404', async () => {
      const h = await setup(backend, { schemes: [sampleScheme] });
      try {
        const cases: Array<[string, string, string]> = [
          ['DELETE', '/v1/users', 'POST'],
          ['GET', '/v1/transfers', 'POST'],
          ['PUT', '/v1/accounts/user:abc', 'GET, HEAD'],
          ['POST', '/v1/health', 'GET, HEAD'],
          ['DELETE', '/v1/operator/mint', 'POST'],
          ['GET', '/v1/sample/receipts', 'POST'],
        ];
        for (const [method, path, allow] of cases) {
          const res = await h.send(method, path);
          assert.equal(res.headers.get('allow'), allow, `${method} ${path}`);
          await expectError(res, 405, 'METHOD_NOT_ALLOWED');
        }
        await expectError(await h.send('GET', '/v1/nowhere'), 404, 'NOT_FOUND');
        await expectError(await h.send('GET', '/v1/accounts/user:abc/more'), 404, 'NOT_FOUND');
        assert.equal((await h.audit()).balanced, true);
      } finally {
        await h.close();
      }
    });
  });
}
