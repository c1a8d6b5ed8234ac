/**
 * Identical registrations sent at once, through HTTP, on PGlite and PostgreSQL: each caller gets a
 * proper answer (one registration, the others ALREADY_REGISTERED or the same answer replayed),
 * never a 500, and the audit stays balanced.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret, type Signer } from '../../core/crypto/suite.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { keyId } from '../../pki/key-id.ts';
import { signRegistrationProof } from '../../pki/registration.ts';
import { signRequest } from '../client/request-auth.ts';
import { closeTestTemplates, testBackends } from '../db/test-databases.ts';
import { setup, type Harness } from './test-harness.ts';

after(() => closeTestTemplates());

/** How many identical requests go out at once. */
const PARALLEL = 20;
/** Rounds of them, each on new keys. */
const ROUNDS = 3;

const ed25519 = (seed: number): Signer => signerFromSecret(nobleEd25519, new Uint8Array(32).fill(seed));
const MEASUREMENT = sha256(utf8('race test build'));
/** The scheme the builds and devices are registered for: a name only, no scheme is mounted. */
const SCHEME = 'sample';

type Answer = { status: number; code: string | undefined; text: string };

async function answers(requests: Array<Response | Promise<Response>>): Promise<Answer[]> {
  return Promise.all(
    requests.map(async (pending) => {
      const res = await pending;
      const text = await res.text();
      const code = res.status >= 400 ? (JSON.parse(text) as { error: { code: string } }).error.code : undefined;
      return { status: res.status, code, text };
    }),
  );
}

/** One success, every other answer ALREADY_REGISTERED, none a 500. */
function oneWins(all: Answer[], created = 201): void {
  for (const a of all) assert.ok(a.status < 500, `a concurrent registration answered ${a.status}: ${a.text}`);
  assert.equal(all.filter((a) => a.status === created).length, 1, JSON.stringify(all.map((a) => a.status)));
  for (const a of all.filter((x) => x.status !== created)) {
    assert.equal(a.status, 409, a.text);
    assert.equal(a.code, 'ALREADY_REGISTERED', a.text);
  }
}

/** Every answer the same success (replays of one request). */
function allSucceed(all: Answer[], created = 201): void {
  for (const a of all) assert.equal(a.status, created, a.text);
  assert.equal(new Set(all.map((a) => a.text)).size, 1, 'replays answer what the first request answered');
}

async function rows(h: Harness, table: string): Promise<number> {
  return Number((await h.node.services.db.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM ${table}`)).rows[0]?.n);
}

for (const backend of testBackends()) {
  describe(`concurrent registrations on ${backend.kind}`, { skip: backend.skip }, () => {
    test(`${PARALLEL} identical user registrations: one registers, the rest are told it is registered`, async () => {
      const h = await setup(backend);
      try {
        // Several rounds: the first ones may meet a pool still opening its connections, which spreads them out.
        for (let round = 0; round < ROUNDS; round++) {
          const user = ed25519(40 + round);
          const body = { publicKey: { suite: 'ed25519', key: toBase64url(user.publicKey.key) } };
          oneWins(await answers(Array.from({ length: PARALLEL }, (_, i) => h.signed(user, 'POST', '/v1/users', body, { 'idempotency-key': `user-race-${round}-${i}` }))));
          assert.equal(await rows(h, 'users'), round + 1);
        }
        // The same request under one key, sent at once: one registration, answered alike to all.
        const other = ed25519(62);
        const otherBody = { publicKey: { suite: 'ed25519', key: toBase64url(other.publicKey.key) } };
        const text = JSON.stringify(otherBody);
        const same = Array.from({ length: PARALLEL }, () =>
          h.send('POST', '/v1/users', {
            raw: text,
            headers: { ...signRequest({ signer: other, keyId: toHex(keyId(other.publicKey)), method: 'POST', path: '/v1/users', body: text, timestamp: h.now() }), 'idempotency-key': 'user-race-same' },
          }),
        );
        allSucceed(await answers(same));
        assert.equal(await rows(h, 'users'), ROUNDS + 1);
        assert.equal((await h.audit()).balanced, true);
      } finally {
        await h.close();
      }
    });

    test(`${PARALLEL} identical OEM enrolments: one enrols, the rest are told it is enrolled`, async () => {
      const h = await setup(backend);
      try {
        for (let round = 0; round < ROUNDS; round++) {
          const oem = ed25519(70 + round);
          const oemBody = { name: `Race OEM ${round}`, publicKey: { suite: 'ed25519', key: toBase64url(oem.publicKey.key) } };
          oneWins(await answers(Array.from({ length: PARALLEL }, () => h.asOperator('POST', '/v1/operator/oems', oemBody))));
          assert.equal(await rows(h, 'oems'), round + 1);
        }
        assert.equal((await h.audit()).balanced, true);
      } finally {
        await h.close();
      }
    });

    test(`${PARALLEL} identical allowances of one build: every caller is told it is allowed`, async () => {
      const h = await setup(backend);
      try {
        for (let round = 0; round < ROUNDS; round++) {
          const measurementBody = { measurement: toHex(sha256(utf8(`race test build ${round}`))), scheme: SCHEME, description: 'race build' };
          const allowed = await answers(Array.from({ length: PARALLEL }, () => h.asOperator('POST', '/v1/operator/measurements', measurementBody)));
          for (const a of allowed) assert.equal(a.status, 201, a.text);
          assert.equal(await rows(h, 'ta_measurements'), round + 1);
        }
        assert.equal((await h.audit()).balanced, true);
      } finally {
        await h.close();
      }
    });

    test(`${PARALLEL} identical device registrations: one registers, the rest are told it is registered`, async () => {
      const h = await setup(backend);
      try {
        const oem = ed25519(63);
        const enrolled = await h.asOperator('POST', '/v1/operator/oems', { name: 'Race OEM', publicKey: { suite: 'ed25519', key: toBase64url(oem.publicKey.key) } });
        assert.equal(enrolled.status, 201, await enrolled.clone().text());
        const oemKeyId = ((await enrolled.json()) as { keyId: string }).keyId;
        const allowed = await h.asOperator('POST', '/v1/operator/measurements', { measurement: toHex(MEASUREMENT), scheme: SCHEME, description: 'race build' });
        assert.equal(allowed.status, 201, await allowed.clone().text());
        const owner = await h.register(64);
        for (let round = 0; round < ROUNDS; round++) {
          const device = ed25519(80 + round);
          const attestation = attestDevice(oem, { sePublicKey: device.publicKey, model: 'Race SE', taMeasurement: MEASUREMENT });
          const deviceBody = {
            publicKey: { suite: 'ed25519', key: toBase64url(device.publicKey.key) },
            scheme: SCHEME,
            oem: oemKeyId,
            attestation: toBase64url(encodeAttestation(attestation)),
            proof: toBase64url(signRegistrationProof(device, { owner: fromHex(owner.keyId), scheme: SCHEME })),
          };
          oneWins(await answers(Array.from({ length: PARALLEL }, (_, i) => h.signed(owner.user, 'POST', '/v1/devices', deviceBody, { 'idempotency-key': `device-race-${round}-${i}` }))));
          assert.equal(await rows(h, 'devices'), round + 1);
        }
        assert.equal((await h.audit()).balanced, true);
      } finally {
        await h.close();
      }
    });
  });
}
