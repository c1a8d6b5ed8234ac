/**
 * Credits between a node's databases carried on NATS JetStream (ledger/cross-shard.ts says what
 * a crossing is). One stream per node, `TALLY_CREDIT_<name>`, a subject per receiving place
 * (`tally.<name>.credit.<place>`), work-queue retention:
 * - a message names only the sender and the outbox id; the receiver reads the crossing from the
 *   sender's outbox, so a message put on the stream by anyone else credits nothing;
 * - the message id is `<sender>:<id>`: a re-publish within the duplicate window is dropped by the
 *   stream, and after it by the receiver's inbox;
 * - the sender publishes after its commit and marks the row published once the stream has taken
 *   it; a sweep publishes again what a crash left unpublished;
 * - the receiver acknowledges after its commit; a receiver that dies before has the message
 *   delivered again, and its inbox answers 'already';
 * - a database that does not answer (the sender's or the receiver's) leaves the message to come
 *   back with a growing delay, nothing lost;
 * - a crossing whose receipt fails on every delivery for a reason of its own (a bug, data the
 *   receiver cannot take) is held for the operator on the node's held stream (settle-held.ts)
 *   after its last try, published again by no sweep, and in flight in the audit until released.
 */
import { AckPolicy, DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { z } from 'zod';
import type { Queryable, TransactionHandle } from '../db/database.ts';
import { isUnavailable } from '../db/retry.ts';
import { isParty, markDelivered, markPublished, outboxEntry, receiveAcross, received, undelivered, unpublished, type OutboxEntry, type Party, type Received } from '../ledger/cross-shard.ts';
import type { ShardDatabases } from '../shards/shard-databases.ts';
import { connectNats, isStreamMissing, noJetStream } from './settle-part.ts';
import { ensureHeldStream, heldStore, holdCrossing, type HeldCrossing } from './settle-held.ts';
import { retryDelayMs, SETTLE_DELIVERIES_MAX, SETTLE_DUPLICATE_WINDOW_MS } from './settle-queue.ts';

/** How long a receiver may hold a crossing before the stream delivers it again. */
export const CREDIT_ACK_WAIT_MS = 30_000;
/** A row unpublished for this long is published again by a sweep. */
export const CREDIT_SWEEP_AGE_MS = 2_000;
/** Rows a sweep publishes per place at most. */
export const CREDIT_SWEEP_BATCH = 1_000;
/** Crossings a receiver of one place settles at once. */
export const CREDIT_RECEIVER_CONCURRENCY = 8;
/** A crossing published this long ago and still not received is published again, under a new message id. */
export const CREDIT_REDELIVER_AFTER_MS = 30_000;
/** The most the credit stream holds; past it a publish is refused (and the sweep tries again). */
export const CREDIT_STREAM_BYTES_MAX = 1024 ** 3;

const message = z.strictObject({ from: z.string().max(8), id: z.string().min(1).max(128) });

type Log = (line: string, fields?: Record<string, unknown>) => void;

/**
 * What a scheme does in the receiver's transaction when a crossing of its kind is credited there
 * (OPERA records a charge's tokens on their shard with the value that comes for them). A crossing
 * whose reference says `receipt: true` is credited only together with its kind's receipt: a
 * receiver without one leaves it in the stream for one that has it.
 */
export type CrossingReceipt = (tx: TransactionHandle, crossing: { readonly self: Party; readonly from: Party; readonly entry: OutboxEntry; readonly sender: Queryable }) => Promise<void>;

/** A crossing that needs a receipt this receiver does not have: left to another receiver, never held. */
class ReceiptMissing extends Error {
  override readonly name = 'ReceiptMissing';
}

/** Whether a crossing was sent to be received with its kind's receipt. */
function wantsReceipt(entry: OutboxEntry): boolean {
  const reference = entry.reference;
  return reference !== null && typeof reference === 'object' && Object.getOwnPropertyDescriptor(reference, 'receipt')?.value === true;
}

/** The relay of one node's crossings. */
export interface CreditRelay {
  readonly stream: string;
  /** Publishes crossings `from` has committed, and marks them published once the stream has them. */
  publish(from: Party, entries: readonly { readonly id: string; readonly to: Party }[]): Promise<void>;
  /** Publishes what each place left unpublished for `olderThanMs` or more; answers how many. A place whose database does not answer is logged and skipped. */
  sweep(olderThanMs?: number): Promise<number>;
  /**
   * Looks up, at their receivers, the crossings published `olderThanMs` or more ago and not known
   * delivered: marks those received, and publishes the others again under a new message id (the
   * stream lost or dropped the first, or someone took its message id first).
   */
  reconcile(olderThanMs?: number): Promise<{ delivered: number; republished: number; held: number }>;
  /** The crossings held for the operator (their receipt failed on every delivery), oldest first. */
  held(): Promise<HeldCrossing[]>;
  /** Puts held crossings (`<from>:<id>`, or all) back to their receivers; answers those released. */
  release(keys: readonly string[] | 'all'): Promise<HeldCrossing[]>;
  /** Receives the crossings addressed to `places` until stopped. */
  receive(places: readonly Party[]): Promise<CreditReceivers>;
  /**
   * Publishes crossings `from` has committed and receives each at once where it goes, as its
   * stream receiver would (a second receipt finds the first). Answers the ids received now; one
   * that could not be (its database does not answer) is left to the stream's receiver.
   */
  deliver(from: Party, entries: readonly { readonly id: string; readonly to: Party }[]): Promise<Set<string>>;
  close(): Promise<void>;
}

/** Running receivers. */
export interface CreditReceivers {
  /** Crossings credited or returned here (not counting second deliveries). */
  readonly received: number;
  stop(): Promise<void>;
}

/** What to open. */
export interface CreditRelayOptions {
  readonly url: string;
  /** The node's short name (16 hex digits of its key id), as the settlement stream's. */
  readonly name: string;
  readonly shards: ShardDatabases;
  readonly ackWaitMs?: number | undefined;
  /** Deliveries a crossing's receipt may fail on before it is held (SETTLE_DELIVERIES_MAX by default); tests lower it. */
  readonly deliveriesMax?: number | undefined;
  /** The delay before a failed crossing is delivered again, by its deliveries so far (doubling from a second to a minute by default); tests shorten it. */
  readonly retryDelayMs?: ((deliveries: number) => number) | undefined;
  readonly log?: Log | undefined;
  /** The schemes' receipts, by crossing kind. */
  readonly receipts?: ReadonlyMap<string, CrossingReceipt> | undefined;
}

/**
 * Connects and makes (or keeps) the node's credit stream.
 * @throws TallyError NATS_UNREACHABLE when the server does not answer or has no JetStream
 */
export async function openCreditRelay(options: CreditRelayOptions): Promise<CreditRelay> {
  if (!/^[0-9a-f]{16}$/.test(options.name)) throw new RangeError(`name: expected 16 hex digits, got ${JSON.stringify(options.name)}`);
  const log = options.log ?? (() => undefined);
  const connection = await connectNats(options.url, `tally-credit-${options.name}`, true);
  const stream = `TALLY_CREDIT_${options.name}`;
  const prefix = `tally.${options.name}.credit`;
  const ackWaitMs = options.ackWaitMs ?? CREDIT_ACK_WAIT_MS;
  const deliveriesMax = options.deliveriesMax ?? SETTLE_DELIVERIES_MAX;
  if (!Number.isInteger(deliveriesMax) || deliveriesMax < 1) throw new RangeError(`deliveriesMax: expected a positive integer, got ${deliveriesMax}`);
  const delayOf = options.retryDelayMs ?? retryDelayMs;
  const heldStream = `TALLY_HELD_${options.name}`;
  const nodePrefix = `tally.${options.name}`;
  try {
    const manager = await jetstreamManager(connection);
    await ensureHeldStream(manager, heldStream, nodePrefix);
    // A subject per place and a size limit: messages for nobody cannot pile up without end.
    const config = {
      name: stream,
      description: 'tally credits between the databases of one node',
      subjects: options.shards.parties.map((p) => `${prefix}.${p}`),
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      max_bytes: CREDIT_STREAM_BYTES_MAX,
      discard: DiscardPolicy.New,
      duplicate_window: SETTLE_DUPLICATE_WINDOW_MS * 1_000_000,
    };
    try {
      await manager.streams.info(stream);
      await manager.streams.update(stream, config);
    } catch (e) {
      if (!isStreamMissing(e)) throw e;
      await manager.streams.add(config);
    }
  } catch (e) {
    await connection.close();
    throw noJetStream(options.url, e);
  }
  const js = jetstream(connection);
  const { shards } = options;
  const receipts = options.receipts ?? new Map<string, CrossingReceipt>();
  const holds = heldStore(connection, js, heldStream, nodePrefix);

  /** Receives one crossing from `from` at `place`, with its kind's receipt in the same transaction. */
  const receiveOne = (place: Party, from: Party, entry: OutboxEntry): Promise<Received> =>
    shards.db(place).transaction(async (tx) => {
      const receipt = wantsReceipt(entry) ? receipts.get(entry.kind) : undefined;
      if (wantsReceipt(entry) && receipt === undefined) throw new ReceiptMissing(`crossing ${entry.id} of kind ${entry.kind} needs its receipt, which this receiver does not have`);
      const outcome = await receiveAcross(tx, place, from, entry);
      if (outcome.outcome === 'credited' && receipt !== undefined) await receipt(tx, { self: place, from, entry, sender: shards.db(from) });
      return outcome;
    });

  const publish = async (from: Party, entries: readonly { readonly id: string; readonly to: Party }[]): Promise<void> => {
    if (entries.length === 0) return;
    await Promise.all(entries.map((e) => js.publish(`${prefix}.${e.to}`, JSON.stringify({ from, id: e.id }), { msgID: `${from}:${e.id}` })));
    // Only once the stream has them all: a crash before leaves them to the sweep.
    await markPublished(shards.db(from), entries.map((e) => e.id));
  };

  const receive = async (places: readonly Party[]): Promise<CreditReceivers> => {
    const manager = await jetstreamManager(connection);
    const running: Array<{ messages: ConsumerMessages; done: Promise<void> }> = [];
    let receivedCount = 0;
    let stopping: Promise<void> | undefined;
    for (const place of places) {
      if (!shards.parties.includes(place)) throw new RangeError(`place ${place}: the node has ${shards.parties.join(', ')}`);
      const durable = `credit-${place}`;
      try {
        await manager.consumers.info(stream, durable);
      } catch {
        await manager.consumers.add(stream, {
          durable_name: durable,
          filter_subject: `${prefix}.${place}`,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: ackWaitMs * 1_000_000,
          max_deliver: -1,
          max_ack_pending: CREDIT_RECEIVER_CONCURRENCY * 4,
        });
      }
      const consumer = await js.consumers.get(stream, durable);
      const messages = await consumer.consume({ max_messages: CREDIT_RECEIVER_CONCURRENCY });
      const one = async (msg: JsMsg): Promise<void> => {
        let named: { from: Party; id: string };
        try {
          const parsed = message.parse(msg.json());
          if (!isParty(parsed.from) || parsed.from === place || !shards.parties.includes(parsed.from)) throw new Error(`unknown sender ${parsed.from}`);
          named = { from: parsed.from, id: parsed.id };
        } catch (e) {
          log('a malformed crossing message was dropped', { place, error: e instanceof Error ? e.message.slice(0, 200) : String(e) });
          await msg.ackAck();
          return;
        }
        let entry: OutboxEntry | undefined;
        try {
          entry = await outboxEntry(shards.db(named.from), named.id);
          if (entry === undefined || entry.to !== place) {
            // Nobody sent it: the sender's outbox is what a crossing is, not the message.
            log('a crossing message that its sender never sent was dropped', { place, ...named });
            await msg.ackAck();
            return;
          }
          const outcome = await receiveOne(place, named.from, entry);
          if (outcome.outcome === 'returned') {
            log('a crossing was returned to its sender', { place, ...named, reason: outcome.reason });
            await publish(place, [outcome.back]).catch((e: unknown) => log('a return could not be published yet; the sweep will', { place, id: outcome.back.id, error: String(e) }));
          }
          if (outcome.outcome !== 'already') receivedCount++;
          // Best effort: the reconciler finds it received anyway.
          await markDelivered(shards.db(named.from), [named.id]).catch(() => undefined);
        } catch (e) {
          const error = e instanceof Error ? e.message : String(e);
          const deliveries = msg.info.deliveryCount;
          // A database that does not answer is waited out however long it lasts, and a receipt this
          // receiver lacks is another receiver's to run; a failure of the crossing's own is held
          // for the operator after its last try instead of coming back without end.
          if (!(e instanceof ReceiptMissing) && !isUnavailable(e) && deliveries >= deliveriesMax) {
            try {
              await holdCrossing(js, nodePrefix, { from: named.from, to: place, id: named.id, kind: entry?.kind ?? null, amount: entry === undefined ? null : entry.amount.toString() }, deliveries, error);
            } catch (held) {
              const delay = delayOf(deliveries);
              log('a crossing that failed on every delivery could not be held; it will be delivered again', { place, ...named, error, held: held instanceof Error ? held.message : String(held), deliveries, retryInMs: delay });
              msg.nak(delay);
              return;
            }
            await msg.ackAck();
            log('a crossing failed on every delivery and is held for the operator (tally settle held)', { place, ...named, deliveries, error });
            return;
          }
          const delay = e instanceof ReceiptMissing ? delayOf(1) : delayOf(deliveries);
          log('receiving a crossing failed; it will be delivered again', { place, ...named, error, deliveries, retryInMs: delay });
          msg.nak(delay);
          return;
        }
        // After the commit: a crash from here on is answered 'already' on the next delivery.
        await msg.ackAck();
      };
      const inHand = new Set<Promise<void>>();
      const done = (async () => {
        for await (const msg of messages) {
          const p: Promise<void> = one(msg)
            .catch((e: unknown) => log('a crossing could not be acknowledged; it will be delivered again', { place, error: e instanceof Error ? e.message : String(e) }))
            .finally(() => inHand.delete(p));
          inHand.add(p);
          if (inHand.size >= CREDIT_RECEIVER_CONCURRENCY) await Promise.race(inHand);
        }
        await Promise.allSettled(inHand);
        if (stopping === undefined) log('a credit receiver stopped without being asked (its consumer was deleted, or the connection closed): credits to this place wait until the node starts again', { place });
      })();
      running.push({ messages, done });
    }
    return {
      get received() {
        return receivedCount;
      },
      stop() {
        stopping ??= (async () => {
          for (const r of running) await r.messages.close();
          await Promise.allSettled(running.map((r) => r.done));
        })();
        return stopping;
      },
    };
  };

  const deliver = async (from: Party, entries: readonly { readonly id: string; readonly to: Party }[]): Promise<Set<string>> => {
    const done = new Set<string>();
    if (entries.length === 0) return done;
    await publish(from, entries).catch((e: unknown) => log('crossings could not be published yet; the sweep will', { place: from, error: e instanceof Error ? e.message : String(e) }));
    await Promise.all(
      entries.map(async ({ id, to }) => {
        try {
          const entry = await outboxEntry(shards.db(from), id);
          if (entry === undefined || entry.to !== to) throw new Error(`${from} sent no crossing ${id} to ${to}`);
          const outcome = await receiveOne(to, from, entry);
          if (outcome.outcome === 'returned') await publish(to, [outcome.back]).catch(() => undefined);
          await markDelivered(shards.db(from), [id]).catch(() => undefined);
          done.add(id);
        } catch (e) {
          log('a crossing could not be received at once; its stream receiver will', { place: to, from, id, error: e instanceof Error ? e.message.slice(0, 200) : String(e) });
        }
      }),
    );
    return done;
  };

  return {
    stream,
    publish,
    deliver,
    async sweep(olderThanMs = CREDIT_SWEEP_AGE_MS) {
      let published = 0;
      for (const from of shards.parties) {
        try {
          const left = await unpublished(shards.db(from), olderThanMs, CREDIT_SWEEP_BATCH);
          await publish(from, left);
          published += left.length;
        } catch (e) {
          log('publishing the crossings a place left unpublished failed; the next sweep tries again', { place: from, error: e instanceof Error ? e.message : String(e) });
        }
      }
      return published;
    },
    async reconcile(olderThanMs = CREDIT_REDELIVER_AFTER_MS) {
      let delivered = 0;
      let republished = 0;
      let heldCount = 0;
      for (const from of shards.parties) {
        try {
          const waiting = await undelivered(shards.db(from), olderThanMs, CREDIT_SWEEP_BATCH);
          for (const to of new Set(waiting.map((w) => w.to))) {
            const ids = waiting.filter((w) => w.to === to).map((w) => w.id);
            const there = await received(shards.db(to), from, ids);
            await markDelivered(shards.db(from), [...there]);
            delivered += there.size;
            for (const id of ids) {
              if (there.has(id)) continue;
              // Held for the operator: only a release sends it again.
              if ((await holds.findCrossing(from, id)) !== undefined) {
                heldCount++;
                continue;
              }
              await js.publish(`${prefix}.${to}`, JSON.stringify({ from, id }), { msgID: `${from}:${id}:${Date.now()}` });
              republished++;
            }
          }
        } catch (e) {
          log('looking up undelivered crossings failed; the next round tries again', { place: from, error: e instanceof Error ? e.message : String(e) });
        }
      }
      if (republished > 0) log('crossings not received were published again', { republished });
      return { delivered, republished, held: heldCount };
    },
    held: () => holds.crossings(),
    release: (keys) => holds.releaseCrossings(keys),
    receive,
    async close() {
      await connection.drain().catch(() => connection.close());
    },
  };
}
