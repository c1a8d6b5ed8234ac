/**
 * `POST /v1/otp/in-flight`: a payer's trusted app reports the coins it sent and holds no ACK for
 * (transfer.ts: it keeps them in flight until an ACK comes), each with the escrow tags it sent the
 * coin with, its own tag last. The report is the payer's claim to a refund.
 *
 * One coin may be claimed by several devices: a payer whose payee took the coin (the ACK lost on
 * the way) and paid it on, then that payee whose own payment was cut; or, for a coin paid twice,
 * payers on two branches. So the bank decides only after the coin's claim window (messages.ts
 * `claimsUntil`: the deposit window, then its grace again), among every claim on record:
 * - the claims' tags are compared as sealed: a claim whose tags another claim's tags continue was
 *   paid on, and that payee took it (`taken`);
 * - the claim that carries the coin furthest (most tags; the earliest of equals) is refunded, once;
 * - a claim whose tags part from the winner's is a branch of a coin paid twice: the two tags where
 *   they part are opened, and when one device signed both, it is named and revoked (as for a coin
 *   deposited twice), a claim of its own is passed over for the next furthest, and the branch hears
 *   `double-spent` (a branch reported after the refund names its payer too);
 * - when two devices signed them, one of them signed a tag for a coin it never held (its key taken
 *   out of its secure element). Where the bank has a record of the exchange key the tag before paid
 *   (node-key-holders.ts), such a chain was left out when reported; otherwise (hop 1, a key signed
 *   before the records) the tags cannot tell which, and nobody is refunded: the serial is recorded
 *   as disputed for the operator.
 *
 * A claim is recorded only when every tag opens and checks, the last is signed by the reporting
 * device, and each tag is signed by the device the exchange key of the tag before was signed for,
 * where the bank knows it. A device reporting a chain that ends in another's tag (a coin it
 * received, or someone's report replayed) claims nothing; a device that signed a tag for a coin it
 * never held is named and revoked. A coin deposited is never refunded and a coin refunded is never
 * credited again: both spend the same serial, which otp_spent holds once. A claim on a deposited coin
 * whose chain parts from the deposited one is a branch too: it hears `double-spent`, and the device
 * that signed both tags where they part is named.
 */
