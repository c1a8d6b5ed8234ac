/**
 * `GET /v1/opera/params`: the bank's parameters, signed by the issuer node's certified key (the
 * bank's key `SK_c` of the paper, §3.1): its currency, the token denominations, the hash of the
 * ODWs' one-time-key chain, and the makers whose anonymous credentials mark genuine ODWs, each with
 * the reference value of the build it attests (§3.3.1), and the escrow key the tokens' tags are sealed
 * to (escrow.ts). Anyone may read them.
 *
 * `POST /v1/opera/makers` (operator token): lists a maker's credential key with a reference value.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { bls12_381 } from '@noble/curves/bls12-381.js';
import { fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { CREDENTIAL_PUBLIC_KEY_BYTES } from '../../pki/anonymous-credential.ts';
import { ApiProblem, base64urlOf, decodeField, errorBody, idempotent, json, refusal, requireOperator, validBody, type IssuerEnv, type IssuerServices } from '../../issuer/plugin.ts';
import { MAKERS_MAX, paramsBodyCodec, PARAMS_TAG, signed, type Maker, type Params } from './messages.ts';
import { answer, DENOMINATIONS, type OperaNodeOptions } from './node-common.ts';
import { operaEscrowKey } from './node-keys.ts';

/** Bytes of a reference value (a PCR value of SHA-256). */
const REFERENCE_BYTES = 32;

const paramsRoute = createRoute({
  method: 'get',
  path: '/params',
  description: "The OPERA bank's signed parameters: currency, denominations, the OTK hash, the makers of genuine ODWs and the escrow key (base64url of the CBOR of a signed Params record).",
  responses: { 200: answer('Parameters', z.object({ params: z.string() })) },
});

const makerBody = z.strictObject({
  publicKey: base64urlOf(Math.ceil((CREDENTIAL_PUBLIC_KEY_BYTES * 4) / 3)).describe('the maker\'s BBS credential key: a compressed BLS12-381 G2 point (96 bytes), base64url'),
  reference: z.union([z.string().regex(/^[0-9a-fA-F]{64}$/), base64urlOf(43)]).describe('the reference value of the ODW build (32 bytes): hex or base64url'),
});

const makerAnswer = z.object({ publicKey: z.string(), reference: z.string(), listed: z.number().int() });

const makersRoute = createRoute({
  method: 'post',
  path: '/makers',
  description: 'Lists a maker of genuine ODWs in the parameters: its credential key and the reference value of the build it attests (operator token). Listing it again changes nothing.',
  request: { body: json(makerBody) },
  responses: {
    200: answer('Already listed', makerAnswer),
    201: answer('Listed', makerAnswer),
    409: { description: `The parameters already list ${MAKERS_MAX} makers`, ...errorBody },
  },
});

/** The makers, oldest first. */
async function listedMakers(services: IssuerServices): Promise<Maker[]> {
  const { rows } = await services.db.query<{ public_key: Uint8Array; reference: Uint8Array }>(
    'SELECT public_key, reference FROM opera_makers ORDER BY created_at, public_key, reference LIMIT $1',
    [MAKERS_MAX],
  );
  return rows.map((r) => ({ publicKey: new Uint8Array(r.public_key), reference: new Uint8Array(r.reference) }));
}

/** The bank's parameters signed by its issuer node's key, as of `at`. */
export async function signedParams(services: IssuerServices, options: OperaNodeOptions, at: number): Promise<Params> {
  return signed(paramsBodyCodec, services.identity.issuerNode.signer, PARAMS_TAG, {
    currency: services.currency.code,
    denominations: [...DENOMINATIONS],
    hash: options.hash,
    makers: await listedMakers(services),
    escrowKey: operaEscrowKey(services).publicKey,
    at,
  });
}

/**
 * When the parameters last changed: the latest maker's listing, or the issuer node's certificate
 * when no maker is listed. A publication signed as of this time stays the same until they change.
 */
export async function paramsChangedAt(services: IssuerServices): Promise<number> {
  const { rows } = await services.db.query<{ at: Date | null }>('SELECT max(created_at) AS at FROM opera_makers');
  const listed = rows[0]?.at;
  return Math.max(services.identity.issuerNode.certificate.body.notBefore, listed === null || listed === undefined ? 0 : new Date(listed).getTime());
}

/**
 * The maker's key and reference of a body.
 * @throws ApiProblem BODY_INVALID for a key that is not a point of G2 (off the curve, outside the subgroup, or the identity) or a reference not of 32 bytes
 */
function parseMaker(body: z.infer<typeof makerBody>): Maker {
  const publicKey = decodeField('body.publicKey', body.publicKey);
  if (publicKey.length !== CREDENTIAL_PUBLIC_KEY_BYTES) throw new ApiProblem('BODY_INVALID', `body.publicKey: expected ${CREDENTIAL_PUBLIC_KEY_BYTES} bytes, got ${publicKey.length}`);
  try {
    // Decoding checks the point is on the curve and in the prime-order subgroup.
    if (bls12_381.G2.Point.fromBytes(publicKey).is0()) throw new RangeError('the identity');
  } catch (e) {
    throw new ApiProblem('BODY_INVALID', `body.publicKey: not a BLS12-381 G2 public key (${(e as Error).message})`);
  }
  const reference = /^[0-9a-fA-F]{64}$/.test(body.reference) ? fromHex(body.reference.toLowerCase()) : decodeField('body.reference', body.reference);
  if (reference.length !== REFERENCE_BYTES) throw new ApiProblem('BODY_INVALID', `body.reference: expected ${REFERENCE_BYTES} bytes, got ${reference.length}`);
  return { publicKey, reference };
}

/** Adds `GET /params` and `POST /makers`. */
export function registerParams(app: OpenAPIHono<IssuerEnv>, services: IssuerServices, options: OperaNodeOptions): void {
  app.openAPIRegistry.registerPath(paramsRoute);
  app.get(paramsRoute.path, async (c) => {
    const params = await signedParams(services, options, services.now());
    c.header('cache-control', 'no-cache');
    return c.json({ params: toBase64url(encodeCbor(params)) });
  });

  app.openAPIRegistry.registerPath(makersRoute);
  app.post(makersRoute.path, async (c) => {
    requireOperator(c.get('caller'));
    const maker = parseMaker(validBody(c, makerBody));
    return idempotent(services, c, 'opera/makers', 'operator', async (tx) => {
      // One listing at a time: the count below stays true until this one commits.
      await tx.query('LOCK TABLE opera_makers IN SHARE ROW EXCLUSIVE MODE');
      const shown = { publicKey: toBase64url(maker.publicKey), reference: toHex(maker.reference) };
      const held = await tx.query('SELECT 1 FROM opera_makers WHERE public_key = $1 AND reference = $2', [maker.publicKey, maker.reference]);
      const { rows } = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM opera_makers');
      const listed = rows[0]?.n ?? 0;
      if (held.rowCount === 1) return { status: 200, body: { ...shown, listed } };
      if (listed >= MAKERS_MAX) return refusal('OPERA_MAKERS_FULL', `the parameters list ${MAKERS_MAX} makers, the most they carry`);
      await tx.query('INSERT INTO opera_makers (public_key, reference, created_at) VALUES ($1, $2, $3)', [maker.publicKey, maker.reference, new Date(services.now()).toISOString()]);
      return { status: 201, body: { ...shown, listed: listed + 1 } };
    });
  });
}
