/**
 * Settlement intake on NATS JetStream, sharded within one intermediary.
 *
 * A node that is given a NATS server (`tally node start --nats URL --shards N`) does not settle a
 * scheme's batch on its request thread: the route cuts the batch into parts by shard (a scheme
 * chooses the shard key: for OPS the payer's device, so that every payment of one device, and so
 * every fork of a cloned one, meets on one shard) and publishes each part to the durable stream,
 * on the subject of its shard. Settlement workers consume a shard's subject, settle a part in one
 * database transaction under its own idempotency record, tell the waiting node the answer, and
 * only then acknowledge the message. So:
 * - a part is published with its id as the JetStream message id, and the stream drops a
 *   re-publish within its duplicate window (a node that lost the publish's answer publishes again);
 * - a worker that dies before its acknowledgement has the message redelivered, to itself after a
 *   restart or to another worker of the shard, and the part's idempotency record answers the
 *   second delivery with the first one's answer when its transaction had committed;
 * - the node waits for each part's answer on a plain NATS subject named after the part, and reads
 *   the stored answer from the database when the part had been settled before it asked.
 * Workers run in the node's process (`startSettleWorkers`), as many shards as asked. The money stays
 * in the node's one ledger; databases per shard are not built (docs/scale.md says what they need).
 */
import { createHash } from 'node:crypto';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type ConsumerMessages, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import { z } from 'zod';
import { fromHex, toHex } from '../../core/bytes.ts';
import { TallyError } from '../../core/errors.ts';
import type { Database } from '../db/database.ts';
import { storedResponse, type StoredResponse } from '../ledger/idempotency.ts';
import type { JsonValue } from '../ledger/json.ts';

/** Most shards a node cuts its settlement into. */
export const SETTLE_SHARDS_MAX = 64;
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
/** How long connecting to NATS may take before the start fails. */
export const SETTLE_CONNECT_TIMEOUT_MS = 5_000;
/** The largest part, in bytes of JSON; NATS servers take 1 MiB messages by default. */
export const SETTLE_PART_BYTES_MAX = 900 * 1024;

/** One part of a batch, as a route submits it. */
export interface SettlePart {
  /** Which handler settles it, e.g. `ops/claims-bulk`; also the scope of its idempotency record. */
  readonly kind: string;
  /** Unique for the part and stable across re-sends of the request (hex SHA-256). */
  readonly id: string;
  readonly shard: number;
  /** SHA-256 of the request the part came from: another request under the same id is a conflict. */
  readonly requestHash: Uint8Array;
  readonly body: JsonValue;
}

/** A part as a worker's handler receives it. */
export type SettleWork = SettlePart;

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
}

/** A connection to the intake: the queue, and what workers consume. */
export interface SettleIntake extends SettleQueue {
  readonly connection: NatsConnection;
  readonly subjectPrefix: string;
  readonly ackWaitMs: number;
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
  readonly log?: ((line: string) => void) | undefined;
}

const partMessage = z.strictObject({
  kind: z.string().regex(/^[a-z][a-z0-9/._-]{0,63}$/),
  id: z.string().regex(/^[0-9a-f]{64}$/),
  shard: z.number().int().min(0).max(SETTLE_SHARDS_MAX - 1),
  requestHash: z.string().regex(/^[0-9a-f]{64}$/),
  body: z.json(),
});

const answerMessage = z.strictObject({ requestHash: z.string().regex(/^[0-9a-f]{64}$/), status: z.number().int().min(100).max(599), body: z.json() });

/** The answer to a part submitted under an id another request holds: the part ids of a request come from its idempotency key. */
function conflict(id: string): StoredResponse {
  return { status: 409, body: { error: { code: 'IDEMPOTENCY_CONFLICT', message: `part ${id} belongs to another request under the same idempotency key: use a new key for a new request`, details: {} } } };
}

