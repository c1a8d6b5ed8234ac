/**
 * OPERA deposits on the node, PGlite and PostgreSQL: a token is credited once; a serial that comes
 * back is a double spend, credited nothing, with a finding naming both devices; forged tokens,
 * tokens of another currency and serials the bank never issued are refused; a replay answers the
 * stored receipt. Every test ends with the audit (conservation and the OPERA exposure check).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { toBase64url, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { TIMESTAMP_MS_MAX } from '../../core/fields.ts';
import { randomBytes, sha256 } from '../../core/crypto/hash.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { DEPOSIT_REQUEST_TAG, depositRequestBodyCodec, NONCE_BYTES, signed, TOKENS_PER_MESSAGE_MAX } from './messages.ts';
import { operaNode } from './node-fixtures.ts';
import { homeTokensOutstanding } from './node-shards.ts';
import { TOKEN_WIRE_BYTES_MAX } from './node-common.ts';
import { signToken, TOKEN_SERIAL_BYTES, tokenCodec, type Token } from './token.ts';

after(() => closeTestTemplates());

for (const backend of testBackends()) {
  describe(`OPERA deposits on ${backend.kind}`, { skip: backend.skip }, () => {
    test('a deposit credits each token once: a replay answers the stored receipt, a serial deposited again is a double spend naming both devices', async () => {
      const n = await operaNode(backend);
      try {
        const [alice, bob, carol] = [await n.client(), await n.client(), await n.client()];
        await n.mint(alice, '10.00');
        const tokens = await n.charged(alice, [[500n, 1], [100n, 2]]);
        await n.conservation(700n);
        // Alice's ODW paid the tokens to Bob's offline; Bob deposits them.
        const nonce = randomBytes(NONCE_BYTES);
        const first = await n.deposit(bob, tokens, { nonce });
        assert.equal(first.res.status, 200, await first.res.clone().text());
        assert.equal(first.credited, '7.00');
        assert.deepEqual(first.outcomes, ['credited', 'credited', 'credited']);
        assert.equal(first.receipt?.credited, 700n);
        assert.deepEqual([await n.h.balance(alice), await n.h.balance(bob)], ['3.00', '7.00']);
        await n.conservation(0n);

        const replay = await n.deposit(bob, tokens, { nonce });
        assert.equal(replay.res.headers.get('idempotent-replayed'), 'true');
        assert.deepEqual([replay.credited, replay.outcomes], [first.credited, first.outcomes]);
        assert.equal(await n.h.balance(bob), '7.00', 'a replay credits nothing more');
        await expectError((await n.deposit(bob, tokens.slice(1), { nonce })).res, 409, 'IDEMPOTENCY_CONFLICT');

        // A copy of a spent token (a broken ODW kept it) deposited by Carol: nothing credited, both named.
        const copy = await n.deposit(carol, [tokens[1] as Token]);
        assert.deepEqual([copy.credited, copy.outcomes], ['0.00', ['double-spend']]);
        assert.equal(await n.h.balance(carol), '0.00');
        assert.deepEqual((await n.findings()).map((f) => [f.kind, f.serial, f.txid, f.device, f.first, f.revocationVersion]), [
          ['double-spend', toHex((tokens[1] as Token).body.serial), null, carol.deviceId, bob.deviceId, null],
        ]);
        assert.equal((await n.rows('SELECT 1 FROM revoked_certificates')).length, 0, 'a double spend alone names no culprit to revoke');
        await expectError(await n.h.send('GET', '/v1/opera/operator/findings'), 401, 'UNAUTHENTICATED');
        await expectError(await n.h.signed(bob.user, 'GET', '/v1/opera/operator/findings'), 403, 'FORBIDDEN');
        const spent = await n.rows<{ state: string; spent_by: string }>('SELECT state, spent_by FROM opera_tokens');
        assert.deepEqual(spent.map((r) => [r.state, r.spent_by]), tokens.map(() => ['deposited', bob.deviceId]));
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('forged, altered, foreign-currency and never-issued tokens are refused, a token listed twice is credited once, and the rest of the deposit is credited', async () => {
      const n = await operaNode(backend);
      try {
        const [alice, bob] = [await n.client(), await n.client()];
        await n.mint(alice, '10.00');
        const [good, other] = (await n.charged(alice, [[200n, 1], [50n, 1]])) as [Token, Token];
        const forged = signToken(alice.device, { ...good.body, serial: randomBytes(TOKEN_SERIAL_BYTES) });
        const altered: Token = { body: { ...other.body, value: 5000n }, signature: other.signature };
        // Signed with the bank's own key but never charged (a key that leaked), and one in another currency.
        const bankKey = n.h.node.services.identity.issuerNode.signer;
        const unknown = signToken(bankKey, { ...good.body, serial: randomBytes(TOKEN_SERIAL_BYTES) });
        const dollars = signToken(bankKey, { ...other.body, currency: 'USD' });
        const revalued = signToken(bankKey, { ...other.body, value: 5000n });
        const mixed = await n.deposit(bob, [forged, good, altered, unknown, good, dollars, revalued, other]);
        assert.equal(mixed.res.status, 200, await mixed.res.clone().text());
        assert.deepEqual(mixed.outcomes, ['refused', 'credited', 'refused', 'refused', 'refused', 'refused', 'refused', 'credited']);
        assert.equal(mixed.credited, '2.50');
        assert.equal(await n.h.balance(bob), '2.50');
        assert.equal((await n.rows('SELECT 1 FROM opera_findings')).length, 0, 'refusals are not double spends');
        // Nothing deposited at all still answers a receipt.
        const none = await n.deposit(bob, [forged]);
        assert.deepEqual([none.credited, none.outcomes], ['0.00', ['refused']]);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test("a deposit not signed by the device, from another holder's device or a revoked one is refused and credits nothing", async () => {
      const n = await operaNode(backend);
      try {
        const [alice, bob] = [await n.client(), await n.client()];
        await n.mint(alice, '3.00');
        const tokens = await n.charged(alice, [[100n, 3]]);
        await expectError((await n.deposit(bob, tokens, { signer: alice.device })).res, 401, 'SIGNATURE_INVALID');
        const request = signed(depositRequestBodyCodec, alice.device, DEPOSIT_REQUEST_TAG, { nonce: randomBytes(NONCE_BYTES), tokens });
        await expectError(await n.send(bob, '/v1/opera/deposit', { device: alice.deviceId, request: toBase64url(encodeCbor(request)) }), 404, 'DEVICE_UNKNOWN');
        await expectError(await n.send(bob, '/v1/opera/deposit', { device: bob.deviceId, request: toBase64url(new Uint8Array([0xa0])) }), 400, 'BODY_INVALID');
        assert.equal((await n.h.asOperator('POST', '/v1/operator/revoke', { keyId: bob.deviceId, reason: 'lost' })).status, 200);
        await expectError((await n.deposit(bob, tokens)).res, 403, 'CERT_REVOKED');
        assert.equal(await n.h.balance(bob), '0.00');
        assert.deepEqual((await n.rows<{ state: string }>('SELECT state FROM opera_tokens')).map((r) => r.state), ['issued', 'issued', 'issued']);
        await n.conservation(300n);
      } finally {
        await n.h.close();
      }
    });

    test('a deposit begun on shard databases and sent to the node started without them is refused, naming what finishes it', async () => {
      const n = await operaNode(backend);
      try {
        const [alice, bob] = [await n.client(), await n.client()];
        await n.mint(alice, '2.00');
        const tokens = await n.charged(alice, [[100n, 2]]);
        // What a node on shard databases leaves while a deposit's parts are not all settled: the
        // nonce claimed for this very request, its answer not stored yet.
        const nonce = randomBytes(NONCE_BYTES);
        const digest = sha256(encodeCbor({ nonce, tokens }));
        await n.rows("INSERT INTO opera_answers (device_key_id, kind, nonce, request_digest, at) VALUES ($1, 'deposit', $2, $3, now())", [bob.deviceId, nonce, digest]);
        const refused = await expectError((await n.deposit(bob, tokens, { nonce })).res, 503, 'SHARD_UNAVAILABLE');
        assert.match(refused.message, /shard databases/);
        assert.equal(await n.h.balance(bob), '0.00');
        assert.deepEqual((await n.rows<{ state: string }>('SELECT state FROM opera_tokens')).map((r) => r.state), ['issued', 'issued']);
        // Another request under the nonce is still a conflict, and a new nonce deposits as usual.
        await expectError((await n.deposit(bob, tokens.slice(1), { nonce })).res, 409, 'IDEMPOTENCY_CONFLICT');
        assert.equal((await n.deposit(bob, tokens)).credited, '2.00');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('tokens issued at home and not deposited keep the ledger from moving to shard databases', async () => {
      const n = await operaNode(backend);
      try {
        const db = n.h.node.services.db;
        assert.equal(await homeTokensOutstanding(db), undefined, 'nothing issued yet');
        const [alice, bob] = [await n.client(), await n.client()];
        await n.mint(alice, '3.00');
        const tokens = await n.charged(alice, [[100n, 3]]);
        assert.match((await homeTokensOutstanding(db)) ?? '', /^3 OPERA token\(s\) issued in the home database are not deposited yet/);
        assert.equal((await n.deposit(bob, tokens.slice(0, 2))).credited, '2.00');
        assert.match((await homeTokensOutstanding(db)) ?? '', /^1 OPERA token/);
        assert.equal((await n.deposit(bob, tokens.slice(2))).credited, '1.00');
        assert.equal(await homeTokensOutstanding(db), undefined, 'every token deposited');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a token at its largest (the largest value, a 128-byte signature) fits TOKEN_WIRE_BYTES_MAX', () => {
      const largest: Token = { body: { serial: new Uint8Array(TOKEN_SERIAL_BYTES), value: AMOUNT_MINOR_MAX, currency: 'EUR', issued: TIMESTAMP_MS_MAX }, signature: new Uint8Array(128) };
      assert.ok(encodeCbor(tokenCodec.decode(largest)).length <= TOKEN_WIRE_BYTES_MAX, `${encodeCbor(largest).length} bytes`);
    });

    test('concurrent deposits of overlapping tokens by two devices credit each token once; a full message of tokens is taken at once', async () => {
      const n = await operaNode(backend);
      try {
        const [alice, bob, carol] = [await n.client(), await n.client(), await n.client()];
        await n.mint(alice, '20.00');
        const tokens = await n.charged(alice, [[100n, 6]]);
        const reversed = [...tokens].reverse();
        const [b, c] = await Promise.all([n.deposit(bob, tokens), n.deposit(carol, reversed)]);
        const credited = [...b.outcomes, ...c.outcomes].filter((o) => o === 'credited').length;
        assert.equal(credited, tokens.length, 'each token credited once');
        assert.equal([...b.outcomes, ...c.outcomes].filter((o) => o === 'double-spend').length, tokens.length);
        const sum = Number(((await n.h.balance(bob)) as string).replace('.', '')) + Number(((await n.h.balance(carol)) as string).replace('.', ''));
        assert.equal(sum, 600);
        assert.equal((await n.rows('SELECT 1 FROM opera_findings')).length, tokens.length);
        await n.conservation(0n);

        const many = await n.charged(alice, [[1n, TOKENS_PER_MESSAGE_MAX]]);
        const all = await n.deposit(bob, many);
        assert.equal(all.res.status, 200, await all.res.clone().text());
        assert.equal(all.credited, '10.24');
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });
  });
}
