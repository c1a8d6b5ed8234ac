/**
 * OTP coins in flight under attack, PGlite and PostgreSQL: chains that do not open past their last
 * tag, a payer who paid a coin twice and reports a longer branch of its own, a clone reporting a
 * deeper chain, a chain longer than the coin's hops, a revoked device. Every test ends with the audit.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { toHex } from '../../core/bytes.ts';
import { HPKE_ENC_BYTES } from '../../core/crypto/hpke.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import type { Coin } from './coin.ts';
import type { SealedTag } from './escrow.ts';
import { claimsUntil, type CarriedCoin } from './messages.ts';
import { otpNode, SHORT, type OtpClient, type OtpNode } from './node-fixtures.ts';

after(() => closeTestTemplates());

/** Alice with one coin of 1.00 paid (her tag on it) and in flight at her device. */
async function oneCoin(n: OtpNode) {
  const alice = await n.client();
  await n.mint(alice, '1.00');
  const { escrowKey } = await n.params();
  const entry = await n.classOf(100n);
  const { coins } = await n.withdraw(alice, [entry]);
  const coin = coins[0] as Coin;
  const sent = n.pay({ coin, tags: [] }, alice.device, escrowKey);
  return { alice, coin, sent, escrowKey, depositUntil: entry.depositUntil, claimsUntil: claimsUntil(entry) };
}

/** A sealed tag of random bytes: it has a tag's shape and opens for nobody. */
function junkTag(): SealedTag {
  return { enc: new Uint8Array(randomBytes(HPKE_ENC_BYTES)), ciphertext: new Uint8Array(randomBytes(64)) };
}

function outcomeOf(settled: readonly { serial: string; outcome: string }[], coin: Coin): string | undefined {
  return settled.find((s) => s.serial === toHex(coin.serial))?.outcome;
}

async function balances(n: OtpNode, ...who: OtpClient[]): Promise<string[]> {
  return Promise.all(who.map((w) => n.h.balance(w)));
}

async function rowsOf(n: OtpNode, table: 'otp_claims' | 'otp_claim_disputes' | 'otp_spent', serial: Uint8Array): Promise<number> {
  return (await n.h.node.services.db.query(`SELECT 1 FROM ${table} WHERE serial = $1`, [serial])).rowCount ?? 0;
}

async function findings(n: OtpNode): Promise<{ findings: { serial: string; device: string; hop: number }[]; disputes: { serial: string; hop: number; devices: string[] }[] }> {
  const res = await n.h.send('GET', '/v1/otp/operator/findings', { headers: n.h.operator });
  assert.equal(res.status, 200);
  return (await res.json()) as never;
}

