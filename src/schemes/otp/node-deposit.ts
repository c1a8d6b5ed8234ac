/**
 * `POST /v1/otp/deposits` (OTP §2.7: "a deposit service exposed by their bank, which will unwrap each
 * token from the OTP and store it in the customer's account"): each coin comes sealed to the bank's
 * deposit key; the bank opens it, makes the player's pre-condition check (checkCoin) against the
 * classes whose coins may still be deposited, and spends its serial once. A serial already spent is
 * a double spend: nothing is credited for it, and its escrow tags name the device that paid it
 * twice (node-findings.ts). The whole deposit is one transaction; the receipt is signed by the bank.
 * In two tiers, a coin of another bank is checked under that bank's published classes and presented
 * to it as an interbank claim (node-interbank.ts): its outcome is `presented`, and the depositor is
 * credited once that bank accepted it.
 */
import { randomUUID } from 'node:crypto';
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toBase64url, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { ApiProblem, CLAIM_EVIDENCE_BYTES_MAX, base64Param, base64urlOf, claimIdOf, decodeField, errorBody, formatMinor, idempotent, json, keyIdHex, requireUser, transfer, validBody, ROUTE_BODY_BYTES_MAX, type IssuerEnv, type IssuerServices, type JsonValue, type RouteBodyLimit, type TransactionHandle } from '../../issuer/plugin.ts';
import type { SealedTag } from './escrow.ts';
import { COINS_PER_MESSAGE_MAX, DEPOSIT_RECEIPT_TAG, OTP_SCHEME, depositReceiptBodyCodec, signed, type CarriedCoin, type DepositOutcome } from './messages.ts';
import type { BankClass, ClassBook } from './node-classes.ts';
import { answer, OTP_FLOAT_ACCOUNT, ownOtpDevice } from './node-common.ts';
import { encodeTags, recordDoubleSpend } from './node-findings.ts';
import { foreignClassBook, presentForeignCoin, type ForeignClass } from './node-interbank.ts';
import { otpBankKeys } from './node-keys.ts';
import { otpClaimEvidence, SEALED_COIN_WIRE_BYTES_MAX, type OpeningClasses } from './node-open.ts';
import { openCoins } from './node-open-pool.ts';

/** The deposit route takes up to COINS_PER_MESSAGE_MAX sealed coins: more than the node's default body. */
export const DEPOSIT_BODY_LIMIT: RouteBodyLimit = { method: 'POST', path: '/deposits', bytesMax: ROUTE_BODY_BYTES_MAX };

const depositBody = z.strictObject({
  device: keyIdHex,
  coins: z.array(base64urlOf(Math.ceil((SEALED_COIN_WIRE_BYTES_MAX * 4) / 3))).min(1).max(COINS_PER_MESSAGE_MAX),
});

const depositRoute = createRoute({
  method: 'post',
  path: '/deposits',
  description: "Deposits sealed coins: credits the caller's account with each coin accepted, once, and answers a signed receipt (base64url CBOR of a DepositReceipt) naming each coin's outcome.",
  request: { body: json(depositBody) },
  responses: {
    200: answer(
      'Deposited',
      z.object({
        credited: z.string(),
        receipt: z.string(),
        claims: z.array(z.object({ coin: z.number(), claimId: z.string(), status: z.string() }).passthrough()).describe("coins of other banks presented to them: each claim's state, also at GET /v1/interbank/claims/{claimId}"),
      }),
    ),
    403: { description: 'The device is revoked', ...errorBody },
  },
});

/** A coin as the bank opened and checked it, before its serial is spent (or, another bank's, it is presented). */
type Opened =
  | { digest: Uint8Array; refused: true }
  | { digest: Uint8Array; refused: false; carried: CarriedCoin; coinClass: BankClass }
  | { digest: Uint8Array; refused: false; carried: CarriedCoin; foreign: ForeignClass };

/**
 * Opens and checks the deposit's coins (node-open.ts), in the node's opening workers when there
 * are many (node-open-pool.ts), and finds each accepted coin's class again.
 */
async function openAll(services: IssuerServices, raws: readonly Uint8Array[], live: ReadonlyMap<string, BankClass>, foreign: ReadonlyMap<string, ForeignClass>): Promise<Opened[]> {
  const { deposit } = otpBankKeys(services);
  const classes: OpeningClasses = {
    live: new Map([...live].map(([id, k]) => [id, { entry: k.entry, hops: k.hops }])),
    foreign: new Map([...foreign].map(([id, f]) => [id, { entry: f.entry, revoked: f.revoked }])),
    evidenceBytesMax: CLAIM_EVIDENCE_BYTES_MAX,
  };
  const opened = await openCoins(raws, { privateKey: deposit.privateKey, publicKey: deposit.publicKey }, classes, services.now());
  return opened.map((coin): Opened => {
    if (coin.refused) return coin;
    const { digest, carried, classIdHex } = coin;
    const other = coin.foreign ? foreign.get(classIdHex) : undefined;
    if (other !== undefined) return { digest, refused: false, carried, foreign: other };
    const own = coin.foreign ? undefined : live.get(classIdHex);
    if (own !== undefined) return { digest, refused: false, carried, coinClass: own };
    throw new Error(`an opened coin names class ${classIdHex}, which was not given to open it`);
  });
}

