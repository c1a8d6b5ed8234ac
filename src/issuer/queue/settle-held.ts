/**
 * Settlement parts held for the operator: a part whose handler failed on every one of its
 * deliveries for a reason of its own is kept on a stream of its own (`TALLY_HELD_<name>`, one
 * subject per part) rather than delivered again without end. Its request is answered 503
 * SETTLE_HELD; the operator lists the held parts and puts them back to work (`tally settle held`,
 * `tally settle release`, `GET /v1/settle/held`).
 */
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
    description: 'tally settlement parts held for the operator',
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
  const all = async () => {
    const jsm = await manager();
    const info = await jsm.streams.info(stream);
    const found: Array<NonNullable<ReturnType<typeof entryOf>>> = [];
    for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
      const stored = await jsm.streams.getMessage(stream, { seq });
      const entry = stored === null ? undefined : entryOf(stored);
      if (entry !== undefined) found.push(entry);
    }
    return found;
  };
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
    close: () => connection.close(),
  };
}

