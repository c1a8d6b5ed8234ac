/**
 * OPERA settlement refusals on the node, PGlite and PostgreSQL: releases that do not verify, reports
 * that disagree with the other side's or with their own side's earlier one, a report for another
 * ODW's SN, reports that do not add up or carry tokens without the bank's signature; none changes
 * anything. And concurrent reports: a transaction is refunded once whatever races. Every test ends
 * with the audit (conservation and the OPERA exposure check).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { randomBytes } from '../../core/crypto/hash.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { SN_BYTES } from './messages.ts';
import { operaNode, untouched, type OperaNode } from './node-fixtures.ts';
import { signToken, type Token } from './token.ts';

after(() => closeTestTemplates());

async function dealt(n: OperaNode) {
  const [alice, bob, carol] = [await n.client(), await n.client(), await n.client()];
  await n.mint(alice, '5.00');
  const tokens = await n.charged(alice, [[200n, 1], [100n, 1]]);
  return { alice, bob, carol, tokens, tx: n.transaction(alice, bob, tokens) };
}


for (const backend of testBackends()) {
  describe(`OPERA settlement refusals on ${backend.kind}`, { skip: backend.skip }, () => {
    test("a payee's release that is missing, not the payer's, for another claim or from an unknown ODW is refused and changes nothing", async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, carol, tx } = await dealt(n);
        const refused = async (report: ReturnType<typeof tx.payee>, reason: string) => {
          const error = await expectError((await n.settle(bob, report)).res, 422, 'OPERA_RELEASE_INVALID');
          assert.equal(error.details['reason'], reason, error.message);
        };
        await refused(tx.payee(1, { release: undefined }), 'missing');
        await refused(tx.payee(1, { release: n.release(carol, tx.claim) }), 'signature');
        await refused(tx.payee(1, { release: n.release(alice, { ...tx.claim, amount: 299n }) }), 'signature');
        await refused(tx.payee(1, { partner: randomBytes(SN_BYTES) }), 'payer');
        await untouched(n);
        assert.equal((await n.settle(bob, tx.payee(1))).outcome, 'paid');
        await n.conservation(300n);
      } finally {
        await n.h.close();
      }
    });

    test("reports that disagree with the other side's (SNs, amount, count) or with their side's earlier one are refused", async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, carol, tx } = await dealt(n);
        assert.equal((await n.settle(alice, tx.payer(1))).outcome, 'pending');
        const mismatch = async (who: typeof bob, report: ReturnType<typeof tx.payee>) => expectError((await n.settle(who, report)).res, 409, 'OPERA_REPORT_MISMATCH');
        await mismatch(bob, tx.payee(0, { amount: 200n }));
        await mismatch(bob, tx.payee(0, { count: 3 }));
        await mismatch(carol, n.report(carol, { txid: tx.txid, mode: 'receive', partner: alice.sn, amount: tx.amount, count: tx.count, released: 0, accepted: 0 }));
        await mismatch(bob, n.report(bob, { txid: tx.txid, mode: 'receive', partner: carol.sn, amount: tx.amount, count: tx.count, released: 0, accepted: 0 }));
        // A release the payer really signed, for a claim other than the one it reported.
        const other = { ...tx.claim, amount: 200n, count: 1 };
        await mismatch(bob, tx.payee(1, { amount: 200n, count: 1, release: n.release(alice, other) }));
        // The payer cannot take its report back.
        await mismatch(alice, tx.payer(0));
        assert.equal((await n.rows("SELECT 1 FROM opera_settlements WHERE outcome = 'pending' AND payee_report IS NULL")).length, 1);
        assert.equal(await n.h.balance(alice), '2.00');
        assert.equal((await n.settle(alice, tx.payer(1))).outcome, 'pending');
        await n.conservation(300n);
      } finally {
        await n.h.close();
      }
    });

    test("a report for another ODW's SN, one not signed by the device, one that does not add up or carries bad tokens is refused", async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tokens, tx } = await dealt(n);
        await expectError((await n.settle(alice, tx.payer(0, {}, { self: bob.sn }))).res, 403, 'FORBIDDEN');
        await expectError((await n.settle(alice, tx.payer(0, {}, { signer: bob.device }))).res, 401, 'SIGNATURE_INVALID');
        const invalid = async (report: ReturnType<typeof tx.payer>, code = 'OPERA_MESSAGE_INVALID') => expectError((await n.settle(alice, report)).res, 422, code);
        const [two, one] = tokens as [Token, Token];
        await invalid(tx.payer(0, { count: 3 }));
        await invalid(tx.payer(0, { amount: 250n }));
        await invalid(tx.payer(0, { partner: alice.sn }));
        await invalid(tx.payer(0, { tokens: [two, two], amount: 400n }), 'OPERA_TOKEN_INVALID');
        await invalid(tx.payer(0, { tokens: [two, signToken(alice.device, one.body)] }), 'OPERA_TOKEN_INVALID');
        await invalid(tx.payer(0, { tokens: [two, signToken(n.h.node.services.identity.issuerNode.signer, { ...one.body, currency: 'USD' })] }), 'OPERA_TOKEN_INVALID');
        await expectError((await n.settle(bob, tx.payee(0, { tokens: [one] }))).res, 422, 'OPERA_MESSAGE_INVALID');
        await untouched(n);
        const report = tx.payer(0);
        assert.equal((await n.settle(alice, report)).outcome, 'refunded');
        await expectError((await n.settle(alice, tx.payer(1, {}, { nonce: report.body.nonce }))).res, 409, 'IDEMPOTENCY_CONFLICT');
        assert.equal(await n.h.balance(alice), '5.00');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('concurrent reports settle a transaction once: copies of a report, both sides at once, and one set of tokens in two transactions', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tx } = await dealt(n);
        const report = tx.payer(0);
        const raced = await Promise.all([n.settle(alice, report), n.settle(alice, report), n.settle(bob, tx.payee(0)), n.settle(alice, tx.payer(0))]);
        assert.deepEqual(raced.map((r) => r.outcome), ['refunded', 'refunded', 'abandoned', 'refunded']);
        assert.deepEqual(raced.map((r) => r.credited), ['3.00', '3.00', '0.00', '3.00']);
        assert.equal(await n.h.balance(alice), '5.00');
        await n.conservation(0n);

        const more = await n.charged(alice, [[100n, 3]]);
        const second = n.transaction(alice, bob, more);
        const [payer, payee] = await Promise.all([n.settle(alice, second.payer(1)), n.settle(bob, second.payee(0))]);
        assert.equal(payee.outcome, 'abandoned');
        assert.ok(payer.outcome === 'pending' || payer.outcome === 'refunded', String(payer.outcome));
        assert.deepEqual([(await n.settle(alice, second.payer(1))).outcome, await n.h.balance(alice)], ['refunded', '5.00']);
        await n.conservation(0n);

        // A broken ODW reports the same tokens in two transactions at once: they are refunded once.
        const again = await n.charged(alice, [[200n, 2]]);
        const [x, y] = [n.transaction(alice, bob, again), n.transaction(alice, bob, again)];
        const both = await Promise.all([n.settle(alice, x.payer(0)), n.settle(alice, y.payer(0))]);
        assert.deepEqual(both.map((r) => r.credited).sort(), ['0.00', '4.00']);
        assert.equal(await n.h.balance(alice), '5.00');
        assert.equal((await n.rows("SELECT 1 FROM opera_findings WHERE kind = 'refund-spent'")).length, 2);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });
  });
}
