/**
 * What the OTP trusted app does with the bank while online:
 * - withdrawal (paper §2.7, with blind signatures): `prepareWithdrawal` draws each coin's serial and
 *   blinds it for its class; the bank signs blindly and debits the account; `finishWithdrawal`
 *   unblinds, checks and keeps the coins. The blinding secrets stay sealed between the two, so a
 *   crash in between finishes with the bank's (idempotent) answer;
 * - exchange keys: `keyRequest` draws one-time X25519 keys and signs their public halves with the
 *   device key; `takeKeys` keeps those the bank signed, and the bank's time bound to the request's
 *   nonce, the TA's only clock;
 * - deposit: `prepareDeposit` seals coins to the bank's deposit key (each with a last escrow tag
 *   naming the bank) and keeps them apart until `finishDeposit` takes the bank's signed receipt;
 * - coins in flight: `inFlightReport` names them with their tags, signed; `settle` forgets those the
 *   bank settled (refunded to the account, deposited by their payee, taken on by a later holder who
 *   was refunded, or lost to another branch of a coin paid twice).
 */
import { equalBytes } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { array, bigint, bytes, record, uint } from '../../core/codec.ts';
import { accept, command, reject } from '../../secure-element/trusted-app.ts';
import { blind, bytesToInt, finalize, intToBytes, MESSAGE_PREFIX_LENGTH, modulusLength } from './blind-rsa.ts';
import { classKey, CLASS_ID_BYTES, checkCoin, preparedCoinMessage, SERIAL_BYTES } from './coin.ts';
import { appendTag } from './escrow.ts';
import { checkExchangeKey, exchangeKeyCodec, exchangeKeyId } from './exchange-key.ts';
import { generateKeyPair, publicKeyOf } from '../../core/crypto/hpke.ts';
import {
  checkSigned,
  COINS_PER_MESSAGE_MAX,
  depositReceiptBodyCodec,
  depositReceiptCodec,
  DEPOSIT_RECEIPT_TAG,
  inFlightBodyCodec,
  inFlightCodec,
  IN_FLIGHT_REPORT_BYTES_MAX,
  IN_FLIGHT_TAG,
  type InFlightBody,
  keyRequestBodyCodec,
  keyRequestCodec,
  KEYS_PER_MESSAGE_MAX,
  KEY_REQUEST_TAG,
  NONCE_BYTES,
  settledBodyCodec,
  settledCodec,
  SETTLED_TAG,
  signed,
  timeBodyCodec,
  timeCodec,
  TIME_TAG,
  type CarriedCoin,
} from './messages.ts';
import { sealCoin, sealedCoinCodec, sealedDigest } from './transfer.ts';
import { deviceKey, entryOf, escrowKeyOf, guarded, provisioned, refuse, valueOf } from './trusted-app-common.ts';
import { KEYS_HELD_MAX, type BlindedCoin, type HeldKey, type OtpState } from './trusted-app-state.ts';

const requestId = bytes({ length: 16 });
const amount = bigint({ min: 0n, max: AMOUNT_MINOR_MAX });
/** Bytes of an in-flight report besides its coins: the nonce, the signature and the CBOR around them, with room to spare. */
const REPORT_OVERHEAD_BYTES = 1024;

