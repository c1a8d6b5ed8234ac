/** What `npm run bench -- settle` reads from the environment: counts, workload names, shard counts. */

/**
 * A positive count from the environment, or undefined when unset.
 * @throws RangeError for anything but a whole number from 1 to 10,000,000
 */
export function countFrom(env: Readonly<Record<string, string | undefined>>, name: string): number | undefined {
  const value = env[name];
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || n < 1 || n > 10_000_000) throw new RangeError(`${name}: expected a whole number from 1 to 10,000,000, got ${JSON.stringify(value)}`);
  return n;
}

/**
 * A list of workload names (`ops/claims,ops/sync` or `ops`) from the environment, or undefined when unset.
 * @throws RangeError for a name that is not a scheme or scheme/workload
 */
export function listFrom(env: Readonly<Record<string, string | undefined>>, name: string): string[] | undefined {
  const value = env[name];
  if (value === undefined || value === '') return undefined;
  const names = value.split(',').map((n) => n.trim());
  for (const n of names) if (!/^[a-z][a-z0-9-]*(\/[a-z][a-z0-9-]*)?$/.test(n)) throw new RangeError(`${name}: expected scheme or scheme/workload names separated by commas, got ${JSON.stringify(n)}`);
  return names;
}

/**
 * Shard counts (`--shards 1,2,4`, passed as TALLY_SETTLE_SHARDS), or undefined when unset.
 * @throws RangeError for anything but whole numbers from 1 to 64 separated by commas
 */
export function shardsFrom(env: Readonly<Record<string, string | undefined>>): number[] | undefined {
  const value = env['TALLY_SETTLE_SHARDS'];
  if (value === undefined || value === '') return undefined;
  return value.split(',').map((text) => {
    const n = Number(text.trim());
    if (!/^[0-9]+$/.test(text.trim()) || n < 1 || n > 64) throw new RangeError(`--shards: expected shard counts from 1 to 64 separated by commas, got ${JSON.stringify(value)}`);
    return n;
  });
}
