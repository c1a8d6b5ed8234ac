/**
 * The operator's actions on OPS devices, on PGlite and PostgreSQL: settling a revoked device's
 * honest remainder (POST /v1/operator/settle) and removing an OEM (POST /v1/operator/oems/{keyId}/remove).
 * Every test ends with the audit balanced and the exposure check clean or attributed.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { RETIREMENT_HOLD_MS } from './node.ts';
import { opsNode, type OpsSe } from './test-fixtures.ts';

after(() => closeTestTemplates());

type Settled = { device: string; status: string; escrow: string; refund?: { amount: string } };
type AuditView = { balanced: boolean; exposure: { scheme: string; exposed: { device: string; fraud: boolean }[]; unexplained: string }[] };

for (const backend of testBackends()) {
  describe(`operator actions on OPS devices on ${backend.kind}`, { skip: backend.skip }, () => {
    test("the operator settles a revoked device's remainder once: held, its payments that surface paid from it, the rest to the owner after the hold", async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      try {
        const carol = await n.plainClient();
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        assert.equal((await n.claim(carol, await alice.se.call('pay', { amount: 500n, receiver: carol.certificate }))).status, 200);
        assert.deepEqual((await n.sync(alice)).fraud, []);
        // Paid after its last report; nobody has told the node yet.
        const unreported = await alice.se.call('pay', { amount: 200n, receiver: carol.certificate });
        const settleKey = (key: string) => n.h.send('POST', '/v1/operator/settle', { body: { keyId: alice.device }, headers: { ...n.h.operator, 'idempotency-key': key } });
        const settle = () => n.h.asOperator('POST', '/v1/operator/settle', { keyId: alice.device });

        // Not revoked: its owner withdraws or retires it; the operator settles nothing.
        await expectError(await settle(), 409, 'DEVICE_NOT_REVOKED');
        await expectError(await n.h.asOperator('POST', '/v1/operator/settle', { keyId: 'ab'.repeat(32) }), 404, 'SUBJECT_UNKNOWN');
        await expectError(await n.h.send('POST', '/v1/operator/settle', { body: { keyId: alice.device }, headers: { authorization: 'Bearer not-the-token', 'idempotency-key': 'settle-wrong-token' } }), 401, 'UNAUTHENTICATED');
        await expectError(await n.h.signed(alice.user, 'POST', '/v1/operator/settle', { keyId: alice.device }, n.key()), 403, 'FORBIDDEN');
        assert.equal(await n.h.balance(alice), '0.00');

        const revoked = await n.h.asOperator('POST', '/v1/operator/revoke', { keyId: alice.device, reason: 'reported stolen' });
        assert.equal(revoked.status, 200, await revoked.clone().text());
        const first = await settle();
        assert.equal(first.status, 200, await first.clone().text());
        const held = (await first.json()) as Settled;
        assert.deepEqual([held.status, held.escrow, held.refund], ['held', '15.00', undefined]);
        assert.equal(await n.h.balance(alice), '0.00', 'nothing goes back during the hold');
        // The payment made before the revocation surfaces and is paid from the escrow.
        assert.equal((await n.claim(carol, unreported)).status, 200);
        const during = (await (await settle()).json()) as Settled;
        assert.deepEqual([during.status, during.escrow], ['held', '13.00']);
        assert.equal((await n.h.audit()).balanced, true);

        n.h.tick(RETIREMENT_HOLD_MS + 1);
        const released = await settleKey('settle-release-1');
        const body = (await released.json()) as Settled;
        assert.deepEqual([body.status, body.refund?.amount], ['released', '13.00']);
        assert.equal(await n.h.balance(alice), '13.00');
        // The same request again answers the same, and credits nothing more.
        const replayed = await settleKey('settle-release-1');
        assert.equal(replayed.headers.get('idempotent-replayed'), 'true');
        assert.deepEqual(await replayed.json(), body);
        await expectError(await settle(), 409, 'ALREADY_SETTLED');
        assert.equal(await n.h.balance(alice), '13.00', 'given back once');
        // The old SE pays on: nothing is left to pay it from.
        await expectError(await n.claim(carol, await alice.se.call('pay', { amount: 100n, receiver: carol.certificate })), 403, 'CERT_REVOKED');
        assert.equal(await n.h.balance(carol), '7.00');

        const audit = (await (await n.h.send('GET', '/v1/audit', { headers: n.h.operator })).json()) as AuditView;
        assert.equal(audit.balanced, true);
        assert.deepEqual(audit.exposure.find((e) => e.scheme === 'ops')?.exposed, []);
        // Online 13.00 (alice) + 7.00 (carol) = the 20.00 issued; the float keeps nothing for alice.
        const totals = await n.conservation([], [], { floatShort: true });
        assert.deepEqual([totals.issued, totals.online, totals.float], [2000n, 2000n, 0n]);
      } finally {
        await n.close([alice]);
      }
    });

    test('a device caught double spending gets back what it held and did not spend, never the value its copy paid away', async () => {
      const n = await opsNode(backend);
      const bob = await n.deviceClient();
      let copy: OpsSe | undefined;
      try {
        const carol = await n.plainClient();
        await n.mint(bob, '10.00');
        await n.deposit(bob, '10.00');
        copy = await n.openSe(await n.copySe(bob), false);
        assert.equal((await n.claim(carol, await bob.se.call('pay', { amount: 100n, receiver: carol.certificate }))).status, 200);
        // The copy pays again under the same index: refused, the device is named and revoked.
        await expectError(await n.claim(carol, await copy.call('pay', { amount: 200n, receiver: carol.certificate })), 409, 'DOUBLE_SPEND');
        const held = (await (await n.h.asOperator('POST', '/v1/operator/settle', { keyId: bob.device })).json()) as Settled;
        assert.deepEqual([held.status, held.escrow], ['held', '9.00']);
        // The copy's next payment, a different index, is paid from the escrow only while it lasts.
        assert.equal((await n.claim(carol, await copy.call('pay', { amount: 300n, receiver: carol.certificate }))).status, 200);
        n.h.tick(RETIREMENT_HOLD_MS + 1);
        const released = (await (await n.h.asOperator('POST', '/v1/operator/settle', { keyId: bob.device })).json()) as Settled;
        assert.deepEqual([released.status, released.refund?.amount], ['released', '6.00']);
        assert.equal(await n.h.balance(bob), '6.00');
        assert.equal(await n.h.balance(carol), '4.00');
        const audit = (await (await n.h.send('GET', '/v1/audit', { headers: n.h.operator })).json()) as AuditView;
        assert.equal(audit.balanced, true);
        const ops = audit.exposure.find((e) => e.scheme === 'ops');
        assert.equal(ops?.unexplained, '0.00');
        assert.deepEqual(ops?.exposed, []);
        const totals = await n.conservation([], [], { floatShort: true });
        assert.deepEqual([totals.issued, totals.online, totals.float], [1000n, 1000n, 0n]);
      } finally {
        await copy?.close();
        await n.close([bob]);
      }
    });

    test('a removed OEM attests no new device; devices it attested before keep working; removal is idempotent and operator-only', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      try {
        const oemKeyId = await oemOf(n, alice.device);
        const remove = (keyId: string, headers: Record<string, string> = n.h.operator, key = `remove-${keyId.slice(0, 8)}-${Math.random()}`) =>
          n.h.send('POST', `/v1/operator/oems/${keyId}/remove`, { body: { reason: 'attestation key leaked' }, headers: { ...headers, 'idempotency-key': key } });
        await expectError(await remove(oemKeyId, { authorization: 'Bearer not-the-token' }), 401, 'UNAUTHENTICATED');
        await expectError(await remove('cd'.repeat(32)), 404, 'OEM_UNKNOWN');
        const removed = await remove(oemKeyId, n.h.operator, 'remove-oem-1');
        assert.equal(removed.status, 200, await removed.clone().text());
        const body = (await removed.json()) as { alreadyRemoved: boolean; removedAt: string };
        assert.equal(body.alreadyRemoved, false);
        const replay = await remove(oemKeyId, n.h.operator, 'remove-oem-1');
        assert.equal(replay.headers.get('idempotent-replayed'), 'true');
        assert.equal(((await (await remove(oemKeyId)).json()) as { alreadyRemoved: boolean }).alreadyRemoved, true);

        // A new device attested by it is refused, and nothing is registered.
        const before = (await n.h.node.services.db.query('SELECT 1 FROM devices')).rowCount;
        await assert.rejects(n.deviceClient(), /OEM_REMOVED/);
        assert.equal((await n.h.node.services.db.query('SELECT 1 FROM devices')).rowCount, before);
        // Enrolling the same key again does not bring it back.
        const again = await n.h.asOperator('POST', '/v1/operator/oems', { name: 'Test OEM', publicKey: { suite: 'ed25519', key: Buffer.from(n.oem.publicKey.key).toString('base64url') } });
        await expectError(again, 409, 'ALREADY_REGISTERED');

        // A device registered before the removal keeps its certificate: it deposits and pays.
        await n.mint(alice, '5.00');
        await n.deposit(alice, '5.00');
        const carol = await n.plainClient();
        assert.equal((await n.claim(carol, await alice.se.call('pay', { amount: 100n, receiver: carol.certificate }))).status, 200);
        await n.conservation([alice]);
      } finally {
        await n.close([alice]);
      }
    });
  });
}

/** The key id of the OEM that attested `device`. */
async function oemOf(n: Awaited<ReturnType<typeof opsNode>>, device: string): Promise<string> {
  const { rows } = await n.h.node.services.db.query<{ oem_key_id: string }>('SELECT oem_key_id FROM devices WHERE key_id = $1', [device]);
  assert.ok(rows[0] !== undefined);
  return rows[0].oem_key_id;
}