/** The bank-facing commands of the OTP trusted app. */
export const bankCommands = {
  /** Withdrawal, first half: a fresh serial per coin, blinded for its class. The same request id answers the same blinded coins. */
  prepareWithdrawal: command({
    input: record({ requestId, classIds: array(bytes({ length: CLASS_ID_BYTES }), { min: 1, max: COINS_PER_MESSAGE_MAX }) }),
    output: record({ blinded: array(bytes({ min: 256, max: 512 }), { max: COINS_PER_MESSAGE_MAX }) }),
    run(state: OtpState, input, env) {
      const ready = provisioned(state);
      if (!ready.ok) return ready.result;
      if (state.withdrawal !== undefined) {
        if (equalBytes(state.withdrawal.requestId, input.requestId)) return accept(state, { blinded: state.withdrawal.coins.map((c) => c.blinded) });
        return reject('OTP_WITHDRAWAL_PENDING', 'another withdrawal is under way: finish it first');
      }
      return guarded(() => {
        const coins: BlindedCoin[] = input.classIds.map((classId) => {
          const entry = entryOf(state, classId);
          if (entry === undefined) refuse('OTP_CLASS_UNKNOWN', 'a class the withdrawal names is not in the bank parameters: sync first');
          const key = classKey(entry.coinClass);
          const serial = env.random(SERIAL_BYTES);
          const prefix = env.random(MESSAGE_PREFIX_LENGTH);
          const made = blind(key, preparedCoinMessage({ serial, classId, prefix }), (n) => env.random(n));
          return { classId, serial, prefix, inverse: intToBytes(made.inverse, modulusLength(key)), blinded: made.blindedMessage };
        });
        return accept({ ...state, withdrawal: { requestId: input.requestId, coins } }, { blinded: coins.map((c) => c.blinded) });
      });
    },
  }),

  /** Withdrawal, second half: the bank's blind signatures, unblinded and checked; the coins are kept. */
  finishWithdrawal: command({
    input: record({ requestId, signatures: array(bytes({ min: 256, max: 512 }), { min: 1, max: COINS_PER_MESSAGE_MAX }) }),
    output: record({ amount, coins: uint({ max: COINS_PER_MESSAGE_MAX }) }),
    run(state: OtpState, input) {
      const pending = state.withdrawal;
      if (pending === undefined || !equalBytes(pending.requestId, input.requestId)) return reject('OTP_WITHDRAWAL_UNKNOWN', 'no withdrawal with that request id is under way');
      if (input.signatures.length !== pending.coins.length) return reject('OTP_WITHDRAWAL_MISMATCH', `the withdrawal has ${pending.coins.length} coins and the answer ${input.signatures.length} signatures`);
      return guarded(() => {
        let total = 0n;
        const coins: CarriedCoin[] = pending.coins.map((b, i) => {
          const entry = entryOf(state, b.classId);
          if (entry === undefined) refuse('OTP_CLASS_UNKNOWN', 'a class of the withdrawal left the bank parameters');
          const coin = { serial: b.serial, classId: b.classId, prefix: b.prefix, program: entry.program, signature: new Uint8Array() };
          const signature = finalize(classKey(entry.coinClass), preparedCoinMessage(coin), input.signatures[i] as Uint8Array, bytesToInt(b.inverse));
          const made = { ...coin, signature };
          checkCoin(made, (id) => (equalBytes(id, entry.coinClass.classId) ? entry.coinClass : undefined));
          total += BigInt(entry.coinClass.denomination);
          return { coin: made, tags: [] };
        });
        const next = { ...state, coins: [...state.coins, ...coins] };
        const { withdrawal: _done, ...rest } = next;
        return accept(rest, { amount: total, coins: coins.length });
      });
    },
  }),

  /**
   * Forgets a withdrawal the bank refused (it signed nothing and debited nothing). Only the TA's
   * blinding secrets go: a host that lies about the refusal loses its own coins, not the bank's.
   */
  abandonWithdrawal: command({
    input: record({ requestId }),
    output: record({ abandoned: uint({ max: 1 }) }),
    run(state: OtpState, input) {
      if (state.withdrawal === undefined || !equalBytes(state.withdrawal.requestId, input.requestId)) return accept(state, { abandoned: 0 });
      const { withdrawal: _gone, ...rest } = state;
      return accept(rest, { abandoned: 1 });
    },
  }),

  /** Exchange keys, first half: `count` fresh one-time keys, their public halves signed by the device key. */
  keyRequest: command({
    input: record({ count: uint({ max: KEYS_PER_MESSAGE_MAX }) }),
    output: keyRequestCodec,
    run(state: OtpState, input, env) {
      if (state.bank === undefined) return reject('NOT_CERTIFIED', 'run Init and CertInit first');
      const room = KEYS_HELD_MAX - state.keys.length;
      const count = Math.min(input.count, Math.max(room, 0));
      const pairs = Array.from({ length: count }, () => generateKeyPair((n) => env.random(n)));
      const nonce = env.random(NONCE_BYTES);
      const request = signed(keyRequestBodyCodec, deviceKey(env), KEY_REQUEST_TAG, { publicKeys: pairs.map((p) => p.publicKey), nonce });
      return accept({ ...state, pendingKeys: { nonce, privateKeys: pairs.map((p) => p.privateKey) } }, request);
    },
  }),

  /** Exchange keys, second half: the keys the bank signed for the pending request, and its time for the request's nonce. */
  takeKeys: command({
    input: record({ keys: array(exchangeKeyCodec, { max: KEYS_PER_MESSAGE_MAX }), time: timeCodec }),
    output: record({ keys: uint({ max: KEYS_HELD_MAX }), time: uint({ max: Number.MAX_SAFE_INTEGER }) }),
    run(state: OtpState, input, env) {
      const pending = state.pendingKeys;
      if (state.bank === undefined || pending === undefined) return reject('OTP_KEYS_UNKNOWN', 'no request for exchange keys is under way');
      const bank = state.bank;
      return guarded(() => {
        const time = checkSigned(env.provider, bank, timeBodyCodec, TIME_TAG, input.time);
        if (!equalBytes(time.nonce, pending.nonce)) refuse('OTP_TIME_STALE', "the bank's time answers another request");
        const now = Math.max(state.time ?? 0, time.at);
        const privates = pending.privateKeys.map((privateKey) => ({ privateKey, publicKey: publicKeyOf(privateKey) }));
        const taken: HeldKey[] = input.keys.map((key) => {
          const body = checkExchangeKey(env.provider, bank, key, now);
          const mine = privates.find((p) => equalBytes(p.publicKey, body.publicKey));
          if (mine === undefined) refuse('OTP_KEYS_UNKNOWN', 'the bank signed a key this TA did not ask for');
          return { privateKey: mine.privateKey, key, offered: 0 };
        });
        // Expired keys go: no payer would take them.
        const kept = state.keys.filter((k) => k.key.body.notAfter > now);
        const { pendingKeys: _done, ...rest } = state;
        return accept({ ...rest, keys: [...kept, ...taken].slice(-KEYS_HELD_MAX), time: now }, { keys: kept.length + taken.length, time: now });
      });
    },
  }),

  /**
   * Deposit, first half: up to COINS_PER_MESSAGE_MAX coins of the given classes, each sealed to the
   * bank's deposit key. The request id of a deposit under way answers its boxes again (the classes
   * are then not needed).
   */
  prepareDeposit: command({
    input: record({ requestId, classIds: array(bytes({ length: CLASS_ID_BYTES }), { max: COINS_PER_MESSAGE_MAX }) }),
    output: record({ sealed: array(sealedCoinCodec, { max: COINS_PER_MESSAGE_MAX }), amount }),
    run(state: OtpState, input, env) {
      const ready = provisioned(state);
      if (!ready.ok) return ready.result;
      if (state.deposit !== undefined) {
        if (!equalBytes(state.deposit.requestId, input.requestId)) return reject('OTP_DEPOSIT_PENDING', 'another deposit is under way: finish it first');
        return accept(state, { sealed: state.deposit.boxes.map((b) => b.sealed), amount: state.deposit.boxes.reduce((s, b) => s + valueOf(state, b.classId), 0n) });
      }
      if (input.classIds.length === 0) return reject('OTP_DEPOSIT_EMPTY', 'a deposit names at least one coin');
      return guarded(() => {
        const taken = new Set<number>();
        const device = deviceKey(env);
        const bankKeyId = exchangeKeyId(ready.params.depositKey);
        const boxes = input.classIds.map((classId) => {
          const at = state.coins.findIndex((c, i) => !taken.has(i) && equalBytes(c.coin.classId, classId));
          if (at < 0) refuse('INSUFFICIENT_FUNDS', 'the TA holds no more coins of a class the deposit names');
          taken.add(at);
          const held = state.coins[at] as CarriedCoin;
          // A last tag names the bank as payee, so a copy deposited here and paid elsewhere parts at a signed hop.
          const tags = appendTag({ serial: held.coin.serial, tags: held.tags, payee: bankKeyId, device, escrowPublicKey: escrowKeyOf(state, ready.params, held.coin.classId), random: env.random });
          return { sealed: sealCoin({ coin: held.coin, tags }, ready.params.depositKey, env.random).sealed, classId };
        });
        const total = boxes.reduce((s, b) => s + valueOf(state, b.classId), 0n);
        return accept({ ...state, coins: state.coins.filter((_, i) => !taken.has(i)), deposit: { requestId: input.requestId, boxes } }, { sealed: boxes.map((b) => b.sealed), amount: total });
      });
    },
  }),

  /** Deposit, second half: the bank's signed receipt for exactly the boxes sent; the deposit ends. */
  finishDeposit: command({
    input: record({ requestId, receipt: depositReceiptCodec }),
    output: record({
      credited: amount,
      coins: uint({ max: COINS_PER_MESSAGE_MAX }),
      doubleSpent: uint({ max: COINS_PER_MESSAGE_MAX }),
      refused: uint({ max: COINS_PER_MESSAGE_MAX }),
      /** Coins of other banks the bank presented to them: credited later, once they accept. */
      presented: uint({ max: COINS_PER_MESSAGE_MAX }),
    }),
    run(state: OtpState, input, env) {
      const pending = state.deposit;
      if (state.bank === undefined || pending === undefined || !equalBytes(pending.requestId, input.requestId)) return reject('OTP_DEPOSIT_UNKNOWN', 'no deposit with that request id is under way');
      const bank = state.bank;
      return guarded(() => {
        const receipt = checkSigned(env.provider, bank, depositReceiptBodyCodec, DEPOSIT_RECEIPT_TAG, input.receipt);
        const digests = pending.boxes.map((b) => sealedDigest(b.sealed));
        if (receipt.coins.length !== digests.length || !receipt.coins.every((c, i) => equalBytes(c.digest, digests[i] as Uint8Array))) {
          refuse('OTP_RECEIPT_MISMATCH', 'the receipt is for other boxes than this deposit sent');
        }
        const count = (outcome: string) => receipt.coins.filter((c) => c.outcome === outcome).length;
        const { deposit: _done, ...rest } = state;
        return accept(rest, { credited: BigInt(receipt.credited), coins: receipt.coins.length, doubleSpent: count('double-spend'), refused: count('refused'), presented: count('presented') });
      });
    },
  }),

  /**
   * The coins in flight, named for the bank (serial, class, the bank's signature and the tags as
   * sent), signed by the device key with a fresh nonce: the first of them that fit in one report.
   * Those reported go to the end of the list, so that the next report names the others.
   */
  inFlightReport: command({
    input: record({}),
    output: inFlightCodec,
    run(state: OtpState, _input, env) {
      const nonce = env.random(NONCE_BYTES);
      const coins: InFlightBody['coins'][number][] = [];
      let size = REPORT_OVERHEAD_BYTES;
      for (const f of state.inFlight) {
        const coin = { serial: f.serial, classId: f.classId, prefix: f.prefix, signature: f.signature, tags: f.tags };
        size += encodeCbor(coin).length;
        if (coins.length === COINS_PER_MESSAGE_MAX || size > IN_FLIGHT_REPORT_BYTES_MAX) break;
        coins.push(coin);
      }
      const inFlight = [...state.inFlight.slice(coins.length), ...state.inFlight.slice(0, coins.length)];
      return accept({ ...state, inFlight, reportNonce: nonce }, signed(inFlightBodyCodec, deviceKey(env), IN_FLIGHT_TAG, { coins, nonce }));
    },
  }),

  /** The bank's answer to the latest report: the coins it settled leave the in-flight list. */
  settle: command({
    input: record({ settled: settledCodec }),
    output: record({ refunded: amount, deposited: uint({ max: COINS_PER_MESSAGE_MAX }), taken: uint({ max: COINS_PER_MESSAGE_MAX }), lost: amount }),
    run(state: OtpState, input, env) {
      if (state.bank === undefined || state.reportNonce === undefined) return reject('OTP_REPORT_UNKNOWN', 'no in-flight report is waiting for an answer');
      const bank = state.bank;
      const nonce = state.reportNonce;
      return guarded(() => {
        const settled = checkSigned(env.provider, bank, settledBodyCodec, SETTLED_TAG, input.settled);
        if (!equalBytes(settled.nonce, nonce)) refuse('OTP_REPORT_UNKNOWN', 'the answer is for another report');
        let refunded = 0n;
        let deposited = 0;
        let taken = 0;
        let lost = 0n;
        const gone = new Set<number>();
        for (const c of settled.coins) {
          const at = state.inFlight.findIndex((f) => equalBytes(f.serial, c.serial));
          if (at < 0 || gone.has(at)) continue;
          gone.add(at);
          const value = valueOf(state, state.inFlight[at]?.classId as Uint8Array);
          if (c.outcome === 'refunded') refunded += value;
          else if (c.outcome === 'deposited') deposited += 1;
          else if (c.outcome === 'taken') taken += 1;
          else lost += value;
        }
        const { reportNonce: _done, ...rest } = state;
        return accept({ ...rest, inFlight: state.inFlight.filter((_, i) => !gone.has(i)) }, { refunded, deposited, taken, lost });
      });
    },
  }),
};
