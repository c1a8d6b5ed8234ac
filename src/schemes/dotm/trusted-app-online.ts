/**
 * The trusted app's side of account synchronization (DOT-M §3.3.2: `load` the issued blocks) and
 * online data updating (§3.3.4: `events`, the node's `ack` with a newer revocation list; `redeem`
 * gives copies up to the online account), and `status`. Pure.
 */
import { equalBytes, toHex } from '../../core/bytes.ts';
import { array, boolean, bytes, oneOf, optional, record, text, uint, type Infer } from '../../core/codec.ts';
import { verifyRecord } from '../../core/crypto/record.ts';
import { publicKeyCodec } from '../../core/crypto/suite.ts';
import { keyId } from '../../pki/key-id.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { takeNewerRevocationList } from '../../pki/revocation-update.ts';
import { accept, command, reject } from '../../secure-element/trusted-app.ts';
import { blockTip, deductRemaining, verifyBlock } from './block.ts';
import { amountCodec, certificateBytesCodec, remainingCodec, currencyBlockCodec, RECORDS_PER_BLOCK_MAX, TSN_BYTES } from './messages.ts';
import {
  EVENT_ACK_TAG,
  eventAckBodyWire,
  eventAckCodec,
  EVENTS_MAX,
  partsDigest,
  REDEEM_BLOCKS_MAX,
  walletEventCodec,
  type EventPart,
} from './online.ts';
import { PASSWORD_CHARS_MAX, PASSWORD_TRIES_MAX, PEERS_MAX, TA_CRL_BYTES_MAX, WALLET_BLOCKS_MAX, type DotmState } from './trusted-app-state.ts';
import {
  usk,
  wsk,
  certified,
  NOT_CERTIFIED,
  checksOf,
  blockOptions,
  guarded,
  clock,
  sameCopy,
  balanceOf,
  busy,
  withEvent,
  timeInput,
  eventRoom,
} from './trusted-app-common.ts';
import { checkPassword } from './trusted-app-password.ts';

const loadInput = record({ blocks: array(currencyBlockCodec, { min: 1, max: REDEEM_BLOCKS_MAX }), now: timeInput });
const balanceOutput = record({ balance: remainingCodec });
const redeemInput = record({ amount: amountCodec, password: text({ max: PASSWORD_CHARS_MAX }), now: timeInput });
const redeemOutput = record({
  kind: oneOf(['redeemed', 'wrong-password'] as const),
  tsn: optional(bytes({ length: TSN_BYTES })),
  amount: optional(amountCodec),
  seq: optional(uint({ max: Number.MAX_SAFE_INTEGER })),
  triesLeft: uint({ max: PASSWORD_TRIES_MAX }),
});
const eventsOutput = record({ events: array(walletEventCodec, { max: EVENTS_MAX }) });
const ackInput = record({ ack: eventAckCodec, crl: optional(bytes({ max: TA_CRL_BYTES_MAX })) });
const ackOutput = record({ cleared: uint({ max: EVENTS_MAX }), crlVersion: optional(uint({ max: Number.MAX_SAFE_INTEGER })) });
const blockSummary = record({
  serial: bytes({ length: 16 }),
  tip: bytes({ length: 32 }),
  value: amountCodec,
  remaining: remainingCodec,
  count: uint({ max: RECORDS_PER_BLOCK_MAX }),
  held: boolean,
});
const statusOutput = record({
  userKey: publicKeyCodec,
  walletKey: publicKeyCodec,
  certified: boolean,
  currency: text({ max: 12 }),
  balance: remainingCodec,
  blocks: array(blockSummary, { max: WALLET_BLOCKS_MAX }),
  passwordSet: boolean,
  triesLeft: uint({ max: PASSWORD_TRIES_MAX }),
  offer: optional(bytes({ length: TSN_BYTES })),
  receiving: optional(bytes({ length: TSN_BYTES })),
  unsyncedEvents: uint({ max: EVENTS_MAX }),
  trustedTime: uint({ max: Number.MAX_SAFE_INTEGER }),
  /** Unlock tickets taken so far: the next ticket to ask the node for is this plus one. */
  unlocks: uint({ max: Number.MAX_SAFE_INTEGER }),
  /** Other banks' intermediary certificates the TA holds (several operators). */
  peers: array(certificateBytesCodec, { max: PEERS_MAX }),
});

