import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { nobleEd25519, nobleP256 } from '../../core/crypto/noble.ts';
import { sm2Suite } from '../../core/crypto/sm2.ts';
import { signerFromSecret, type Signer } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import { signRegistrationProof } from '../../pki/registration.ts';
import { decodeRevocationList, RevocationStore } from '../../pki/revocation.ts';
import { closeTestTemplates, testBackends } from '../db/test-databases.ts';
import { expectError, setup, type Harness, type TestUser } from './test-harness.ts';

after(() => closeTestTemplates());

const MEASUREMENT = sha256(utf8('ops trusted app, build 1'));
const WITHDRAWN = sha256(utf8('ops trusted app, build 0 (not allowed)'));
const MODEL = 'Tally test secure element';

const ed25519 = (seed: number): Signer => signerFromSecret(nobleEd25519, new Uint8Array(32).fill(seed));

/** Enrols an OEM and allows MEASUREMENT for ops. */
async function enrolOem(h: Harness, oem: Signer, name = 'Test OEM'): Promise<string> {
  const res = await h.asOperator('POST', '/v1/operator/oems', { name, publicKey: { suite: oem.publicKey.suite, key: toBase64url(oem.publicKey.key) } });
  assert.equal(res.status, 201, await res.clone().text());
  const allowed = await h.asOperator('POST', '/v1/operator/measurements', { measurement: toHex(MEASUREMENT), scheme: 'ops', description: 'ops TA build 1' });
  assert.equal(allowed.status, 201, await allowed.clone().text());
  return ((await res.json()) as { keyId: string }).keyId;
}

interface DeviceRequest {
  device: Signer;
  owner: TestUser;
  oem: Signer;
  oemKeyId: string;
  measurement?: Uint8Array;
  scheme?: string;
  attestedKey?: Signer;
  proofOwner?: Uint8Array;
}

function deviceBody(r: DeviceRequest) {
  const attestation = attestDevice(r.oem, { sePublicKey: (r.attestedKey ?? r.device).publicKey, model: MODEL, taMeasurement: r.measurement ?? MEASUREMENT });
  const proof = signRegistrationProof(r.device, { owner: r.proofOwner ?? fromHex(r.owner.keyId), scheme: r.scheme ?? 'ops' });
  return {
    publicKey: { suite: r.device.publicKey.suite, key: toBase64url(r.device.publicKey.key) },
    scheme: r.scheme ?? 'ops',
    oem: r.oemKeyId,
    attestation: toBase64url(encodeAttestation(attestation)),
    proof: toBase64url(proof),
  };
}

let keys = 0;
const key = () => ({ 'idempotency-key': `registry-${++keys}` });

async function registerDevice(h: Harness, r: DeviceRequest, body: unknown = deviceBody(r)): Promise<Response> {
  return h.signed(r.owner.user, 'POST', '/v1/devices', body, key());
}

async function deviceCount(h: Harness): Promise<number> {
  return Number((await h.node.services.db.query<{ n: bigint }>('SELECT count(*)::bigint AS n FROM devices')).rows[0]?.n);
}

async function revocations(h: Harness) {
  const res = await h.send('GET', '/v1/revocations');
  assert.equal(res.status, 200);
  return { etag: res.headers.get('etag'), body: (await res.json()) as { version: number; revoked: string[]; list: string; issuer: string } };
}

