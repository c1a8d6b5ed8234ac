/**
 * DOT-M §3.3.1 on the node: registration of a wallet's user key and wallet key. The proofs of
 * possession, the OEM's attestation of the wallet key and an allowed build are checked by the
 * node's shared attested registration; the intermediary then issues ucert for the user key and
 * wcert for the wallet key.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { fromHex, toBase64url } from '../../core/bytes.ts';
import { ApiProblem, DEVICE_CERTIFICATE_VALIDITY_MS, USER_CERTIFICATE_VALIDITY_MS, base64url, base64urlOf, decodeField, errorBody, idempotent, json, keyIdHex, parsePublicKey, publicKeyBody, refusal, requireUser, validBody, type IssuerEnv, type IssuerServices, registrationRefusal, verifyAttestedKey } from '../../issuer/plugin.ts';
import { encodeCertificate, issueCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { DOTM_SCHEME } from './messages.ts';
import { USER_PROOF_SCHEME } from './trusted-app.ts';
import { answer } from './node-common.ts';

const walletBody = z.strictObject({
  userKey: publicKeyBody.describe('upk: the user key made in the trusted app'),
  userProof: base64urlOf(256).describe('usk\'s registration proof over [caller\'s key id, "dotm-user"]'),
  walletKey: publicKeyBody.describe('wpk: the wallet key made in the trusted app'),
  walletProof: base64urlOf(256).describe('wsk\'s registration proof over [key id of upk, "dotm"]'),
  oem: keyIdHex.describe('key id of the OEM whose attestation vouches for the wallet key'),
  attestation: base64url.describe('the OEM attestation of wpk, deterministic CBOR'),
});

const registerRoute = createRoute({
  method: 'post',
  path: '/wallets',
  description: 'DOT-M §3.3.1: registers a wallet\'s user key and wallet key (proofs of possession, OEM attestation of the wallet key); answers ucert and wcert.',
  request: { body: json(walletBody) },
  responses: {
    201: answer('Registered', z.object({ wallet: z.string(), user: z.string(), ucert: z.string(), wcert: z.string() })),
    403: { description: 'Unknown OEM, bad attestation, measurement not allowed, revoked key', ...errorBody },
    409: { description: 'Already registered', ...errorBody },
  },
});

/** Adds `POST /wallets`. */
export function registerWallets(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  const { identity } = services;
  app.openAPIRegistry.registerPath(registerRoute);
  app.post(registerRoute.path, async (c) => {
    const owner = requireUser(c.get('caller'));
    const body = validBody(c, walletBody);
    const user = parsePublicKey(services, 'body.userKey', body.userKey);
    const wallet = parsePublicKey(services, 'body.walletKey', body.walletKey);
    if (user.keyId === wallet.keyId) throw new ApiProblem('BODY_INVALID', 'body.walletKey: the wallet key must differ from the user key', {});
    // §3.1.3's association: usk consents to this account, wsk belongs to that user key, and the
    // OEM attests wsk in an allowed build: the node's shared attested registration checks all three.
    const attestation = await verifyAttestedKey(services, {
      scheme: DOTM_SCHEME,
      publicKey: wallet.publicKey,
      oem: body.oem,
      attestation: decodeField('body.attestation', body.attestation),
      proofs: [
        { publicKey: user.publicKey, owner: fromHex(owner.keyId), scheme: USER_PROOF_SCHEME, proof: decodeField('body.userProof', body.userProof), label: 'the user key' },
        { publicKey: wallet.publicKey, owner: keyId(user.publicKey), scheme: DOTM_SCHEME, proof: decodeField('body.walletProof', body.walletProof), label: 'the wallet key' },
      ],
    });
    const now = services.now();
    return idempotent(services, c, 'dotm/wallets', owner.keyId, async (tx) => {
      const refused = await registrationRefusal(tx, body.oem, [user.keyId, wallet.keyId]);
      if (refused !== null) return refused;
      const taken = await tx.query('SELECT 1 FROM dotm_wallets WHERE wallet_key_id IN ($1, $2) OR user_key_id IN ($1, $2)', [user.keyId, wallet.keyId]);
      if (taken.rowCount > 0) return refusal('ALREADY_REGISTERED', `the user key or the wallet key is already registered`);
      const currency = services.currency.code;
      const ucert = issueCertificate({
        issuer: identity.intermediary.signer,
        issuerRole: 'intermediary',
        role: 'user',
        subject: user.publicKey,
        notBefore: now - 60_000,
        notAfter: Math.min(now + USER_CERTIFICATE_VALIDITY_MS, identity.intermediary.certificate.body.notAfter),
        // The account the user key acts for: a payer checks that λ comes from the peer on its link.
        extensions: { currency, owner: fromHex(owner.keyId) },
      });
      const wcert = issueCertificate({
        issuer: identity.intermediary.signer,
        issuerRole: 'intermediary',
        role: 'device',
        subject: wallet.publicKey,
        notBefore: now - 60_000,
        notAfter: Math.min(now + DEVICE_CERTIFICATE_VALIDITY_MS, identity.intermediary.certificate.body.notAfter),
        extensions: { scheme: DOTM_SCHEME, owner: keyId(user.publicKey), currency, deviceModel: attestation.body.model, taMeasurement: attestation.body.taMeasurement },
      });
      const ucertBytes = encodeCertificate(ucert);
      const wcertBytes = encodeCertificate(wcert);
      await tx.query(
        `INSERT INTO dotm_wallets (wallet_key_id, user_key_id, owner_key_id, account_id, wallet_suite, wallet_public_key, user_suite, user_public_key,
           oem_key_id, model, ta_measurement, ucert, wcert, ucert_serial, wcert_serial)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
        [
          wallet.keyId,
          user.keyId,
          owner.keyId,
          owner.accountId,
          wallet.publicKey.suite,
          wallet.publicKey.key,
          user.publicKey.suite,
          user.publicKey.key,
          body.oem,
          attestation.body.model,
          attestation.body.taMeasurement,
          ucertBytes,
          wcertBytes,
          ucert.body.serial,
          wcert.body.serial,
        ],
      );
      return { status: 201, body: { wallet: wallet.keyId, user: user.keyId, ucert: toBase64url(ucertBytes), wcert: toBase64url(wcertBytes) } };
    });
  });
}
