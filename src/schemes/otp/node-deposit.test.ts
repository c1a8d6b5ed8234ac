/**
 * OTP deposits on the node, PGlite and PostgreSQL: a coin is credited once; a serial that comes
 * back is a double spend, credited nothing, and the escrow tags of the two copies name the device
 * that paid it twice, which is revoked; coins that do not open, decode or check are refused; a coin
 * signed outside any withdrawal shows in the audit's exposure check. Every test ends with the audit
 * (conservation and the OTP exposure check).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createPrivateKey } from 'node:crypto';
import { toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { blind, finalize } from './blind-rsa.ts';
import { classKey, preparedCoinMessage, SERIAL_BYTES } from './coin.ts';
import { generateKeyPair } from '../../core/crypto/hpke.ts';
import type { CarriedCoin } from './messages.ts';
import { otpNode, SHORT } from './node-fixtures.ts';
import { otpBankKeys, unwrapClassKey } from './node-keys.ts';
import { blindSign } from './node-rsa.ts';
import { buildProgram } from './program.ts';
import { sealCoin, sealedDigest } from './transfer.ts';

after(() => closeTestTemplates());

for (const backend of testBackends()) {
  describe(`OTP deposits on ${backend.kind}`, { skip: backend.skip }, () => {
    test('a deposit credits each coin once: a replay answers the stored receipt, the same copy again is a double spend with nobody named', async () => {
      const n = await otpNode(backend);
      try {
        const alice = await n.client();
        const bob = await n.client();
        await n.mint(alice, '10.00');
        const { escrowKey, depositKey } = await n.params();
        const { coins } = await n.withdraw(alice, [await n.classOf(100n), await n.classOf(500n)]);
        await n.conservation(600n);
        // Alice pays both coins to Bob (hop 1); Bob deposits them.
        const boxes = coins.map((coin) => n.sealForDeposit(n.pay({ coin, tags: [] }, alice.device, escrowKey), depositKey));
        const headers = n.key();
        const first = await n.deposit(bob, boxes, { headers });
        assert.equal(first.res.status, 200);
        assert.equal(first.credited, '6.00');
        assert.deepEqual(first.outcomes, ['credited', 'credited']);
        assert.deepEqual(first.receipt?.coins.map((c) => toHex(c.digest)), boxes.map((b) => toHex(sealedDigest(b))));
        assert.equal(first.receipt?.credited, '600');
        assert.equal(await n.h.balance(bob), '6.00');
        await n.conservation(0n);

        const replay = await n.deposit(bob, boxes, { headers });
        assert.equal(replay.res.headers.get('idempotent-replayed'), 'true');
        assert.equal(replay.credited, '6.00');
        assert.equal(await n.h.balance(bob), '6.00', 'a replay credits nothing more');

        const again = await n.deposit(bob, [boxes[0] as (typeof boxes)[number]]);
        assert.deepEqual(again.outcomes, ['double-spend']);
        assert.equal(again.credited, '0.00');
        assert.equal(await n.h.balance(bob), '6.00');
        // The same copy twice parts nowhere: its tags name nobody, and nobody is revoked.
        const findings = (await (await n.h.send('GET', '/v1/otp/operator/findings', { headers: n.h.operator })).json()) as { findings: unknown[] };
        assert.deepEqual(findings.findings, []);
        assert.equal((await n.h.node.services.db.query('SELECT 1 FROM otp_double_spends')).rowCount, 1);
        assert.equal((await n.h.node.services.db.query('SELECT 1 FROM revoked_certificates')).rowCount, 0);
        // A coin never paid (no tags) is deposited by its withdrawer.
        const { coins: own } = await n.withdraw(alice, [await n.classOf(50n)]);
        const mine = await n.deposit(alice, [n.sealForDeposit({ coin: own[0] as (typeof own)[number], tags: [] }, depositKey)]);
        assert.deepEqual(mine.outcomes, ['credited']);
        assert.equal(await n.h.balance(alice), '4.00');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a coin paid twice from one device: the second deposit is a double spend, the finding names that device, which is revoked', async () => {
      const n = await otpNode(backend);
      try {
        const [alice, bob, carol, dave] = [await n.client(), await n.client(), await n.client(), await n.client()];
        await n.mint(alice, '5.00');
        const { escrowKey, depositKey } = await n.params();
        const { coins } = await n.withdraw(alice, [await n.classOf(200n)]);
        const coin = coins[0] as (typeof coins)[number];
        // Hop 1 from Alice's device to Bob; at hop 2 Bob's (broken) device pays the same coin to Carol and to Dave.
        const atBob = n.pay({ coin, tags: [] }, alice.device, escrowKey);
        const toCarol = n.pay(atBob, bob.device, escrowKey);
        const toDave = n.pay(atBob, bob.device, escrowKey);
        const credited = await n.deposit(carol, [n.sealForDeposit(toCarol, depositKey)]);
        assert.deepEqual(credited.outcomes, ['credited']);
        const second = await n.deposit(dave, [n.sealForDeposit(toDave, depositKey)]);
        assert.deepEqual(second.outcomes, ['double-spend']);
        assert.equal(second.credited, '0.00');
        assert.equal(await n.h.balance(carol), '2.00');
        assert.equal(await n.h.balance(dave), '0.00');

        const listed = (await (await n.h.send('GET', '/v1/otp/operator/findings', { headers: n.h.operator })).json()) as { findings: { serial: string; hop: number; device: string; revocationVersion: number | null }[] };
        assert.equal(listed.findings.length, 1);
        const [finding] = listed.findings;
        assert.equal(finding?.serial, toHex(coin.serial));
        assert.equal(finding?.hop, 2);
        assert.equal(finding?.device, bob.deviceId, "the device that signed both branches is Bob's, not Alice's");
        const crl = (await (await n.h.send('GET', '/v1/revocations')).json()) as { version: number };
        assert.equal(finding?.revocationVersion, crl.version);
        const revoked = await n.h.node.services.db.query<{ subject_key_id: string }>('SELECT subject_key_id FROM revoked_certificates');
        assert.deepEqual(revoked.rows.map((r) => r.subject_key_id), [bob.deviceId]);
        const evidence = await n.h.node.services.db.query<{ tags: Uint8Array }>('SELECT tags FROM otp_double_spends');
        assert.deepEqual(new Uint8Array(evidence.rows[0]?.tags as Uint8Array), encodeCbor(toDave.tags), "the second copy's tags are kept");
        // The revoked device can neither withdraw nor deposit any more.
        await expectError((await n.withdraw(bob, [await n.classOf(1n)])).res, 403, 'CERT_REVOKED');
        await expectError((await n.deposit(bob, [n.sealForDeposit(toCarol, depositKey)])).res, 403, 'CERT_REVOKED');
        // The list is the operator's.
        await expectError(await n.h.send('GET', '/v1/otp/operator/findings'), 401, 'UNAUTHENTICATED');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('both branches of a coin paid twice in one deposit, among other coins: the first in the deposit is credited, the other is the double spend that names the device', async () => {
      const n = await otpNode(backend);
      try {
        const [alice, bob, carol] = [await n.client(), await n.client(), await n.client()];
        await n.mint(alice, '5.00');
        const { escrowKey, depositKey } = await n.params();
        const { coins } = await n.withdraw(alice, [await n.classOf(200n), await n.classOf(100n), await n.classOf(50n)]);
        const [twice, other, third] = coins as [(typeof coins)[number], (typeof coins)[number], (typeof coins)[number]];
        const atBob = n.pay({ coin: twice, tags: [] }, alice.device, escrowKey);
        const branchA = n.pay(atBob, bob.device, escrowKey);
        const branchB = n.pay(atBob, bob.device, escrowKey);
        const plain = (coin: (typeof coins)[number]) => n.sealForDeposit(n.pay({ coin, tags: [] }, alice.device, escrowKey), depositKey);
        // Coin order, not serial order, decides which branch is taken.
        const deposited = await n.deposit(carol, [plain(other), n.sealForDeposit(branchB, depositKey), plain(third), n.sealForDeposit(branchA, depositKey)]);
        assert.deepEqual(deposited.outcomes, ['credited', 'credited', 'credited', 'double-spend']);
        assert.equal(deposited.credited, '3.50');
        assert.equal(await n.h.balance(carol), '3.50');
        const evidence = await n.h.node.services.db.query<{ tags: Uint8Array }>('SELECT tags FROM otp_double_spends');
        assert.deepEqual(evidence.rows.map((r) => new Uint8Array(r.tags)), [encodeCbor(branchA.tags)], 'the later branch is the evidence');
        const revoked = await n.h.node.services.db.query<{ subject_key_id: string }>('SELECT subject_key_id FROM revoked_certificates');
        assert.deepEqual(revoked.rows.map((r) => r.subject_key_id), [bob.deviceId]);
        // Deposited again, each coin is a double spend and credits nothing.
        const again = await n.deposit(carol, [plain(other), n.sealForDeposit(branchB, depositKey)]);
        assert.deepEqual(again.outcomes, ['double-spend', 'double-spend']);
        assert.equal(await n.h.balance(carol), '3.50');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a forged coin, a coin with another program, one past its hops, a box not for the bank and bytes that are no box are refused', async () => {
      const n = await otpNode(backend, { ...SHORT, hops: 2 });
      try {
        const alice = await n.client();
        const bob = await n.client();
        await n.mint(alice, '10.00');
        const { escrowKey, depositKey } = await n.params();
        const { coins } = await n.withdraw(alice, [await n.classOf(100n), await n.classOf(100n), await n.classOf(100n), await n.classOf(100n), await n.classOf(100n)]);
        const [good, forged, reprogrammed, travelled, misdirected] = coins as [(typeof coins)[number], (typeof coins)[number], (typeof coins)[number], (typeof coins)[number], (typeof coins)[number]];
        const signature = Uint8Array.from(forged.signature);
        signature[10] = (signature[10] as number) ^ 1;
        const other = buildProgram(2, [{ kind: 'checkMaxHops', hops: 64 }]);
        let far: CarriedCoin = { coin: travelled, tags: [] };
        // Its two transfers, the depositor's tag naming the bank, and one more: past what genuine TAs make.
        for (let i = 0; i < 4; i++) far = n.pay(far, alice.device, escrowKey);
        const boxes = [
          n.sealForDeposit({ coin: good, tags: [] }, depositKey),
          n.sealForDeposit({ coin: { ...forged, signature }, tags: [] }, depositKey),
          n.sealForDeposit({ coin: { ...reprogrammed, program: other }, tags: [] }, depositKey),
          n.sealForDeposit(far, depositKey),
          sealCoin({ coin: misdirected, tags: [] }, generateKeyPair().publicKey).sealed,
        ];
        const result = await n.deposit(bob, [...boxes, new Uint8Array([0xa0]), encodeCbor({ ...boxes[0], classId: new Uint8Array(16) })]);
        assert.deepEqual(result.outcomes, ['credited', 'refused', 'refused', 'refused', 'refused', 'refused', 'refused']);
        assert.equal(result.credited, '1.00');
        assert.equal(await n.h.balance(bob), '1.00');
        // Refused coins spend no serial: the genuine ones among them are still good (two transfers and the bank's tag).
        assert.deepEqual((await n.deposit(bob, [n.sealForDeposit({ coin: forged, tags: [] }, depositKey), n.sealForDeposit(n.pay(n.pay(n.pay({ coin: travelled, tags: [] }, alice.device, escrowKey), alice.device, escrowKey), alice.device, escrowKey), depositKey)])).outcomes, ['credited', 'credited']);
        // Once its deposit window has closed, a class's coin is refused too.
        const last = await n.params();
        n.h.tick(Math.max(...last.classes.map((c) => c.depositUntil)) - n.h.now() + 1);
        assert.deepEqual((await n.deposit(bob, [n.sealForDeposit({ coin: reprogrammed, tags: [] }, depositKey)])).outcomes, ['refused']);
        assert.equal(await n.h.balance(bob), '3.00');
        await n.conservation(200n);
      } finally {
        await n.h.close();
      }
    });

    test('a revoked device may not deposit: nothing is credited', async () => {
      const n = await otpNode(backend);
      try {
        const alice = await n.client();
        await n.mint(alice, '1.00');
        const { depositKey } = await n.params();
        const { coins } = await n.withdraw(alice, [await n.classOf(100n)]);
        const revoked = await n.h.asOperator('POST', '/v1/operator/revoke', { keyId: alice.deviceId, reason: 'stolen' });
        assert.equal(revoked.status, 200);
        await expectError((await n.deposit(alice, [n.sealForDeposit({ coin: coins[0] as (typeof coins)[number], tags: [] }, depositKey)])).res, 403, 'CERT_REVOKED');
        assert.equal(await n.h.balance(alice), '0.00');
        assert.equal((await n.h.node.services.db.query('SELECT 1 FROM otp_spent')).rowCount, 0);
        await n.conservation(100n);
      } finally {
        await n.h.close();
      }
    });
    test("a coin signed with a leaked class key outside any withdrawal is credited, and the audit's exposure check names its class", async () => {
      const n = await otpNode(backend);
      try {
        const alice = await n.client();
        const forger = await n.client();
        await n.mint(alice, '5.00');
        const { depositKey } = await n.params();
        await n.withdraw(alice, [await n.classOf(500n)]);
        // The 1.00 class's private key, as someone who took it from the bank would hold it.
        const entry = await n.classOf(100n);
        const { rows } = await n.h.node.services.db.query<{ wrapped_key: Uint8Array }>('SELECT wrapped_key FROM otp_classes WHERE class_id = $1', [entry.coinClass.classId]);
        const pkcs8 = unwrapClassKey(otpBankKeys(n.h.node.services).classWrap, entry.coinClass.classId, new Uint8Array(rows[0]?.wrapped_key as Uint8Array));
        const leaked = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
        const made = { serial: randomBytes(SERIAL_BYTES), classId: entry.coinClass.classId, prefix: randomBytes(32) };
        const prepared = preparedCoinMessage(made);
        const blinded = blind(classKey(entry.coinClass), prepared, randomBytes);
        const signature = finalize(classKey(entry.coinClass), prepared, blindSign(leaked, blinded.blindedMessage), blinded.inverse);
        const forged = await n.deposit(forger, [n.sealForDeposit({ coin: { ...made, signature, program: entry.program }, tags: [] }, depositKey)]);
        assert.deepEqual(forged.outcomes, ['credited'], 'the coin is genuine in every way a deposit can check');
        const ledger = await n.h.node.services.ledger.audit();
        assert.equal(ledger.balanced, true, 'the journal still adds up');
        const audit = (await (await n.h.send('GET', '/v1/audit', { headers: n.h.operator })).json()) as { balanced: boolean; exposure: { scheme: string; float: string; expected: string; unexplained: string; exposed: unknown[] }[] };
        assert.equal(audit.balanced, false);
        const otp = audit.exposure.find((e) => e.scheme === 'otp');
        assert.deepEqual(otp && { float: otp.float, expected: otp.expected, unexplained: otp.unexplained, exposed: otp.exposed }, {
          float: '4.00',
          expected: '5.00',
          unexplained: '-1.00',
          exposed: [{ device: `otp-class:${toHex(entry.coinClass.classId)}`, amount: '1.00', fraud: false }],
        });
      } finally {
        await n.h.close();
      }
    });
  });
}
