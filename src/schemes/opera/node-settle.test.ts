/**
 * OPERA settlement on the node, PGlite and PostgreSQL: each rule by which the bank finishes a
 * transaction two ODWs did not (a payer that never released is refunded at once; one that released
 * waits for its payee, paid or refunded by what the payee reports; a payer that denies a release
 * its payee holds is found and revoked), with replays answered from the stored state. Every test
 * ends with the audit (conservation and the OPERA exposure check).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { toHex } from '../../core/bytes.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { operaNode, type OperaNode } from './node-fixtures.ts';
import type { Token } from './token.ts';

after(() => closeTestTemplates());

/** Alice's ODW holds 2.00 + 1.00 charged from her 5.00, and is about to pay them to Bob's. */
async function dealt(n: OperaNode) {
  const [alice, bob] = [await n.client(), await n.client()];
  await n.mint(alice, '5.00');
  const tokens = await n.charged(alice, [[200n, 1], [100n, 1]]);
  return { alice, bob, tokens, tx: n.transaction(alice, bob, tokens) };
}

for (const backend of testBackends()) {
  describe(`OPERA settlement on ${backend.kind}`, { skip: backend.skip }, () => {
    test('a payer that never released is refunded at once, once: a replay and a later report answer the same; its payee has abandoned', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tokens, tx } = await dealt(n);
        const report = tx.payer(0);
        const first = await n.settle(alice, report);
        assert.deepEqual([first.res.status, first.outcome, first.credited], [200, 'refunded', '3.00']);
        assert.equal(await n.h.balance(alice), '5.00');
        await n.conservation(0n);
        const replay = await n.settle(alice, report);
        assert.deepEqual([replay.res.headers.get('idempotent-replayed'), replay.outcome, replay.credited], ['true', 'refunded', '3.00']);
        const later = await n.settle(alice, tx.payer(0));
        assert.deepEqual([later.res.headers.get('idempotent-replayed'), later.outcome, later.credited], ['false', 'refunded', '3.00']);
        assert.equal(await n.h.balance(alice), '5.00', 'refunded once');
        const payee = await n.settle(bob, tx.payee(0));
        assert.deepEqual([payee.outcome, payee.credited], ['abandoned', '0.00']);
        const states = await n.rows<{ state: string; spent_by: string; txid: Uint8Array }>('SELECT state, spent_by, txid FROM opera_tokens');
        assert.deepEqual(states.map((r) => [r.state, r.spent_by, toHex(new Uint8Array(r.txid))]), tokens.map(() => ['refunded', alice.deviceId, toHex(tx.txid)]));
        // The refunded tokens are spent: a copy deposited later is a double spend.
        assert.deepEqual((await n.deposit(bob, tokens)).outcomes, ['double-spend', 'double-spend']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a refund credits only the tokens still issued: one already deposited is found, and the same tokens refunded in another transaction credit nothing', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tokens } = await dealt(n);
        assert.equal((await n.deposit(alice, [tokens[1] as Token])).credited, '1.00');
        const tx = n.transaction(alice, bob, tokens);
        const refunded = await n.settle(alice, tx.payer(0));
        assert.deepEqual([refunded.outcome, refunded.credited], ['refunded', '2.00']);
        const again = n.transaction(alice, bob, tokens);
        const twice = await n.settle(alice, again.payer(0));
        assert.deepEqual([twice.outcome, twice.credited], ['refunded', '0.00']);
        assert.equal(await n.h.balance(alice), '5.00');
        const serials = tokens.map((t) => toHex(t.body.serial));
        assert.deepEqual((await n.findings()).map((f) => [f.kind, f.serial, f.txid, f.device, f.first]).sort(), [
          ['refund-spent', serials[0], toHex(again.txid), alice.deviceId, alice.deviceId],
          ['refund-spent', serials[1], toHex(again.txid), alice.deviceId, alice.deviceId],
          ['refund-spent', serials[1], toHex(tx.txid), alice.deviceId, alice.deviceId],
        ].sort());
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a payer that released waits; its payee shows the release and is paid, the payer is then told paid, and the payee deposits the tokens', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tokens, tx } = await dealt(n);
        assert.deepEqual((await n.settle(alice, tx.payer(1))).outcome, 'pending');
        assert.deepEqual((await n.settle(alice, tx.payer(1))).outcome, 'pending', 'a later report: still pending');
        await n.conservation(300n);
        const payee = await n.settle(bob, tx.payee(1));
        assert.deepEqual([payee.outcome, payee.credited], ['paid', '0.00']);
        const payer = await n.settle(alice, tx.payer(1));
        assert.deepEqual([payer.outcome, payer.credited], ['paid', '0.00']);
        assert.equal(await n.h.balance(alice), '2.00');
        assert.equal((await n.deposit(bob, tokens)).credited, '3.00');
        assert.deepEqual(await n.findings(), []);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a payer that released waits; its payee never took the tokens: the payer is refunded when the payee reports, and told refunded', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tx } = await dealt(n);
        assert.equal((await n.settle(alice, tx.payer(1))).outcome, 'pending');
        const payee = await n.settle(bob, tx.payee(0));
        assert.deepEqual([payee.outcome, payee.credited], ['abandoned', '0.00']);
        assert.equal(await n.h.balance(alice), '5.00', 'refunded with the payee report');
        await n.conservation(0n);
        const payer = await n.settle(alice, tx.payer(1));
        assert.deepEqual([payer.outcome, payer.credited], ['refunded', '3.00']);
        assert.equal(await n.h.balance(alice), '5.00');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a payee that reports first: paid, then the payer that released is told paid; abandoned, then the payer is refunded', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tokens, tx } = await dealt(n);
        assert.equal((await n.settle(bob, tx.payee(1))).outcome, 'paid');
        assert.deepEqual([(await n.settle(alice, tx.payer(1))).outcome, await n.h.balance(alice)], ['paid', '2.00']);
        await n.conservation(300n);
        assert.equal((await n.deposit(bob, tokens)).credited, '3.00');

        const more = await n.charged(alice, [[50n, 2]]);
        const second = n.transaction(alice, bob, more);
        assert.equal((await n.settle(bob, second.payee(0))).outcome, 'abandoned');
        assert.equal(await n.h.balance(alice), '1.00', 'no refund before the payer reports');
        await n.conservation(100n);
        const refunded = await n.settle(alice, second.payer(1));
        assert.deepEqual([refunded.outcome, refunded.credited, await n.h.balance(alice)], ['refunded', '1.00', '2.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a payer refunded as never released whose payee then shows its release lied: found, revoked, the payee told paid with nothing credited, its deposit a double spend', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tokens, tx } = await dealt(n);
        assert.equal((await n.settle(alice, tx.payer(0))).outcome, 'refunded');
        const payee = await n.settle(bob, tx.payee(1));
        assert.deepEqual([payee.outcome, payee.credited], ['paid', '0.00']);
        assert.deepEqual([await n.h.balance(alice), await n.h.balance(bob)], ['5.00', '0.00']);
        const crl = (await (await n.h.send('GET', '/v1/revocations')).json()) as { version: number };
        assert.deepEqual((await n.findings()).map((f) => [f.kind, f.txid, f.device, f.revocationVersion]), [['release-denied', toHex(tx.txid), alice.deviceId, crl.version]]);
        await expectError((await n.charge(alice, n.chargeRequest(alice, [[100n, 1]]))).res, 403, 'CERT_REVOKED');
        const deposit = await n.deposit(bob, tokens);
        assert.deepEqual([deposit.outcomes, deposit.credited], [['double-spend', 'double-spend'], '0.00']);
        assert.deepEqual((await n.findings()).filter((f) => f.kind === 'double-spend').map((f) => [f.device, f.first]), [[bob.deviceId, alice.deviceId], [bob.deviceId, alice.deviceId]]);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a payer that reports never released after its payee showed the release is not refunded: found and revoked, told paid', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tokens, tx } = await dealt(n);
        assert.equal((await n.settle(bob, tx.payee(1))).outcome, 'paid');
        const payer = await n.settle(alice, tx.payer(0));
        assert.deepEqual([payer.outcome, payer.credited], ['paid', '0.00']);
        assert.equal(await n.h.balance(alice), '2.00', 'no refund');
        assert.deepEqual((await n.findings()).map((f) => [f.kind, f.device]), [['release-denied', alice.deviceId]]);
        assert.equal((await n.rows('SELECT 1 FROM revoked_certificates WHERE subject_key_id = $1', [alice.deviceId])).length, 1);
        assert.equal((await n.deposit(bob, tokens)).credited, '3.00');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });
  });
}
