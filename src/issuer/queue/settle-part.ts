/**
 * What the settlement intake's streams share: a part's form on the wire, the shard bounds, and the
 * connection to NATS with the errors an operator is shown when it fails.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { TallyError } from '../../core/errors.ts';
import type { JsonValue } from '../ledger/json.ts';

/** Most shards a node cuts its settlement into. */
export const SETTLE_SHARDS_MAX = 64;
/** How long connecting to NATS may take before the start fails. */
export const SETTLE_CONNECT_TIMEOUT_MS = 5_000;
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

/** A part as it travels on the work and held streams: its request hash in hex. */
export const partMessage = z.strictObject({
  kind: z.string().regex(/^[a-z][a-z0-9/._-]{0,63}$/),
  id: z.string().regex(/^[0-9a-f]{64}$/),
  shard: z.number().int().min(0).max(SETTLE_SHARDS_MAX - 1),
  requestHash: z.string().regex(/^[0-9a-f]{64}$/),
  body: z.json(),
});
export type PartMessage = z.infer<typeof partMessage>;

/** A node's name on the server (its key id prefix) names its streams and subjects. */
export function checkName(name: string): void {
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(name)) throw new TypeError(`settle intake name: expected 1 to 32 letters, digits, _ or -, got ${JSON.stringify(name.slice(0, 40))}`);
}

/**
 * Connects to the NATS server(s) at `url` as `client`; `reconnect` keeps trying for ever once
 * connected (a node, a worker), otherwise the first loss ends the connection (an operator's command).
 * @throws TallyError NATS_UNREACHABLE
 */
export async function connectNats(url: string, client: string, reconnect: boolean): Promise<NatsConnection> {
  try {
    return await connect({ servers: url, timeout: SETTLE_CONNECT_TIMEOUT_MS, name: client, ...(reconnect ? { maxReconnectAttempts: -1 } : {}) });
  } catch (e) {
    throw new TallyError('NATS_UNREACHABLE', `cannot connect to NATS at ${url}: ${e instanceof Error ? e.message : String(e)}`, { url }, { cause: e });
  }
}

/** The error for a server that answered but whose JetStream cannot be used. */
export function noJetStream(url: string, e: unknown): TallyError {
  return new TallyError('NATS_UNREACHABLE', `NATS at ${url} has no usable JetStream: ${e instanceof Error ? e.message : String(e)}`, { url }, { cause: e });
}

/** Whether JetStream answered that a stream does not exist. */
export function isStreamMissing(e: unknown): boolean {
  return /stream not found/i.test(e instanceof Error ? e.message : String(e));
}