import { randomUUID } from 'node:crypto';
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { toBase64url, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import type { PublicKey } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { keyId } from '../../pki/key-id.ts';
import { ApiProblem, base64urlOf, bigintColumn, errorBody, formatMinor, idempotent, json, keyIdHex, refusal, requireUser, transfer, validBody, type IssuerEnv, type IssuerServices, type RouteBodyLimit, type TransactionHandle } from '../../issuer/plugin.ts';
import { checkSigned, claimsUntil, IN_FLIGHT_REPORT_BYTES_MAX, IN_FLIGHT_TAG, inFlightBodyCodec, inFlightCodec, SETTLED_TAG, settledBodyCodec, signed, type SettledOutcome } from './messages.ts';
import { verify } from './blind-rsa.ts';
import { classKey, preparedCoinMessage } from './coin.ts';
import { attribute, forkHop, openTag, type SealedTag } from './escrow.ts';
import type { BankClass, ClassBook } from './node-classes.ts';
import { answer, decodeCborField, OTP_FLOAT_ACCOUNT, ownOtpDevice } from './node-common.ts';
import { decodeTags, encodeTags, nameDevice } from './node-findings.ts';
import { tagWithoutCoin, type OpenedTag } from './node-key-holders.ts';
import { otpBankKeys } from './node-keys.ts';

export { IN_FLIGHT_REPORT_BYTES_MAX } from './messages.ts';

/** The in-flight route takes a report of up to IN_FLIGHT_REPORT_BYTES_MAX: more than the node's default body. */
export const IN_FLIGHT_BODY_LIMIT: RouteBodyLimit = { method: 'POST', path: '/in-flight', bytesMax: Math.ceil((IN_FLIGHT_REPORT_BYTES_MAX * 4) / 3) + 1024 };

const inFlightBody = z.strictObject({ device: keyIdHex, report: base64urlOf(Math.ceil((IN_FLIGHT_REPORT_BYTES_MAX * 4) / 3)) });

const inFlightRoute = createRoute({
  method: 'post',
  path: '/in-flight',
  description:
    "Settles a device's coins in flight, each reported with the escrow tags it was sent with: a coin deposited answers 'deposited' (or 'double-spent' to a claim whose tags part from the deposited coin's, naming who paid it twice); after its claim window the coin is refunded, once, to the report that carries it furthest, and the other reporters hear 'taken' (their payee took it on) or 'double-spent' (a branch of a coin paid twice); the others stay in flight. Answers this caller's refund and a signed Settled record (base64url CBOR).",
  request: { body: json(inFlightBody) },
  responses: { 200: answer('Settled', z.object({ refunded: z.string(), settled: z.string() })), 401: { description: 'The report is not signed by the device', ...errorBody } },
});

const OUTCOME = { deposit: 'deposited', refund: 'refunded' } as const satisfies Record<string, SettledOutcome>;

/** How a serial was spent (and to which account), or undefined. */
async function spentOf(tx: TransactionHandle, serial: Uint8Array): Promise<{ kind: 'deposit' | 'refund'; account: string; tags: readonly SealedTag[] } | undefined> {
  const { rows } = await tx.query<{ kind: 'deposit' | 'refund'; account_id: string; tags: Uint8Array | null }>('SELECT kind, account_id, tags FROM otp_spent WHERE serial = $1', [serial]);
  const row = rows[0];
  return row === undefined ? undefined : { kind: row.kind, account: row.account_id, tags: row.tags === null ? [] : decodeTags(row.tags, 'otp_spent.tags') };
}

/** Whether a class has signed more coins than it paid out for, with its row locked until the transaction ends. */
async function classHasCoinsOut(tx: TransactionHandle, classId: Uint8Array): Promise<boolean> {
  const issued = await tx.query<{ issued: bigint }>('SELECT issued FROM otp_classes WHERE class_id = $1 FOR UPDATE', [classId]);
  const spent = await tx.query<{ n: bigint }>('SELECT count(*)::bigint AS n FROM otp_spent WHERE class_id = $1', [classId]);
  return bigintColumn(issued.rows[0] as object, 'issued') > bigintColumn(spent.rows[0] as object, 'n');
}

/** A claim on record. */
interface Claim {
  readonly device: string;
  readonly account: string;
  readonly tags: readonly SealedTag[];
  readonly won: boolean;
}

async function claimsOf(tx: TransactionHandle, serial: Uint8Array): Promise<Claim[]> {
  const { rows } = await tx.query<{ device_key_id: string; account_id: string; tags: Uint8Array | null; won: boolean }>(
    'SELECT device_key_id, account_id, tags, won FROM otp_claims WHERE serial = $1 ORDER BY hops DESC, seq',
    [serial],
  );
  return rows.map((r) => ({ device: r.device_key_id, account: r.account_id, tags: r.tags === null ? [] : decodeTags(r.tags, 'otp_claims.tags'), won: r.won }));
}

/** Whether `a`'s tags are `b`'s or the start of them (b carried the coin at least as far, on the same branch). */
function continues(a: readonly SealedTag[], b: readonly SealedTag[]): boolean {
  return a.length <= b.length && forkHop(a, b) === null;
}

/** How a claim with `tags` fares against the claim that won: its own, taken on, or a lost branch. */
function outcomeAgainst(tags: readonly SealedTag[], device: string, winner: Claim | undefined): SettledOutcome {
  if (winner === undefined) return 'double-spent';
  if (winner.device === device) return 'refunded';
  return continues(tags, winner.tags) ? 'taken' : 'double-spent';
}

/**
 * A reported chain opened, when it may be a claim of `device`: every tag opens and checks in its
 * place in the chain, the last is signed by the device, and it is no longer than the coin's hops.
 * Null otherwise. (A last tag chained to tags of random bytes would otherwise carry the coin
 * "furthest" and, where it parts from an honest claim, name nobody: a dispute that refunds nobody.)
 */
function ownChain(services: IssuerServices, coinClass: BankClass, serial: Uint8Array, tags: readonly SealedTag[], device: string): OpenedTag[] | null {
  if (tags.length === 0 || tags.length > coinClass.hops) return null;
  const escrow = otpBankKeys(services).escrow.privateKey;
  try {
    const opened: OpenedTag[] = [];
    for (let hop = 1; hop <= tags.length; hop++) opened.push(openTag(services.provider, escrow, serial, tags, hop));
    const last = opened[opened.length - 1] as OpenedTag;
    return toHex(keyId(last.device)) === device ? opened : null;
  } catch (e) {
    if (isTallyError(e)) return null;
    throw e;
  }
}

type Decision = { kind: 'refund'; winner: Claim; forks: { hop: number; device: PublicKey }[] } | { kind: 'dispute'; hop: number; devices: string[] };

/** How each other claim parts from `winner`: the devices named at forks, or the first fork two devices signed. */
function forksFrom(services: IssuerServices, serial: Uint8Array, winner: Claim, claims: readonly Claim[]): Decision {
  const forks: Extract<Decision, { kind: 'refund' }>['forks'] = [];
  const escrow = otpBankKeys(services).escrow.privateKey;
  for (const claim of claims) {
    if (claim === winner || continues(claim.tags, winner.tags)) continue;
    const hop = forkHop(claim.tags, winner.tags) as number;
    let named: ReturnType<typeof attribute>;
    try {
      named = attribute(services.provider, escrow, serial, winner.tags, claim.tags);
    } catch (e) {
      // Every tag of both chains was checked when claimed, so this does not happen; were it to,
      // nobody is named and nobody refunded.
      if (!isTallyError(e)) throw e;
      named = null;
    }
    if (named === null) {
      const devices = [winner.tags, claim.tags].map((tags) => {
        try {
          return toHex(keyId(openTag(services.provider, escrow, serial, tags, hop).device));
        } catch (e) {
          if (isTallyError(e)) return 'unreadable';
          throw e;
        }
      });
      return { kind: 'dispute', hop, devices };
    }
    forks.push(named);
  }
  return { kind: 'refund', winner, forks };
}

/**
 * The claims' judgement: the claim that carries the coin furthest, and how each other claim parts
 * from it. A device named for paying the coin twice is not refunded by a claim of its own: it could
 * pay the coin on to itself (a clone, or its key out of its SE) to make its branch the longest. Its
 * claim is passed over and the next furthest decides.
 */
function decide(services: IssuerServices, serial: Uint8Array, claims: readonly Claim[]): Decision {
  const named = new Map<string, { hop: number; device: PublicKey }>();
  let first: Extract<Decision, { kind: 'refund' }> | undefined;
  for (;;) {
    const winner = claims.find((claim) => !named.has(claim.device));
    // Every claimer named (not met: at the hop where chains first part, one device signed them all).
    if (winner === undefined) return { ...(first as Extract<Decision, { kind: 'refund' }>), forks: [...named.values()] };
    const decision = forksFrom(services, serial, winner, claims);
    if (decision.kind === 'dispute') return decision;
    for (const fork of decision.forks) named.set(toHex(keyId(fork.device)), fork);
    first ??= decision;
    if (!named.has(winner.device)) return { kind: 'refund', winner, forks: [...named.values()] };
  }
}

/**
 * Names the device that signed both tags where `tags` part from `other`, the claim that won (a
 * branch that came to light after the refund), when one device did and it is not named yet.
 */
async function nameFork(tx: TransactionHandle, services: IssuerServices, serial: Uint8Array, other: readonly SealedTag[], tags: readonly SealedTag[]): Promise<void> {
  if (other.length === 0 || forkHop(other, tags) === null) return;
  let named: ReturnType<typeof attribute>;
  try {
    named = attribute(services.provider, otpBankKeys(services).escrow.privateKey, serial, other, tags);
  } catch (e) {
    if (isTallyError(e)) return;
    throw e;
  }
  if (named === null) return;
  const known = await tx.query('SELECT 1 FROM otp_findings WHERE serial = $1 AND device_key_id = $2', [serial, toHex(keyId(named.device))]);
  if (known.rowCount === 0) await nameDevice(tx, services, serial, named);
}

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
      // What each account is refunded in this transaction: the caller's, and any other winner's decided here.
      const refunds = new Map<string, { amount: bigint; coins: number }>();
      for (const { serial, classId, prefix, signature, tags } of reported.coins) {
        const serialHex = toHex(serial);
        if (seen.has(serialHex)) continue;
        seen.add(serialHex);
        const coinClass = await classes.byId(tx, classId);
        if (coinClass === undefined) continue;
        // Only a coin the class key signed is settled: a made-up serial is left out.
        if (!verify(classKey(coinClass.entry.coinClass), preparedCoinMessage({ serial, classId, prefix }), signature)) continue;
        let spent = await spentOf(tx, serial);
        const mine = (await tx.query<{ tags: Uint8Array | null }>('SELECT tags FROM otp_claims WHERE serial = $1 AND device_key_id = $2', [serial, body.device])).rows[0];
        if (mine === undefined) {
          // A chain that is not this device's to claim is left out, whatever became of the coin.
          const opened = ownChain(services, coinClass, serial, tags, body.device);
          if (opened === null) continue;
          // So is a chain with a tag signed for a coin its device never held (the tag before paid an
          // exchange key the bank signed for another device); that device's key left its SE: named.
          const forged = await tagWithoutCoin(tx, opened);
          if (forged !== null) {
            await nameDevice(tx, services, serial, forged, 'tag-without-coin');
            continue;
          }
          if (spent === undefined) {
            await tx.query(
              'INSERT INTO otp_claims (serial, class_id, account_id, device_key_id, at, tags, hops) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (serial, device_key_id) DO NOTHING',
              [serial, classId, user.accountId, body.device, at, encodeTags(tags), tags.length],
            );
          }
        }
        // The chain this device claims with: the one on record (a clone of the device cannot swap it);
        // for a claim recorded before claims carried tags, the chain reported, when it is the device's.
        const claimed = mine === undefined ? tags : mine.tags !== null ? decodeTags(mine.tags, 'otp_claims.tags') : ownChain(services, coinClass, serial, tags, body.device) !== null ? tags : [];
        // A chain of this device's own that parts from the one on record (its clone's, or its key's
        // out of its SE) shows a coin paid twice: the device that signed both tags where they part is
        // named now, whatever the decision. An honest TA reports one chain a serial, or a longer one
        // that continues it (the coin came back to it and was paid on again).
        if (mine !== undefined && claimed.length > 0 && forkHop(claimed, tags) !== null && ownChain(services, coinClass, serial, tags, body.device) !== null) {
          await nameFork(tx, services, serial, claimed, tags);
        }
        // Past the claim window the class row is locked (until this transaction ends) before the coin is
        // read again: it orders the decisions on the class's coins and the claims recorded on them, so a
        // decision reads what the one before it wrote (a dispute, a refund) and every claim recorded.
        // Within the window the coin's payee may still deposit it, or a later holder claim it.
        const decidable = spent === undefined && now > claimsUntil(coinClass.entry);
        // And only while the class has coins out: a leaked class key cannot take more than its class holds.
        const coinsOut = decidable && (await classHasCoinsOut(tx, classId));
        if (decidable) spent = await spentOf(tx, serial);
        if (spent === undefined) {
          const disputed = await tx.query('SELECT 1 FROM otp_claim_disputes WHERE serial = $1', [serial]);
          if (disputed.rowCount !== 0) {
            settled.push({ serial, outcome: 'double-spent' });
            continue;
          }
          if (!coinsOut) continue;
          const claims = await claimsOf(tx, serial);
          if (claims.length === 0) continue;
          const decision = decide(services, serial, claims);
          if (decision.kind === 'dispute') {
            await tx.query('INSERT INTO otp_claim_disputes (serial, class_id, hop, devices, at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (serial) DO NOTHING', [serial, classId, decision.hop, decision.devices, at]);
            settled.push({ serial, outcome: 'double-spent' });
            continue;
          }
          const { winner } = decision;
          const inserted = await tx.query(
            `INSERT INTO otp_spent (serial, class_id, kind, account_id, tags, at) VALUES ($1, $2, 'refund', $3, NULL, $4) ON CONFLICT (serial) DO NOTHING RETURNING serial`,
            [serial, classId, winner.account, at],
          );
          if (inserted.rowCount === 1) {
            await tx.query('UPDATE otp_claims SET won = true WHERE serial = $1 AND device_key_id = $2', [serial, winner.device]);
            const sum = refunds.get(winner.account) ?? { amount: 0n, coins: 0 };
            refunds.set(winner.account, { amount: sum.amount + coinClass.denomination, coins: sum.coins + 1 });
            for (const fork of decision.forks) await nameDevice(tx, services, serial, fork);
          }
          // Refunded here, or spent by a concurrent deposit or refund: either way it is spent now.
          spent = await spentOf(tx, serial);
          if (spent === undefined) continue;
        }
        if (spent.kind === 'deposit') {
          // A claim whose chain parts from the deposited coin's is a branch of a coin paid twice: the
          // device that signed both tags where they part is named, as for a branch of a refunded coin.
          // A claim the deposited chain continues (its payee took the coin on) hears that it was deposited.
          const branch = spent.tags.length > 0 && claimed.length > 0 && forkHop(spent.tags, claimed) !== null;
          if (branch) await nameFork(tx, services, serial, spent.tags, claimed);
          settled.push({ serial, outcome: branch ? 'double-spent' : OUTCOME.deposit });
          continue;
        }
        const winner = (await claimsOf(tx, serial)).find((claim) => claim.won);
        // A branch reported after the refund still shows who paid the coin twice.
        if (winner !== undefined && winner.device !== body.device) await nameFork(tx, services, serial, winner.tags, claimed);
        // A refund with no claim marked (recorded before claims carried tags) was its one claimer's.
        const outcome = winner === undefined && spent.account === user.accountId ? 'refunded' : outcomeAgainst(claimed, body.device, winner);
        settled.push({ serial, outcome });
      }
      let refunded = 0n;
      for (const [account, { amount, coins }] of refunds) {
        const moved = await transfer(tx, {
          idempotencyKey: `otp-refund:${randomUUID()}`,
          debit: OTP_FLOAT_ACCOUNT,
          credit: account,
          amount,
          kind: 'otp-refund',
          reference: { coins },
          currency: services.currency,
        });
        // Thrown, not answered: the refunds recorded above must roll back with the missing credit.
        if (!moved.ok) throw new ApiProblem(moved.code, `the refund cannot be credited: ${moved.message}`, {});
        if (account === user.accountId) refunded += amount;
      }
      const answerRecord = signed(settledBodyCodec, services.identity.issuerNode.signer, SETTLED_TAG, { nonce: reported.nonce, coins: settled });
      return { status: 200, body: { refunded: formatMinor(services.currency, refunded), settled: toBase64url(encodeCbor(answerRecord)) } };
    });
  });
}

