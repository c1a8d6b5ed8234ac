/**
 * The six exceptional situations of DOT-M §3.3.5, each reproduced by killing the named device's
 * isolated secure element (a child process) at the named point of the nine steps, rebooting it
 * (a new process on the same sealed state and counter), running the recovery the paper prescribes
 * (the payee rolls back an unfinished step 9, the payer withdraws an unanswered offer), then both
 * sides' online data updating. Each ends with the audit and float:dotm = Σ what the SEs hold.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isTallyError } from '../../core/errors.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { IsolatedHost } from '../../secure-element/host-isolated.ts';
import type { CrashPoint } from '../../secure-element/secure-element.ts';
import type { Notification, SuccessNotice, TransactionMessage } from './messages.ts';
import { dotmNode, PASSWORD, type DotmNode, type DotmParty, type DotmSe } from './test-fixtures.ts';
import { dotmTrustedApp, type DotmState } from './trusted-app.ts';

after(() => closeTestTemplates());

const LOCATION = { module: new URL('./trusted-app.ts', import.meta.url).href, export: 'dotmTrustedApp' };
type Isolated = IsolatedHost<DotmState, typeof dotmTrustedApp.commands>;

/** The party's SE as an isolated child process on its folder (the in-process one is closed first). */
async function boot(p: DotmParty): Promise<Isolated> {
  return (await IsolatedHost.start({ app: dotmTrustedApp, location: LOCATION, dir: join(p.dir, 'se'), counter: { kind: 'file', path: join(p.dir, 'counter') }, provision: false })) as Isolated;
}

/** The wallet's reboot (DotmWallet.recover): an open offer is abandoned, an open received transaction rolled back. */
async function recover(se: Isolated): Promise<string[]> {
  const done: string[] = [];
  const status = await se.call('status', {});
  if (status.offer !== undefined) {
    await se.call('abandon', {});
    done.push('abandon');
  }
  if (status.receiving !== undefined) {
    await se.call('rollback', {});
    done.push('rollback');
  }
  return done;
}

async function crashes(run: Promise<unknown>): Promise<void> {
  await assert.rejects(run, (e: unknown) => isTallyError(e, 'SE_CRASHED'));
}

interface Scene {
  n: DotmNode;
  payer: DotmParty;
  payee: DotmParty;
  p: Isolated;
  r: Isolated;
  /** P's account before anything, to see the refund. */
  payerOnline: bigint;
}

const V = 700n;

