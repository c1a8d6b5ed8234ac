/** `bench crossings` in miniature: both rows measured, and the audit over the databases balanced (checked inside). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testNatsUrl } from '../../issuer/queue/test-nats.ts';
import { benchCrossings, formatCrossingsReport } from './crossings.ts';

const postgresUrl = process.env['TEST_DATABASE_URL'];

test('bench crossings measures transfers within one database and crossings between three, and says so', { skip: postgresUrl === undefined || postgresUrl === '' ? 'TEST_DATABASE_URL is not set' : false }, async () => {
  const report = await benchCrossings({ count: 30, senders: 3, postgresUrl, natsUrl: testNatsUrl(), progress: () => undefined });
  assert.deepEqual(report.rows.map((r) => [r.what, r.count]), [['transfers within one database', 30], ['crossings between databases', 30]]);
  for (const row of report.rows) assert.ok(row.perSecond > 0 && row.latency.p50Ms > 0, JSON.stringify(row));
  assert.ok(report.floorRatio !== null && report.floorRatio > 0);
  assert.match(formatCrossingsReport(report), /\| crossings between databases \| 30 \|/);
});

test('without PostgreSQL the benchmark says what it needs and measures nothing', async () => {
  const report = await benchCrossings({ count: 30, senders: 3, postgresUrl: undefined, natsUrl: testNatsUrl(), progress: () => undefined });
  assert.deepEqual(report.rows, []);
  assert.match(report.skipped[0] ?? '', /PostgreSQL/);
});
