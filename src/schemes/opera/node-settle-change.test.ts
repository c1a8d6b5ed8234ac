/**
 * OPERA settlement of a payment with change, PGlite and PostgreSQL: the payer's tokens (3.00) pay
 * 2.30 and the payee gives 0.70 back in its own tokens. Every token ends with exactly one side: a
 * payee that took the tokens released its change key, so a payer that reports (it never opened the
 * change) is refunded the change's value from the payee's change tokens; a payer never heard from
 * took the change offline; a payee that never took the tokens gets its change tokens' value back.
 * Each test ends with the audit (conservation and the OPERA exposure check).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { TXID_BYTES } from './messages.ts';
import { operaNode, type OperaNode } from './node-fixtures.ts';

after(() => closeTestTemplates());

/** Alice's ODW holds 2.00 + 1.00 of her 5.00, Bob's 0.50 + 0.20 of his 1.00; Alice pays 2.30, Bob gives 0.70 back. */
async function dealt(n: OperaNode) {
  const [alice, bob] = [await n.client(), await n.client()];
  await n.mint(alice, '5.00');
  await n.mint(bob, '1.00');
  const tokens = await n.charged(alice, [[200n, 1], [100n, 1]]);
  const change = await n.charged(bob, [[50n, 1], [20n, 1]]);
  return { alice, bob, tokens, change, tx: n.transaction(alice, bob, tokens, randomBytes(TXID_BYTES), change) };
}

for (const backend of testBackends()) {
  describe(`OPERA settlement with change on ${backend.kind}`, { skip: backend.skip }, () => {
    test('the payee took the tokens and the payer never opened the change: the payer waits, then is paid and refunded the change once', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tokens, change, tx } = await dealt(n);
        assert.equal(tx.amount, 230n);
        assert.equal((await n.settle(alice, tx.payer(1))).outcome, 'pending');
        await n.conservation(370n);
        const payee = await n.settle(bob, tx.payee(1));
        assert.deepEqual([payee.outcome, payee.credited], ['paid', '0.00']);
        assert.equal(await n.h.balance(alice), '2.70', "the change's value to the payer");
        const replay = await n.settle(bob, tx.payee(1));
        assert.deepEqual([replay.outcome, replay.credited], ['paid', '0.00']);
        const payer = await n.settle(alice, tx.payer(1));
        assert.deepEqual([payer.outcome, payer.credited], ['paid', '0.70']);
        assert.deepEqual([await n.h.balance(alice), await n.h.balance(bob)], ['2.70', '0.30'], 'credited once');
        await n.conservation(300n);
        assert.deepEqual((await n.deposit(bob, change)).outcomes, ['double-spend', 'double-spend'], 'the change is spent: the payee gave it');
        assert.equal((await n.deposit(bob, tokens)).credited, '3.00');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('the payee reports first that it took the tokens: the payer that released is then paid and refunded the change', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tx } = await dealt(n);
        assert.equal((await n.settle(bob, tx.payee(1))).outcome, 'paid');
        assert.equal(await n.h.balance(alice), '2.00', 'nothing before the payer reports: it may hold the change');
        await n.conservation(370n);
        const payer = await n.settle(alice, tx.payer(1));
        assert.deepEqual([payer.outcome, payer.credited, await n.h.balance(alice)], ['paid', '0.70', '2.70']);
        await n.conservation(300n);
      } finally {
        await n.h.close();
      }
    });

    test('a payer never heard from took the change offline: the payee is paid, the payer deposits the change', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tokens, change, tx } = await dealt(n);
        assert.equal((await n.settle(bob, tx.payee(1))).outcome, 'paid');
        assert.equal((await n.deposit(alice, change)).credited, '0.70');
        assert.equal((await n.deposit(bob, tokens)).credited, '3.00');
        assert.deepEqual([await n.h.balance(alice), await n.h.balance(bob)], ['2.70', '3.30']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('the payee never took the tokens: its change comes back to it, the payer is refunded, each once', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tx } = await dealt(n);
        assert.equal((await n.settle(alice, tx.payer(1))).outcome, 'pending');
        const payee = await n.settle(bob, tx.payee(0));
        assert.deepEqual([payee.outcome, payee.credited], ['abandoned', '0.70']);
        const payer = await n.settle(alice, tx.payer(1));
        assert.deepEqual([payer.outcome, payer.credited], ['refunded', '3.00']);
        assert.equal((await n.settle(bob, tx.payee(0))).credited, '0.70', 'a later report: the same answer');
        assert.deepEqual([await n.h.balance(alice), await n.h.balance(bob)], ['5.00', '1.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a payer that never released is refunded at once; its payee, reporting later, gets its change back', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tx } = await dealt(n);
        assert.deepEqual([(await n.settle(alice, tx.payer(0))).credited, await n.h.balance(alice)], ['3.00', '5.00']);
        await n.conservation(70n);
        assert.deepEqual([(await n.settle(bob, tx.payee(0))).credited, await n.h.balance(bob)], ['0.70', '1.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('reports that disagree on the change, change tokens not worth it, and a release without the change are refused; nothing moves', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, change, tx } = await dealt(n);
        await expectError((await n.settle(bob, tx.payee(0, { tokens: [change[0] as (typeof change)[number]] }))).res, 422, 'OPERA_MESSAGE_INVALID');
        await expectError((await n.settle(bob, tx.payee(0, { tokens: [] }))).res, 422, 'OPERA_MESSAGE_INVALID');
        await expectError((await n.settle(alice, tx.payer(1, { change: 50n }))).res, 422, 'OPERA_MESSAGE_INVALID');
        const withoutChange = n.release(alice, { ...tx.claim, change: undefined });
        await expectError((await n.settle(bob, tx.payee(1, { release: withoutChange }))).res, 422, 'OPERA_RELEASE_INVALID');
        assert.equal((await n.settle(alice, tx.payer(1))).outcome, 'pending');
        await expectError((await n.settle(bob, tx.payee(0, { change: 50n, tokens: [change[0] as (typeof change)[number]] }))).res, 409, 'OPERA_REPORT_MISMATCH');
        assert.deepEqual([await n.h.balance(alice), await n.h.balance(bob)], ['2.00', '0.30']);
        await n.conservation(370n);
      } finally {
        await n.h.close();
      }
    });
  });
}