// The situations are about the devices; one database is enough: PostgreSQL when there is one.
const available = testBackends().filter((b) => b.skip === undefined);
for (const backend of available.slice(-1)) {
  describe(`DOT-M exceptional situations (§3.3.5) on ${backend.kind}`, () => {
    /** A node, P holding 20.00 in two blocks, R empty, both SEs isolated processes. */
    async function scene(run: (s: Scene) => Promise<void>): Promise<void> {
      const n = await dotmNode(backend);
      const live: Isolated[] = [];
      try {
        const payer = await n.party('payer', '50.00');
        const payee = await n.party('payee', '0');
        await n.withdraw(payer, '20.00', 2);
        await payer.se.close();
        await payee.se.close();
        const p = await boot(payer);
        const r = await boot(payee);
        live.push(p, r);
        const payerOnline = await n.balanceMinor(payer);
        const s: Scene = { n, payer, payee, p, r, payerOnline };
        try {
          await run(s);
        } finally {
          // The rebooted processes too: a live child would keep the test file from ending.
          live.push(s.p, s.r);
        }
      } finally {
        for (const se of live) await se.kill();
        await n.close();
      }
    }

    /** Steps 1–3: λ from R, σ from P. */
    async function offer(s: Scene): Promise<TransactionMessage> {
      const request = await s.r.call('request', { v: V, now: s.n.h.now() });
      const paid = await s.p.call('pay', { request, password: PASSWORD, expect: { v: V }, now: s.n.h.now() });
      assert.ok(paid.transaction !== undefined);
      return paid.transaction;
    }

    /** Reboots a crashed SE process and runs the recovery. */
    async function reboot(s: Scene, who: 'p' | 'r'): Promise<string[]> {
      const party = who === 'p' ? s.payer : s.payee;
      const fresh = await boot(party);
      s[who] = fresh;
      return recover(fresh);
    }

    /** Both upload (§3.3.4) and take the ack; then the audit and float:dotm = P + R. */
    async function settle(s: Scene): Promise<{ refunded: bigint }> {
      await s.n.sync(s.payer, s.p as unknown as DotmSe);
      await s.n.sync(s.payee, s.r as unknown as DotmSe);
      // A second round changes nothing (the refund is paid once).
      await s.n.sync(s.payer, s.p as unknown as DotmSe);
      await s.n.sync(s.payee, s.r as unknown as DotmSe);
      await s.n.conservation([s.p as unknown as DotmSe, s.r as unknown as DotmSe]);
      return { refunded: (await s.n.balanceMinor(s.payer)) - s.payerOnline };
    }

    async function offline(se: Isolated): Promise<bigint> {
      return (await se.call('status', {})).balance;
    }

    test('situation 1: R crashes before step 5 (inside accept, before its commit): nothing changes', () =>
      scene(async (s) => {
        const sigma = await offer(s);
        await s.r.armCrash('before-write');
        await crashes(s.r.call('accept', { transaction: sigma, now: s.n.h.now() }));
        assert.deepEqual(await reboot(s, 'r'), []);
        // P never hears back: its offer is withdrawn.
        await s.p.call('abandon', {});
        assert.equal(await offline(s.p), 2000n);
        assert.equal(await offline(s.r), 0n);
        assert.equal((await settle(s)).refunded, 0n);
      }));

    test('situation 1: P crashes before step 3 leaves (inside pay): no offer survives, nothing changes', () =>
      scene(async (s) => {
        const request = await s.r.call('request', { v: V, now: s.n.h.now() });
        await s.p.armCrash('after-write');
        await crashes(s.p.call('pay', { request, password: PASSWORD, expect: { v: V }, now: s.n.h.now() }));
        assert.deepEqual(await reboot(s, 'p'), []);
        assert.equal(await offline(s.p), 2000n);
        assert.equal((await settle(s)).refunded, 0n);
      }));

    for (const point of ['after-rename', 'after-increment'] as CrashPoint[]) {
      test(`situation 2: R crashes after step 5, before step 6 (accept committed, killed ${point}): R rolls back on reboot`, () =>
        scene(async (s) => {
          const sigma = await offer(s);
          await s.r.armCrash(point);
          await crashes(s.r.call('accept', { transaction: sigma, now: s.n.h.now() }));
          assert.deepEqual(await reboot(s, 'r'), ['rollback']);
          await s.p.call('abandon', {});
          assert.equal(await offline(s.r), 0n);
          assert.equal(await offline(s.p), 2000n);
          assert.equal((await settle(s)).refunded, 0n);
        }));
    }

    test('situation 3: R crashes after step 6, before step 9: R rolls back, P has paid; the node gives P the value back once', () =>
      scene(async (s) => {
        const sigma = await offer(s);
        const notification: Notification = await s.r.call('accept', { transaction: sigma, now: s.n.h.now() });
        await s.r.kill();
        await s.p.call('confirm', { notification });
        assert.deepEqual(await reboot(s, 'r'), ['rollback']);
        assert.equal(await offline(s.p), 2000n - V);
        assert.equal(await offline(s.r), 0n);
        assert.equal((await settle(s)).refunded, V);
      }));

    test('situation 4: P crashes after step 5, before step 7 (inside confirm, before its commit): P withdraws its offer, R rolls back', () =>
      scene(async (s) => {
        const sigma = await offer(s);
        const notification = await s.r.call('accept', { transaction: sigma, now: s.n.h.now() });
        await s.p.armCrash('before-write');
        await crashes(s.p.call('confirm', { notification }));
        assert.deepEqual(await reboot(s, 'p'), ['abandon']);
        // R's step 9 times out.
        await s.r.call('rollback', {});
        assert.equal(await offline(s.p), 2000n);
        assert.equal(await offline(s.r), 0n);
        assert.equal((await settle(s)).refunded, 0n);
      }));

    test('situation 5: P crashes after step 7, before step 8 (confirm committed, killed before answering): R rolls back; the node refunds P', () =>
      scene(async (s) => {
        const sigma = await offer(s);
        const notification = await s.r.call('accept', { transaction: sigma, now: s.n.h.now() });
        await s.p.armCrash('after-increment');
        await crashes(s.p.call('confirm', { notification }));
        assert.deepEqual(await reboot(s, 'p'), [], 'the offer was closed by step 7');
        await s.r.call('rollback', {});
        assert.equal(await offline(s.p), 2000n - V);
        assert.equal((await settle(s)).refunded, V);
      }));

    test('situation 6: P crashes after step 8, before step 9: R completes; the payment stands', () =>
      scene(async (s) => {
        const sigma = await offer(s);
        const notification = await s.r.call('accept', { transaction: sigma, now: s.n.h.now() });
        const success: SuccessNotice = await s.p.call('confirm', { notification });
        await s.p.kill();
        await s.r.call('complete', { success });
        assert.deepEqual(await reboot(s, 'p'), []);
        assert.equal(await offline(s.p), 2000n - V);
        assert.equal(await offline(s.r), V);
        assert.equal((await settle(s)).refunded, 0n);
      }));
  });
}
