/**
 * Settlement intake on NATS JetStream, sharded within one intermediary.
 *
 * A node that is given a NATS server (`tally node start --nats URL --shards N`) does not settle a
 * scheme's batch on its request thread: the route cuts the batch into parts by shard (a scheme
 * chooses the shard key: for OPS the payer's device, so that every payment of one device, and so
 * every fork of a cloned one, meets on one shard) and publishes each part to the durable stream,
 * on the subject of its shard. Settlement workers consume a shard's subject, settle a part in one
 * database transaction under its own idempotency record, acknowledge the message once that
 * transaction committed, and then wake the waiting node. So:
 * - a part is published with its id as the JetStream message id, and the stream drops a
 *   re-publish within its duplicate window (a node that lost the publish's answer publishes again);
 * - a worker that dies before its acknowledgement has the message redelivered, to itself after a
 *   restart or to another worker of the shard, and the part's idempotency record answers the
 *   second delivery with the first one's answer when its transaction had committed;
 * - the node waits for a wake-up on a plain NATS subject named after the part, and then reads the
 *   part's answer from the database, never from the message: a wake-up carries nothing to trust;
 * - the stream's description records the node's shard count: a worker started with another count
 *   is refused, and the node changes it only while no part waits in the stream.
 * - a part that fails on every delivery for a reason of its own is held on a stream of its own for
 *   the operator, rather than delivered again without end; a database that does not answer is
 *   waited out however long it lasts.
 * Workers run in the node's process (`startSettleWorkers`), as many shards as asked, or in
 * `tally settle worker` processes. A part's form on the wire is settle-part.ts's; the held parts'
 * stream is settle-held.ts's.
 */
import { createHash } from 'node:crypto';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type ConsumerMessages, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import { fromHex, toHex } from '../../core/bytes.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import type { Database } from '../db/database.ts';
import { isUnavailable } from '../db/retry.ts';
import { storedResponse, type StoredResponse } from '../ledger/idempotency.ts';
import type { JsonValue } from '../ledger/json.ts';
import { ensureHeldStream, heldAnswer, heldStore, holdPart, type HeldPart } from './settle-held.ts';
import { checkName, connectNats, isStreamMissing, noJetStream, partMessage, SETTLE_SHARDS_MAX, type PartMessage, type SettlePart, type SettleWork } from './settle-part.ts';

/** How long a route waits for its parts' answers before it answers 503 (retry with the same key). */
export const SETTLE_ANSWER_WAIT_MS = 60_000;
/** How long a worker may hold a part before JetStream delivers it again. */
export const SETTLE_ACK_WAIT_MS = 30_000;
/** How long the stream remembers a part's id: a re-publish within it is dropped. */
export const SETTLE_DUPLICATE_WINDOW_MS = 10 * 60_000;
/** How long a part a worker could not settle waits before it is delivered again. */
export const SETTLE_RETRY_DELAY_MS = 1_000;
/** Parts one shard's worker settles at once. */
export const SETTLE_WORKER_CONCURRENCY = 4;
/** The largest part, in bytes of JSON; NATS servers take 1 MiB messages by default. */
export const SETTLE_PART_BYTES_MAX = 900 * 1024;
/**
 * Deliveries of a part whose handler keeps failing with an error of its own (not the database's
 * absence) before the part is held for the operator: with the doubling delays, about a quarter of
 * an hour of tries.
 */
export const SETTLE_DELIVERIES_MAX = 20;
/** Settles a part, storing its answer under (kind, id) in the transaction that settles it. */
export type SettleHandler = (work: SettleWork) => Promise<StoredResponse>;

