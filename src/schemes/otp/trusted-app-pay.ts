/**
 * The offline payment in the OTP trusted app (paper Figure 4 and §3.3), both sides:
 * - the payee gives exchange keys (`offerKeys`), each once;
 * - the payer runs each coin's program (`pay`): the pre-condition check (checkIntegrityOfOTP,
 *   checkTokenFormat, checkCallMethod: checkCoin), the program's conditions against the payee's key,
 *   setupConnection (the key is the bank's and not expired), buildSandbox (the coin with a new escrow
 *   tag, bound to the key), sendOTP (sealed to the key), destroyOTP: the coin leaves the held coins
 *   and stays in flight, neither spendable nor lost, until its ACK;
 * - the payee opens each box with the key's private half (`receive`), checks the coin as the payer
 *   did, keeps it and answers an ACK; the key is then gone, and a box taken once is never taken again;
 * - the payer checks each ACK and only then forgets the coin (`acknowledge`).
 * A command takes all its coins or none: any refusal leaves the state as it was.
 */
import { equalBytes, toHex } from '../../core/bytes.ts';
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { array, bigint, bytes, record, uint, type Codec } from '../../core/codec.ts';
import { accept, command, reject } from '../../secure-element/trusted-app.ts';
import { checkCoin, CLASS_ID_BYTES } from './coin.ts';
import { appendTag } from './escrow.ts';
import { checkExchangeKey, exchangeKeyCodec, exchangeKeyId, type ExchangeKey, type ExchangeKeyBody } from './exchange-key.ts';
import type { CryptoProvider, PublicKey } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { COINS_PER_MESSAGE_MAX, KEYS_PER_MESSAGE_MAX, type CarriedCoin } from './messages.ts';
import { checkConditions } from './program.ts';
import { ackCodec, ackMatches, openCoin, sealCoin, sealedCoinCodec, sealedDigest, type Ack } from './transfer.ts';
import { classesOf, deviceKey, entryOf, escrowKeyOf, exchangeKeySigners, guarded, provisioned, refuse, valueOf } from './trusted-app-common.ts';
import { COINS_HELD_MAX, IN_FLIGHT_MAX, RECEIVED_MAX, type InFlight, type OtpState, type Received } from './trusted-app-state.ts';

/**
 * The payee's exchange key, signed by one of `signers` (the first that verifies it).
 * @throws TallyError of the TA's own bank's check when none does
 */
function checkPayeeKey(provider: CryptoProvider, signers: readonly PublicKey[], key: ExchangeKey, now: number | null): ExchangeKeyBody {
  let first: unknown;
  for (const signer of signers) {
    try {
      return checkExchangeKey(provider, signer, key, now);
    } catch (e) {
      // Only a signature by another key moves on to the next bank; an expired key is refused as it is.
      if (!isTallyError(e, 'SIGNATURE_INVALID')) throw e;
      first ??= e;
    }
  }
  throw first;
}

const keys: Codec<ExchangeKey[]> = array(exchangeKeyCodec, { max: KEYS_PER_MESSAGE_MAX });
const boxes = array(sealedCoinCodec, { min: 1, max: COINS_PER_MESSAGE_MAX });
const acks = array(ackCodec, { min: 1, max: COINS_PER_MESSAGE_MAX });
const amount = bigint({ min: 0n, max: AMOUNT_MINOR_MAX });


