/**
 * DOT-M on a real node, PGlite and PostgreSQL: the events route's own body limit (a payment at the
 * per-payment bounds uploads; a body over the route's limit is refused before it is read, changing
 * nothing), the operator's revocation of a wallet, and a removed OEM refusing new wallets.
 * Every test ends with float:dotm = Σ balances of the genuine trusted apps.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { BODY_BYTES_MAX } from '../../issuer/plugin.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { BLOCKS_PER_PAYMENT_MAX, RECORDS_PER_PAYMENT_MAX } from './messages.ts';
import { EVENTS_BODY_BYTES_MAX } from './node.ts';
import type { WalletEvent } from './online.ts';
import { dotmNode, type DotmNode, type DotmParty, type EventsAnswer } from './test-fixtures.ts';

after(() => closeTestTemplates());

async function walletView(n: DotmNode, p: DotmParty): Promise<{ lastSeq: number; revoked: boolean }> {
  const res = await n.h.signed(p.user, 'GET', `/v1/dotm/wallets/${p.wallet}`);
  return (await res.json()) as { lastSeq: number; revoked: boolean };
}

for (const backend of testBackends()) {
  describe(`DOT-M operator actions and body limits on ${backend.kind}`, { skip: backend.skip }, () => {
    test("an event at the per-payment bounds uploads through the route's own limit; a body over it is refused with 413 and changes nothing", async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const r = await n.party('payee', '0');
        const q = await n.party('third', '0');
        const blocks = BLOCKS_PER_PAYMENT_MAX;
        const value = BigInt(blocks) * 100n;
        await n.withdraw(p, (Number(value) / 100).toFixed(2), blocks);
        // Every block changes hands three times, so the fourth payment carries 60 earlier records
        // and 20 current ones (§3.2.1's bounds).
        await n.pay(p, r, value);
        await n.pay(r, p, value);
        await n.pay(p, r, value);
        await n.pay(r, q, value);
        const events = (await r.se.call('events', {})).events as readonly WalletEvent[];
        const last = events.at(-1);
        assert.ok(last !== undefined && last.body.kind === 'sent');
        const earlier = last.body.parts.reduce((sum, part) => sum + part.block.records.length, 0);
        assert.deepEqual([last.body.parts.length, earlier], [blocks, RECORDS_PER_PAYMENT_MAX]);
        const [wire] = n.wire([last]) as [string];
        assert.ok(wire.length > BODY_BYTES_MAX, `the event is ${wire.length} characters: more than the node's default body limit`);

        // Over the route's limit: refused before the body is read; nothing is taken.
        const before = await walletView(n, r);
        const over = await n.upload(r, { raw: [...n.wire(events), 'A'.repeat(EVENTS_BODY_BYTES_MAX)] });
        await expectError(over, 413, 'BODY_TOO_LARGE');
        assert.equal(over.headers.get('connection'), 'close');
        assert.deepEqual(await walletView(n, r), before);
        assert.equal(before.lastSeq, 0);
        // Another route keeps the node's default limit.
        await expectError(await n.issue(r, '1.00', { blocks: 1, key: { 'idempotency-key': 'issue-padded-1' }, wallet: 'A'.repeat(BODY_BYTES_MAX) }), 413, 'BODY_TOO_LARGE');

        // One event per request, as wallets send large ones: each is taken.
        for (const event of events) {
          const res = await n.upload(r, { events: [event] });
          assert.equal(res.status, 200, await res.clone().text());
          const answer = (await res.json()) as EventsAnswer;
          assert.deepEqual(answer.results.map((x) => x.status), ['taken']);
          assert.deepEqual(answer.findings, []);
        }
        assert.equal((await walletView(n, r)).lastSeq, events.length);
        await n.conservation([p.se, r.se, q.se]);
      } finally {
        await n.close();
      }
    });

    test('the operator revokes a DOT-M wallet by its wallet key or its user key: both certificates are listed and the node issues it nothing more', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const r = await n.party('payee', '0');
        await n.withdraw(p, '10.00', 2);
        await n.pay(p, r, 300n);
        const revoke = (keyId: string, headers: Record<string, string> = n.h.operator, key = `revoke-${Math.random()}`) =>
          n.h.send('POST', '/v1/operator/revoke', { body: { keyId, reason: 'wallet reported stolen' }, headers: { ...headers, 'idempotency-key': key } });

        await expectError(await revoke(p.wallet, { authorization: 'Bearer not-the-token' }), 401, 'UNAUTHENTICATED');
        await expectError(await revoke('ef'.repeat(32)), 404, 'SUBJECT_UNKNOWN');
        const listBefore = (await (await n.h.send('GET', '/v1/revocations')).json()) as { version: number; revoked: string[] };

        const first = await revoke(p.wallet, n.h.operator, 'revoke-dotm-1');
        assert.equal(first.status, 200, await first.clone().text());
        const body = (await first.json()) as { role: string; serial: string; version: number; alreadyRevoked: boolean; scheme: string };
        assert.deepEqual([body.role, body.alreadyRevoked, body.scheme], ['device', false, 'dotm']);
        const list = (await (await n.h.send('GET', '/v1/revocations')).json()) as { version: number; revoked: string[] };
        assert.equal(list.version, listBefore.version + 2, 'ucert and wcert, one version each');
        assert.equal(list.revoked.length, listBefore.revoked.length + 2);
        assert.ok(list.revoked.includes(body.serial));
        // The same request again answers the same; the user key names the same wallet, already revoked.
        const replay = await revoke(p.wallet, n.h.operator, 'revoke-dotm-1');
        assert.equal(replay.headers.get('idempotent-replayed'), 'true');
        assert.deepEqual(await replay.json(), body);
        const byUser = (await (await revoke(p.userKeyId)).json()) as { role: string; alreadyRevoked: boolean };
        assert.deepEqual([byUser.role, byUser.alreadyRevoked], ['user', true]);
        assert.equal(((await (await n.h.send('GET', '/v1/revocations')).json()) as { version: number }).version, list.version);

        // The revoked wallet gets no more blocks (its account key is not revoked: it still reads).
        assert.equal((await walletView(n, p)).revoked, true);
        await expectError(await n.issue(p, '1.00'), 403, 'CERT_REVOKED');
        // Wallets that sync take the new list.
        const synced = await n.sync(r);
        assert.equal(synced.crlVersion, list.version);
        // The operator's settlement of its remainder first holds it (remainder.test.ts): nothing moves, and
        // meanwhile the wallet still redeems its blocks, which the node credits once.
        const held = await n.h.asOperator('POST', '/v1/operator/settle', { keyId: p.wallet });
        assert.equal(held.status, 200, await held.clone().text());
        const hold = (await held.json()) as { status: string; escrow: string };
        assert.deepEqual([hold.status, hold.escrow], ['held', '7.00']);
        assert.equal(await n.balanceMinor(p), 10_000n - 1000n);
        const redeemed = await n.redeem(p, 700n);
        assert.equal(redeemed.results.at(-1)?.credited, '7.00');
        assert.equal(await n.balanceMinor(p), 10_000n - 1000n + 700n);
        await n.conservation([p.se, r.se]);
      } finally {
        await n.close();
      }
    });

    test('a removed OEM attests no new DOT-M wallet; wallets registered before keep working', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const removed = await n.h.asOperator('POST', `/v1/operator/oems/${n.oemKeyId}/remove`, { reason: 'attestation key leaked' });
        assert.equal(removed.status, 200, await removed.clone().text());
        const ta = await n.unregistered('late');
        await expectError(await n.register(ta, n.registration(ta)), 403, 'OEM_REMOVED');
        assert.equal((await n.h.node.services.db.query('SELECT 1 FROM dotm_wallets')).rowCount, 1);
        await n.withdraw(p, '5.00', 1);
        await n.conservation([p.se, ta.se]);
      } finally {
        await n.close();
      }
    });
  });
}