/** The node's side of the intake: where routes submit their parts. */
export interface SettleQueue {
  readonly shards: number;
  /** The stream, e.g. `TALLY_SETTLE_1a2b3c4d5e6f`. */
  readonly stream: string;
  /** The shard of a key (a device id, a coin id): the same key, the same shard, on every node of the deployment. */
  shardOf(key: string): number;
  /**
   * Publishes the parts and waits for their answers, in order; `undefined` for a part not
   * answered within `waitMs` (it stays in the stream and is settled when a worker gets to it).
   */
  submit(parts: readonly SettlePart[], waitMs?: number): Promise<Array<StoredResponse | undefined>>;
  /** The parts held for the operator, oldest first. */
  held(): Promise<HeldPart[]>;
}

/** A connection to the intake: the queue, and what workers consume. */
export interface SettleIntake extends SettleQueue {
  readonly connection: NatsConnection;
  readonly subjectPrefix: string;
  readonly ackWaitMs: number;
  /** The stream of held parts, e.g. `TALLY_HELD_1a2b3c4d5e6f`. */
  readonly heldStream: string;
  /**
   * Puts held parts back on their shards' subjects (each under a new message id, so the stream
   * does not drop it as a duplicate), then takes them off the held stream; answers those released.
   * A part named that is not held is left out of the answer.
   */
  release(ids: readonly string[] | 'all'): Promise<HeldPart[]>;
  close(): Promise<void>;
}

/** Options of openSettleIntake. */
export interface SettleIntakeOptions {
  /** NATS server(s), e.g. `nats://127.0.0.1:4222`. */
  readonly url: string;
  readonly shards: number;
  /** A name unique to the node on that server; the node's key id prefix. */
  readonly name: string;
  readonly db: Database;
  /** How long a worker may hold a part unacknowledged (SETTLE_ACK_WAIT_MS by default); tests shorten it. */
  readonly ackWaitMs?: number | undefined;
  /**
   * `node` (the default) records its shard count on the stream, changing it only while the stream
   * is empty; `worker` takes the stream as the node left it, and its count from it when `shards` is 0.
   */
  readonly role?: 'node' | 'worker' | undefined;
  readonly log?: ((line: string) => void) | undefined;
}

/** What the stream's description says: `tally settlement, N shards`. */
const DESCRIPTION = /^tally settlement, ([0-9]{1,2}) shards$/;

/** The delay before a part that failed is delivered again: doubling from SETTLE_RETRY_DELAY_MS, at most a minute. */
export function retryDelayMs(deliveries: number): number {
  return Math.min(60_000, SETTLE_RETRY_DELAY_MS * 2 ** Math.min(16, Math.max(0, deliveries - 1)));
}

/** The id of a part: SHA-256 over its request's fields, hex. */
export function settlePartId(...fields: readonly string[]): string {
  const hash = createHash('sha256');
  for (const field of fields) hash.update(`${field.length}:${field}`, 'utf8');
  return hash.digest('hex');
}

/**
 * Connects to NATS and makes sure the node's stream exists (file storage, work-queue retention,
 * the duplicate window above).
 * @throws TallyError NATS_UNREACHABLE when the server cannot be reached or has no JetStream
 */
