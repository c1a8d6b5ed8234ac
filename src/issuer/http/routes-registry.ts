/**
 * The registry of secure elements (OPS §3.2 TA registration) and revocation:
 * - operator: POST /v1/operator/oems (the central bank certifies a device maker's key),
 *   POST /v1/operator/measurements (a trusted-app build allowed for a scheme),
 *   POST /v1/operator/revoke (revoke a user's or a device's certificate);
 * - account holders: POST /v1/devices (register a secure element with its OEM attestation);
 * - anyone: GET /v1/revocations (the current signed list).
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { decodeCertificate, encodeCertificate, issueCertificate } from '../../pki/certificate.ts';
import { currentRevocationList, revokeCertificate, type RevocableRole } from '../registry/revocations.ts';
import { requireOperator, requireUser } from './auth.ts';
import type { IssuerEnv, IssuerServices } from './context.ts';
import { DEVICE_CERTIFICATE_VALIDITY_MS, registrationRefusal, verifyAttestedKey } from './device-registration.ts';
import type { SchemeModule } from './scheme-module.ts';
import { formatMinor } from './json.ts';
import { ApiProblem } from './problem.ts';
import type { StoredResponse } from '../ledger/idempotency.ts';
import { base64url, decodeField, errorBody, idempotent, json, keyIdHex, parsePublicKey, publicKeyBody, refusal, schemeName, validBody } from './validate.ts';

export { DEVICE_CERTIFICATE_VALIDITY_MS } from './device-registration.ts';
/** How long an OEM certificate is valid (it ends earlier if the root's does). */
export const OEM_CERTIFICATE_VALIDITY_MS = 5 * 365 * 24 * 3600 * 1000;

const printable = (max: number) => z.string().min(1).max(max).regex(/^[^\p{Cc}\p{Cs}]*$/u, 'text without control characters');

const oemBody = z.strictObject({ name: printable(128), publicKey: publicKeyBody });
const measurementBody = z.strictObject({
  measurement: z.string().regex(/^[0-9a-f]{64}$/, 'SHA-256 of the trusted app, 64 lower-case hex digits'),
  scheme: schemeName,
  description: printable(140),
});
const deviceBody = z.strictObject({
  publicKey: publicKeyBody,
  scheme: schemeName,
  oem: keyIdHex.describe('key id of the OEM whose attestation vouches for the device'),
  attestation: base64url.describe('the OEM attestation, deterministic CBOR'),
  proof: base64url.describe('the device key\'s signature over [owner key id, scheme] (tally/pki/device-registration/v1)'),
});
const revokeBody = z.strictObject({ keyId: keyIdHex, reason: printable(200) });
const removeOemBody = z.strictObject({ reason: printable(200) });
const settleBody = z.strictObject({ keyId: keyIdHex });

const certificateAnswer = z.object({ keyId: z.string(), certificate: z.string() });

const postOem = createRoute({
  method: 'post',
  path: '/v1/operator/oems',
  description: 'The central bank certifies a device maker\'s attestation key (operator token).',
  request: { body: json(oemBody) },
  responses: { 201: { description: 'Certified', content: { 'application/json': { schema: certificateAnswer } } }, 409: { description: 'Already enrolled', ...errorBody } },
});

const postMeasurement = createRoute({
  method: 'post',
  path: '/v1/operator/measurements',
  description: 'Allows a trusted-app build, by its measurement, for one scheme (operator token).',
  request: { body: json(measurementBody) },
  responses: {
    201: { description: 'Allowed', content: { 'application/json': { schema: measurementBody } } },
    409: { description: 'Already allowed for another scheme', ...errorBody },
  },
});

const postDevice = createRoute({
  method: 'post',
  path: '/v1/devices',
  description: 'Registers the caller\'s secure element: checks the OEM attestation, the allowed measurement and the proof of possession; answers a device certificate with its limits.',
  request: { body: json(deviceBody) },
  responses: {
    201: {
      description: 'Registered',
      content: {
        'application/json': {
          schema: certificateAnswer.extend({ owner: z.string(), scheme: z.string(), limits: z.object({ holdingLimit: z.string(), offlinePaymentsMax: z.number().int() }) }),
        },
      },
    },
    403: { description: 'Unknown OEM, bad attestation, measurement not allowed', ...errorBody },
    409: { description: 'Already registered', ...errorBody },
  },
});

