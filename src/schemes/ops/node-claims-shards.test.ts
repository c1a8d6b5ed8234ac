/**
 * How a bulk claim is cut into parts for the settlement intake: by the sender's shard, then in
 * pieces that a NATS message holds; every payment in exactly one part, in request order. (The
 * parts settled end to end are claims-bulk.test.ts's, through three shards.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CLAIMS_PART_CHARS_MAX, CLAIMS_PART_PAYMENTS_MAX, claimsParts } from './node-claims-shards.ts';

const everyShard = { shardOf: (key: string) => key.charCodeAt(0) % 3 };

test('payments that do not decode go to shard 0; a part stays under its payment count and its characters; each payment is in one part, in order', () => {
  const small = Array.from({ length: CLAIMS_PART_PAYMENTS_MAX }, (_unused, k) => `x${k}`);
  const oneShard = claimsParts(everyShard, small);
  assert.deepEqual(oneShard, [{ shard: 0, items: small.map((_t, k) => k) }]);
  const large = Array.from({ length: 640 }, () => 'A'.repeat(1_500));
  const cut = claimsParts(everyShard, large);
  const perPart = Math.floor(CLAIMS_PART_CHARS_MAX / 1_500);
  assert.deepEqual(cut.map((p) => p.items.length), [perPart, 640 - perPart]);
  assert.deepEqual(cut.flatMap((p) => p.items), large.map((_t, k) => k));
  for (const part of cut) assert.ok(part.items.reduce((n, i) => n + (large[i] as string).length, 0) <= CLAIMS_PART_CHARS_MAX);
  // One payment longer than the limit on its own is still sent, alone (the route's own limits bound it).
  assert.deepEqual(claimsParts(everyShard, ['B'.repeat(CLAIMS_PART_CHARS_MAX + 1), 'c']).map((p) => p.items), [[0], [1]]);
});
