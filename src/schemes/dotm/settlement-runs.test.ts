/**
 * DOT-M uploads of several events at once on a real node, PGlite and PostgreSQL: independent
 * transaction events settle as one run (node-settlement-batch.ts), a run ends at an event that
 * shares a serial with it, refunds are decided inside a run, duplicates and new events mix in one
 * upload, and a forged signature among them (checked in the node's worker threads) stops the whole
 * upload. Every test ends with the audit and float:dotm = Σ balances of the genuine trusted apps.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import type { WalletEvent } from './online.ts';
import { dotmNode, type DotmNode, type DotmParty, type EventsAnswer } from './test-fixtures.ts';

after(() => closeTestTemplates());

function statuses(answer: EventsAnswer): string[] {
  return answer.results.map((r) => `${r.seq}:${r.status}${r.code === undefined ? '' : `:${r.code}`}`);
}

async function lastSeq(n: DotmNode, p: DotmParty): Promise<number> {
  const res = await n.h.signed(p.user, 'GET', `/v1/dotm/wallets/${p.wallet}`);
  return ((await res.json()) as { lastSeq: number }).lastSeq;
}

for (const backend of testBackends()) {
  describe(`DOT-M uploads of several events on ${backend.kind}`, { skip: backend.skip }, () => {
    test('one upload: two payments of different blocks, then a payment from the first block again; a clone spent that block before: P named', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const q = await n.party('other');
        const r = await n.party('payee', '0');
        const x = await n.party('third', '0');
        const y = await n.party('clone-payee', '0');
        await n.withdraw(p, '10.00');
        await n.withdraw(q, '10.00');
        const clone = await n.cloneSe(p);
        // The clone pays 6.00 of P's block first, and its payee uploads.
        await n.pay({ se: clone }, y, 600n);
        assert.deepEqual((await n.sync(y)).findings, []);
        await n.pay(p, r, 600n);
        await n.pay(q, r, 300n);
        await n.pay(r, x, 500n);
        const log = (await r.se.call('events', {})).events;
        const serials = log.map((e) => e.body.parts.map((part) => part.block.presentation.serial));
        assert.deepEqual(log.map((e) => e.body.kind), ['received', 'received', 'sent']);
        assert.deepEqual(serials[2], serials[0], 'R pays from the block P paid it');

        // Events 1 and 2 share nothing (one run); event 3 is under event 1's serial (the next run).
        const synced = await n.sync(r);
        assert.deepEqual(statuses(synced), ['1:taken', '2:taken', '3:taken']);
        assert.deepEqual(
          synced.findings.map((f) => [f.kind, f.culprit, f.wallet, f.received, f.spent, f.records.length]),
          [['overspent', p.userKeyId, p.wallet, '10.00', '12.00', 2]],
        );
        const wallet = (await (await n.h.signed(p.user, 'GET', `/v1/dotm/wallets/${p.wallet}`)).json()) as { revoked: boolean };
        assert.equal(wallet.revoked, true);
        assert.equal(await lastSeq(n, r), 3);
        for (const who of [q, x]) assert.deepEqual((await n.sync(who)).findings, []);

        // Redemptions: R's change and Q's copy, then X's 5.00 fit what P's block holds; the clone's payee comes last and is refused.
        assert.equal((await n.redeem(r, 400n)).results[0]?.credited, '4.00');
        assert.equal((await n.redeem(x, 500n)).results[0]?.credited, '5.00');
        const late = await n.redeem(y, 600n);
        assert.deepEqual([late.results[0]?.status, late.results[0]?.code, late.results[0]?.credited], ['refused', 'DOUBLE_SPEND', '0.00']);
        const fraud = (await (await n.h.send('GET', '/v1/dotm/fraud', { headers: n.h.operator })).json()) as { findings: { kind: string; culprit: string }[] };
        assert.deepEqual(fraud.findings.map((f) => [f.kind, f.culprit]), [['overspent', p.userKeyId]]);
        await n.conservation([p.se, q.se, r.se, x.se, y.se]);
      } finally {
        await n.close();
      }
    });

    test('one upload of a payer: two sent payments its payees rolled back are refunded in one run, once each', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const r1 = await n.party('payee-1', '0');
        const r2 = await n.party('payee-2', '0');
        await n.withdraw(p, '8.00', 2);
        await n.pay(p, r1, 400n, 'confirmed-rolled-back');
        await n.pay(p, r2, 400n, 'confirmed-rolled-back');
        for (const r of [r1, r2]) assert.deepEqual(statuses(await n.sync(r)), ['1:taken']);
        const log = (await p.se.call('events', {})).events;
        assert.deepEqual(log.map((e) => [e.body.kind, e.body.parts.length]), [
          ['sent', 1],
          ['sent', 1],
        ]);
        assert.notDeepEqual(log[0]?.body.parts[0]?.block.presentation.serial, log[1]?.body.parts[0]?.block.presentation.serial);

        const synced = await n.sync(p);
        assert.deepEqual(statuses(synced), ['1:taken', '2:taken']);
        assert.deepEqual(synced.results.map((x) => x.refund), ['credited', 'credited']);
        assert.deepEqual(synced.findings, []);
        assert.equal(await n.balanceMinor(p), 10_000n);
        // The same events again are duplicates: nobody is refunded twice.
        const again = (await (await n.upload(p, { events: log })).json()) as EventsAnswer;
        assert.deepEqual(statuses(again), ['1:duplicate', '2:duplicate']);
        assert.equal(await n.balanceMinor(p), 10_000n);
        await n.conservation([p.se, r1.se, r2.se]);
      } finally {
        await n.close();
      }
    });

    test('duplicates and new events in one upload, and a forged signature among them stopping the whole upload', async () => {
      const n = await dotmNode(backend);
      try {
        const payers = [await n.party('payer-1'), await n.party('payer-2'), await n.party('payer-3')];
        const r = await n.party('payee', '0');
        for (const [k, p] of payers.entries()) {
          await n.withdraw(p, '10.00');
          await n.pay(p, r, BigInt(100 * (k + 1)));
        }
        const [e1, e2, e3] = (await r.se.call('events', {})).events as [WalletEvent, WalletEvent, WalletEvent];
        assert.deepEqual(statuses((await (await n.upload(r, { events: [e1] })).json()) as EventsAnswer), ['1:taken']);

        // A signature broken in the middle of the upload: nothing of it is taken.
        const flipped = new Uint8Array(e2.signature);
        flipped[5] = (flipped[5] as number) ^ 0x40;
        await expectError(await n.upload(r, { events: [e1, { ...e2, signature: flipped }, e3] }), 401, 'SIGNATURE_INVALID');
        assert.equal(await lastSeq(n, r), 1);

        const answer = (await (await n.upload(r, { events: [e1, e2, e3] })).json()) as EventsAnswer;
        assert.deepEqual(statuses(answer), ['1:duplicate', '2:taken', '3:taken']);
        assert.deepEqual(answer.findings, []);
        assert.equal(await lastSeq(n, r), 3);
        const replayed = (await (await n.upload(r, { events: [e1, e2, e3] })).json()) as EventsAnswer;
        assert.deepEqual(statuses(replayed), ['1:duplicate', '2:duplicate', '3:duplicate']);
        await n.applyAck(r.se, replayed);

        assert.equal((await n.redeem(r, 600n)).results[0]?.credited, '6.00');
        for (const p of payers) assert.deepEqual(statuses(await n.sync(p)), ['1:taken']);
        await n.conservation([...payers.map((p) => p.se), r.se]);
      } finally {
        await n.close();
      }
    });
  });
}