const revocationAnswer = z.object({
  version: z.number().int(),
  issuer: z.string(),
  issuedAt: z.number().int(),
  revoked: z.array(z.string()).openapi({ description: 'serials in hex' }),
  list: z.string().openapi({ description: 'the signed list, base64url of deterministic CBOR' }),
});

const getRevocations = createRoute({
  method: 'get',
  path: '/v1/revocations',
  description: 'The intermediary\'s current signed revocation list. Answers 304 to If-None-Match with the current ETag.',
  responses: { 200: { description: 'The list', content: { 'application/json': { schema: revocationAnswer } } }, 304: { description: 'Unchanged' } },
});

const postRevoke = createRoute({
  method: 'post',
  path: '/v1/operator/revoke',
  description: 'Revokes the certificate of a registered user or device key and signs the next list version (operator token).',
  request: { body: json(revokeBody) },
  responses: {
    200: {
      description: 'Revoked (or already revoked)',
      content: { 'application/json': { schema: z.object({ keyId: z.string(), role: z.string(), serial: z.string(), version: z.number().int(), alreadyRevoked: z.boolean() }) } },
    },
    404: { description: 'No such user or device', ...errorBody },
  },
});

const removeOem = createRoute({
  method: 'post',
  path: '/v1/operator/oems/{keyId}/remove',
  description:
    'Removes an OEM (operator token): the node takes no new device or wallet it attests from then on. Devices it attested before stay registered; revoke each with POST /v1/operator/revoke when the OEM\'s key is compromised.',
  request: { params: z.object({ keyId: keyIdHex }), body: json(removeOemBody) },
  responses: {
    200: { description: 'Removed (or already removed)', content: { 'application/json': { schema: z.object({ keyId: z.string(), name: z.string(), removedAt: z.string(), alreadyRemoved: z.boolean() }) } } },
    404: { description: 'No such OEM', ...errorBody },
  },
});

const postSettle = createRoute({
  method: 'post',
  path: '/v1/operator/settle',
  description:
    'Settles a revoked device\'s honest remainder (operator token): what the node can prove the device still held and did not spend goes back to its account holder, once, by the rules of the device\'s scheme.',
  request: { body: json(settleBody) },
  responses: {
    200: { description: 'Settled, or held until the scheme\'s hold is over', content: { 'application/json': { schema: z.object({ device: z.string(), status: z.string() }).passthrough() } } },
    404: { description: 'No such device', ...errorBody },
    409: { description: 'Not revoked, or already settled', ...errorBody },
  },
});

/** The answer to an operator request naming a key no scheme knows. */
function unknownSubject(keyId: string): StoredResponse {
  return { status: 404, body: { error: { code: 'SUBJECT_UNKNOWN', message: `no user or device is registered with key ${keyId}`, details: {} } } };
}

