/**
 * `tally settle held` and `tally settle release`: the operator's view of the settlement parts, and
 * the crossings between the node's databases, that failed on every delivery and were held
 * (src/issuer/queue/settle-queue.ts, credit-relay.ts), and putting them back to work once what
 * made them fail is fixed. Both read the node's key id from its data folder (no
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
    "Lists the settlement parts held for the operator: parts whose settlement failed on each of their deliveries (about a quarter of an hour of tries) for a reason of their own, not because the database was away. Each shows its id, kind, shard, tries, when it was held and the last error; the request it belongs to is answered 503 SETTLE_HELD until the part is released (tally settle release) and settled. Then the crossings between the node's databases (--shard-database) held the same way: money sent from one database whose receipt in the other failed on every delivery. Each shows its sender, receiver, id, kind, amount, tries and last error; it stays in flight in the audit until released.",
  options: common,
  example: 'tally settle held --data ./tally-data --nats nats://127.0.0.1:4222',
};

export const SETTLE_RELEASE_HELP: Help = {
  usage: 'tally settle release --data DIR --nats URL (--part ID ... | --crossing FROM:ID ... | --all) [--json]',
  summary:
    "Puts held settlement parts back on their shards, once what made them fail is fixed: each is delivered to a worker again and settled once (a part settled before answers from its record). The request a part belongs to gets its answer when sent again under the same Idempotency-Key. A held crossing is delivered to its receiving database again and credited there once.",
  options: [
    ['--part ID', 'a held part to release (its id, as tally settle held shows it); may be given several times'],
    ['--crossing FROM:ID', 'a held crossing to release: its sending place and id, as tally settle held shows them (home:charge/ab12..., s1:...); may be given several times'],
    ['--all', 'release every held part and crossing'],
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

/** The node's held parts and crossings, and its currency (amounts are shown in it). */
async function open(data: string, url: string) {
  const { readIssuerNodeName } = await import('../issuer/identity/load-identity.ts');
  const { openHeldParts } = await import('../issuer/queue/settle-held.ts');
  const { keyId, currency } = await readIssuerNodeName(resolve(data));
  return { parts: await openHeldParts({ url, name: keyId.slice(0, 16) }), currency };
}

export async function settleHeld(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { data: { type: 'string', default: './tally-data' }, nats: { type: 'string' }, json: { type: 'boolean', default: false } } });
  const { parts, currency } = await open(values.data, natsOf(values.nats));
  try {
    const held = await parts.held();
    const found = await parts.crossings();
    const { formatMinor } = await import('../issuer/http/json.ts');
    // Amounts in major units, as everywhere the node shows them.
    const crossings = found.map((c) => ({ ...c, amount: c.amount === null ? null : formatMinor(currency, BigInt(c.amount)), currency: currency.code }));
    if (values.json) process.stdout.write(`${JSON.stringify({ stream: parts.stream, held, crossings })}\n`);
    else {
      if (held.length === 0) process.stdout.write('No settlement part is held.\n');
      else {
        process.stdout.write(`${held.length} settlement part${held.length === 1 ? ' is' : 's are'} held (tally settle release --part ID, or --all, once the cause is fixed):\n`);
        for (const h of held) process.stdout.write(`  ${h.id}  ${h.kind}, shard ${h.shard}, ${h.deliveries} tries, held ${h.heldAt}\n    last error: ${h.error}\n`);
      }
      if (crossings.length > 0) {
        process.stdout.write(`${crossings.length} crossing${crossings.length === 1 ? ' is' : 's are'} held, in flight in the audit (tally settle release --crossing FROM:ID, or --all, once the cause is fixed):\n`);
        for (const c of crossings) {
          const amount = c.amount === null ? 'amount unknown' : `${c.amount} ${c.currency}`;
          process.stdout.write(`  ${c.from}:${c.id}  to ${c.to}, ${c.kind ?? 'kind unknown'}, ${amount}, ${c.deliveries} tries, held ${c.heldAt}\n    last error: ${c.error}\n`);
        }
      }
    }
    return 0;
  } finally {
    await parts.close();
  }
}

export async function settleRelease(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: 'string', default: './tally-data' },
      nats: { type: 'string' },
      part: { type: 'string', multiple: true },
      crossing: { type: 'string', multiple: true },
      all: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const url = natsOf(values.nats);
  const ids = values.part ?? [];
  const keys = values.crossing ?? [];
  if (values.all === (ids.length + keys.length > 0)) throw new UsageError('--part: name the held parts and crossings to release with --part ID and --crossing FROM:ID, or release every one with --all (not both)');
  for (const id of ids) if (!/^[0-9a-f]{64}$/.test(id)) throw new UsageError(`--part: expected a part id (64 hex digits, as tally settle held shows it), got ${JSON.stringify(id.slice(0, 80))}`);
  for (const key of keys) if (!/^(home|s[0-9]{1,2}):[A-Za-z0-9._:/-]{1,128}$/.test(key)) throw new UsageError(`--crossing: expected the sending place and the crossing's id (home:ID or sK:ID, as tally settle held shows them), got ${JSON.stringify(key.slice(0, 80))}`);
  const { parts } = await open(values.data, url);
  try {
    const released = values.all || ids.length > 0 ? await parts.release(values.all ? 'all' : ids) : [];
    const releasedCrossings = values.all || keys.length > 0 ? await parts.releaseCrossings(values.all ? 'all' : keys) : [];
    const missing = [...ids.filter((id) => !released.some((r) => r.id === id)), ...keys.filter((key) => !releasedCrossings.some((r) => `${r.from}:${r.id}` === key))];
    if (values.json) process.stdout.write(`${JSON.stringify({ stream: parts.stream, released, releasedCrossings, notHeld: missing })}\n`);
    else {
      if (ids.length > 0 || values.all) process.stdout.write(released.length === 0 ? 'No part was released.\n' : `Released ${released.length} part${released.length === 1 ? '' : 's'} to their shards: ${released.map((r) => r.id).join(', ')}\n`);
      if (keys.length > 0 || values.all) process.stdout.write(releasedCrossings.length === 0 ? 'No crossing was released.\n' : `Released ${releasedCrossings.length} crossing${releasedCrossings.length === 1 ? '' : 's'} to their receivers: ${releasedCrossings.map((r) => `${r.from}:${r.id}`).join(', ')}\n`);
      for (const id of missing) process.stdout.write(`Not held: ${id}\n`);
    }
    // Naming a part that is not held is an error of the command line's: nothing else was left undone.
    return missing.length > 0 ? 1 : 0;
  } finally {
    await parts.close();
  }
}
