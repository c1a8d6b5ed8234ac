/**
 * OTP across intermediaries (the paper has one bank; docs/otp.md "Several banks"). A coin is
 * withdrawn at its bank A under A's classes and may be deposited at any bank:
 * - A publishes its live classes and keys (`otpPublication`, carried to every bank by the central
 *   bank's directory under A's intermediary signature);
 * - bank B, opening a deposited coin whose class is not its own, checks it under A's published
 *   classes (`foreignClassBook`) and presents it to A as an interbank claim whose evidence is the
 *   coin with its escrow tags; B's customer is credited only once A accepted and the reserves moved;
 * - A, the only registry of its own coins' serials, judges the claim (`judgeOtpInterbankClaim`)
 *   against the same `otp_spent` its own deposits and refunds spend, so a serial is paid once in
 *   the whole system, and pays the accepted coin from `float:otp` into its reserve.
 */
import { equalBytes, toHex } from '../../core/bytes.ts';
import { decodeCbor } from '../../core/cbor.ts';
import { isTallyError } from '../../core/errors.ts';
import {
  ApiProblem,
  CLAIM_EVIDENCE_BYTES_MAX,
  formatMinor,
  peerIntermediaries,
  peerPublications,
  presentInterbankClaim,
  transfer,
  type InterbankClaim,
  type InterbankJudgement,
  type IssuerServices,
  type PresentedClaim,
  type Queryable,
  type TransactionHandle,
} from '../../issuer/plugin.ts';
import { checkCoin } from './coin.ts';
import { carriedCoinCodec, OTP_SCHEME, type CarriedCoin, type ClassEntry } from './messages.ts';
import type { ClassBook } from './node-classes.ts';
import { OTP_FLOAT_ACCOUNT } from './node-common.ts';
import { encodeTags, recordDoubleSpend } from './node-findings.ts';
import { otpBankKeys } from './node-keys.ts';
import { otpClaimEvidence } from './node-open.ts';
import { decodeOtpPublication, encodeOtpPublication, publishedEntries } from './publication.ts';

/** The ledger kind of an accepted claim's payment from the float into the reserve. */
export const OTP_INTERBANK_KIND = 'otp-interbank';

/**
 * This bank's publication: its issuer-node key, escrow and deposit keys and the classes whose coins
 * may still be deposited. Undefined while it has made no class (it has issued no coin yet): the
 * classes are made by the first withdrawal or read of the parameters, never by a sync.
 */
export async function otpPublication(services: IssuerServices, classes: ClassBook): Promise<Uint8Array | undefined> {
  const live = await classes.live(services.db, services.now());
  if (live.length === 0) return undefined;
  const keys = otpBankKeys(services);
  return encodeOtpPublication(
    { currency: services.currency.code, issuerNode: services.identity.issuerNode.signer.publicKey, escrowKey: keys.escrow.publicKey, depositKey: keys.deposit.publicKey },
    live.map((k) => k.entry),
  );
}

/** A class of another bank, as that bank published it. */
export interface ForeignClass {
  readonly bank: string;
  readonly bankName: string;
  /** The bank is revoked by the central bank: its coins are refused. */
  readonly revoked: boolean;
  readonly entry: ClassEntry;
}

/**
 * The classes the other banks published, by class id (hex). A body that does not decode, or whose
 * currency is not this bank's, names no class.
 */
export async function foreignClassBook(services: IssuerServices, q: Queryable = services.db): Promise<Map<string, ForeignClass>> {
  const out = new Map<string, ForeignClass>();
  for (const peer of await peerPublications(services, OTP_SCHEME, q)) {
    let entries: ClassEntry[];
    try {
      const publication = decodeOtpPublication(peer.body);
      if (publication.currency !== services.currency.code) continue;
      entries = publishedEntries(publication);
    } catch (e) {
      if (isTallyError(e)) continue;
      throw e;
    }
    for (const entry of entries) out.set(toHex(entry.coinClass.classId), { bank: peer.keyId, bankName: peer.name, revoked: peer.revoked, entry });
  }
  return out;
}

/**
 * At the payee's bank: presents a deposited coin of another bank to that bank for `payee`. The same
 * coin with the same tags is the same claim, however often it is deposited here.
 */
export async function presentForeignCoin(
  tx: TransactionHandle,
  services: IssuerServices,
  payee: { keyId: string; accountId: string },
  carried: CarriedCoin,
  foreign: ForeignClass,
): Promise<PresentedClaim> {
  return presentInterbankClaim(tx, services, { scheme: OTP_SCHEME, payerBank: foreign.bank, amount: BigInt(foreign.entry.coinClass.denomination), evidence: otpClaimEvidence(carried), payee });
}

