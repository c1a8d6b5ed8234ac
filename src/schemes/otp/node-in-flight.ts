/**
 * `POST /v1/otp/in-flight`: a payer's trusted app reports the coins it sent and holds no ACK for
 * (transfer.ts: it keeps them in flight until an ACK comes). The report is the payer's claim: once
 * the coin's deposit window has closed and nobody deposited it, its value goes back to the payer's
 * account, once. A coin deposited is never refunded and a coin refunded is never credited again:
 * both spend the same serial, which the table holds once.
 */
import { randomUUID } from 'node:crypto';
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toBase64url, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { isTallyError } from '../../core/errors.ts';
import { ApiProblem, base64urlOf, bigintColumn, errorBody, formatMinor, idempotent, json, keyIdHex, refusal, requireUser, transfer, validBody, type IssuerEnv, type IssuerServices, type TransactionHandle } from '../../issuer/plugin.ts';
import { checkSigned, IN_FLIGHT_TAG, inFlightBodyCodec, inFlightCodec, SETTLED_TAG, settledBodyCodec, signed, type SettledOutcome } from './messages.ts';
import { verify } from './blind-rsa.ts';
import { classKey, preparedCoinMessage } from './coin.ts';
import type { ClassBook } from './node-classes.ts';
import { answer, decodeCborField, OTP_FLOAT_ACCOUNT, ownOtpDevice } from './node-common.ts';

/** Largest in-flight report accepted, in bytes (64 coins with their bank signatures, a nonce and the device's signature fit). */
export const IN_FLIGHT_REPORT_BYTES_MAX = 40 * 1024;

const inFlightBody = z.strictObject({ device: keyIdHex, report: base64urlOf(Math.ceil((IN_FLIGHT_REPORT_BYTES_MAX * 4) / 3)) });

const inFlightRoute = createRoute({
  method: 'post',
  path: '/in-flight',
  description:
    "Settles a device's coins in flight: each deposited by a payee answers 'deposited'; each whose deposit window has closed is refunded to the caller, once; the others stay in flight. Answers the refund and a signed Settled record (base64url CBOR).",
  request: { body: json(inFlightBody) },
  responses: { 200: answer('Settled', z.object({ refunded: z.string(), settled: z.string() })), 401: { description: 'The report is not signed by the device', ...errorBody } },
});

/** How a serial was spent, or undefined. */
async function spentAs(tx: TransactionHandle, serial: Uint8Array): Promise<'deposit' | 'refund' | undefined> {
  const { rows } = await tx.query<{ kind: 'deposit' | 'refund' }>('SELECT kind FROM otp_spent WHERE serial = $1', [serial]);
  return rows[0]?.kind;
}

/** Whether a class has signed more coins than it paid out for, with its row locked until the transaction ends. */
async function classHasCoinsOut(tx: TransactionHandle, classId: Uint8Array): Promise<boolean> {
  const issued = await tx.query<{ issued: bigint }>('SELECT issued FROM otp_classes WHERE class_id = $1 FOR UPDATE', [classId]);
  const spent = await tx.query<{ n: bigint }>('SELECT count(*)::bigint AS n FROM otp_spent WHERE class_id = $1', [classId]);
  return bigintColumn(issued.rows[0] as object, 'issued') > bigintColumn(spent.rows[0] as object, 'n');
}

const OUTCOME = { deposit: 'deposited', refund: 'refunded' } as const satisfies Record<string, SettledOutcome>;