/** The id of a part: SHA-256 over its request's fields, hex. */
export function settlePartId(...fields: readonly string[]): string {
  const hash = createHash('sha256');
  for (const field of fields) hash.update(`${field.length}:${field}`, 'utf8');
  return hash.digest('hex');
}

function checkName(name: string): void {
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(name)) throw new TypeError(`settle intake name: expected 1 to 32 letters, digits, _ or -, got ${JSON.stringify(name.slice(0, 40))}`);
}

/**
 * Connects to NATS and makes sure the node's stream exists (file storage, work-queue retention,
 * the duplicate window above).
 * @throws TallyError NATS_UNREACHABLE when the server cannot be reached or has no JetStream
 */
export async function openSettleIntake(options: SettleIntakeOptions): Promise<SettleIntake> {
  checkName(options.name);
  if (!Number.isInteger(options.shards) || options.shards < 1 || options.shards > SETTLE_SHARDS_MAX) {
    throw new RangeError(`shards: expected 1 to ${SETTLE_SHARDS_MAX}, got ${options.shards}`);
  }
  let connection: NatsConnection;
  try {
    connection = await connect({ servers: options.url, timeout: SETTLE_CONNECT_TIMEOUT_MS, name: `tally-${options.name}`, maxReconnectAttempts: -1 });
  } catch (e) {
    throw new TallyError('NATS_UNREACHABLE', `cannot connect to NATS at ${options.url}: ${e instanceof Error ? e.message : String(e)}`, { url: options.url }, { cause: e });
  }
  const stream = `TALLY_SETTLE_${options.name}`;
  const subjectPrefix = `tally.${options.name}`;
  try {
    const manager = await jetstreamManager(connection);
    const config = {
      name: stream,
      subjects: [`${subjectPrefix}.work.>`],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      duplicate_window: SETTLE_DUPLICATE_WINDOW_MS * 1_000_000,
    };
    try {
      await manager.streams.info(stream);
      await manager.streams.update(stream, config);
    } catch (e) {
      if (!/stream not found/i.test(e instanceof Error ? e.message : String(e))) throw e;
      await manager.streams.add(config);
    }
  } catch (e) {
    await connection.close();
    throw new TallyError('NATS_UNREACHABLE', `NATS at ${options.url} has no usable JetStream: ${e instanceof Error ? e.message : String(e)}`, { url: options.url }, { cause: e });
  }
  const js = jetstream(connection);
  const shards = options.shards;
  return {
    connection,
    subjectPrefix,
    ackWaitMs: options.ackWaitMs ?? SETTLE_ACK_WAIT_MS,
    shards,
    stream,
    shardOf: (key) => createHash('sha256').update(key, 'utf8').digest().readUInt32BE(0) % shards,
    submit: (parts, waitMs = SETTLE_ANSWER_WAIT_MS) => submit(connection, js, subjectPrefix, options.db, shards, parts, waitMs),
    async close() {
      await connection.drain().catch(() => connection.close());
    },
  };
}

