/**
 * The OPERA bank on the node, PGlite and PostgreSQL: its signed parameters, the makers the operator
 * lists, and charging tokens into ODWs. Every test ends with the audit (conservation and the OPERA
 * exposure check).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { fromBase64url, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { randomBytes, sha256 } from '../../core/crypto/hash.ts';
import { isTallyError } from '../../core/errors.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import { expectError } from '../../issuer/http/test-harness.ts';
import { credentialKeys } from '../../pki/anonymous-credential.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { checkSigned, MAKERS_MAX, NONCE_BYTES, paramsBodyCodec, paramsCodec, PARAMS_TAG, TOKENS_PER_MESSAGE_MAX } from './messages.ts';
import { DENOMINATIONS } from './node.ts';
import { operaEscrowKey } from './node-keys.ts';
import { operaNode } from './node-fixtures.ts';
import { checkToken } from './token.ts';

after(() => closeTestTemplates());

for (const backend of testBackends()) {
  describe(`OPERA bank on ${backend.kind}`, { skip: backend.skip }, () => {
    test('the parameters verify under the issuer node key and list the makers; the paper\'s SHA-1 is an option', async () => {
      const n = await operaNode(backend);
      try {
        const empty = await n.params();
        // The escrow key the tags are sealed to: the public half of the key the node keeps.
        const escrowKey = operaEscrowKey(n.h.node.services).publicKey;
        assert.deepEqual(empty, { currency: 'EUR', denominations: [...DENOMINATIONS], hash: 'sha256', makers: [], escrowKey, at: n.h.now() });
        assert.deepEqual(DENOMINATIONS, [...DENOMINATIONS].sort((a, b) => (a < b ? -1 : 1)), 'ascending');
        const maker = await credentialKeys(sha256(utf8('maker one')));
        const reference = sha256(utf8('odw build 1'));
        const listed = await n.h.asOperator('POST', '/v1/opera/makers', { publicKey: toBase64url(maker.publicKey), reference: toHex(reference) });
        assert.equal(listed.status, 201, await listed.clone().text());
        assert.deepEqual(await listed.json(), { publicKey: toBase64url(maker.publicKey), reference: toHex(reference), listed: 1 });
        n.h.tick(1000);
        const params = await n.params();
        assert.deepEqual(params.makers, [{ publicKey: maker.publicKey, reference }]);
        assert.deepEqual(params.escrowKey, escrowKey, 'the same escrow key at every read');
        assert.equal(params.at, n.h.now());
        // A forged signature does not pass.
        const res = await n.h.send('GET', '/v1/opera/params');
        const record = paramsCodec.decode(decodeCbor(fromBase64url(((await res.json()) as { params: string }).params)));
        const altered = { body: { ...record.body, hash: 'sha1' as const }, signature: record.signature };
        assert.throws(() => checkSigned(nodeProvider, n.bank, paramsBodyCodec, PARAMS_TAG, altered), (e) => isTallyError(e, 'SIGNATURE_INVALID'));
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
      const sha1 = await operaNode(backend, { hash: 'sha1' });
      try {
        assert.equal((await sha1.params()).hash, 'sha1');
        await sha1.conservation(0n);
      } finally {
        await sha1.h.close();
      }
    });

    test('makers: the operator lists them once each, up to MAKERS_MAX; keys that are not G2 points and references not of 32 bytes are refused', async () => {
      const n = await operaNode(backend);
      try {
        const maker = await credentialKeys(sha256(utf8('maker two')));
        const body = { publicKey: toBase64url(maker.publicKey), reference: toBase64url(sha256(utf8('build'))) };
        const holder = await n.client();
        await expectError(await n.send(holder, '/v1/opera/makers', body), 403, 'FORBIDDEN');
        await expectError(await n.h.send('POST', '/v1/opera/makers', { body, headers: n.key() }), 401, 'UNAUTHENTICATED');
        assert.equal((await n.h.asOperator('POST', '/v1/opera/makers', body)).status, 201);
        const again = await n.h.asOperator('POST', '/v1/opera/makers', { ...body, reference: toHex(sha256(utf8('build'))).toUpperCase() });
        assert.equal(again.status, 200, 'the same maker and reference, in hex: already listed');
        const off = Uint8Array.from(maker.publicKey);
        off[95] = (off[95] as number) ^ 1;
        const identity = new Uint8Array(96);
        identity[0] = 0xc0;
        for (const bad of [
          { ...body, publicKey: toBase64url(maker.publicKey.slice(0, 95)) },
          { ...body, publicKey: toBase64url(new Uint8Array(96).fill(0xff)) },
          { ...body, publicKey: toBase64url(off) },
          { ...body, publicKey: toBase64url(identity) },
          { ...body, reference: toBase64url(new Uint8Array(31)) },
          { ...body, reference: 'ab'.repeat(33) },
          { ...body, extra: 1 },
        ]) {
          await expectError(await n.h.asOperator('POST', '/v1/opera/makers', bad), 400, 'BODY_INVALID');
        }
        for (let i = 1; i < MAKERS_MAX; i++) {
          const res = await n.h.asOperator('POST', '/v1/opera/makers', { ...body, reference: toHex(sha256(utf8(`build ${i}`))) });
          assert.equal(res.status, 201, await res.clone().text());
        }
        await expectError(await n.h.asOperator('POST', '/v1/opera/makers', { ...body, reference: toHex(sha256(utf8('one too many'))) }), 409, 'OPERA_MAKERS_FULL');
        assert.equal((await n.params()).makers.length, MAKERS_MAX);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });

    test('a charge debits the amount, answers bank-signed tokens of the values asked, and records each serial as issued', async () => {
      const n = await operaNode(backend);
      try {
        const alice = await n.client();
        await n.mint(alice, '20.00');
        const request = n.chargeRequest(alice, [[500n, 2], [200n, 1], [2n, 3]]);
        const { res, tokens } = await n.charge(alice, request);
        assert.equal(res.status, 200, await res.clone().text());
        assert.equal(((await res.json()) as { amount: string }).amount, '12.06');
        assert.equal(res.headers.get('idempotent-replayed'), 'false');
        assert.equal(await n.h.balance(alice), '7.94');
        assert.deepEqual(tokens.map((t) => t.body.value), [500n, 500n, 200n, 2n, 2n, 2n]);
        for (const token of tokens) {
          const body = checkToken(nodeProvider, n.bank, 'EUR', token);
          assert.equal(body.issued, n.h.now());
          assert.equal(body.serial.length, 16);
        }
        assert.equal(new Set(tokens.map((t) => toHex(t.body.serial))).size, tokens.length, 'fresh serials');
        const issued = await n.rows<{ serial: Uint8Array; value: string; device_key_id: string; state: string }>('SELECT serial, value::text, device_key_id, state FROM opera_tokens ORDER BY value DESC, serial');
        assert.deepEqual(
          issued.map((r) => [toHex(new Uint8Array(r.serial)), r.value, r.device_key_id, r.state]),
          [...tokens].sort((a, b) => (a.body.value === b.body.value ? toHex(a.body.serial).localeCompare(toHex(b.body.serial)) : a.body.value > b.body.value ? -1 : 1)).map((t) => [toHex(t.body.serial), String(t.body.value), alice.deviceId, 'issued']),
        );
        await n.conservation(1206n);
      } finally {
        await n.h.close();
      }
    });

    test('the same charge request again, in turn or concurrently, answers the same tokens and debits once; another request under its nonce is refused', async () => {
      const n = await operaNode(backend);
      try {
        const alice = await n.client();
        await n.mint(alice, '10.00');
        const request = n.chargeRequest(alice, [[100n, 3]]);
        const first = await n.charge(alice, request);
        assert.equal(first.res.status, 200);
        const replay = await n.charge(alice, request);
        assert.equal(replay.res.headers.get('idempotent-replayed'), 'true');
        assert.deepEqual(replay.tokens, first.tokens);
        assert.equal(await n.h.balance(alice), '7.00');
        const reused = n.chargeRequest(alice, [[100n, 1]], { nonce: request.body.nonce });
        await expectError((await n.charge(alice, reused)).res, 409, 'IDEMPOTENCY_CONFLICT');

        const racing = n.chargeRequest(alice, [[50n, 2], [1n, 1]]);
        const answers = await Promise.all([n.charge(alice, racing), n.charge(alice, racing), n.charge(alice, racing)]);
        for (const a of answers) assert.equal(a.res.status, 200, await a.res.clone().text());
        assert.deepEqual(answers.map((a) => a.res.headers.get('idempotent-replayed')).sort(), ['false', 'true', 'true']);
        assert.deepEqual(answers[1]?.tokens, answers[0]?.tokens);
        assert.deepEqual(answers[2]?.tokens, answers[0]?.tokens);
        assert.equal(await n.h.balance(alice), '5.99', 'debited once');
        assert.equal((await n.rows('SELECT 1 FROM opera_tokens')).length, 6);
        await n.conservation(401n);
      } finally {
        await n.h.close();
      }
    });

    test('a charge with funds short, a value that is no denomination, counts that do not make the amount or too many tokens is refused and changes nothing', async () => {
      const n = await operaNode(backend);
      try {
        const alice = await n.client();
        await n.mint(alice, '1.00');
        const short = n.chargeRequest(alice, [[200n, 1]]);
        await expectError((await n.charge(alice, short)).res, 422, 'INSUFFICIENT_FUNDS');
        await expectError((await n.charge(alice, n.chargeRequest(alice, [[3n, 1]]))).res, 409, 'OPERA_DENOMINATION_UNKNOWN');
        await expectError((await n.charge(alice, n.chargeRequest(alice, [[50n, 1]], { amount: 40n }))).res, 422, 'OPERA_MESSAGE_INVALID');
        await expectError((await n.charge(alice, n.chargeRequest(alice, [[1n, TOKENS_PER_MESSAGE_MAX], [2n, 1]]))).res, 413, 'TOO_LARGE');
        assert.equal(await n.h.balance(alice), '1.00');
        assert.equal((await n.rows('SELECT 1 FROM opera_tokens')).length, 0);
        // A refusal keeps nothing under the nonce: the same request succeeds once the account is funded.
        await n.mint(alice, '1.00');
        const later = await n.charge(alice, short);
        assert.equal(later.res.status, 200, await later.res.clone().text());
        assert.equal(later.res.headers.get('idempotent-replayed'), 'false');
        // The most one message carries, at once.
        await n.mint(alice, '10.24');
        const full = await n.charge(alice, n.chargeRequest(alice, [[1n, TOKENS_PER_MESSAGE_MAX]]));
        assert.equal(full.res.status, 200, await full.res.clone().text());
        assert.equal(full.tokens.length, TOKENS_PER_MESSAGE_MAX);
        assert.equal(await n.h.balance(alice), '0.00');
        await n.conservation(200n + BigInt(TOKENS_PER_MESSAGE_MAX));
      } finally {
        await n.h.close();
      }
    });

    test("a charge not signed by the device, for another holder's device, an unregistered, revoked or other scheme's device is refused", async () => {
      const n = await operaNode(backend);
      try {
        const [alice, bob] = [await n.client(), await n.client()];
        await n.mint(alice, '5.00');
        await expectError((await n.charge(alice, n.chargeRequest(alice, [[100n, 1]], { signer: bob.device }))).res, 401, 'SIGNATURE_INVALID');
        await expectError((await n.charge(alice, n.chargeRequest(bob, [[100n, 1]]), bob.deviceId)).res, 404, 'DEVICE_UNKNOWN');
        await expectError((await n.charge(alice, n.chargeRequest(alice, [[100n, 1]]), toHex(randomBytes(32)))).res, 404, 'DEVICE_UNKNOWN');
        const otherMeasurement = sha256(utf8('another scheme build'));
        const allowed = await n.h.asOperator('POST', '/v1/operator/measurements', { measurement: toHex(otherMeasurement), scheme: 'toy', description: 'toy' });
        assert.equal(allowed.status, 201);
        const toy = await n.client('toy', otherMeasurement);
        await n.mint(toy, '5.00');
        await expectError((await n.charge(toy, n.chargeRequest(toy, [[100n, 1]]))).res, 404, 'DEVICE_UNKNOWN');
        await expectError(await n.h.send('POST', '/v1/opera/charge', { body: { device: alice.deviceId, request: toBase64url(encodeCbor(n.chargeRequest(alice, [[100n, 1]]))) } }), 401, 'UNAUTHENTICATED');
        const garbled = await n.send(alice, '/v1/opera/charge', { device: alice.deviceId, request: toBase64url(encodeCbor({ nonce: randomBytes(NONCE_BYTES) })) });
        await expectError(garbled, 400, 'BODY_INVALID');
        const revoked = await n.h.asOperator('POST', '/v1/operator/revoke', { keyId: alice.deviceId, reason: 'lost' });
        assert.equal(revoked.status, 200, await revoked.clone().text());
        await expectError((await n.charge(alice, n.chargeRequest(alice, [[100n, 1]]))).res, 403, 'CERT_REVOKED');
        assert.deepEqual([await n.h.balance(alice), await n.h.balance(toy)], ['5.00', '5.00']);
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });
  });
}
