/**
 * The issuer node as a client meets it over a real socket: uploads over the body limit, with and
 * without a declared length, are refused without the node reading them; a 500 leaves its cause in
 * the node's log.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Database, SqlParam, TransactionHandle, TransactionOptions } from '../issuer/db/database.ts';
import { closeTestTemplates, testBackends } from '../issuer/db/test-databases.ts';
import { seedPgliteCluster } from '../issuer/db/test-pglite-cluster.ts';
import { BODY_BYTES_MAX } from '../issuer/http/context.ts';
import type { Logger } from '../cli/log.ts';
import { DEFAULT_CURRENCY, startNode, type RunningNode } from '../cli/node-start.ts';
import { SCHEMES } from '../schemes/index.ts';

/** What an upload did: bytes the client got out before the answer, the answer's head, whether the node hung up. */
interface UploadOutcome {
  sentBeforeAnswer: number;
  sentTotal: number;
  head: string;
  closedMs: number | null;
}

/** The most the client sends before giving up on an answer (the node would have read it all). */
const UPLOAD_CAP_BYTES = 64 * 1024 * 1024;
/** Socket buffers on both ends hold a few MiB in flight; anything near the cap means the node read on. */
const SENT_BOUND_BYTES = 16 * 1024 * 1024;

/**
 * Streams a body of 64 KiB chunks to `path` until the node answers or hangs up (or the cap is
 * reached, then ends the body), and keeps streaming for a while after the answer.
 */
