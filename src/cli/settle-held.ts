/**
 * `tally settle held` and `tally settle release`: the operator's view of the settlement parts that
 * failed on every delivery and were held (src/issuer/queue/settle-queue.ts), and putting them back
 * to work once what made them fail is fixed. Both read the node's key id from its data folder (no
 * passphrase needed) and talk to its NATS server only.
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { UsageError, type Help } from './plugin.ts';

const common: Array<[string, string]> = [
  ['--data DIR', "the node's data folder (only its manifest and certificate are read; default ./tally-data)"],
  ['--nats URL', "the node's NATS server (else $TALLY_NATS)"],
  ['--json', 'print the answer as one JSON object'],
];

export const SETTLE_HELD_HELP: Help = {
  usage: 'tally settle held --data DIR --nats URL [--json]',
  summary:
    "Lists the settlement parts held for the operator: parts whose settlement failed on each of their deliveries (about a quarter of an hour of tries) for a reason of their own, not because the database was away. Each shows its id, kind, shard, tries, when it was held and the last error; the request it belongs to is answered 503 SETTLE_HELD until the part is released (tally settle release) and settled.",
  options: common,
  example: 'tally settle held --data ./tally-data --nats nats://127.0.0.1:4222',
};

export const SETTLE_RELEASE_HELP: Help = {
  usage: 'tally settle release --data DIR --nats URL (--part ID ... | --all) [--json]',
  summary:
    "Puts held settlement parts back on their shards, once what made them fail is fixed: each is delivered to a worker again and settled once (a part settled before answers from its record). The request a part belongs to gets its answer when sent again under the same Idempotency-Key.",
  options: [
    ['--part ID', 'a held part to release (its id, as tally settle held shows it); may be given several times'],
    ['--all', 'release every held part'],
    ...common,
  ],
  example: 'tally settle release --data ./tally-data --nats nats://127.0.0.1:4222 --all',
};

function natsOf(value: string | undefined): string {
  const url = value ?? (process.env['TALLY_NATS'] === '' ? undefined : process.env['TALLY_NATS']);
  if (url === undefined) throw new UsageError('--nats: give the NATS server the node settles through (or set $TALLY_NATS)');
  if (!/^(nats|tls):\/\/\S+$/.test(url)) throw new UsageError(`--nats: expected a nats:// or tls:// URL, got ${JSON.stringify(url)}`);
  return url;
}

async function open(data: string, url: string) {
  const { readIssuerNodeKeyId } = await import('../issuer/identity/load-identity.ts');
  const { openHeldParts } = await import('../issuer/queue/settle-held.ts');
  return openHeldParts({ url, name: (await readIssuerNodeKeyId(resolve(data))).slice(0, 16) });
}

export async function settleHeld(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { data: { type: 'string', default: './tally-data' }, nats: { type: 'string' }, json: { type: 'boolean', default: false } } });
  const parts = await open(values.data, natsOf(values.nats));
  try {
    const held = await parts.held();
    if (values.json) process.stdout.write(`${JSON.stringify({ stream: parts.stream, held })}\n`);
    else if (held.length === 0) process.stdout.write('No settlement part is held.\n');
    else {
      process.stdout.write(`${held.length} settlement part${held.length === 1 ? ' is' : 's are'} held (tally settle release --part ID, or --all, once the cause is fixed):\n`);
      for (const h of held) process.stdout.write(`  ${h.id}  ${h.kind}, shard ${h.shard}, ${h.deliveries} tries, held ${h.heldAt}\n    last error: ${h.error}\n`);
    }
    return 0;
  } finally {
    await parts.close();
  }
}

export async function settleRelease(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { data: { type: 'string', default: './tally-data' }, nats: { type: 'string' }, part: { type: 'string', multiple: true }, all: { type: 'boolean', default: false }, json: { type: 'boolean', default: false } },
  });
  const url = natsOf(values.nats);
  const ids = values.part ?? [];
  if (values.all === (ids.length > 0)) throw new UsageError('--part: name the held parts to release with --part ID, or release every one with --all (not both)');
  for (const id of ids) if (!/^[0-9a-f]{64}$/.test(id)) throw new UsageError(`--part: expected a part id (64 hex digits, as tally settle held shows it), got ${JSON.stringify(id.slice(0, 80))}`);
  const parts = await open(values.data, url);
  try {
    const released = await parts.release(values.all ? 'all' : ids);
    const missing = ids.filter((id) => !released.some((r) => r.id === id));
    if (values.json) process.stdout.write(`${JSON.stringify({ stream: parts.stream, released, notHeld: missing })}\n`);
    else {
      process.stdout.write(released.length === 0 ? 'No part was released.\n' : `Released ${released.length} part${released.length === 1 ? '' : 's'} to their shards: ${released.map((r) => r.id).join(', ')}\n`);
      for (const id of missing) process.stdout.write(`Not held: ${id}\n`);
    }
    // Naming a part that is not held is an error of the command line's: nothing else was left undone.
    return missing.length > 0 ? 1 : 0;
  } finally {
    await parts.close();
  }
}