/** Adds `POST /in-flight`. */
export function registerInFlight(app: OpenAPIHono<IssuerEnv>, services: IssuerServices, classes: ClassBook): void {
  app.openAPIRegistry.registerPath(inFlightRoute);
  app.post(inFlightRoute.path, async (c) => {
    const user = requireUser(c.get('caller'));
    const body = validBody(c, inFlightBody);
    const report = decodeCborField('report', body.report, inFlightCodec, IN_FLIGHT_REPORT_BYTES_MAX);
    return idempotent(services, c, 'otp/in-flight', user.keyId, async (tx) => {
      const device = await ownOtpDevice(tx, body.device, user.keyId);
      if ('refused' in device) return device.refused;
      let reported;
      try {
        reported = checkSigned(services.provider, device.key, inFlightBodyCodec, IN_FLIGHT_TAG, report);
      } catch (e) {
        if (isTallyError(e)) return refusal(e.code, `the in-flight report is not signed by device ${body.device}: ${e.message}`);
        throw e;
      }
      const now = services.now();
      const at = new Date(now).toISOString();
      const settled: { serial: Uint8Array; outcome: SettledOutcome }[] = [];
      const seen = new Set<string>();
      let refunded = 0n;
      let refundedCoins = 0;
      for (const { serial, classId, prefix, signature } of reported.coins) {
        const serialHex = toHex(serial);
        if (seen.has(serialHex)) continue;
        seen.add(serialHex);
        const coinClass = await classes.byId(tx, classId);
        if (coinClass === undefined) continue;
        // Only a coin the class key signed is settled: a made-up serial is left out.
        if (!verify(classKey(coinClass.entry.coinClass), preparedCoinMessage({ serial, classId, prefix }), signature)) continue;
        // The first account to claim a serial holds the claim; another's claim of it settles nothing.
        await tx.query('INSERT INTO otp_claims (serial, class_id, account_id, device_key_id, at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (serial) DO NOTHING', [serial, classId, user.accountId, body.device, at]);
        const claim = await tx.query<{ account_id: string; class_id: Uint8Array }>('SELECT account_id, class_id FROM otp_claims WHERE serial = $1', [serial]);
        const held = claim.rows[0];
        if (held === undefined || toHex(new Uint8Array(held.class_id)) !== coinClass.classIdHex) continue;
        const spent = await spentAs(tx, serial);
        if (held.account_id !== user.accountId) {
          // Another account claimed the serial first (a coin paid twice, in flight at two devices):
          // this reporter is never refunded it, but a deposit of it is news its TA may forget it on.
          if (spent === 'deposit') settled.push({ serial, outcome: 'deposited' });
          continue;
        }
        if (spent !== undefined) {
          settled.push({ serial, outcome: OUTCOME[spent] });
          continue;
        }
        // Within the deposit window the payee may still deposit it: it stays in flight.
        if (now <= coinClass.entry.depositUntil) continue;
        // And only while the class has coins out: a leaked class key cannot take more than its class holds.
        if (!(await classHasCoinsOut(tx, classId))) continue;
        const inserted = await tx.query(
          `INSERT INTO otp_spent (serial, class_id, kind, account_id, tags, at) VALUES ($1, $2, 'refund', $3, NULL, $4) ON CONFLICT (serial) DO NOTHING RETURNING serial`,
          [serial, classId, user.accountId, at],
        );
        if (inserted.rowCount === 1) {
          refunded += coinClass.denomination;
          refundedCoins += 1;
          settled.push({ serial, outcome: 'refunded' });
          continue;
        }
        // A concurrent deposit or refund spent it first.
        const first = await spentAs(tx, serial);
        if (first !== undefined) settled.push({ serial, outcome: OUTCOME[first] });
      }
      if (refunded > 0n) {
        const moved = await transfer(tx, {
          idempotencyKey: `otp-refund:${randomUUID()}`,
          debit: OTP_FLOAT_ACCOUNT,
          credit: user.accountId,
          amount: refunded,
          kind: 'otp-refund',
          reference: { coins: refundedCoins },
          currency: services.currency,
        });
        // Thrown, not answered: the refunds recorded above must roll back with the missing credit.
        if (!moved.ok) throw new ApiProblem(moved.code, `the refund cannot be credited: ${moved.message}`, {});
      }
      const answerRecord = signed(settledBodyCodec, services.identity.issuerNode.signer, SETTLED_TAG, { nonce: reported.nonce, coins: settled });
      return { status: 200, body: { refunded: formatMinor(services.currency, refunded), settled: toBase64url(encodeCbor(answerRecord)) } };
    });
  });
}