/**
 * At the coin's bank: judges a claim another bank presented on one of this bank's coins. The
 * presenting bank is one the central bank certified and has not revoked; the evidence is a coin of
 * one of this bank's classes whose coins may still be deposited, signed by the class key, with no
 * more tags than its program allows and the deposit's; the claimed amount is its denomination. Then
 * its serial is spent in the registry this bank's own deposits and refunds use: a serial spent
 * before (deposited here, refunded, or claimed by any bank) is a double spend, kept as evidence
 * with its tags, which name the device that paid it twice when they open. An accepted coin is paid
 * from `float:otp` into `payTo`.
 */
export async function judgeOtpInterbankClaim(tx: TransactionHandle, services: IssuerServices, classes: ClassBook, claim: InterbankClaim, payTo: string): Promise<InterbankJudgement> {
  const refuse = (code: string, reason: string): InterbankJudgement => ({ accepted: false, code, reason });
  const payee = (await peerIntermediaries(services, tx)).find((p) => p.keyId === claim.payeeBank);
  if (payee === undefined) return refuse('BANK_UNKNOWN', `the presenting bank ${claim.payeeBank} is not in this bank's directory of intermediaries`);
  if (payee.revoked) return refuse('CERT_REVOKED', `the presenting bank ${payee.name} is revoked by the central bank`);
  if (claim.evidence.length > CLAIM_EVIDENCE_BYTES_MAX) return refuse('TOO_LARGE', `the evidence is ${claim.evidence.length} bytes, over ${CLAIM_EVIDENCE_BYTES_MAX}`);
  const now = services.now();
  let carried: CarriedCoin;
  try {
    carried = carriedCoinCodec.decode(decodeCbor(claim.evidence, { maxBytes: CLAIM_EVIDENCE_BYTES_MAX }), 'evidence');
  } catch (e) {
    if (isTallyError(e)) return refuse('CLAIM_INVALID', `the evidence is not an OTP coin: ${e.message}`);
    throw e;
  }
  const live = new Map((await classes.live(tx, now)).map((k) => [k.classIdHex, k]));
  const coinClass = live.get(toHex(carried.coin.classId));
  if (coinClass === undefined) {
    const known = await classes.byId(tx, carried.coin.classId);
    if (known === undefined) return refuse('OTP_COIN_INVALID', 'the coin is of no class of this bank');
    return refuse('OTP_COIN_INVALID', 'the coin\'s class is past its deposit window');
  }
  try {
    checkCoin(carried.coin, (id) => (equalBytes(id, coinClass.entry.coinClass.classId) ? coinClass.entry.coinClass : undefined));
  } catch (e) {
    if (isTallyError(e)) return refuse(e.code, e.message);
    throw e;
  }
  if (carried.tags.length > coinClass.hops + 1) return refuse('OTP_COIN_INVALID', `the coin carries ${carried.tags.length} transfers; its program allows ${coinClass.hops} and the deposit's`);
  if (coinClass.denomination !== claim.amount) {
    return refuse('CLAIM_INVALID', `the claim asks ${formatMinor(services.currency, claim.amount)}, the coin is of ${formatMinor(services.currency, coinClass.denomination)}`);
  }
  const { serial, classId } = carried.coin;
  const at = new Date(now).toISOString();
  const spent = await tx.query(
    `INSERT INTO otp_spent (serial, class_id, kind, account_id, tags, at) VALUES ($1, $2, 'deposit', $3, $4, $5)
     ON CONFLICT (serial) DO NOTHING RETURNING serial`,
    [serial, classId, payTo, encodeTags(carried.tags), at],
  );
  if (spent.rowCount !== 1) {
    const finding = await recordDoubleSpend(tx, services, { serial, account: payTo, tags: carried.tags });
    const named = finding === null ? '' : `; the escrow tags name device ${finding.device}${finding.revocationVersion === null ? '' : ', now revoked'}`;
    return refuse('DOUBLE_SPEND', `coin ${toHex(serial)} was deposited or refunded before${named}`);
  }
  await tx.query('INSERT INTO otp_interbank (claim_id, serial, payee_bank, amount, at) VALUES ($1, $2, $3, $4, $5)', [claim.claimId, serial, claim.payeeBank, claim.amount, at]);
  const moved = await transfer(tx, {
    idempotencyKey: `otp-interbank:${claim.claimId}`,
    debit: OTP_FLOAT_ACCOUNT,
    credit: payTo,
    amount: claim.amount,
    kind: OTP_INTERBANK_KIND,
    reference: { claim: claim.claimId, coins: 1 },
    currency: services.currency,
  });
  // Thrown, not answered: the spent serial rolls back with the missing payment, and the claim is
  // refused with the ledger's code in a transaction of its own.
  if (!moved.ok) throw new ApiProblem(moved.code, `the OTP float cannot pay claim ${claim.claimId}: ${moved.message}`, {});
  return { accepted: true };
}
