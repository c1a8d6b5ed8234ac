/**
 * The NATS server the tests use: $TEST_NATS_URL, else the one this project's machines and CI run
 * at 127.0.0.1:4222 (with JetStream). Tests that need it fail, naming it, when it does not answer.
 */
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

export function testNatsUrl(): string {
  const url = process.env['TEST_NATS_URL'];
  return url === undefined || url === '' ? 'nats://127.0.0.1:4222' : url;
}

/** Deletes a stream a test made (streams are kept on the server's disk otherwise), and a settlement or credit stream's held parts and crossings. */
export async function deleteTestStream(url: string, stream: string): Promise<void> {
  const connection = await connect({ servers: url, timeout: 5_000 });
  try {
    const manager = await jetstreamManager(connection);
    await manager.streams.delete(stream).catch(() => false);
    // A settlement stream's held parts, and a credit stream's held crossings, live in a stream of their own.
    const held = /^TALLY_(SETTLE|CREDIT)_/;
    if (held.test(stream)) await manager.streams.delete(stream.replace(held, 'TALLY_HELD_')).catch(() => false);
  } finally {
    await connection.close();
  }
}

/** How many messages a stream holds (a work queue: the parts not acknowledged yet). */
export async function streamMessages(url: string, stream: string): Promise<number> {
  const connection = await connect({ servers: url, timeout: 5_000 });
  try {
    return (await (await jetstreamManager(connection)).streams.info(stream)).state.messages;
  } finally {
    await connection.close();
  }
}

/** How many parts a shard's workers hold, delivered and not acknowledged yet. */
export async function partsInHand(url: string, stream: string, shard: number): Promise<number> {
  const connection = await connect({ servers: url, timeout: 5_000 });
  try {
    return (await (await jetstreamManager(connection)).consumers.info(stream, `shard-${shard}`)).num_ack_pending;
  } finally {
    await connection.close();
  }
}