/** The online commands of the DOT-M trusted app. */
export const onlineCommands = {
  /** §3.3.2: blocks the node issued out of the online balance, to this user, with no records yet. */
  load: command({
    input: loadInput,
    output: balanceOutput,
    run(state: DotmState, input, env) {
      const c = certified(state);
      if (c === null) return NOT_CERTIFIED();
      return guarded(() => {
        const now = clock(state, input.now);
        const me = keyId(usk(env).publicKey);
        const blocks = [...state.blocks];
        const options = blockOptions(state, checksOf(state), c, env, now);
        for (const block of input.blocks) {
          const verified = verifyBlock(block, options);
          if (block.records.length !== 0 || block.remaining !== block.presentation.value) return reject('BLOCK_INVALID', 'a newly issued block has no records and its whole value remaining');
          if (!equalBytes(verified.holder, me)) return reject('BLOCK_INVALID', `block ${toHex(block.presentation.serial)} was issued to another user`);
          if (blocks.some((b) => equalBytes(b.presentation.serial, block.presentation.serial))) return reject('BLOCK_DUPLICATE', `block ${toHex(block.presentation.serial)} is already in this wallet`);
          blocks.push(block);
        }
        if (blocks.length > WALLET_BLOCKS_MAX) return reject('WALLET_FULL', `the wallet would hold ${blocks.length} blocks, more than ${WALLET_BLOCKS_MAX}`);
        return accept({ ...state, blocks, trustedTime: now }, { balance: balanceOf(blocks) });
      });
    },
  }),

  /** Gives copies up to be credited online, after pwd: the largest first, the last in part. */
  redeem: command<DotmState, Infer<typeof redeemInput>, Infer<typeof redeemOutput>>({
    input: redeemInput,
    output: redeemOutput,
    run(state: DotmState, input, env) {
      if (certified(state) === null) return NOT_CERTIFIED();
      const pwd = checkPassword(state, input.password);
      if (pwd.kind === 'refused') return pwd.result;
      if (pwd.kind === 'wrong') return accept(pwd.state, { kind: 'wrong-password', triesLeft: pwd.triesLeft });
      const open = busy(state) ?? eventRoom(state);
      if (open !== null) return reject('WALLET_BUSY', open);
      const available = balanceOf(state.blocks);
      if (available < input.amount) return reject('INSUFFICIENT_FUNDS', 'the wallet holds less than the amount to withdraw');
      const sorted = [...state.blocks].sort((a, b) => (a.remaining === b.remaining ? 0 : a.remaining > b.remaining ? -1 : 1));
      const parts: EventPart[] = [];
      let blocks = [...state.blocks];
      let left = input.amount;
      for (const block of sorted) {
        if (left === 0n) break;
        if (parts.length === REDEEM_BLOCKS_MAX) return reject('LIMIT_REACHED', `more than ${REDEEM_BLOCKS_MAX} blocks would be needed; redeem less at once`);
        const take = block.remaining < left ? block.remaining : left;
        if (take === 0n) continue;
        parts.push({ block: { ...block, remaining: take } });
        blocks = take === block.remaining ? blocks.filter((b) => !sameCopy(b, block)) : blocks.map((b) => (sameCopy(b, block) ? deductRemaining(b, take) : b));
        left -= take;
      }
      const tsn = env.random(TSN_BYTES);
      const now = clock(state, input.now);
      const next = withEvent({ ...pwd.state, blocks, trustedTime: now }, env, now, { kind: 'redeemed', tsn, transaction: partsDigest(parts), amount: input.amount, parts });
      return accept(next, { kind: 'redeemed', tsn, amount: input.amount, seq: next.seq, triesLeft: PASSWORD_TRIES_MAX });
    },
  }),

  /** §3.3.4: the signed events not yet acknowledged, for the node. */
  events: command({
    input: record({}),
    output: eventsOutput,
    readOnly: true,
    run(state: DotmState) {
      return accept(state, { events: state.events });
    },
  }),

  /** The node's ack: the events it took are forgotten; a newer revocation list and trusted time come with it. */
  ack: command({
    input: ackInput,
    output: ackOutput,
    run(state: DotmState, input, env) {
      const c = certified(state);
      if (c === null) return NOT_CERTIFIED();
      const { ack } = input;
      if (!equalBytes(ack.body.wallet, keyId(wsk(env).publicKey))) return reject('ACK_INVALID', 'the ack is for another wallet');
      if (!verifyRecord(env.provider, c.issuerNode.body.subject, EVENT_ACK_TAG, eventAckBodyWire(ack.body), ack.signature)) return reject('ACK_INVALID', 'the ack signature does not verify');
      if (ack.body.upTo > state.seq) return reject('ACK_INVALID', `the ack takes events up to ${ack.body.upTo}, but the last is ${state.seq}`);
      return guarded(() => {
        const update = takeNewerRevocationList({ provider: env.provider, issuerKey: c.intermediary.body.subject, held: state.crl, offered: input.crl });
        if (!update.ok) return reject(update.code, update.message);
        const { crl, version: crlVersion } = update;
        const events = state.events.filter((e) => e.body.seq > ack.body.upTo);
        const next: DotmState = { ...state, events, trustedTime: Math.max(state.trustedTime, ack.body.time), ...(crl === undefined ? {} : { crl }) };
        return accept(next, { cleared: state.events.length - events.length, ...(crlVersion === undefined ? {} : { crlVersion }) });
      });
    },
  }),

  /**
   * Several operators: the other banks whose blocks and customers this wallet takes. Each
   * certificate must verify under the pinned root, now, as an intermediary in the wallet's
   * currency, or nothing changes; the list replaces the one held (a bank the root revoked drops
   * out of its node's answer). The wallet's own bank is left out.
   */
  peers: command({
    input: record({ intermediaries: array(certificateBytesCodec, { max: PEERS_MAX }), now: timeInput }),
    output: record({ peers: uint({ max: PEERS_MAX }) }),
    run(state: DotmState, input, env) {
      const c = certified(state);
      if (c === null) return NOT_CERTIFIED();
      const now = clock(state, input.now);
      const own = keyId(c.intermediary.body.subject);
      const kept: Uint8Array[] = [];
      for (const [k, encoded] of input.intermediaries.entries()) {
        let certificate;
        try {
          certificate = decodeCertificate(encoded);
          const chain = verifyChain({ provider: env.provider, chain: [certificate], trustAnchors: [c.root], now, leafRoles: ['intermediary'] });
          if (chain.extensions.currency !== state.currency) return reject('PEER_INVALID', `intermediary ${k} is certified for ${chain.extensions.currency ?? 'no currency'}, not ${state.currency}`);
        } catch (e) {
          return reject('PEER_INVALID', `intermediary ${k}: ${e instanceof Error ? e.message : String(e)}`);
        }
        if (!equalBytes(keyId(certificate.body.subject), own)) kept.push(encoded);
      }
      return accept({ ...state, peers: kept }, { peers: kept.length });
    },
  }),

  /** What the wallet shows: keys, balance, the blocks (held = part of an open offer), password tries, what awaits the node. */
  status: command({
    input: record({}),
    output: statusOutput,
    readOnly: true,
    run(state: DotmState, _input, env) {
      const offered = state.offer?.parts.map((p) => p.block) ?? [];
      const pwd = state.password;
      return accept(state, {
        userKey: usk(env).publicKey,
        walletKey: wsk(env).publicKey,
        certified: state.ucert !== undefined,
        currency: state.currency,
        balance: balanceOf(state.blocks),
        blocks: state.blocks.map((b) => ({
          serial: b.presentation.serial,
          tip: blockTip(b),
          value: b.presentation.value,
          remaining: b.remaining,
          count: b.count,
          held: offered.some((o) => sameCopy(o, b)),
        })),
        passwordSet: pwd !== undefined,
        triesLeft: pwd === undefined ? PASSWORD_TRIES_MAX : PASSWORD_TRIES_MAX - pwd.failures,
        ...(state.offer === undefined ? {} : { offer: state.offer.tsn }),
        ...(state.receiving === undefined ? {} : { receiving: state.receiving.tsn }),
        unsyncedEvents: state.events.length,
        trustedTime: state.trustedTime,
        unlocks: state.unlocks ?? 0,
        peers: state.peers ?? [],
      });
    },
  }),
};