for (const backend of testBackends()) {
  describe(`OTP coins in flight under attack on ${backend.kind}`, { skip: backend.skip }, () => {
    test('a chain whose tags before the last do not open claims nothing: it cannot outrun, nor put in dispute, the payee who took the coin', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coin, sent, escrowKey, claimsUntil: until } = await oneCoin(n);
        const [henry, mallory, eve] = [await n.client(), await n.client(), await n.client()];
        // Henry took Alice's coin and paid it on; his payment was cut.
        const atHenry = n.pay(sent, henry.device, escrowKey);
        assert.deepEqual((await n.inFlight(henry, [atHenry])).settled, []);
        // Mallory knows the coin (its serial and bank signature, as anyone it passed through) and signs,
        // with her device key taken out of its SE, one tag of her own after tags of random bytes.
        const junkFirst: CarriedCoin = { coin, tags: n.pay({ coin, tags: [junkTag(), junkTag()] }, mallory.device, escrowKey).tags };
        // Eve, who took the coin from Alice too (or read Alice's tag off Henry's copy), does the same after Alice's tag.
        const junkAfter: CarriedCoin = { coin, tags: n.pay({ coin, tags: [...sent.tags, junkTag(), junkTag()] }, eve.device, escrowKey).tags };
        assert.deepEqual((await n.inFlight(mallory, [junkFirst])).settled, []);
        assert.deepEqual((await n.inFlight(eve, [junkAfter])).settled, []);
        assert.equal(await rowsOf(n, 'otp_claims', coin.serial), 1, "Henry's claim only");
        n.h.tick(until - n.h.now() + 1);
        const answered = await n.inFlight(mallory, [junkFirst]);
        assert.equal(outcomeOf(answered.settled, coin), undefined, 'Mallory has no claim on the coin and learns nothing of it');
        assert.equal(answered.refunded, '0.00');
        assert.equal(outcomeOf((await n.inFlight(henry, [atHenry])).settled, coin), 'refunded');
        assert.deepEqual(await balances(n, alice, henry, mallory, eve), ['0.00', '1.00', '0.00', '0.00']);
        const { findings: named, disputes } = await findings(n);
        assert.deepEqual([named, disputes], [[], []]);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a payer who paid a coin twice is not refunded by a longer branch of its own making: it is named and the other branch refunded', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coin, sent, escrowKey, claimsUntil: until } = await oneCoin(n);
        const carol = await n.client();
        // Carol took Alice's coin and paid it on (cut). Alice's copy (a clone, or her key out of its SE)
        // paid the same coin to itself twice more: a branch longer than Carol's, reported by Alice.
        const atCarol = n.pay(sent, carol.device, escrowKey);
        const own = n.pay(n.pay(n.pay({ coin, tags: [] }, alice.device, escrowKey), alice.device, escrowKey), alice.device, escrowKey);
        assert.deepEqual((await n.inFlight(carol, [atCarol])).settled, []);
        assert.deepEqual((await n.inFlight(alice, [own])).settled, []);
        n.h.tick(until - n.h.now() + 1);
        const answered = await n.inFlight(carol, [atCarol]);
        assert.equal(outcomeOf(answered.settled, coin), 'refunded');
        assert.equal(answered.refunded, '1.00');
        assert.deepEqual(await balances(n, alice, carol), ['0.00', '1.00']);
        const named = (await findings(n)).findings;
        assert.deepEqual(named.map((f) => [f.device, f.hop]), [[alice.deviceId, 1]]);
        await expectError((await n.inFlight(alice, [own])).res, 403, 'CERT_REVOKED');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a branch of a coin paid twice deposited late, after the refund, names its payer', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coin, sent, escrowKey, depositUntil, claimsUntil: until } = await oneCoin(n);
        const [carol, dave, eve] = [await n.client(), await n.client(), await n.client()];
        const { depositKey } = await n.params();
        // Carol took Alice's coin and paid it on (cut). Alice's clone paid the same coin to Dave, who
        // paid it to Eve; Dave never heard her ACK.
        const atCarol = n.pay(sent, carol.device, escrowKey);
        const atDave = n.pay(n.pay({ coin, tags: [] }, alice.device, escrowKey), dave.device, escrowKey);
        assert.deepEqual((await n.inFlight(carol, [atCarol])).settled, []);
        n.h.tick(until - n.h.now() + 1);
        assert.equal(outcomeOf((await n.inFlight(carol, [atCarol])).settled, coin), 'refunded');
        assert.deepEqual((await findings(n)).findings, [], 'one branch alone names nobody');
        // Eve deposits Dave's copy on a worker whose clock is behind: the serial is spent.
        const behind = n.worker(() => depositUntil);
        const late = await n.deposit(eve, [n.sealForDeposit(atDave, depositKey)], { app: behind, now: depositUntil });
        assert.deepEqual(late.outcomes, ['double-spend']);
        assert.deepEqual((await findings(n)).findings.map((f) => [f.serial, f.device, f.hop]), [[toHex(coin.serial), alice.deviceId, 1]], 'named by the deposit');
        assert.deepEqual(await balances(n, alice, carol, dave, eve), ['0.00', '1.00', '0.00', '0.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test("a branch of a coin paid twice reported after the refund hears 'double-spent' and names its payer", async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const { alice, coin, sent, escrowKey, claimsUntil: until } = await oneCoin(n);
        const [carol, dave] = [await n.client(), await n.client()];
        const atCarol = n.pay(sent, carol.device, escrowKey);
        const atDave = n.pay(n.pay({ coin, tags: [] }, alice.device, escrowKey), dave.device, escrowKey);
        assert.deepEqual((await n.inFlight(carol, [atCarol])).settled, []);
        n.h.tick(until - n.h.now() + 1);
        assert.equal(outcomeOf((await n.inFlight(carol, [atCarol])).settled, coin), 'refunded');
        // Dave syncs only now: his claim is not recorded, but his tags show Alice paid the coin twice.
        const daves = await n.inFlight(dave, [atDave]);
        assert.equal(outcomeOf(daves.settled, coin), 'double-spent');
        assert.equal(daves.refunded, '0.00');
        assert.equal(await rowsOf(n, 'otp_claims', coin.serial), 1, "Carol's claim only");
        assert.deepEqual((await findings(n)).findings.map((f) => [f.serial, f.device, f.hop]), [[toHex(coin.serial), alice.deviceId, 1]]);
        await expectError((await n.inFlight(alice, [sent])).res, 403, 'CERT_REVOKED');
        assert.deepEqual(await balances(n, alice, carol, dave), ['0.00', '1.00', '0.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });
  });
}
