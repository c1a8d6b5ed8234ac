/**
 * The OTP bank on the node, PGlite and PostgreSQL: its signed parameters and classes, blind
 * withdrawals, exchange keys with the operator's categories and the trusted time. Every test ends
 * with the audit (conservation and the OTP exposure check).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { fromBase64url, toBase64url } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { isTallyError } from '../../core/errors.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { rootSigner } from '../../issuer/plugin.ts';
import { expectError, setup } from '../../issuer/http/test-harness.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { checkCoin, programDigest } from './coin.ts';
import { checkExchangeKey, exchangeKeyCodec } from './exchange-key.ts';
import { deriveKeyPair } from '../../core/crypto/hpke.ts';
import { checkSigned, paramsBodyCodec, paramsCodec, PARAMS_TAG, timeBodyCodec, timeCodec, TIME_TAG } from './messages.ts';
import { classTerms, DENOMINATIONS, epochOf, EXCHANGE_KEY_VALIDITY_MS, OTP_FLOAT_ACCOUNT, otpNodePartWith } from './node.ts';
import { otpNode, pooledClassKey, SHORT } from './node-fixtures.ts';
import { loadOtpBankKeys } from './node-keys.ts';
import { checkProgram } from './program.ts';

after(() => closeTestTemplates());

for (const backend of testBackends()) {
  describe(`OTP bank on ${backend.kind}`, { skip: backend.skip }, () => {
    test('the parameters verify under the issuer node key; one set of classes per epoch, made once under concurrent first reads', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const [a, b] = await Promise.all([n.params(), n.params()]);
        assert.ok(a !== undefined && b !== undefined);
        const { services } = n.h.node;
        const count = await services.db.query<{ n: bigint }>('SELECT count(*)::bigint AS n FROM otp_classes');
        assert.equal(Number(count.rows[0]?.n), DENOMINATIONS.length, 'two concurrent first reads made one set');
        assert.deepEqual(a.classes, b.classes);
        assert.equal(a.currency, 'EUR');
        assert.equal(a.at, n.h.now());
        assert.deepEqual(a.classes.map((c) => c.coinClass.denomination), DENOMINATIONS.map(String));
        assert.equal(DENOMINATIONS[0], 1n);
        assert.equal(DENOMINATIONS.at(-1), 50_000n);
        const terms = classTerms(epochOf(n.h.now(), 60_000), { epochMs: 60_000, depositGraceMs: 10_000, hops: 8 });
        for (const entry of a.classes) {
          assert.deepEqual(entry.coinClass.programDigest, programDigest(entry.program));
          assert.deepEqual(checkProgram(entry.program).conditions, [{ kind: 'checkExpiry', until: terms.until }, { kind: 'checkMaxHops', hops: 8 }]);
          assert.equal(entry.until, terms.until);
          assert.equal(entry.depositUntil, terms.until + 10_000);
          assert.equal(entry.coinClass.currency, 'EUR');
        }
        // The escrow and deposit keys come from the root key's deterministic signatures.
        const root = rootSigner(services.identity);
        assert.deepEqual(a.escrowKey, deriveKeyPair(sha256(signRecord(root, 'tally/otp/escrow-seed/v1', {}))).publicKey);
        assert.deepEqual(a.depositKey, deriveKeyPair(sha256(signRecord(root, 'tally/otp/deposit-seed/v1', {}))).publicKey);
        // A forged signature does not pass.
        const res = await n.h.send('GET', '/v1/otp/params');
        const record = paramsCodec.decode(decodeCbor(fromBase64url(((await res.json()) as { params: string }).params)));
        const altered = { body: { ...record.body, at: record.body.at + 1 }, signature: record.signature };
        assert.throws(() => checkSigned(nodeProvider, n.bank, paramsBodyCodec, PARAMS_TAG, altered), (e) => isTallyError(e, 'SIGNATURE_INVALID'));
        // The next epoch adds its classes; the older ones stay live while their coins may be deposited.
        n.h.tick(60_000);
        const next = await n.params();
        assert.equal(next.classes.length, 2 * DENOMINATIONS.length);
        n.h.tick(2 * 60_000 + 10_001);
        const later = await n.params();
        assert.ok(later.classes.every((c) => c.depositUntil >= n.h.now()), 'only classes whose coins may still be deposited');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a withdrawal debits exactly the sum of its classes, and its signatures finalize to coins that pass checkCoin', async () => {
      const n = await otpNode(backend);
      try {
        const alice = await n.client();
        await n.mint(alice, '10.00');
        const entries = [await n.classOf(500n), await n.classOf(200n), await n.classOf(2n), await n.classOf(2n)];
        const { res, coins } = await n.withdraw(alice, entries);
        assert.equal(res.status, 200, await res.clone().text());
        assert.equal(((await res.json()) as { amount: string }).amount, '7.04');
        assert.equal(await n.h.balance(alice), '2.96');
        const params = await n.params();
        const classOf = (id: Uint8Array) => params.classes.find((c) => Buffer.from(c.coinClass.classId).equals(id))?.coinClass;
        for (const [i, coin] of coins.entries()) assert.equal(checkCoin(coin, classOf).coinClass.denomination, entries[i]?.coinClass.denomination);
        const rows = await n.h.node.services.db.query<{ amount: bigint; coins: number }>('SELECT amount, coins FROM otp_withdrawals');
        assert.deepEqual(rows.rows.map((r) => [r.amount, r.coins]), [[704n, 4]]);
        // A coin of one class does not pass as another's.
        const forged = { ...(coins[2] as (typeof coins)[number]), classId: entries[0]?.coinClass.classId as Uint8Array };
        assert.throws(() => checkCoin(forged, classOf), /OTP_COIN_INVALID|refused/);
        await n.conservation(704n);
      } finally {
        await n.h.close();
      }
    });

    test('a withdrawal with funds short is refused and signs nothing; a class unknown or of a past epoch is refused', async () => {
      const n = await otpNode(backend, SHORT);
      try {
        const alice = await n.client();
        await n.mint(alice, '1.00');
        const big = await n.classOf(200n);
        const short = await n.withdraw(alice, [big]);
        const error = await expectError(short.res, 422, 'INSUFFICIENT_FUNDS');
        assert.ok(!('signatures' in error));
        assert.equal(await n.h.balance(alice), '1.00');
        const db = n.h.node.services.db;
        assert.equal((await db.query('SELECT 1 FROM otp_withdrawals')).rowCount, 0);
        assert.equal((await db.query('SELECT 1 FROM otp_classes WHERE issued > 0')).rowCount, 0);

        const unknown = { ...big, coinClass: { ...big.coinClass, classId: new Uint8Array(16).fill(7) } };
        await expectError((await n.withdraw(alice, [unknown])).res, 409, 'OTP_CLASS_UNKNOWN');
        const old = await n.classOf(50n);
        n.h.tick(60_000);
        await expectError((await n.withdraw(alice, [old])).res, 409, 'OTP_CLASS_UNKNOWN');
        assert.equal(await n.h.balance(alice), '1.00');
        // A blinded value that is not an element of the class key's group is refused before any debit.
        const res = await n.h.signed(alice.user, 'POST', '/v1/otp/withdrawals', { device: alice.deviceId, items: [{ classId: toBase64url((await n.classOf(50n)).coinClass.classId), blinded: toBase64url(new Uint8Array(256).fill(0xff)) }] }, n.key());
        await expectError(res, 400, 'BODY_INVALID');
        assert.equal(await n.h.balance(alice), '1.00');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test("a revoked device, another holder's device or none is refused", async () => {
      const n = await otpNode(backend);
      try {
        const alice = await n.client();
        const bob = await n.client();
        await n.mint(alice, '5.00');
        const entry = await n.classOf(100n);
        const res = await n.h.signed(alice.user, 'POST', '/v1/otp/withdrawals', { device: bob.deviceId, items: [] }, n.key());
        await expectError(res, 400, 'BODY_INVALID');
        const others = await n.h.signed(alice.user, 'POST', '/v1/otp/withdrawals', { device: bob.deviceId, items: [{ classId: toBase64url(entry.coinClass.classId), blinded: toBase64url(new Uint8Array(256)) }] }, n.key());
        await expectError(others, 404, 'DEVICE_UNKNOWN');
        const revoked = await n.h.asOperator('POST', '/v1/operator/revoke', { keyId: alice.deviceId, reason: 'lost' });
        assert.equal(revoked.status, 200, await revoked.clone().text());
        await expectError((await n.withdraw(alice, [entry])).res, 403, 'CERT_REVOKED');
        const keys = await n.h.signed(alice.user, 'POST', '/v1/otp/exchange-keys', { device: alice.deviceId, request: toBase64url(encodeCbor(n.keyRequest(alice.device, 1).request)) }, n.key());
        await expectError(keys, 403, 'CERT_REVOKED');
        assert.equal(await n.h.balance(alice), '5.00');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test("exchange keys carry the holder's category set by the operator and check under the bank key; the time answers the nonce", async () => {
      const n = await otpNode(backend);
      try {
        const shop = await n.client();
        const ask = async (count: number) => {
          const { publicKeys, nonce, request } = n.keyRequest(shop.device, count);
          const res = await n.h.signed(shop.user, 'POST', '/v1/otp/exchange-keys', { device: shop.deviceId, request: toBase64url(encodeCbor(request)) }, n.key());
          assert.equal(res.status, 200, await res.clone().text());
          const body = (await res.json()) as { keys: string[]; time: string };
          const keys = body.keys.map((k) => exchangeKeyCodec.decode(decodeCbor(fromBase64url(k))));
          const time = checkSigned(nodeProvider, n.bank, timeBodyCodec, TIME_TAG, timeCodec.decode(decodeCbor(fromBase64url(body.time))));
          assert.deepEqual(time, { nonce, at: n.h.now() });
          assert.deepEqual(keys.map((k) => k.body.publicKey), publicKeys);
          return keys;
        };
        const plain = await ask(2);
        for (const key of plain) {
          const body = checkExchangeKey(nodeProvider, n.bank, key, n.h.now());
          assert.equal(body.category, null);
          assert.equal(body.notAfter - body.notBefore, EXCHANGE_KEY_VALIDITY_MS);
        }
        const set = await n.h.asOperator('POST', '/v1/otp/operator/categories', { account: shop.keyId, category: 'grocery' });
        assert.equal(set.status, 200, await set.clone().text());
        const [tagged] = await ask(1);
        assert.ok(tagged !== undefined);
        assert.equal(checkExchangeKey(nodeProvider, n.bank, tagged, n.h.now()).category, 'grocery');
        // Not the bank's signature: refused by the payer.
        assert.throws(() => checkExchangeKey(nodeProvider, shop.device.publicKey, tagged, n.h.now()), /signature/);
        assert.equal((await ask(0)).length, 0, 'a request for no keys still answers the time');
        await expectError(await n.h.asOperator('POST', '/v1/otp/operator/categories', { account: 'ab'.repeat(32), category: 'grocery' }), 404, 'SUBJECT_UNKNOWN');
        await expectError(await n.h.asOperator('POST', '/v1/otp/operator/categories', { account: shop.keyId, category: 'Not A Category' }), 400, 'BODY_INVALID');
        await expectError(await n.h.signed(shop.user, 'POST', '/v1/otp/operator/categories', { account: shop.keyId, category: null }, n.key()), 403, 'FORBIDDEN');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a key request signed by another key than the device is refused with SIGNATURE_INVALID', async () => {
      const n = await otpNode(backend);
      try {
        const shop = await n.client();
        const other = await n.client();
        const { request } = n.keyRequest(other.device, 1);
        const res = await n.h.signed(shop.user, 'POST', '/v1/otp/exchange-keys', { device: shop.deviceId, request: toBase64url(encodeCbor(request)) }, n.key());
        await expectError(res, 401, 'SIGNATURE_INVALID');
        const garbled = await n.h.signed(shop.user, 'POST', '/v1/otp/exchange-keys', { device: shop.deviceId, request: toBase64url(new Uint8Array([1, 2, 3])) }, n.key());
        await expectError(garbled, 400, 'BODY_INVALID');
        assert.equal(await n.h.balance(shop), '0.00');
        assert.equal((await n.h.node.services.ledger.audit()).currencies.find((c) => c.currency === 'EUR')?.offlineFloat.find((f) => f.account === OTP_FLOAT_ACCOUNT)?.amount ?? 0n, 0n);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });
    test('on a node whose root signs SM2 (randomized signatures) the bank keys come from a seed it stores once: the same at every start', async () => {
      const h = await setup(backend, { schemes: [otpNodePartWith({ classKey: pooledClassKey })], suite: 'sm2' });
      try {
        assert.equal(rootSigner(h.node.services.identity).publicKey.suite, 'sm2');
        const res = await h.send('GET', '/v1/otp/params');
        assert.equal(res.status, 200, await res.clone().text());
        const record = paramsCodec.decode(decodeCbor(fromBase64url(((await res.json()) as { params: string }).params)));
        const params = checkSigned(nodeProvider, h.node.services.identity.issuerNode.signer.publicKey, paramsBodyCodec, PARAMS_TAG, record);
        assert.equal((await h.node.services.db.query('SELECT 1 FROM otp_secrets')).rowCount, 1);
        // Another start on the same database (a fresh identity object): the stored seed gives the same keys.
        const again = await loadOtpBankKeys({ identity: { ...h.node.services.identity }, db: h.node.services.db });
        assert.deepEqual([again.escrow.publicKey, again.deposit.publicKey], [params.escrowKey, params.depositKey]);
        assert.equal((await h.node.services.db.query('SELECT 1 FROM otp_secrets')).rowCount, 1, 'made once');
      } finally {
        await h.close();
      }
    });
  });
}