export async function openSettleIntake(options: SettleIntakeOptions): Promise<SettleIntake> {
  checkName(options.name);
  const role = options.role ?? 'node';
  const fromStream = role === 'worker' && options.shards === 0;
  if (!fromStream && (!Number.isInteger(options.shards) || options.shards < 1 || options.shards > SETTLE_SHARDS_MAX)) {
    throw new RangeError(`shards: expected 1 to ${SETTLE_SHARDS_MAX}, got ${options.shards}`);
  }
  const connection = await connectNats(options.url, `tally-${options.name}`, true);
  const stream = `TALLY_SETTLE_${options.name}`;
  const heldStream = `TALLY_HELD_${options.name}`;
  const subjectPrefix = `tally.${options.name}`;
  let shards = options.shards;
  try {
    const manager = await jetstreamManager(connection);
    const config = (n: number) => ({
      name: stream,
      description: `tally settlement, ${n} shards`,
      subjects: [`${subjectPrefix}.work.>`],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      duplicate_window: SETTLE_DUPLICATE_WINDOW_MS * 1_000_000,
    });
    let existing: Awaited<ReturnType<typeof manager.streams.info>> | undefined;
    try {
      existing = await manager.streams.info(stream);
    } catch (e) {
      if (!isStreamMissing(e)) throw e;
    }
    const recorded = Number(DESCRIPTION.exec(existing?.config.description ?? '')?.[1] ?? Number.NaN);
    if (role === 'worker') {
      if (existing === undefined || Number.isNaN(recorded)) {
        throw new TallyError('SETTLE_SHARDS_MISMATCH', `NATS at ${options.url} has no settlement stream ${stream}: start the node with --nats first`, { stream, shards: options.shards, recorded: 0 });
      }
      if (fromStream) shards = recorded;
      else if (recorded !== shards) {
        throw new TallyError('SETTLE_SHARDS_MISMATCH', `the node settles in ${recorded} shards, not ${shards}: start the worker with --shards ${recorded}`, { stream, shards, recorded });
      }
    } else if (existing === undefined) {
      await manager.streams.add(config(shards));
    } else {
      // Parts wait on their shard's subject: a new count would leave them without a consumer.
      if (!Number.isNaN(recorded) && recorded !== shards && existing.state.messages > 0) {
        throw new TallyError('SETTLE_SHARDS_MISMATCH', `${existing.state.messages} parts still wait in ${recorded} shards: start the node with --shards ${recorded} until they are settled, then change it`, { stream, shards, recorded });
      }
      await manager.streams.update(stream, config(shards));
    }
    await ensureHeldStream(manager, heldStream, subjectPrefix);
  } catch (e) {
    await connection.close();
    if (isTallyError(e)) throw e;
    throw noJetStream(options.url, e);
  }
  const js = jetstream(connection);
  const held = heldStore(connection, js, heldStream, subjectPrefix);
  return {
    connection,
    subjectPrefix,
    ackWaitMs: options.ackWaitMs ?? SETTLE_ACK_WAIT_MS,
    shards,
    stream,
    heldStream,
    held: () => held.list(),
    release: (ids) => held.release(ids),
    shardOf: (key) => shardOfKey(key, shards),
    submit: (parts, waitMs = SETTLE_ANSWER_WAIT_MS) => submit(connection, js, subjectPrefix, options.db, shards, parts, waitMs, held.find),
    async close() {
      await connection.drain().catch(() => connection.close());
    },
  };
}

/** The shard a key's parts go to among `shards`: the first four bytes of its SHA-256, modulo the count. */
export function shardOfKey(key: string, shards: number): number {
  return createHash('sha256').update(key, 'utf8').digest().readUInt32BE(0) % shards;
}

async function submit(
  connection: NatsConnection,
  js: JetStreamClient,
  prefix: string,
  db: Database,
  shards: number,
  parts: readonly SettlePart[],
  waitMs: number,
  heldPart: (id: string) => Promise<HeldPart | undefined>,
): Promise<Array<StoredResponse | undefined>> {
  const deadline = Date.now() + waitMs;
  const encoder = new TextEncoder();
  const subscriptions: Subscription[] = [];
  try {
    const waits = parts.map(async (part) => {
      if (part.shard < 0 || part.shard >= shards || !Number.isInteger(part.shard)) throw new RangeError(`part ${part.id}: shard ${part.shard} is not one of the ${shards}`);
      const data = encoder.encode(JSON.stringify({ kind: part.kind, id: part.id, shard: part.shard, requestHash: toHex(part.requestHash), body: part.body }));
      if (data.length > SETTLE_PART_BYTES_MAX) throw new RangeError(`part ${part.id}: ${data.length} bytes, over the ${SETTLE_PART_BYTES_MAX} a part may have`);
      // A part's answer is its stored record; a part held for the operator is answered as held.
      const stored = async () => {
        const found = await storedResponse(db, part.kind, part.id, part.requestHash);
        if (found !== undefined) return found;
        const held = await heldPart(part.id);
        return held === undefined ? undefined : heldAnswer(held);
      };
      // Listening before publishing: a wake-up cannot come before the part is published. A
      // wake-up only says "look": the answer is read from the database, whoever sent it.
      const subscription = connection.subscribe(`${prefix}.done.${part.id}`);
      subscriptions.push(subscription);
      const answered = (async () => {
        for await (const _wake of subscription) {
          const found = await stored();
          if (found !== undefined) return found;
        }
        return undefined;
      })();
      // Never left to reject unheard (the part may be answered from the database first).
      answered.catch(() => undefined);
      const ack = await js.publish(`${prefix}.work.${part.shard}`, data, { msgID: part.id });
      // Published before (a re-sent request): its answer may already be stored.
      if (ack.duplicate) {
        const found = await stored();
        if (found !== undefined) return found;
      }
      const left = deadline - Date.now();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<undefined>((done) => (timer = setTimeout(() => done(undefined), Math.max(0, left))));
      try {
        // A last look at the database at the deadline: a wake-up lost on the way is no lost answer.
        return (await Promise.race([answered, late])) ?? (await stored());
      } finally {
        clearTimeout(timer);
      }
    });
    return await Promise.all(waits);
  } finally {
    for (const subscription of subscriptions) subscription.unsubscribe();
  }
}

