/**
 * OPERA settlement of a payment with change, PGlite and PostgreSQL: the payer's tokens (3.00) pay
 * 2.30 and the payee gives 0.70 back in its own tokens. Every token ends with exactly one side: a
 * payee that took the tokens released its change key, so a payer that reports (it never opened the
 * change) is refunded the change's value from the payee's change tokens; a payer never heard from
 * took the change offline; a payee that never took the tokens gets its change tokens' value back.
 *
 * Then lying ODWs: does either side end with more than it started with? A payer refunded as never
 * released whose payee then shows the release; a rolled-back payer that opened the change offline
 * and reports it unopened; a payee that reports it never took the tokens after it gave the change;
 * both sides at once; malformed amounts and change fields. Each test ends with the audit
 * (conservation and the OPERA exposure check).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { toBase64url } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { TXID_BYTES } from './messages.ts';
import { operaNode, untouched, type OperaNode } from './node-fixtures.ts';

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

  describe(`OPERA settlement with change, lying ODWs, on ${backend.kind}`, { skip: backend.skip }, () => {
    test('a payer refunded as never released whose payee shows the release: the payee gets its change back, the liar cannot also deposit it', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tokens, change, tx } = await dealt(n);
        assert.deepEqual([(await n.settle(alice, tx.payer(0))).credited, await n.h.balance(alice)], ['3.00', '5.00']);
        const payee = await n.settle(bob, tx.payee(1));
        assert.deepEqual([payee.outcome, payee.credited], ['paid', '0.70']);
        assert.deepEqual([await n.h.balance(alice), await n.h.balance(bob)], ['5.00', '1.00'], 'each side back where it started');
        assert.deepEqual((await n.findings()).map((f) => [f.kind, f.device]), [['release-denied', alice.deviceId]]);
        // The liar (revoked) may hold the change if its ODW opened it: its value went to the payee.
        assert.deepEqual((await n.rows<{ state: string; spent_by: string }>('SELECT state, spent_by FROM opera_tokens WHERE serial = ANY($1)', [change.map((t) => t.body.serial)] as never)).map((r) => [r.state, r.spent_by]), [['refunded', bob.deviceId], ['refunded', bob.deviceId]]);
        assert.deepEqual((await n.deposit(bob, tokens)).outcomes, ['double-spend', 'double-spend']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a rolled-back payer that opened the change offline and reports it unopened gets its value once: reported first, its deposit is a double spend', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tokens, change, tx } = await dealt(n);
        assert.equal((await n.settle(bob, tx.payee(1))).outcome, 'paid');
        assert.deepEqual([(await n.settle(alice, tx.payer(1))).credited, await n.h.balance(alice)], ['0.70', '2.70']);
        const deposit = await n.deposit(alice, change);
        assert.deepEqual([deposit.outcomes, deposit.credited], [['double-spend', 'double-spend'], '0.00']);
        assert.deepEqual((await n.findings()).filter((f) => f.kind === 'double-spend').map((f) => [f.device, f.first]), [[alice.deviceId, alice.deviceId], [alice.deviceId, alice.deviceId]], 'the payer named by its own refund');
        assert.equal((await n.deposit(bob, tokens)).credited, '3.00');
        assert.deepEqual([await n.h.balance(alice), await n.h.balance(bob)], ['2.70', '3.30']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('the same payer depositing the change before it reports: the report credits nothing more, the payee reporting last changes nothing', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, change, tx } = await dealt(n);
        assert.equal((await n.deposit(alice, change)).credited, '0.70');
        assert.equal((await n.settle(alice, tx.payer(1))).outcome, 'pending');
        const payee = await n.settle(bob, tx.payee(1));
        assert.deepEqual([payee.outcome, payee.credited], ['paid', '0.00']);
        assert.deepEqual([(await n.settle(alice, tx.payer(1))).credited, await n.h.balance(alice)], ['0.00', '2.70'], 'the change once');
        assert.deepEqual((await n.findings()).map((f) => f.kind), ['refund-spent', 'refund-spent']);
        await n.conservation(300n);
      } finally {
        await n.h.close();
      }
    });

    test('a payee that gave the change and reports it never took the tokens is refunded it; the payer holding the change finds it spent, the payee named first', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, change, tx } = await dealt(n);
        assert.deepEqual([(await n.settle(bob, tx.payee(0))).credited, await n.h.balance(bob)], ['0.70', '1.00']);
        const deposit = await n.deposit(alice, change);
        assert.deepEqual([deposit.outcomes, deposit.credited], [['double-spend', 'double-spend'], '0.00']);
        assert.deepEqual((await n.findings()).map((f) => [f.kind, f.device, f.first]), [['double-spend', alice.deviceId, bob.deviceId], ['double-spend', alice.deviceId, bob.deviceId]]);
        await n.conservation(300n);
      } finally {
        await n.h.close();
      }
    });

    test('both sides reporting at once, again and again: the change is credited once, to the payer', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tx } = await dealt(n);
        const raced = await Promise.all([n.settle(alice, tx.payer(1)), n.settle(bob, tx.payee(1)), n.settle(alice, tx.payer(1)), n.settle(bob, tx.payee(1))]);
        assert.deepEqual(raced.map((r) => r.res.status), [200, 200, 200, 200]);
        assert.deepEqual([(await n.settle(alice, tx.payer(1))).credited, await n.h.balance(alice), await n.h.balance(bob)], ['0.70', '2.70', '0.30']);
        await n.conservation(300n);
      } finally {
        await n.h.close();
      }
    });

    test('an amount of zero, change without change tokens or change tokens without change, a change field of zero: refused, nothing settled', async () => {
      const n = await operaNode(backend);
      try {
        const { alice, bob, tokens, change, tx } = await dealt(n);
        const invalid = async (who: typeof alice, report: ReturnType<typeof tx.payer>, reason: string) => {
          const error = await expectError((await n.settle(who, report)).res, 422, 'OPERA_MESSAGE_INVALID');
          assert.equal(error.details['reason'], reason, error.message);
        };
        await invalid(alice, tx.payer(1, { amount: 0n, change: 300n }), 'amount');
        await invalid(bob, tx.payee(0, { amount: 0n, change: 70n }), 'amount');
        await invalid(alice, tx.payer(1, { change: undefined }), 'amount');
        await invalid(bob, tx.payee(0, { change: undefined }), 'tokens');
        await invalid(bob, tx.payee(0, { tokens: [...change, ...tokens] }), 'change');
        // A change of 0 does not decode: the codec takes only a positive change.
        const zero = tx.payer(1);
        const raw = decodeCbor(encodeCbor(zero)) as { body: Record<string, unknown> };
        const res = await n.send(alice, '/v1/opera/settle', { device: alice.deviceId, report: toBase64url(encodeCbor({ ...raw, body: { ...raw.body, change: 0n } })) });
        await expectError(res, 400, 'BODY_INVALID');
        await untouched(n);
        assert.deepEqual([await n.h.balance(alice), await n.h.balance(bob)], ['2.00', '0.30']);
        await n.conservation(370n);
      } finally {
        await n.h.close();
      }
    });
  });
}
