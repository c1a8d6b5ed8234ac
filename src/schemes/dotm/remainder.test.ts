/**
 * The operator settles a revoked DOT-M wallet's remainder (POST /v1/operator/settle,
 * node-remainder.ts), on PGlite and PostgreSQL: held first, the wallet's payments that surface
 * during the hold honoured, the rest credited once after it; refused before revocation, for an
 * unknown key and a second time; and a settled wallet that later uploads is paid nothing again.
 * Every test ends with float:dotm = Σ balances of the trusted apps whose value is still theirs,
 * the audit balanced and the exposure check clean or attributed.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { REMAINDER_HOLD_MS } from './node.ts';
import { dotmNode, type DotmNode, type DotmParty } from './test-fixtures.ts';

after(() => closeTestTemplates());

type Settled = { device: string; scheme: string; status: string; escrow: string; releaseAt: string; credited?: string; copies?: number; refund?: { amount: string; kind: string } };
type AuditView = { exposure: { scheme: string; exposed: { device: string; fraud: boolean }[]; unexplained: string }[] };

async function settle(n: DotmNode, keyId: string, key = `settle-${Math.random()}`): Promise<Response> {
  return n.h.send('POST', '/v1/operator/settle', { body: { keyId }, headers: { ...n.h.operator, 'idempotency-key': key } });
}

async function settled(res: Response): Promise<Settled> {
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as Settled;
}

async function revoke(n: DotmNode, p: DotmParty): Promise<void> {
  const res = await n.h.asOperator('POST', '/v1/operator/revoke', { keyId: p.wallet, reason: 'wallet reported lost' });
  assert.equal(res.status, 200, await res.clone().text());
}

async function dotmExposure(n: DotmNode): Promise<AuditView['exposure'][number] | undefined> {
  const audit = (await (await n.h.send('GET', '/v1/audit', { headers: n.h.operator })).json()) as AuditView;
  return audit.exposure.find((e) => e.scheme === 'dotm');
}

for (const backend of testBackends()) {
  describe(`the operator settles a revoked DOT-M wallet's remainder on ${backend.kind}`, { skip: backend.skip }, () => {
    test('held, its payments that surface honoured, the rest credited once after the hold; refused before revocation, for an unknown key and again', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const r = await n.party('payee', '0');
        await n.withdraw(p, '10.00', 2);
        // Paid offline; the node hears of it only when the payee uploads.
        await n.pay(p, r, 300n);

        await expectError(await settle(n, p.wallet), 409, 'DEVICE_NOT_REVOKED');
        await expectError(await settle(n, 'ef'.repeat(32)), 404, 'SUBJECT_UNKNOWN');
        assert.equal(await n.balanceMinor(p), 10_000n - 1000n);

        await revoke(n, p);
        const held = await settled(await settle(n, p.wallet, 'settle-dotm-first'));
        assert.deepEqual([held.device, held.scheme, held.status, held.escrow, held.refund], [p.wallet, 'dotm', 'held', '10.00', undefined]);
        assert.equal(Date.parse(held.releaseAt), n.h.now() + REMAINDER_HOLD_MS);
        // During the hold, by either key, the answer is the hold; nothing moves.
        const again = await settled(await settle(n, p.userKeyId));
        assert.deepEqual([again.device, again.status, again.escrow], [p.wallet, 'held', '10.00']);
        assert.equal(await n.balanceMinor(p), 10_000n - 1000n);

        // The payment surfaces during the hold: the payee's copy is the payee's.
        assert.deepEqual((await n.sync(r)).findings, []);
        n.h.tick(REMAINDER_HOLD_MS);

        const released = await settled(await settle(n, p.wallet, 'settle-dotm-release'));
        assert.deepEqual([released.status, released.escrow, released.credited, released.refund?.amount, released.refund?.kind], ['released', '10.00', '7.00', '7.00', 'dotm-remainder']);
        assert.equal(await n.balanceMinor(p), 10_000n - 1000n + 700n);
        // The same request replayed answers the same; another one is refused; nothing moves again.
        const replay = await settle(n, p.wallet, 'settle-dotm-release');
        assert.equal(replay.headers.get('idempotent-replayed'), 'true');
        assert.deepEqual(await replay.json(), released);
        await expectError(await settle(n, p.wallet), 409, 'ALREADY_SETTLED');
        await expectError(await settle(n, p.userKeyId), 409, 'ALREADY_SETTLED');
        assert.equal(await n.balanceMinor(p), 10_000n - 1000n + 700n);

        // The payee redeems what it was paid.
        assert.equal((await n.redeem(r, 300n)).results.at(-1)?.credited, '3.00');
        assert.equal(await n.balanceMinor(r), 300n);
        // p's trusted app is not counted: the value it still shows was settled to its account.
        await n.conservation([r.se]);
        const exposure = await dotmExposure(n);
        assert.deepEqual([exposure?.exposed, exposure?.unexplained], [[], '0.00']);
      } finally {
        await n.close();
      }
    });

    test('settlements of one wallet sent at once after the hold credit it once', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        await n.withdraw(p, '6.00', 3);
        await revoke(n, p);
        assert.equal((await settled(await settle(n, p.wallet))).status, 'held');
        n.h.tick(REMAINDER_HOLD_MS);
        const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => settle(n, p.wallet, `settle-race-${i}`)));
        const statuses = answers.map((a) => a.status).sort();
        assert.deepEqual(statuses, [200, ...Array<number>(9).fill(409)]);
        for (const a of answers.filter((x) => x.status === 409)) await expectError(a, 409, 'ALREADY_SETTLED');
        const won = answers.find((a) => a.status === 200);
        assert.ok(won !== undefined);
        assert.deepEqual([(await settled(won)).credited], ['6.00']);
        assert.equal(await n.balanceMinor(p), 10_000n);
        await n.conservation([]);
      } finally {
        await n.close();
      }
    });

    test('a settled wallet that later uploads is paid nothing again: its redemption and its payment over-spend and name it', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const r = await n.party('payee', '0');
        await n.withdraw(p, '10.00', 2);
        await revoke(n, p);
        assert.equal((await settled(await settle(n, p.wallet))).status, 'held');
        n.h.tick(REMAINDER_HOLD_MS);
        assert.equal((await settled(await settle(n, p.wallet))).credited, '10.00');
        assert.equal(await n.balanceMinor(p), 10_000n);

        // The wallet was not lost after all: it redeems a copy the node already credited.
        const redeemed = await n.redeem(p, 500n);
        const last = redeemed.results.at(-1);
        assert.equal(last?.code, 'DOUBLE_SPEND', JSON.stringify(last));
        assert.equal(last?.credited, '0.00');
        assert.ok(redeemed.findings.some((f) => f.kind === 'overspent' && f.culprit === p.userKeyId), JSON.stringify(redeemed.findings));
        assert.equal(await n.balanceMinor(p), 10_000n);

        // It pays a payee that has not heard of the revocation; the payee's redemption is refused.
        await n.pay(p, r, 300n);
        const payee = await n.redeem(r, 300n);
        assert.equal(payee.results.at(-1)?.code, 'DOUBLE_SPEND');
        assert.equal(await n.balanceMinor(r), 0n);
        assert.equal(await n.balanceMinor(p), 10_000n);
        await expectError(await settle(n, p.wallet), 409, 'ALREADY_SETTLED');

        // The float paid the remainder once; what the wallet spent again is attributed to it.
        await n.conservation([r.se]);
        const exposure = await dotmExposure(n);
        assert.deepEqual(exposure?.exposed.map((e) => [e.device, e.fraud]), [[p.wallet, true]]);
        assert.equal(exposure?.unexplained, '0.00');
      } finally {
        await n.close();
      }
    });
  });
}
