/**
 * Settlement parts and crossings held for the operator: a part whose handler failed on every one
 * of its deliveries for a reason of its own is kept on a stream of its own (`TALLY_HELD_<name>`,
 * one subject per part) rather than delivered again without end. Its request is answered 503
 * SETTLE_HELD. A crossing between the node's databases whose receipt failed so (queue/credit-relay.ts)
 * is kept on the same stream, under `held.credit.<sender>.<digest of its id>`, and is published
 * again by no one until it is released. The operator lists both and puts them back to work
 * (`tally settle held`, `tally settle release`, `GET /v1/settle/held`).
 */
import { createHash } from 'node:crypto';
import { DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { isTallyError, TallyError } from '../../core/errors.ts';
import type { StoredResponse } from '../ledger/idempotency.ts';
import { checkName, connectNats, isStreamMissing, noJetStream, partMessage, type PartMessage } from './settle-part.ts';

/** Most parts the held stream keeps; past it, holding a part fails and the part is delivered again. */
export const SETTLE_HELD_MAX = 100_000;

/** A part held for the operator: its handler failed on every one of its deliveries. */
export interface HeldPart {
  readonly kind: string;
  readonly id: string;
  readonly shard: number;
  /** Deliveries it failed on. */
  readonly deliveries: number;
  /** The last failure's message. */
  readonly error: string;
  /** When it was held, ISO 8601. */
  readonly heldAt: string;
}

const heldMessage = z.strictObject({
  part: partMessage,
  deliveries: z.number().int().min(1),
  error: z.string().max(2_000),
  heldAt: z.string().max(40),
});

/** A crossing held for the operator: its receipt failed on every one of its deliveries. */
export interface HeldCrossing {
  /** The sending place, the receiving place and the sender's outbox id. */
  readonly from: string;
  readonly to: string;
  readonly id: string;
  /** Its kind and amount (minor units), when the receiver could read the sender's outbox row. */
  readonly kind: string | null;
  readonly amount: string | null;
  readonly deliveries: number;
  readonly error: string;
  readonly heldAt: string;
}

const place = z.string().regex(/^(home|s[0-9]{1,2})$/);
const heldCrossingMessage = z.strictObject({
  crossing: z.strictObject({
    from: place,
    to: place,
    id: z.string().min(1).max(128),
    kind: z.string().max(64).nullable(),
    amount: z.string().regex(/^[0-9]{1,19}$/).nullable(),
  }),
  deliveries: z.number().int().min(1),
  error: z.string().max(2_000),
  heldAt: z.string().max(40),
});

/** The held stream's subject of the crossing `id` sent by `from` (ids may hold characters a subject cannot). */
function crossingSubject(prefix: string, from: string, id: string): string {
  return `${prefix}.held.credit.${from}.${createHash('sha256').update(`${from}:${id}`, 'utf8').digest('hex')}`;
}

/** Writes the hold of a crossing that failed on its `deliveries`-th delivery; its subject keeps the latest hold only. */
export async function holdCrossing(js: JetStreamClient, prefix: string, crossing: Omit<HeldCrossing, 'deliveries' | 'error' | 'heldAt'>, deliveries: number, error: string): Promise<void> {
  const record: z.infer<typeof heldCrossingMessage> = { crossing: { ...crossing }, deliveries, error: error.slice(0, 2_000), heldAt: new Date().toISOString() };
  await js.publish(crossingSubject(prefix, crossing.from, crossing.id), JSON.stringify(record));
}

/** Writes the hold of a part that failed on its `deliveries`-th delivery; its subject keeps the latest hold only. */
export async function holdPart(js: JetStreamClient, prefix: string, part: PartMessage, deliveries: number, error: string): Promise<void> {
  const record: z.infer<typeof heldMessage> = { part, deliveries, error: error.slice(0, 2_000), heldAt: new Date().toISOString() };
  await js.publish(`${prefix}.held.${part.id}`, JSON.stringify(record));
}

/**
 * Makes sure the stream of held parts exists: one subject per part (`<prefix>.held.<id>`, the
 * latest hold kept), file storage, at most SETTLE_HELD_MAX parts (a hold past it is refused).
 */
export async function ensureHeldStream(manager: Awaited<ReturnType<typeof jetstreamManager>>, name: string, prefix: string): Promise<void> {
  const config = {
    name,
    description: 'tally settlement parts and crossings held for the operator',
    subjects: [`${prefix}.held.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_msgs: SETTLE_HELD_MAX,
    max_msgs_per_subject: 1,
    discard: DiscardPolicy.New,
  };
  try {
    await manager.streams.info(name);
    return;
  } catch (e) {
    if (!isStreamMissing(e)) throw e;
  }
  try {
    await manager.streams.add(config);
  } catch (e) {
    // Made at the same moment by the node or another worker.
    if (!/already in use/i.test(e instanceof Error ? e.message : String(e))) throw e;
  }
}

/** The held parts' store on NATS: finding one part, listing them, putting them back to work. */
export function heldStore(connection: NatsConnection, js: JetStreamClient, stream: string, prefix: string) {
  /** A stored hold: the part as listed, its sequence, and the part as it goes back to work; undefined when it does not decode. */
  const entryOf = (stored: { seq: number; json(): unknown }) => {
    const parsed = heldMessage.safeParse(stored.json());
    if (!parsed.success) return undefined;
    const { part, deliveries, error, heldAt } = parsed.data;
    const held: HeldPart = { kind: part.kind, id: part.id, shard: part.shard, deliveries, error, heldAt };
    return { held, seq: stored.seq, part };
  };
  const manager = () => jetstreamManager(connection);
  /** The held message of part `id`, with its sequence, or undefined. */
  const get = async (id: string) => {
    if (!/^[0-9a-f]{64}$/.test(id)) return undefined;
    const stored = await (await manager()).streams.getMessage(stream, { last_by_subj: `${prefix}.held.${id}` });
    return stored === null ? undefined : entryOf(stored);
  };
  /** Every stored hold, parts and crossings, oldest first. */
  const stored = async () => {
    const jsm = await manager();
    const info = await jsm.streams.info(stream);
    const found: Array<{ seq: number; json(): unknown }> = [];
    for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
      const one = await jsm.streams.getMessage(stream, { seq });
      if (one !== null) found.push(one);
    }
    return found;
  };
  const all = async () => (await stored()).map(entryOf).filter((e) => e !== undefined);
  /** A stored crossing hold, with its sequence; undefined when it does not decode as one. */
  const crossingOf = (one: { seq: number; json(): unknown }) => {
    const parsed = heldCrossingMessage.safeParse(one.json());
    if (!parsed.success) return undefined;
    const { crossing, deliveries, error, heldAt } = parsed.data;
    return { held: { ...crossing, deliveries, error, heldAt } satisfies HeldCrossing, seq: one.seq };
  };
  const getCrossing = async (from: string, id: string) => {
    if (!place.safeParse(from).success || id.length === 0 || id.length > 128) return undefined;
    const one = await (await manager()).streams.getMessage(stream, { last_by_subj: crossingSubject(prefix, from, id) });
    return one === null ? undefined : crossingOf(one);
  };
  const allCrossings = async () => (await stored()).map(crossingOf).filter((e) => e !== undefined);
  return {
    // A held stream someone deleted holds nothing: the part is waited for as any other.
    find: async (id: string): Promise<HeldPart | undefined> => (await get(id).catch(() => undefined))?.held,
    list: async (): Promise<HeldPart[]> => (await all()).map((h) => h.held),
    release: async (ids: readonly string[] | 'all'): Promise<HeldPart[]> => {
      const chosen = ids === 'all' ? await all() : (await Promise.all([...new Set(ids)].map(get))).filter((h) => h !== undefined);
      const jsm = await manager();
      const released: HeldPart[] = [];
      for (const { held, seq, part } of chosen) {
        // Back to work first, then off the held stream: a crash between leaves it in both, and
        // releasing it again settles nothing twice (the part's record answers).
        await js.publish(`${prefix}.work.${part.shard}`, JSON.stringify(part), { msgID: `${part.id}:released:${seq}` });
        await jsm.streams.deleteMessage(stream, seq);
        released.push(held);
      }
      return released;
    },
    /** The hold of the crossing `id` sent by `from`, or undefined (also when the held stream cannot be read). */
    findCrossing: async (from: string, id: string): Promise<HeldCrossing | undefined> => (await getCrossing(from, id))?.held,
    crossings: async (): Promise<HeldCrossing[]> => (await allCrossings()).map((h) => h.held),
    /**
     * Publishes held crossings to their receivers again (each under a new message id), then takes
     * them off the held stream; answers those released. `keys` are `<from>:<id>`.
     */
    releaseCrossings: async (keys: readonly string[] | 'all'): Promise<HeldCrossing[]> => {
      const chosen =
        keys === 'all'
          ? await allCrossings()
          : (
              await Promise.all(
                [...new Set(keys)].map((key) => {
                  const at = key.indexOf(':');
                  return at < 0 ? undefined : getCrossing(key.slice(0, at), key.slice(at + 1));
                }),
              )
            ).filter((h) => h !== undefined);
      const jsm = await manager();
      const released: HeldCrossing[] = [];
      for (const { held, seq } of chosen) {
        // As a part: back to its receiver first, then off the held stream. A crash between leaves it
        // in both; its receiver's inbox makes a second receipt a no-op.
        await js.publish(`${prefix}.credit.${held.to}`, JSON.stringify({ from: held.from, id: held.id }), { msgID: `${held.from}:${held.id}:released:${seq}` });
        await jsm.streams.deleteMessage(stream, seq);
        released.push(held);
      }
      return released;
    },
  };
}

/** The answer given for a part held for the operator, in the HTTP API's problem shape. */
export function heldAnswer(held: HeldPart): StoredResponse {
  return {
    status: 503,
    body: {
      error: {
        code: 'SETTLE_HELD',
        message: `part ${held.id} of this request failed on each of its ${held.deliveries} deliveries and is held for the operator (tally settle held): once released, the same request sent again under the same Idempotency-Key gets its answer`,
        details: { part: held.id, shard: held.shard, deliveries: held.deliveries, heldAt: held.heldAt },
      },
    },
  };
}

/** The held parts of a node's intake, for the operator: no database, no workers. */
export interface HeldParts {
  readonly stream: string;
  held(): Promise<HeldPart[]>;
  release(ids: readonly string[] | 'all'): Promise<HeldPart[]>;
  /** The crossings between the node's databases held for the operator, oldest first. */
  crossings(): Promise<HeldCrossing[]>;
  /** Puts held crossings (`<from>:<id>`, or all) back to their receivers; answers those released. */
  releaseCrossings(keys: readonly string[] | 'all'): Promise<HeldCrossing[]>;
  close(): Promise<void>;
}

/**
 * Connects to the held parts of the node named `name` (its key id prefix, as openSettleIntake's).
 * @throws TallyError NATS_UNREACHABLE; SETTLE_SHARDS_MISMATCH when the node never settled through this server
 */
export async function openHeldParts(options: { url: string; name: string }): Promise<HeldParts> {
  checkName(options.name);
  const connection = await connectNats(options.url, `tally-${options.name}-operator`, false);
  const stream = `TALLY_HELD_${options.name}`;
  const prefix = `tally.${options.name}`;
  try {
    const manager = await jetstreamManager(connection);
    try {
      await manager.streams.info(`TALLY_SETTLE_${options.name}`);
    } catch (e) {
      if (!isStreamMissing(e)) throw e;
      throw new TallyError('SETTLE_SHARDS_MISMATCH', `NATS at ${options.url} has no settlement stream TALLY_SETTLE_${options.name}: this node never settled through it (tally node start --nats)`, { stream: `TALLY_SETTLE_${options.name}`, shards: 0, recorded: 0 });
    }
    await ensureHeldStream(manager, stream, prefix);
  } catch (e) {
    await connection.close();
    if (isTallyError(e)) throw e;
    throw noJetStream(options.url, e);
  }
  const store = heldStore(connection, jetstream(connection), stream, prefix);
  return {
    stream,
    held: () => store.list(),
    release: (ids) => store.release(ids),
    crossings: () => store.crossings(),
    releaseCrossings: (keys) => store.releaseCrossings(keys),
    close: () => connection.close(),
  };
}

