/**
 * `tally settle worker`: a settlement worker in a process of its own, for a node started with
 * `--nats` (src/issuer/settle-worker.ts). It runs until Ctrl-C or SIGTERM, then finishes the parts
 * in hand; a part it held when killed is delivered again to another worker of its shard, or to it
 * after a restart. It logs one JSON line a minute with the parts settled, when it settled any.
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { currency } from '../core/amount.ts';
import { SCHEMES } from '../schemes/index.ts';
import { jsonLogger } from './log.ts';
import { UsageError, type Help } from './plugin.ts';

export const SETTLE_WORKER_HELP: Help = {
  usage: 'tally settle worker --data DIR --nats URL [--shards N] [--shard K,...] [--database-url URL] [--currency EUR:2] [--ack-wait 30] [--shard-database URL ...] [--json]',
  summary:
    "Runs a settlement worker until Ctrl-C for a node started with --nats: it takes parts of bulk claims from the node's NATS JetStream stream, for every shard or those given, and settles each in the node's PostgreSQL database, acknowledging it only after the commit. Any number may run beside the node's own workers (or instead of them, with tally node start --external-workers); it keeps no state and needs the node's data folder only to read its certificates.",
  options: [
    ['--data DIR', "the node's data folder (its identity is read, never written; default ./tally-data)"],
    ['--nats URL', "the node's NATS server (else $TALLY_NATS)"],
    ['--shards N', "the node's shard count, as given to tally node start (default: the count the node recorded on its stream); another count is refused"],
    ['--shard K,...', 'the shards this worker takes, from 0 (default every one)'],
    ['--database-url URL', "the node's PostgreSQL database (else $DATABASE_URL); a node on the embedded PGlite has no outside workers"],
    ['--currency CODE:DECIMALS', "the node's currency (default EUR:2)"],
    ['--shard-database URL', "the node's shard databases, each as the node was given it (--shard-database, in its order): the worker also receives the credits between the node's databases that are addressed to its shards"],
    ['--ack-wait SECONDS', 'how long a part may stay with a worker that does not answer before JetStream gives it to another (default 30); set when the shard\'s consumer is first made'],
    ['--json', 'print the start as a JSON line'],
  ],
  example: 'tally settle worker --data ./tally-data --nats nats://127.0.0.1:4222 --shards 4 --shard 2,3 --database-url postgres://tally@127.0.0.1/tally',
};

export async function settleWorker(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: 'string', default: './tally-data' },
      nats: { type: 'string' },
      shards: { type: 'string' },
      shard: { type: 'string' },
      'database-url': { type: 'string' },
      currency: { type: 'string', default: 'EUR:2' },
      'ack-wait': { type: 'string', default: '30' },
      'shard-database': { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
    },
  });
  const natsUrl = values.nats ?? (process.env['TALLY_NATS'] === '' ? undefined : process.env['TALLY_NATS']);
  if (natsUrl === undefined) throw new UsageError('--nats: give the NATS server the node settles through (or set $TALLY_NATS)');
  if (!/^(nats|tls):\/\/\S+$/.test(natsUrl)) throw new UsageError(`--nats: expected a nats:// or tls:// URL, got ${JSON.stringify(natsUrl)}`);
  const shards = values.shards === undefined ? 0 : Number(values.shards);
  if (values.shards !== undefined && (!/^\d+$/.test(values.shards) || shards < 1 || shards > 64)) throw new UsageError(`--shards: expected 1 to 64, got ${JSON.stringify(values.shards)}`);
  const only = values.shard?.split(',').map((text) => {
    const k = Number(text.trim());
    if (!/^\d+$/.test(text.trim()) || k > 63 || (shards > 0 && k >= shards)) throw new UsageError(`--shard: expected shards from 0 to ${(shards || 64) - 1}, got ${JSON.stringify(text)}`);
    return k;
  });
  const databaseUrl = values['database-url'] ?? (process.env['DATABASE_URL'] === '' ? undefined : process.env['DATABASE_URL']);
  if (databaseUrl === undefined) throw new UsageError("--database-url: a worker settles in the node's PostgreSQL database (or set $DATABASE_URL); a node on the embedded PGlite settles with its own workers only");
  const match = /^([A-Z][A-Z0-9]{2,11}):([0-9]{1,2})$/.exec(values.currency);
  if (match === null) throw new UsageError(`--currency: expected CODE:DECIMALS such as EUR:2, got ${JSON.stringify(values.currency)}`);
  const ackWait = Number(values['ack-wait']);
  if (!/^\d+(\.\d+)?$/.test(values['ack-wait']) || ackWait < 1 || ackWait > 3600) throw new UsageError(`--ack-wait: expected 1 to 3600 seconds, got ${JSON.stringify(values['ack-wait'])}`);
  const shardDatabases = values['shard-database'] ?? [];
  for (const url of shardDatabases) if (!/^postgres(ql)?:\/\/\S+$/.test(url)) throw new UsageError(`--shard-database: expected a postgres:// URL, got ${JSON.stringify(url.slice(0, 80))}`);
  if (shardDatabases.length > 0 && shards > 0 && shardDatabases.length !== shards) throw new UsageError(`--shard-database: ${shardDatabases.length} given for ${shards} shards: give the node's, one per shard`);
  const logger = jsonLogger();
  const { startSettleWorker } = await import('../issuer/settle-worker.ts');
  const { nodeProvider } = await import('../providers/node-crypto.ts');
  const schemes = await Promise.all(SCHEMES.map((scheme) => scheme.node()));
  const worker = await startSettleWorker({
    dataDir: resolve(values.data),
    databaseUrl,
    natsUrl,
    shards,
    only,
    ackWaitMs: Math.round(ackWait * 1000),
    ...(shardDatabases.length === 0 ? {} : { shardDatabases }),
    provider: nodeProvider,
    currency: currency(match[1] as string, Number(match[2])),
    schemes,
    log: (line, fields) => logger.log('warn', line, fields),
  });
  const stopped = new Promise<void>((done) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void worker.stop().then(done);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  let reported = 0;
  const progress = setInterval(() => {
    if (worker.settled === reported) return;
    reported = worker.settled;
    logger.log('info', 'parts settled', { settled: reported });
  }, 60_000);
  progress.unref();
  process.stdout.write(
    values.json
      ? `${JSON.stringify({ event: 'working', stream: worker.stream, shards: worker.shards })}\n`
      : `Settlement worker on stream ${worker.stream}, shard${worker.shards.length === 1 ? '' : 's'} ${worker.shards.join(', ')} (Ctrl-C stops it).\n`,
  );
  await stopped;
  clearInterval(progress);
  logger.log('info', 'stopped', { settled: worker.settled });
  return 0;
}