/** The payment commands of the OTP trusted app. */
export const payCommands = {
  /** The payee: `count` of its exchange keys, never given before (each is then marked given). */
  offerKeys: command({
    input: record({ count: uint({ min: 1, max: KEYS_PER_MESSAGE_MAX }) }),
    output: record({ keys }),
    run(state: OtpState, input) {
      const fresh = state.keys.filter((k) => k.offered === 0 && (state.time === undefined || k.key.body.notAfter > state.time));
      if (fresh.length < input.count) return reject('OTP_KEYS_SHORT', `the TA has ${fresh.length} exchange keys to give and ${input.count} are needed: sync online to get more`);
      const given = new Set(fresh.slice(0, input.count));
      return accept({ ...state, keys: state.keys.map((k) => (given.has(k) ? { ...k, offered: 1 } : k)) }, { keys: [...given].map((k) => k.key) });
    },
  }),

  /**
   * The payer: one coin of each item's class, each to the item's exchange key, through the coin's
   * program. Answers the boxes, in the items' order, and the amount (minor units, big-endian bytes).
   */
  pay: command({
    input: record({ items: array(record({ classId: bytes({ length: CLASS_ID_BYTES }), key: exchangeKeyCodec }), { min: 1, max: COINS_PER_MESSAGE_MAX }) }),
    output: record({ sealed: array(sealedCoinCodec, { max: COINS_PER_MESSAGE_MAX }), amount }),
    run(state: OtpState, input, env) {
      const ready = provisioned(state);
      if (!ready.ok) return ready.result;
      if (state.inFlight.length + input.items.length > IN_FLIGHT_MAX) return reject('OTP_IN_FLIGHT_FULL', `${state.inFlight.length} coins wait for their ACK: finish or report them (sync) first`);
      return guarded(() => {
        const device = deviceKey(env);
        const now = state.time ?? null;
        const taken = new Set<number>();
        const usedKeys = new Set(state.inFlight.map((f) => toHex(f.sealed.keyId)));
        const sent: InFlight[] = [];
        let total = 0n;
        // The held coins by class, fewest hops first: one pass, however many coins the payment takes.
        const byClass = new Map<string, number[]>();
        state.coins.forEach((held, i) => {
          const id = toHex(held.coin.classId);
          byClass.set(id, [...(byClass.get(id) ?? []), i]);
        });
        for (const list of byClass.values()) list.sort((a, b) => (state.coins[a] as CarriedCoin).tags.length - (state.coins[b] as CarriedCoin).tags.length);
        for (const item of input.items) {
          // checkCallMethod: the held coins are the sandbox's, picked by class.
          const at = byClass.get(toHex(item.classId))?.shift();
          if (at === undefined) refuse('INSUFFICIENT_FUNDS', 'the TA holds no more coins of a class the payment names');
          taken.add(at);
          const held = state.coins[at] as CarriedCoin;
          // checkIntegrityOfOTP, checkTokenFormat: the class, its program, the bank's signature.
          const checked = checkCoin(held.coin, classesOf(state));
          // setupConnection: the payee's key is a bank's (the TA's own, or in two tiers another the
          // TA took the publication of), in its window.
          const payee = checkPayeeKey(env.provider, exchangeKeySigners(state, ready.bank), item.key, now);
          const keyId = exchangeKeyId(payee.publicKey);
          const keyHex = toHex(keyId);
          if (usedKeys.has(keyHex)) refuse('OTP_EXCHANGE_KEY_INVALID', 'an exchange key takes one coin, and this one already has one');
          usedKeys.add(keyHex);
          // The program's own conditions, before anything leaves the TA.
          checkConditions(checked.program, { now, payeeCategory: payee.category, hop: held.tags.length + 1 });
          // buildSandbox: the coin and its new escrow tag, bound to this key; sendOTP: sealed to it.
          const tags = appendTag({ serial: held.coin.serial, tags: held.tags, payee: keyId, device, escrowPublicKey: escrowKeyOf(state, ready.params, held.coin.classId), random: env.random });
          const { sealed, ackSecret } = sealCoin({ coin: held.coin, tags }, payee.publicKey, env.random);
          sent.push({ sealed, ackSecret, serial: held.coin.serial, classId: held.coin.classId, prefix: held.coin.prefix, signature: held.coin.signature, ...(state.time === undefined ? {} : { at: state.time }), tags });
          total += BigInt(checked.coinClass.denomination);
        }
        // destroyOTP: the coins leave the sandbox; they wait in flight for their ACKs.
        const next = { ...state, coins: state.coins.filter((_, i) => !taken.has(i)), inFlight: [...state.inFlight, ...sent] };
        return accept(next, { sealed: sent.map((s) => s.sealed), amount: total });
      });
    },
  }),

  /** The payer: every box still waiting for its ACK (to send again when the link comes back). */
  inFlight: command({
    input: record({}),
    output: record({ sealed: array(sealedCoinCodec, { max: IN_FLIGHT_MAX }) }),
    readOnly: true,
    run: (state: OtpState) => accept(state, { sealed: state.inFlight.map((f) => f.sealed) }),
  }),

  /**
   * The payee: opens each box with its exchange key, checks the coin and keeps it; answers the
   * ACKs. A box taken before is refused (OTP_REPLAYED), as is a coin it already holds.
   */
  receive: command({
    input: record({ sealed: boxes }),
    output: record({ acks: array(ackCodec, { max: COINS_PER_MESSAGE_MAX }), amount }),
    run(state: OtpState, input) {
      const ready = provisioned(state);
      if (!ready.ok) return ready.result;
      if (state.coins.length + input.sealed.length > COINS_HELD_MAX) return reject('OTP_PURSE_FULL', `the TA holds ${state.coins.length} coins and takes at most ${COINS_HELD_MAX}: deposit some first`);
      return guarded(() => {
        const usedKeys = new Set<number>();
        const kept: CarriedCoin[] = [];
        // What was received and what is held, by digest and serial: each box checked in constant time.
        const seenBoxes = new Set(state.received.map((r) => toHex(r.digest)));
        const heldSerials = new Set(state.coins.map((c) => toHex(c.coin.serial)));
        const keyAt = new Map(state.keys.map((k, i) => [toHex(exchangeKeyId(k.key.body.publicKey)), i]));
        const received: Received[] = [];
        const answers: Ack[] = [];
        let total = 0n;
        for (const sealed of input.sealed) {
          const digest = sealedDigest(sealed);
          if (seenBoxes.has(toHex(digest))) refuse('OTP_REPLAYED', 'this box was received before: its coin is not taken twice');
          seenBoxes.add(toHex(digest));
          const at = keyAt.get(toHex(sealed.keyId)) ?? -1;
          if (at < 0 || usedKeys.has(at)) refuse('OTP_EXCHANGE_KEY_UNKNOWN', 'the box is sealed to no exchange key this TA holds (used, expired or never its own)');
          usedKeys.add(at);
          const key = state.keys[at] as OtpState['keys'][number];
          const { carried, ack } = openCoin(sealed, key.privateKey, key.key.body.publicKey);
          const checked = checkCoin(carried.coin, classesOf(state));
          const entry = entryOf(state, carried.coin.classId);
          if (entry !== undefined && state.time !== undefined && state.time > entry.until) refuse('OTP_CONDITION', 'the coin can no longer be paid offline');
          const hops = checked.program.conditions.find((c) => c.kind === 'checkMaxHops');
          if (hops !== undefined && carried.tags.length > hops.hops) refuse('OTP_CONDITION', `the coin has made ${carried.tags.length} transfers; its program allows ${hops.hops}`);
          if (heldSerials.has(toHex(carried.coin.serial))) refuse('DOUBLE_SPEND', 'this TA already holds a coin with that serial');
          heldSerials.add(toHex(carried.coin.serial));
          kept.push(carried);
          received.push({ digest, mac: ack.mac });
          answers.push(ack);
          total += BigInt(checked.coinClass.denomination);
        }
        const remembered = [...state.received, ...received].slice(-RECEIVED_MAX);
        const next = { ...state, coins: [...state.coins, ...kept], keys: state.keys.filter((_, i) => !usedKeys.has(i)), received: remembered };
        return accept(next, { acks: answers, amount: total });
      });
    },
  }),

  /** The payee: the ACKs it gave for boxes it already took (a payer that lost them asks again). */
  ackAgain: command({
    input: record({ sealed: boxes }),
    output: record({ acks: array(ackCodec, { max: COINS_PER_MESSAGE_MAX }) }),
    readOnly: true,
    run(state: OtpState, input) {
      const out: Ack[] = [];
      for (const sealed of input.sealed) {
        const digest = sealedDigest(sealed);
        const known = state.received.find((r) => equalBytes(r.digest, digest));
        if (known !== undefined) out.push({ digest, mac: known.mac });
      }
      return accept(state, { acks: out });
    },
  }),

  /** The payer: forgets each in-flight coin whose ACK is here and matches. A forged or foreign ACK refuses the whole command. */
  acknowledge: command({
    input: record({ acks }),
    output: record({ acknowledged: uint({ max: COINS_PER_MESSAGE_MAX }), amount }),
    run(state: OtpState, input) {
      const done = new Set<number>();
      let total = 0n;
      for (const ack of input.acks) {
        const at = state.inFlight.findIndex((f, i) => !done.has(i) && ackMatches(f.sealed, f.ackSecret, ack));
        if (at < 0) return reject('OTP_ACK_INVALID', 'an ACK matches no coin in flight (forged, altered, or for a coin already acknowledged)');
        done.add(at);
        total += valueOf(state, (state.inFlight[at] as InFlight).classId);
      }
      return accept({ ...state, inFlight: state.inFlight.filter((_, i) => !done.has(i)) }, { acknowledged: done.size, amount: total });
    },
  }),
};