/** Adds the registry and revocation routes. */
export function registerRegistryRoutes(app: OpenAPIHono<IssuerEnv>, services: IssuerServices, schemes: readonly SchemeModule[] = []): void {
  const { identity } = services;

  app.openAPIRegistry.registerPath(postOem);
  app.post(postOem.path, async (c) => {
    requireOperator(c.get('caller'));
    const body = validBody(c, oemBody);
    const { publicKey, keyId } = parsePublicKey(services, 'body.publicKey', body.publicKey);
    return idempotent(services, c, 'oems', 'operator', async (tx) => {
      const enrolled = refusal('ALREADY_REGISTERED', `OEM key ${keyId} is already enrolled`);
      const existing = await tx.query('SELECT 1 FROM oems WHERE key_id = $1', [keyId]);
      if (existing.rowCount > 0) return enrolled;
      const now = services.now();
      // The root certifies device makers; an intermediary enrolled at a central bank, which holds no
      // root key, certifies the makers whose devices it takes itself, below its own certificate.
      const rootKey = identity.root.signer;
      const certifier = rootKey === undefined ? { issuer: identity.intermediary.signer, issuerRole: 'intermediary' as const, until: identity.intermediary.certificate.body.notAfter } : { issuer: rootKey, issuerRole: 'root' as const, until: identity.root.certificate.body.notAfter };
      const certificate = issueCertificate({
        issuer: certifier.issuer,
        issuerRole: certifier.issuerRole,
        role: 'oem',
        subject: publicKey,
        notBefore: now - 60_000,
        notAfter: Math.min(now + OEM_CERTIFICATE_VALIDITY_MS, certifier.until),
        extensions: { name: body.name },
      });
      const encoded = encodeCertificate(certificate);
      // A concurrent enrolment of the same key may have committed since the check: then this one is the second.
      const inserted = await tx.query('INSERT INTO oems (key_id, name, certificate) VALUES ($1, $2, $3) ON CONFLICT (key_id) DO NOTHING', [keyId, body.name, encoded]);
      if (inserted.rowCount === 0) return enrolled;
      return { status: 201, body: { keyId, certificate: toBase64url(encoded) } };
    });
  });

  app.openAPIRegistry.registerPath(postMeasurement);
  app.post(postMeasurement.path, async (c) => {
    requireOperator(c.get('caller'));
    const body = validBody(c, measurementBody);
    return idempotent(services, c, 'measurements', 'operator', async (tx) => {
      // Insert first, then read what is held: two concurrent allowances of one build both land here,
      // the second finding the first's row (the same scheme: allowed; another scheme: refused).
      await tx.query('INSERT INTO ta_measurements (measurement, scheme, description) VALUES ($1, $2, $3) ON CONFLICT (measurement) DO NOTHING', [
        fromHex(body.measurement),
        body.scheme,
        body.description,
      ]);
      const existing = await tx.query<{ scheme: string }>('SELECT scheme FROM ta_measurements WHERE measurement = $1', [fromHex(body.measurement)]);
      const held = existing.rows[0];
      if (held !== undefined && held.scheme !== body.scheme) return refusal('ALREADY_REGISTERED', `measurement ${body.measurement} is already allowed for scheme ${held.scheme}`);
      return { status: 201, body };
    });
  });

  app.openAPIRegistry.registerPath(postDevice);
  app.post(postDevice.path, async (c) => {
    const owner = requireUser(c.get('caller'));
    const body = validBody(c, deviceBody);
    const { publicKey, keyId } = parsePublicKey(services, 'body.publicKey', body.publicKey);
    const attestation = await verifyAttestedKey(services, {
      scheme: body.scheme,
      publicKey,
      oem: body.oem,
      attestation: decodeField('body.attestation', body.attestation),
      proofs: [{ publicKey, owner: fromHex(owner.keyId), scheme: body.scheme, proof: decodeField('body.proof', body.proof), label: 'the device key' }],
    });
    const now = services.now();
    const limits = services.deviceLimits;
    return idempotent(services, c, 'devices', owner.keyId, async (tx) => {
      const refused = await registrationRefusal(tx, body.oem, [keyId]);
      if (refused !== null) return refused;
      const registered = refusal('ALREADY_REGISTERED', `device key ${keyId} is already registered`);
      const existing = await tx.query('SELECT 1 FROM devices WHERE key_id = $1', [keyId]);
      if (existing.rowCount > 0) return registered;
      const certificate = issueCertificate({
        issuer: identity.intermediary.signer,
        issuerRole: 'intermediary',
        role: 'device',
        subject: publicKey,
        notBefore: now - 60_000,
        notAfter: Math.min(now + DEVICE_CERTIFICATE_VALIDITY_MS, identity.intermediary.certificate.body.notAfter),
        extensions: {
          scheme: body.scheme,
          deviceModel: attestation.body.model,
          taMeasurement: attestation.body.taMeasurement,
          owner: fromHex(owner.keyId),
          holdingLimit: limits.holdingLimitMinor,
          currency: services.currency.code,
          offlinePaymentsMax: limits.offlinePaymentsMax,
        },
      });
      const encoded = encodeCertificate(certificate);
      // A concurrent registration of the same key may have committed since the check.
      const inserted = await tx.query(
        `INSERT INTO devices (key_id, suite, public_key, owner_key_id, scheme, oem_key_id, model, ta_measurement, serial, certificate)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (key_id) DO NOTHING`,
        [keyId, publicKey.suite, publicKey.key, owner.keyId, body.scheme, body.oem, attestation.body.model, attestation.body.taMeasurement, certificate.body.serial, encoded],
      );
      if (inserted.rowCount === 0) return registered;
      return {
        status: 201,
        body: {
          keyId,
          certificate: toBase64url(encoded),
          owner: owner.keyId,
          scheme: body.scheme,
          limits: { holdingLimit: formatMinor(services.currency, limits.holdingLimitMinor), offlinePaymentsMax: limits.offlinePaymentsMax },
        },
      };
    });
  });

  app.openAPIRegistry.registerPath(getRevocations);
  app.get(getRevocations.path, async (c) => {
    const current = await currentRevocationList(services.db);
    const etag = `"crl-${current.version}"`;
    c.header('etag', etag);
    c.header('cache-control', 'no-cache');
    if (c.req.header('if-none-match') === etag) return c.body(null, 304);
    const body = current.list.body;
    return c.json({
      version: current.version,
      issuer: toHex(body.issuer),
      issuedAt: body.issuedAt,
      revoked: body.revoked.map(toHex),
      list: toBase64url(current.encoded),
    });
  });

  app.openAPIRegistry.registerPath(postRevoke);
  app.post(postRevoke.path, async (c) => {
    requireOperator(c.get('caller'));
    const body = validBody(c, revokeBody);
    return idempotent(services, c, 'revoke', 'operator', async (tx) => {
      const found = await tx.query<{ role: RevocableRole; certificate: Uint8Array }>(
        `SELECT 'device' AS role, certificate FROM devices WHERE key_id = $1
         UNION ALL SELECT 'user' AS role, certificate FROM users WHERE key_id = $1`,
        [body.keyId],
      );
      const row = found.rows[0];
      if (row === undefined) {
        // A key a scheme registered in its own tables (DOT-M's wallet and user keys).
        for (const scheme of schemes) {
          const revoked = await scheme.revokeKey?.(tx, services, body.keyId, body.reason);
          if (revoked === null || revoked === undefined) continue;
          return { status: 200, body: { keyId: body.keyId, role: revoked.role, serial: toHex(revoked.serial), version: revoked.version, alreadyRevoked: revoked.already, scheme: scheme.name } };
        }
        return unknownSubject(body.keyId);
      }
      const serial = decodeCertificate(new Uint8Array(row.certificate)).body.serial;
      const outcome = await revokeCertificate(tx, identity.intermediary.signer, { serial, subjectKeyId: body.keyId, role: row.role, reason: body.reason }, services.now());
      return { status: 200, body: { keyId: body.keyId, role: row.role, serial: toHex(serial), version: outcome.version, alreadyRevoked: outcome.already } };
    });
  });

  app.openAPIRegistry.registerPath(removeOem);
  app.post('/v1/operator/oems/:keyId/remove', async (c) => {
    requireOperator(c.get('caller'));
    const oem = c.req.param('keyId');
    if (!/^[0-9a-f]{64}$/.test(oem)) throw new ApiProblem('BODY_INVALID', 'path.keyId: expected 64 lower-case hex digits', {});
    const body = validBody(c, removeOemBody);
    return idempotent(services, c, 'oems/remove', 'operator', async (tx) => {
      const { rows } = await tx.query<{ name: string; removed_at: Date | null }>('SELECT name, removed_at FROM oems WHERE key_id = $1 FOR UPDATE', [oem]);
      const row = rows[0];
      if (row === undefined) return { status: 404, body: { error: { code: 'OEM_UNKNOWN', message: `no OEM with key ${oem} is enrolled with this node`, details: { oem } } } };
      if (row.removed_at !== null) return { status: 200, body: { keyId: oem, name: row.name, removedAt: row.removed_at.toISOString(), alreadyRemoved: true } };
      const removedAt = new Date(services.now());
      await tx.query('UPDATE oems SET removed_at = $2, removed_reason = $3 WHERE key_id = $1', [oem, removedAt.toISOString(), body.reason]);
      return { status: 200, body: { keyId: oem, name: row.name, removedAt: removedAt.toISOString(), alreadyRemoved: false } };
    });
  });

  app.openAPIRegistry.registerPath(postSettle);
  app.post(postSettle.path, async (c) => {
    requireOperator(c.get('caller'));
    const body = validBody(c, settleBody);
    return idempotent(services, c, 'settle', 'operator', async (tx) => {
      for (const scheme of schemes) {
        const settled = await scheme.settleRemainder?.(tx, services, body.keyId);
        if (settled !== null && settled !== undefined) return settled;
      }
      return unknownSubject(body.keyId);
    });
  });
}