/** Workers consuming shards of an intake. */
export interface SettleWorkers {
  /** Parts settled (answered and acknowledged) since the start. */
  readonly settled: number;
  /** Stops taking parts and waits for those in hand. */
  stop(): Promise<void>;
}

/**
 * Starts one consumer per shard in `shards` (every shard by default), each settling up to
 * SETTLE_WORKER_CONCURRENCY parts at once with the handler of the part's kind. A part is
 * acknowledged once its handler's transaction committed (the server's receipt awaited), then the
 * waiting node is woken. While a handler runs, the part is kept from redelivery by a heartbeat. A
 * handler that throws has its part delivered again after a delay that doubles with each delivery
 * (up to a minute): without end when the database did not answer, and otherwise until its
 * `deliveriesMax`-th delivery failed, when the part is moved to the held stream for the operator
 * (`tally settle held`, `release`) and its request is answered 503 SETTLE_HELD. A part of a kind
 * this worker has no handler for is left to another worker. A malformed part, which no route
 * publishes, is logged and dropped (acknowledged).
 */
export async function startSettleWorkers(
  intake: SettleIntake,
  handlers: ReadonlyMap<string, SettleHandler>,
  options: {
    shards?: readonly number[] | undefined;
    log?: ((line: string, fields?: Record<string, unknown>) => void) | undefined;
    /** Deliveries a part may fail on before it is held (SETTLE_DELIVERIES_MAX by default); tests lower it. */
    deliveriesMax?: number | undefined;
  } = {},
): Promise<SettleWorkers> {
  const log = options.log ?? (() => undefined);
  const deliveriesMax = options.deliveriesMax ?? SETTLE_DELIVERIES_MAX;
  if (!Number.isInteger(deliveriesMax) || deliveriesMax < 1) throw new RangeError(`deliveriesMax: expected a whole number from 1, got ${deliveriesMax}`);
  const manager = await jetstreamManager(intake.connection);
  const js = jetstream(intake.connection);
  const shards = options.shards ?? Array.from({ length: intake.shards }, (_, i) => i);
  const running: Array<{ messages: ConsumerMessages; done: Promise<void> }> = [];
  let settled = 0;
  for (const shard of shards) {
    if (!Number.isInteger(shard) || shard < 0 || shard >= intake.shards) throw new RangeError(`shard ${shard}: expected 0 to ${intake.shards - 1}`);
    const durable = `shard-${shard}`;
    const config = {
      durable_name: durable,
      filter_subject: `${intake.subjectPrefix}.work.${shard}`,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: intake.ackWaitMs * 1_000_000,
      max_deliver: -1,
      max_ack_pending: SETTLE_WORKER_CONCURRENCY * 4,
    };
    try {
      await manager.consumers.info(intake.stream, durable);
    } catch {
      await manager.consumers.add(intake.stream, config);
    }
    const consumer = await js.consumers.get(intake.stream, durable);
    const messages = await consumer.consume({ max_messages: SETTLE_WORKER_CONCURRENCY });
    const inHand = new Set<Promise<void>>();
    const retry = (message: JsMsg, line: string, fields: Record<string, unknown>, delay = retryDelayMs(message.info.deliveryCount)) => {
      log(line, { ...fields, deliveries: message.info.deliveryCount, retryInMs: delay });
      message.nak(delay);
    };
    const settleOne = async (message: JsMsg): Promise<void> => {
      let part: SettleWork;
      let wire: PartMessage;
      try {
        wire = partMessage.parse(message.json());
        part = { ...wire, requestHash: fromHex(wire.requestHash), body: wire.body as JsonValue };
      } catch (e) {
        log('a malformed settlement part was dropped', { shard, error: e instanceof Error ? e.message.slice(0, 300) : String(e) });
        await message.ackAck();
        return;
      }
      const handler = handlers.get(part.kind);
      if (handler === undefined || part.shard !== shard) {
        // Not a failure: soon again, so that a worker of the shard that has the handler gets it.
        retry(message, 'a settlement part this worker has no handler for is left to another', { shard, kind: part.kind, id: part.id }, SETTLE_RETRY_DELAY_MS);
        return;
      }
      // Kept from redelivery while it is being settled (a large part, a busy database).
      const heartbeat = setInterval(() => message.working(), Math.max(500, intake.ackWaitMs / 3));
      try {
        await handler(part);
      } catch (e) {
        const error = e instanceof Error ? e.message : String(e);
        // The database not answering is waited out however long it lasts; a failure of the part's
        // own (a bug, data the handler cannot take) is held for the operator after its last try.
        if (!isUnavailable(e) && message.info.deliveryCount >= deliveriesMax) {
          try {
            await holdPart(js, intake.subjectPrefix, wire, message.info.deliveryCount, error);
          } catch (held) {
            retry(message, 'a part that failed on every delivery could not be held; it will be delivered again', { shard, kind: part.kind, id: part.id, error, held: held instanceof Error ? held.message : String(held) });
            return;
          }
          await message.ackAck();
          log('a part failed on every delivery and is held for the operator (tally settle held)', { shard, kind: part.kind, id: part.id, deliveries: message.info.deliveryCount, error });
          intake.connection.publish(`${intake.subjectPrefix}.done.${part.id}`);
          return;
        }
        retry(message, 'settling a part failed; it will be delivered again', { shard, kind: part.kind, id: part.id, error });
        return;
      } finally {
        clearInterval(heartbeat);
      }
      // After the commit: a crash from here on leaves the answer stored, and a redelivery reads it.
      await message.ackAck();
      settled++;
      intake.connection.publish(`${intake.subjectPrefix}.done.${part.id}`);
    };
    const guarded = (message: JsMsg): Promise<void> =>
      settleOne(message).catch((e: unknown) => {
        // The connection went away under an acknowledgement: the part comes back after the ack wait.
        log('a settlement part could not be acknowledged; it will be delivered again', { shard, error: e instanceof Error ? e.message : String(e) });
      });
    const done = (async () => {
      for await (const message of messages) {
        const one = guarded(message).finally(() => inHand.delete(one));
        inHand.add(one);
        if (inHand.size >= SETTLE_WORKER_CONCURRENCY) await Promise.race(inHand);
      }
      await Promise.allSettled(inHand);
    })();
    running.push({ messages, done });
  }
  let stopping: Promise<void> | undefined;
  return {
    get settled() {
      return settled;
    },
    async stop() {
      stopping ??= (async () => {
        for (const r of running) await r.messages.close();
        await Promise.allSettled(running.map((r) => r.done));
      })();
      return stopping;
    },
  };
}