/**
 * Spends the serials of the deposit's own coins in one statement, and answers the indexes of the
 * coins that spent theirs now. The primary key spends a serial once: a concurrent deposit or refund
 * of it waits here for the other transaction, and finds its row once that commits. A serial named
 * twice in the deposit is offered once, by its first coin, as coin after coin would have been; the
 * rows go in by serial, so that deposits sharing serials take their locks in one order.
 */
async function spendSerials(tx: TransactionHandle, account: string, at: string, opened: readonly Opened[]): Promise<Set<number>> {
  const first = new Map<string, { index: number; carried: CarriedCoin }>();
  for (const [index, coin] of opened.entries()) {
    if (coin.refused || 'foreign' in coin) continue;
    const key = toHex(coin.carried.coin.serial);
    if (!first.has(key)) first.set(key, { index, carried: coin.carried });
  }
  const offered = [...first].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, coin]) => coin);
  if (offered.length === 0) return new Set();
  const { rows } = await tx.query<{ serial: Uint8Array }>(
    `INSERT INTO otp_spent (serial, class_id, kind, account_id, tags, at)
     SELECT decode(s, 'base64'), decode(c, 'base64'), 'deposit', $4, decode(t, 'base64'), $5 FROM unnest($1::text[], $2::text[], $3::text[]) AS x(s, c, t)
     ON CONFLICT (serial) DO NOTHING RETURNING serial`,
    [
      offered.map((c) => base64Param(c.carried.coin.serial)),
      offered.map((c) => base64Param(c.carried.coin.classId)),
      offered.map((c) => base64Param(encodeTags(c.carried.tags))),
      account,
      at,
    ],
  );
  const taken = new Set(rows.map((row) => toHex(new Uint8Array(row.serial))));
  return new Set(offered.filter((c) => taken.has(toHex(c.carried.coin.serial))).map((c) => c.index));
}

/** Adds `POST /deposits`. */
export function registerDeposit(app: OpenAPIHono<IssuerEnv>, services: IssuerServices, classes: ClassBook): void {
  app.openAPIRegistry.registerPath(depositRoute);
  app.post(depositRoute.path, async (c) => {
    const user = requireUser(c.get('caller'));
    const body = validBody(c, depositBody);
    const raws = body.coins.map((text, i) => decodeField(`body.coins.${i}`, text));
    const now = services.now();
    const live = new Map((await classes.live(services.db, now)).map((k) => [k.classIdHex, k]));
    // The coins are opened and checked before the transaction: the work in it is only the spending.
    const foreign = await foreignClassBook(services);
    const opened = await openAll(services, raws, live, foreign);
    return idempotent(services, c, 'otp/deposits', user.keyId, async (tx) => {
      const device = await ownOtpDevice(tx, body.device, user.keyId);
      if ('refused' in device) return device.refused;
      const at = new Date(now).toISOString();
      const spent = await spendSerials(tx, user.accountId, at, opened);
      const outcomes: { digest: Uint8Array; outcome: DepositOutcome }[] = [];
      const claims: { [key: string]: JsonValue }[] = [];
      let credited = 0n;
      for (const [index, coin] of opened.entries()) {
        if (coin.refused) {
          outcomes.push({ digest: coin.digest, outcome: 'refused' });
          continue;
        }
        if ('foreign' in coin) {
          // The same copy deposited here by another customer is that customer's claim already.
          const claimId = claimIdOf(OTP_SCHEME, otpClaimEvidence(coin.carried));
          const held = await tx.query<{ payee_account: string }>('SELECT payee_account FROM interbank_claims WHERE claim_id = $1', [claimId]);
          if (held.rows[0] !== undefined && held.rows[0].payee_account !== user.accountId) {
            outcomes.push({ digest: coin.digest, outcome: 'double-spend' });
            continue;
          }
          const presented = await presentForeignCoin(tx, services, user, coin.carried, coin.foreign);
          outcomes.push({ digest: coin.digest, outcome: 'presented' });
          claims.push({ coin: index, ...presented });
          continue;
        }
        const { serial } = coin.carried.coin;
        const tags: readonly SealedTag[] = coin.carried.tags;
        if (spent.has(index)) {
          credited += coin.coinClass.denomination;
          outcomes.push({ digest: coin.digest, outcome: 'credited' });
          continue;
        }
        outcomes.push({ digest: coin.digest, outcome: 'double-spend' });
        await recordDoubleSpend(tx, services, { serial, account: user.accountId, tags });
      }
      if (credited > 0n) {
        const moved = await transfer(tx, {
          idempotencyKey: `otp-deposit:${randomUUID()}`,
          debit: OTP_FLOAT_ACCOUNT,
          credit: user.accountId,
          amount: credited,
          kind: 'otp-deposit',
          reference: { coins: outcomes.filter((o) => o.outcome === 'credited').length },
          currency: services.currency,
        });
        // Thrown, not answered: the spent serials above must roll back with the missing credit.
        if (!moved.ok) throw new ApiProblem(moved.code, `the deposit cannot be credited: ${moved.message}`, {});
      }
      const receipt = signed(depositReceiptBodyCodec, services.identity.issuerNode.signer, DEPOSIT_RECEIPT_TAG, { coins: outcomes, credited: credited.toString() });
      // The findings are the operator's (GET /operator/findings), not the depositor's.
      return { status: 200, body: { credited: formatMinor(services.currency, credited), receipt: toBase64url(encodeCbor(receipt)), claims } };
    });
  });
}
