/**
 * A sync report's entries are recorded set-based (node-settlement.ts: recordPaid, recordCollected),
 * falling back to one entry at a time when anything is unusual. These are the reports that take
 * each way with many entries at once: the usual one, the same report sent again after its ack was
 * lost (every collect already recorded), and a report in which one collect among good ones is a
 * clone's second payment under an index (the savepoint undone, the clone named, the good collects
 * still counted). Each ends with the audit and the TAs' balances agreeing.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { opsNode, type OpsSe } from './test-fixtures.ts';

after(closeTestTemplates);

/** The node's view of a device: its reported balance and fraud cases. */
async function view(n: Awaited<ReturnType<typeof opsNode>>, who: { user: Parameters<typeof n.h.signed>[0]; device: string }) {
  return (await (await n.h.signed(who.user, 'GET', `/v1/ops/devices/${who.device}`)).json()) as { reportedBalance: string | null; fraud: { kind: string }[]; revoked: boolean };
}

for (const backend of testBackends()) {
  describe(`OPS sync reports recorded in one statement on ${backend.kind}`, { skip: backend.skip }, () => {
    test('many entries each way, the payee first; the same report sent again adds nothing', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      try {
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        for (let k = 0; k < 24; k++) await bob.se.call('collect', { payment: await alice.se.call('pay', { amount: 25n, receiver: bob.certificate }) });
        // The payee reports first: the node learns the payments from its collects.
        const report = await bob.se.call('report', {});
        assert.equal(report.body.collected.length, 24);
        assert.deepEqual((await n.sendReport(bob, report)).fraud, []);
        assert.equal((await view(n, bob)).reportedBalance, '6.00');
        // The ack was lost: the TA sends the same report again; nothing is counted twice.
        assert.deepEqual((await n.sendReport(bob, report)).fraud, []);
        assert.equal((await view(n, bob)).reportedBalance, '6.00');
        // Now with its ack taken, and the payer's report matching each payment to its collect.
        assert.deepEqual((await n.sync(bob)).fraud, []);
        assert.deepEqual((await n.sync(alice)).fraud, []);
        assert.equal((await view(n, alice)).reportedBalance, '14.00');
        // The payer's report again (as after a lost ack): nothing is counted twice.
        const again = await alice.se.call('report', {});
        assert.deepEqual((await n.sendReport(alice, again)).fraud, []);
        assert.equal((await view(n, alice)).reportedBalance, '14.00');
        await n.conservation([alice, bob]);
      } finally {
        await n.close([alice, bob]);
      }
    });

    test('the payer first, then a payee whose report carries one clone payment among good ones: the clone is named, the good collects count', async () => {
      const n = await opsNode(backend);
      const alice = await n.deviceClient();
      const bob = await n.deviceClient();
      const dave = await n.deviceClient();
      let clone: OpsSe | undefined;
      try {
        await n.mint(alice, '20.00');
        await n.deposit(alice, '20.00');
        clone = await n.openSe(await n.copySe(alice), false);
        // Alice pays Bob three times (indices 1 to 3); her copy, made before, pays Dave under index 1; Alice then pays Dave twice (4 and 5).
        const toBob = [];
        for (let k = 0; k < 3; k++) toBob.push(await alice.se.call('pay', { amount: 100n, receiver: bob.certificate }));
        const copy = await clone.call('pay', { amount: 100n, receiver: dave.certificate });
        for (const p of toBob) await bob.se.call('collect', { payment: p });
        const toDave = [];
        for (let k = 0; k < 2; k++) toDave.push(await alice.se.call('pay', { amount: 50n, receiver: dave.certificate }));
        await dave.se.call('collect', { payment: toDave[0] as (typeof toDave)[number] });
        await dave.se.call('collect', { payment: copy });
        await dave.se.call('collect', { payment: toDave[1] as (typeof toDave)[number] });
        assert.deepEqual((await n.sync(alice)).fraud, []);
        assert.deepEqual((await n.sync(bob)).fraud, []);
        const found = await n.sync(dave);
        assert.deepEqual(
          found.fraud.map((f) => [f.device, f.kind]),
          [[alice.device, 'clone']],
        );
        // Dave's TA is genuine: every collect counts in his inflow, and nothing is found against him.
        const d = await view(n, dave);
        assert.equal(d.reportedBalance, '2.00');
        assert.deepEqual(d.fraud, []);
        assert.equal((await view(n, alice)).revoked, true);
        // The copy's payment is value the float never held for: the float is short by it.
        await n.conservation([alice, bob, dave], [], { floatShort: true });
      } finally {
        await clone?.close();
        await n.close([alice, bob, dave]);
      }
    });
  });
}