for (const backend of testBackends()) {
  describe(`device registry and revocation on ${backend.kind}`, { skip: backend.skip }, () => {
    test('an SM2 user and an SM2 device register; their certificates name the suite and verify', async () => {
      const h = await setup(backend);
      try {
        const user = signerFromSecret(sm2Suite, sha256(utf8('sm2 user')));
        const res = await h.signed(user, 'POST', '/v1/users', { publicKey: { suite: 'sm2', key: toBase64url(user.publicKey.key) } }, key());
        assert.equal(res.status, 201, await res.clone().text());
        const body = (await res.json()) as { account: string; keyId: string; certificate: string };
        const certificate = decodeCertificate(fromBase64url(body.certificate));
        assert.equal(certificate.body.subject.suite, 'sm2');
        const { identity } = h.node.services;
        const chain = verifyChain({ provider: nodeProvider, chain: [certificate, identity.intermediary.certificate], trustAnchors: [identity.root.certificate], now: h.now(), leafRoles: ['user'] });
        assert.equal(toHex(chain.subjectKeyId), body.keyId);
        const oem = ed25519(91);
        const oemKeyId = await enrolOem(h, oem);
        const owner: TestUser = { user, ...body };
        const device = signerFromSecret(sm2Suite, sha256(utf8('sm2 device')));
        const registered = await registerDevice(h, { device, owner, oem, oemKeyId });
        assert.equal(registered.status, 201, await registered.clone().text());
        const deviceCertificate = decodeCertificate(fromBase64url(((await registered.json()) as { certificate: string }).certificate));
        assert.equal(deviceCertificate.body.subject.suite, 'sm2');
        // A signed request with the SM2 key authenticates.
        assert.equal((await h.signed(user, 'GET', `/v1/accounts/${body.account}`)).status, 200);
      } finally {
        await h.close();
      }
    });

    test('a device registers with its attestation and gets a certificate that chains to the root, with its owner and limits', async () => {
      const h = await setup(backend);
      try {
        const oem = signerFromSecret(nobleP256, sha256(utf8('oem p256')));
        const oemKeyId = await enrolOem(h, oem);
        const alice = await h.register(21);
        const device = ed25519(22);
        const res = await registerDevice(h, { device, owner: alice, oem, oemKeyId });
        assert.equal(res.status, 201, await res.clone().text());
        const body = (await res.json()) as { keyId: string; certificate: string; owner: string; limits: { holdingLimit: string; offlinePaymentsMax: number } };
        assert.equal(body.keyId, toHex(keyId(device.publicKey)));
        assert.equal(body.owner, alice.keyId);
        assert.deepEqual(body.limits, { holdingLimit: '300.00', offlinePaymentsMax: 50 });

        const { identity } = h.node.services;
        const certificate = decodeCertificate(fromBase64url(body.certificate));
        const verified = verifyChain({
          provider: nodeProvider,
          chain: [certificate, identity.intermediary.certificate],
          trustAnchors: [identity.root.certificate],
          now: h.now(),
          leafRoles: ['device'],
        });
        assert.equal(verified.role, 'device');
        const x = certificate.body.extensions;
        assert.equal(x.scheme, 'ops');
        assert.equal(x.deviceModel, MODEL);
        assert.deepEqual(x.taMeasurement, MEASUREMENT);
        assert.deepEqual(x.owner, fromHex(alice.keyId));
        assert.equal(x.holdingLimit, 30_000n);
        assert.equal(x.currency, 'EUR');
        assert.equal(x.offlinePaymentsMax, 50);

        const info = (await (await h.send('GET', '/v1/info')).json()) as { limits: { holdingLimit: string; offlinePaymentsMax: number } };
        assert.equal(info.limits.holdingLimit, '300.00');
        const spec = (await (await h.send('GET', '/openapi.json')).json()) as { paths: Record<string, unknown> };
        for (const path of ['/v1/devices', '/v1/revocations', '/v1/operator/revoke', '/v1/operator/oems', '/v1/operator/measurements']) assert.ok(path in spec.paths, path);
        assert.equal((await h.audit()).balanced, true);
      } finally {
        await h.close();
      }
    });

    test('every refused registration answers its code and registers nothing', async () => {
      const h = await setup(backend);
      try {
        const oem = ed25519(31);
        const oemKeyId = await enrolOem(h, oem);
        const alice = await h.register(32);
        const bob = await h.register(33);
        const device = ed25519(34);
        const base = { device, owner: alice, oem, oemKeyId };

        // An OEM the node never enrolled, named as such, and one signing in an enrolled OEM's name.
        const stranger = ed25519(35);
        await expectError(await registerDevice(h, { ...base, oem: stranger, oemKeyId: toHex(keyId(stranger.publicKey)) }), 403, 'OEM_UNKNOWN');
        await expectError(await registerDevice(h, { ...base, oem: stranger }), 403, 'ATTESTATION_INVALID');
        // A build not on the allow list, and the allowed build registered for another scheme.
        await expectError(await registerDevice(h, { ...base, measurement: WITHDRAWN }), 403, 'ATTESTATION_INVALID');
        await expectError(await registerDevice(h, { ...base, scheme: 'dotm' }), 403, 'ATTESTATION_INVALID');
        // The attestation vouches for another key than the one presented.
        await expectError(await registerDevice(h, { ...base, attestedKey: ed25519(36) }), 403, 'ATTESTATION_INVALID');
        // Bob replays Alice's device's proof to claim her device: the proof names Alice.
        await expectError(await registerDevice(h, { ...base, owner: bob }, { ...deviceBody(base) }), 401, 'SIGNATURE_INVALID');
        await expectError(await registerDevice(h, { ...base, proofOwner: fromHex(bob.keyId) }), 401, 'SIGNATURE_INVALID');
        // Malformed and oversized attestations, bad base64url, an invalid point, unknown fields.
        const good = deviceBody(base);
        await expectError(await registerDevice(h, base, { ...good, attestation: toBase64url(utf8('not cbor at all')) }), 403, 'ATTESTATION_INVALID');
        await expectError(await registerDevice(h, base, { ...good, attestation: toBase64url(new Uint8Array(600)) }), 403, 'ATTESTATION_INVALID');
        await expectError(await registerDevice(h, base, { ...good, attestation: 'a' }), 400, 'BODY_INVALID');
        await expectError(await registerDevice(h, base, { ...good, publicKey: { suite: 'p256', key: toBase64url(new Uint8Array(33).fill(7)) } }), 400, 'BODY_INVALID');
        await expectError(await registerDevice(h, base, { ...good, extra: true }), 400, 'BODY_INVALID');
        // Unsigned, and the operator routes called by an account holder.
        await expectError(await h.send('POST', '/v1/devices', { body: good, headers: key() }), 401, 'UNAUTHENTICATED');
        await expectError(await h.signed(alice.user, 'POST', '/v1/operator/oems', { name: 'Me', publicKey: good.publicKey }, key()), 403, 'FORBIDDEN');
        await expectError(await h.signed(alice.user, 'POST', '/v1/operator/revoke', { keyId: bob.keyId, reason: 'spite' }, key()), 403, 'FORBIDDEN');
        assert.equal(await deviceCount(h), 0);

        // The real registration passes; a second one of the same key is refused.
        assert.equal((await registerDevice(h, base)).status, 201);
        await expectError(await registerDevice(h, base), 409, 'ALREADY_REGISTERED');
        // Enrolling the OEM again, or its build under another scheme, is refused too.
        await expectError(await h.asOperator('POST', '/v1/operator/oems', { name: 'Again', publicKey: { suite: 'ed25519', key: toBase64url(oem.publicKey.key) } }), 409, 'ALREADY_REGISTERED');
        await expectError(await h.asOperator('POST', '/v1/operator/measurements', { measurement: toHex(MEASUREMENT), scheme: 'dotm', description: 'x' }), 409, 'ALREADY_REGISTERED');
        assert.equal(await deviceCount(h), 1);
        assert.equal((await h.audit()).balanced, true);
      } finally {
        await h.close();
      }
    });

    test('revocation signs a new list version that devices accept; revoked users and devices are refused', async () => {
      const h = await setup(backend);
      try {
        const oem = ed25519(41);
        const oemKeyId = await enrolOem(h, oem);
        const alice = await h.register(42);
        const bob = await h.register(43);
        const device = ed25519(44);
        const registered = (await (await registerDevice(h, { device, owner: alice, oem, oemKeyId })).json()) as { keyId: string; certificate: string };
        const serial = toHex(decodeCertificate(fromBase64url(registered.certificate)).body.serial);
        const { intermediary } = h.node.services.identity;
        const store = new RevocationStore({ provider: nodeProvider });

        const first = await revocations(h);
        assert.equal(first.body.version, 1);
        assert.deepEqual(first.body.revoked, []);
        assert.equal(store.accept(decodeRevocationList(fromBase64url(first.body.list)), intermediary.certificate.body.subject), 'accepted');
        const unchanged = await h.send('GET', '/v1/revocations', { headers: { 'if-none-match': first.etag ?? '' } });
        assert.equal(unchanged.status, 304);

        const revoked = await h.asOperator('POST', '/v1/operator/revoke', { keyId: registered.keyId, reason: 'cloned secure element' });
        assert.equal(revoked.status, 200, await revoked.clone().text());
        assert.deepEqual(await revoked.json(), { keyId: registered.keyId, role: 'device', serial, version: 2, alreadyRevoked: false });
        const second = await revocations(h);
        assert.equal(second.body.version, 2);
        assert.deepEqual(second.body.revoked, [serial]);
        assert.notEqual(second.etag, first.etag);
        assert.equal((await h.send('GET', '/v1/revocations', { headers: { 'if-none-match': first.etag ?? '' } })).status, 200);
        const list = decodeRevocationList(fromBase64url(second.body.list));
        assert.equal(store.accept(list, intermediary.certificate.body.subject), 'accepted');
        assert.equal(store.isRevoked(list.body.issuer, fromHex(serial)), true);
        // An older list replayed to the device is refused: it would un-revoke the culprit.
        assert.throws(() => store.accept(decodeRevocationList(fromBase64url(first.body.list)), intermediary.certificate.body.subject), (e) => isTallyError(e, 'CRL_ROLLBACK'));
        // A list does not verify under another key than the intermediary's.
        assert.throws(() => new RevocationStore({ provider: nodeProvider }).accept(list, h.node.services.identity.root.certificate.body.subject), (e) => isTallyError(e, 'CRL_INVALID'));

        // Revoking again changes nothing; the revoked device cannot register again.
        const again = (await (await h.asOperator('POST', '/v1/operator/revoke', { keyId: registered.keyId, reason: 'again' })).json()) as { version: number; alreadyRevoked: boolean };
        assert.deepEqual([again.version, again.alreadyRevoked], [2, true]);
        assert.equal((await revocations(h)).body.version, 2);
        await h.node.services.db.query('DELETE FROM devices');
        await expectError(await registerDevice(h, { device, owner: alice, oem, oemKeyId }), 403, 'CERT_REVOKED');

        // A revoked user's signed requests are refused; others go on.
        await h.asOperator('POST', '/v1/operator/mint', { account: bob.account, amount: '5.00' });
        const bobRevoked = (await (await h.asOperator('POST', '/v1/operator/revoke', { keyId: bob.keyId, reason: 'account closed' })).json()) as { role: string; version: number };
        assert.deepEqual([bobRevoked.role, bobRevoked.version], ['user', 3]);
        await expectError(await h.signed(bob.user, 'GET', `/v1/accounts/${bob.account}`), 403, 'CERT_REVOKED');
        await expectError(await h.signed(bob.user, 'POST', '/v1/transfers', { to: alice.account, amount: '1.00' }, key()), 403, 'CERT_REVOKED');
        assert.equal(await h.balance(alice), '0.00');
        // Unknown keys and malformed requests change nothing.
        await expectError(await h.asOperator('POST', '/v1/operator/revoke', { keyId: 'ab'.repeat(32), reason: 'nobody' }), 404, 'SUBJECT_UNKNOWN');
        await expectError(await h.asOperator('POST', '/v1/operator/revoke', { keyId: 'AB', reason: 'bad' }), 400, 'BODY_INVALID');
        await expectError(await h.asOperator('POST', '/v1/operator/revoke', { keyId: alice.keyId, reason: '' }), 400, 'BODY_INVALID');
        assert.equal((await revocations(h)).body.version, 3);
        assert.equal((await h.audit()).balanced, true);
      } finally {
        await h.close();
      }
    });

    test('concurrent revocations produce consecutive versions, each list holding every earlier serial', async () => {
      const h = await setup(backend);
      try {
        const users = await Promise.all(Array.from({ length: 12 }, (_, i) => h.register(60 + i)));
        const answers = await Promise.all(users.map((u) => h.asOperator('POST', '/v1/operator/revoke', { keyId: u.keyId, reason: 'batch' })));
        const versions = (await Promise.all(answers.map(async (r) => ((await r.json()) as { version: number }).version))).sort((a, b) => a - b);
        assert.deepEqual(versions, Array.from({ length: 12 }, (_, i) => i + 2));
        const { rows } = await h.node.services.db.query<{ encoded: Uint8Array }>('SELECT encoded FROM revocation_lists ORDER BY version');
        const lists = rows.map((r) => decodeRevocationList(new Uint8Array(r.encoded)));
        lists.forEach((list, i) => assert.equal(list.body.revoked.length, i));
        const store = new RevocationStore({ provider: nodeProvider });
        for (const list of lists) assert.equal(store.accept(list, h.node.services.identity.intermediary.certificate.body.subject), 'accepted');
        assert.equal((await h.audit()).balanced, true);
      } finally {
        await h.close();
      }
    });
  });
}