function upload(url: string, path: string, headers: string, method = 'POST'): Promise<UploadOutcome> {
  const { hostname, port } = new URL(url);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const chunked = headers.includes('chunked');
  const frame = chunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk;
  return new Promise((done, fail) => {
    const socket: Socket = connect(Number(port), hostname);
    let sent = 0;
    let sentBeforeAnswer: number | null = null;
    let answeredAt = 0;
    let head = '';
    let closed = false;
    const timer = setTimeout(() => {
      socket.destroy();
      fail(new Error(`no answer and no hang-up within 60 s (sent ${sent} bytes)`));
    }, 60_000);
    socket.on('data', (data) => {
      if (sentBeforeAnswer === null) {
        sentBeforeAnswer = sent;
        answeredAt = Date.now();
      }
      head += data.toString('latin1');
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      clearTimeout(timer);
      done({ sentBeforeAnswer: sentBeforeAnswer ?? sent, sentTotal: sent, head, closedMs: sentBeforeAnswer === null ? null : Date.now() - answeredAt });
    });
    socket.on('connect', () => {
      socket.write(`${method} ${path} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\n${headers}\r\n`);
      const pump = () => {
        while (!closed) {
          // Keep streaming after the answer, for up to 5 s: a node that reads on would take it all.
          if (sentBeforeAnswer !== null && Date.now() - answeredAt > 5_000) {
            socket.destroy();
            return;
          }
          if (sentBeforeAnswer === null && sent >= UPLOAD_CAP_BYTES) {
            if (chunked) socket.write('0\r\n\r\n');
            return;
          }
          sent += frame.length;
          if (!socket.write(frame)) {
            socket.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
  });
}

const silent: Logger = { log: () => undefined };
/** The nodes here serve OPS only (its routes are the scheme routes tried): no chain, no anvil to start. */
const OPS = SCHEMES.filter((scheme) => scheme.name === 'ops');

describe('the node over a real socket', () => {
  let dataDir: string;
  let node: RunningNode;
  before(async () => {
    dataDir = join(await mkdtemp(join(tmpdir(), 'tally-socket-')), 'data');
    await seedPgliteCluster(dataDir);
    node = await startNode({ port: 0, host: '127.0.0.1', dataDir, currency: DEFAULT_CURRENCY, env: { TALLY_NODE_PASSPHRASE: 'socket test' }, schemes: OPS, logger: silent, print: () => undefined });
  });
  after(async () => {
    await node.stop();
    await rm(join(dataDir, '..'), { recursive: true, force: true });
  });

  test('a chunked upload past the body limit is answered 413 and cut off, without the node reading the rest', async () => {
    const outcome = await upload(node.url, '/v1/transfers', 'Transfer-Encoding: chunked\r\n');
    assert.ok(outcome.sentBeforeAnswer < SENT_BOUND_BYTES, `the node answered only after ${outcome.sentBeforeAnswer} bytes (limit ${BODY_BYTES_MAX})`);
    assert.match(outcome.head, /^HTTP\/1\.1 413 /, outcome.head.slice(0, 200));
    assert.match(outcome.head, /BODY_TOO_LARGE/);
    assert.match(outcome.head, /connection: close/i);
    assert.ok(outcome.closedMs !== null && outcome.closedMs < 2_000, `the node kept the connection open ${outcome.closedMs} ms after answering`);
    assert.ok(outcome.sentTotal < SENT_BOUND_BYTES, `the node took ${outcome.sentTotal} bytes in all`);
    // The node still serves.
    assert.equal((await fetch(`${node.url}/v1/health`)).status, 200);
  });

  test('an upload declaring a length over the limit is answered 413 at once and cut off', async () => {
    const outcome = await upload(node.url, '/v1/transfers', `Content-Length: ${1024 * 1024 * 1024}\r\n`);
    assert.match(outcome.head, /^HTTP\/1\.1 413 /, outcome.head.slice(0, 200));
    assert.ok(outcome.sentBeforeAnswer < SENT_BOUND_BYTES, `the node answered only after ${outcome.sentBeforeAnswer} bytes`);
    assert.ok(outcome.closedMs !== null && outcome.closedMs < 2_000, `the node kept the connection open ${outcome.closedMs} ms after answering`);
    assert.ok(outcome.sentTotal < SENT_BOUND_BYTES, `the node took ${outcome.sentTotal} bytes in all`);
  });

  test('a GET with a body is refused unread, not drained to its end', async () => {
    const outcome = await upload(node.url, '/v1/health', 'Transfer-Encoding: chunked\r\n', 'GET');
    assert.ok(outcome.sentTotal < SENT_BOUND_BYTES, `the node took ${outcome.sentTotal} bytes in all`);
    assert.match(outcome.head, /^HTTP\/1\.1 400 /, outcome.head.slice(0, 200));
    assert.match(outcome.head, /BODY_INVALID/);
    assert.ok(outcome.closedMs !== null && outcome.closedMs < 2_000, `the node kept the connection open ${outcome.closedMs} ms after answering`);
  });

  test('a chunked upload to a scheme route past the limit is refused the same way', async () => {
    const outcome = await upload(node.url, '/v1/ops/claims', 'Transfer-Encoding: chunked\r\n');
    assert.match(outcome.head, /^HTTP\/1\.1 413 /, outcome.head.slice(0, 200));
    assert.ok(outcome.sentTotal < SENT_BOUND_BYTES, `the node took ${outcome.sentTotal} bytes in all`);
  });
});

/** The test's database lent to a node: the node's stop leaves it open, the test disposes of it. */
function lent(db: Database): Database {
  return {
    kind: db.kind,
    query: <R extends object>(sql: string, params?: readonly SqlParam[]) => db.query<R>(sql, params),
    exec: (sql: string) => db.exec(sql),
    transaction: <T>(fn: (tx: TransactionHandle) => Promise<T>, options?: TransactionOptions) => db.transaction(fn, options),
    close: async () => undefined,
  };
}

after(() => closeTestTemplates());

for (const backend of testBackends()) {
  describe(`a 500 of the node on ${backend.kind}`, { skip: backend.skip }, () => {
    test('the caller gets a neutral INTERNAL answer; the log line carries the cause (message, SQLSTATE, stack)', async () => {
      const database = await backend.open();
      const dataDir = join(await mkdtemp(join(tmpdir(), 'tally-500-')), 'data');
      const lines: Array<{ level: string; message: string; fields: Record<string, unknown> }> = [];
      const logger: Logger = { log: (level, message, fields = {}) => void lines.push({ level, message, fields }) };
      const node = await startNode({ port: 0, host: '127.0.0.1', dataDir, db: lent(database.db), currency: DEFAULT_CURRENCY, env: { TALLY_NODE_PASSPHRASE: 'socket test' }, schemes: OPS, logger, print: () => undefined });
      try {
        // A fault the node cannot answer for: its journal table is gone.
        await database.db.exec('ALTER TABLE transfers RENAME TO transfers_elsewhere');
        const res = await fetch(`${node.url}/v1/audit`, { headers: { authorization: `Bearer ${node.operatorToken}` } });
        const body = (await res.json()) as { error: { code: string; message: string } };
        assert.equal(res.status, 500, JSON.stringify(body));
        assert.equal(body.error.code, 'INTERNAL');
        assert.doesNotMatch(body.error.message, /transfers/, 'the caller is not told the internals');
        const logged = lines.find((l) => l.level === 'error');
        assert.ok(logged !== undefined, `no error line in ${JSON.stringify(lines.map((l) => l.message))}`);
        assert.equal(logged.fields['path'], '/v1/audit');
        assert.equal(logged.fields['method'], 'GET');
        const error = logged.fields['error'] as { message: string; code: string; stack: string };
        assert.match(error.message, /transfers/);
        assert.equal(error.code, '42P01');
        assert.match(error.stack, /at /);
        await database.db.exec('ALTER TABLE transfers_elsewhere RENAME TO transfers');
      } finally {
        await node.stop();
        await database.dispose();
        await rm(join(dataDir, '..'), { recursive: true, force: true });
      }
    });
  });
}
