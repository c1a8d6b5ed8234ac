/**
 * Unlocking a DOT-M wallet: the node answers an unlock ticket to the wallet's account holder only,
 * and the trusted app takes a ticket only when it is the node's, for this wallet, its next unlock
 * number, and the wallet is locked; every refused ticket leaves the trusted app as it was. PGlite
 * and PostgreSQL, with in-process trusted apps.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { fromBase64url } from '../../core/bytes.ts';
import { decodeCbor } from '../../core/cbor.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { isTallyError } from '../../core/errors.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { UNLOCK_TICKET_TAG, unlockTicketBodyWire, unlockTicketCodec, type UnlockTicket } from './online.ts';
import { dotmNode, PASSWORD, type DotmNode, type DotmParty } from './test-fixtures.ts';
import { PASSWORD_TRIES_MAX } from './trusted-app.ts';

after(() => closeTestTemplates());

/** POST /v1/dotm/wallets/{wallet}/unlock as `who`. */
async function ask(n: DotmNode, who: Pick<DotmParty, 'user'>, wallet: string, unlock: number): Promise<Response> {
  return n.h.signed(who.user, 'POST', `/v1/dotm/wallets/${wallet}/unlock`, { unlock }, n.key());
}

async function ticketFor(n: DotmNode, who: DotmParty, unlock: number): Promise<UnlockTicket> {
  const res = await ask(n, who, who.wallet, unlock);
  assert.equal(res.status, 200, await res.clone().text());
  const body = (await res.json()) as { wallet: string; unlock: number; ticket: string };
  assert.deepEqual([body.wallet, body.unlock], [who.wallet, unlock]);
  return unlockTicketCodec.decode(decodeCbor(fromBase64url(body.ticket)));
}

/** PASSWORD_TRIES_MAX wrong passwords: the wallet locks. */
async function lock(who: DotmParty): Promise<void> {
  for (let k = 0; k < PASSWORD_TRIES_MAX; k++) await who.se.call('checkPassword', { password: `wrong ${k}` });
  assert.equal((await who.se.call('status', {})).triesLeft, 0);
}

async function snapshot(who: DotmParty) {
  return { status: await who.se.call('status', {}), events: (await who.se.call('events', {})).events };
}

/** The TA refuses `ticket` with `code` and changes nothing. */
async function refusedUnchanged(who: DotmParty, ticket: UnlockTicket, code: string, what: string): Promise<void> {
  const before = await snapshot(who);
  await assert.rejects(who.se.call('unlock', { ticket }), (e: unknown) => {
    assert.ok(isTallyError(e, 'SE_REJECTED'), `${what}: ${String(e)}`);
    assert.equal(e.details.reason, code, `${what}: ${e.message}`);
    return true;
  });
  assert.deepEqual(await snapshot(who), before, `${what}: nothing changed`);
}

for (const backend of testBackends()) {
  describe(`DOT-M unlock on ${backend.kind}`, { skip: backend.skip }, () => {
    test('a locked wallet says so; the account holder\'s ticket unlocks it once; forged, foreign, replayed and early tickets change nothing', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const q = await n.party('other');
        await n.withdraw(p, '10.00');
        await lock(p);
        // Locked: the refusal says locked (not "0 tries left"), even with the right password.
        await assert.rejects(p.se.call('redeem', { amount: 100n, password: PASSWORD, now: n.h.now() }), (e: unknown) => isTallyError(e, 'SE_REJECTED') && e.details.reason === 'PASSWORD_LOCKED' && /is locked/.test(e.message) && !/tries left/.test(e.message));
        assert.equal((await p.se.call('status', {})).unlocks, 0);

        const ticket = await ticketFor(n, p, 1);
        // Forged: the same body signed by another key (the account key, or the wallet's own wsk as the payee app could).
        await refusedUnchanged(p, { ...ticket, signature: signRecord(p.user, UNLOCK_TICKET_TAG, unlockTicketBodyWire(ticket.body)) }, 'TICKET_INVALID', 'signed by the account key');
        await refusedUnchanged(p, { ...ticket, signature: signRecord(await n.extractWalletKey(p.dir), UNLOCK_TICKET_TAG, unlockTicketBodyWire(ticket.body)) }, 'TICKET_INVALID', 'signed by the wallet key');
        await refusedUnchanged(p, { body: { ...ticket.body, unlock: 2 }, signature: ticket.signature }, 'TICKET_INVALID', 'number altered');
        // For another wallet: q's genuine ticket.
        await refusedUnchanged(p, await ticketFor(n, q, 1), 'TICKET_INVALID', "another wallet's ticket");
        // Not the next number: a genuine ticket for unlock 2 while the wallet's next is 1.
        const ahead = await ticketFor(n, p, 2);
        await refusedUnchanged(p, ahead, 'TICKET_INVALID', 'a ticket for a later unlock');

        assert.deepEqual(await p.se.call('unlock', { ticket }), { unlocks: 1, triesLeft: PASSWORD_TRIES_MAX });
        const open = await p.se.call('status', {});
        assert.deepEqual([open.triesLeft, open.unlocks, open.balance], [PASSWORD_TRIES_MAX, 1, 1000n]);
        // The genuine next ticket while the wallet is not locked: refused, and kept for a lock.
        await refusedUnchanged(p, ahead, 'NOT_LOCKED', 'a ticket while not locked');
        // Replayed: the used ticket again, unlocked and after a second lock.
        await refusedUnchanged(p, ticket, 'TICKET_INVALID', 'a replayed ticket, unlocked');
        await lock(p);
        await refusedUnchanged(p, ticket, 'TICKET_INVALID', 'a replayed ticket');
        // The ticket for the next number, asked early, is kept for this lock; pwd is what it was.
        assert.deepEqual(await p.se.call('unlock', { ticket: ahead }), { unlocks: 2, triesLeft: PASSWORD_TRIES_MAX });
        assert.equal((await p.se.call('checkPassword', { password: PASSWORD })).right, true);
        await n.redeem(p, 1000n);
        await n.conservation([p.se, q.se]);
      } finally {
        await n.close();
      }
    });

    test('the node answers tickets to the wallet\'s account holder only, never for a revoked wallet, and checks the body', async () => {
      const n = await dotmNode(backend);
      try {
        const p = await n.party('payer');
        const q = await n.party('other');
        await expectError(await ask(n, q, p.wallet, 1), 404, 'DEVICE_UNKNOWN');
        await expectError(await ask(n, p, '00'.repeat(32), 1), 404, 'DEVICE_UNKNOWN');
        await expectError(await ask(n, p, p.wallet, 0), 400, 'BODY_INVALID');
        const res = await n.h.signed(p.user, 'POST', `/v1/dotm/wallets/${p.wallet}/unlock`, { unlock: 1, extra: true }, n.key());
        await expectError(res, 400, 'BODY_INVALID');
        const unsigned = await n.h.app.request(`/v1/dotm/wallets/${p.wallet}/unlock`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'unlock-unsigned' }, body: JSON.stringify({ unlock: 1 }) });
        assert.equal(unsigned.status, 401, await unsigned.clone().text());
        await n.h.node.services.db.query('UPDATE dotm_wallets SET revoked = true WHERE wallet_key_id = $1', [p.wallet]);
        await expectError(await ask(n, p, p.wallet, 1), 403, 'FORBIDDEN');
        await n.conservation([p.se, q.se]);
      } finally {
        await n.close();
      }
    });
  });
}