async function submit(
  connection: NatsConnection,
  js: JetStreamClient,
  prefix: string,
  db: Database,
  shards: number,
  parts: readonly SettlePart[],
  waitMs: number,
): Promise<Array<StoredResponse | undefined>> {
  const deadline = Date.now() + waitMs;
  const encoder = new TextEncoder();
  const subscriptions: Subscription[] = [];
  try {
    const waits = parts.map(async (part) => {
      if (part.shard < 0 || part.shard >= shards || !Number.isInteger(part.shard)) throw new RangeError(`part ${part.id}: shard ${part.shard} is not one of the ${shards}`);
      const data = encoder.encode(JSON.stringify({ kind: part.kind, id: part.id, shard: part.shard, requestHash: toHex(part.requestHash), body: part.body }));
      if (data.length > SETTLE_PART_BYTES_MAX) throw new RangeError(`part ${part.id}: ${data.length} bytes, over the ${SETTLE_PART_BYTES_MAX} a part may have`);
      // Listening before publishing: an answer cannot come before the part is published.
      const subscription = connection.subscribe(`${prefix}.done.${part.id}`, { max: 1 });
      subscriptions.push(subscription);
      const hash = toHex(part.requestHash);
      const answered = (async () => {
        for await (const message of subscription) {
          const { requestHash, ...answer } = answerMessage.parse(message.json());
          // Another request under the same key, settled first: its answer is not this one's.
          return requestHash === hash ? (answer as StoredResponse) : conflict(part.id);
        }
        return undefined;
      })();
      const ack = await js.publish(`${prefix}.work.${part.shard}`, data, { msgID: part.id });
      // Published before (a re-sent request): its answer may already be stored.
      if (ack.duplicate) {
        const stored = await storedResponse(db, part.kind, part.id, part.requestHash);
        if (stored !== undefined) return stored;
      }
      const left = deadline - Date.now();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<undefined>((done) => (timer = setTimeout(() => done(undefined), Math.max(0, left))));
      try {
        return await Promise.race([answered, late]);
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
 * acknowledged after its handler's transaction committed and its answer was published; a handler
 * that throws has its part delivered again after SETTLE_RETRY_DELAY_MS; a malformed part or one of
 * an unknown kind is logged and dropped (acknowledged, so that it leaves the stream unsettled).
 */
export async function startSettleWorkers(
  intake: SettleIntake,
  handlers: ReadonlyMap<string, SettleHandler>,
  options: { shards?: readonly number[] | undefined; log?: ((line: string, fields?: Record<string, unknown>) => void) | undefined } = {},
): Promise<SettleWorkers> {
  const log = options.log ?? (() => undefined);
  const manager = await jetstreamManager(intake.connection);
  const js = jetstream(intake.connection);
  const shards = options.shards ?? Array.from({ length: intake.shards }, (_, i) => i);
  const running: Array<{ messages: ConsumerMessages; done: Promise<void> }> = [];
  let settled = 0;
  const encoder = new TextEncoder();
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
    const settleOne = async (message: JsMsg): Promise<void> => {
      let part: SettleWork;
      try {
        const parsed = partMessage.parse(message.json());
        part = { ...parsed, requestHash: fromHex(parsed.requestHash), body: parsed.body as JsonValue };
      } catch (e) {
        log('a malformed settlement part was dropped', { shard, error: e instanceof Error ? e.message.slice(0, 300) : String(e) });
        await message.ackAck();
        return;
      }
      const handler = handlers.get(part.kind);
      if (handler === undefined || part.shard !== shard) {
        log('a settlement part no handler takes was dropped', { shard, kind: part.kind, id: part.id });
        await message.ackAck();
        return;
      }
      try {
        const answer = await handler(part);
        // Acknowledged (and the server's receipt awaited) before the answer goes out: whoever has
        // the answer finds the part gone from the stream. A crash in between loses only the
        // notification; the answer is stored, and the request sent again is answered from it.
        await message.ackAck();
        settled++;
        intake.connection.publish(`${intake.subjectPrefix}.done.${part.id}`, encoder.encode(JSON.stringify({ requestHash: toHex(part.requestHash), ...answer })));
      } catch (e) {
        log('settling a part failed; it will be delivered again', { shard, kind: part.kind, id: part.id, error: e instanceof Error ? e.message : String(e) });
        message.nak(SETTLE_RETRY_DELAY_MS);
      }
    };
    const done = (async () => {
      for await (const message of messages) {
        const one = settleOne(message).finally(() => inHand.delete(one));
        inHand.add(one);
        if (inHand.size >= SETTLE_WORKER_CONCURRENCY) await Promise.race(inHand);
      }
      await Promise.allSettled(inHand);
    })();
    running.push({ messages, done });
  }
  return {
    get settled() {
      return settled;
    },
    async stop() {
      for (const r of running) await r.messages.close();
      await Promise.allSettled(running.map((r) => r.done));
    },
  };
}
