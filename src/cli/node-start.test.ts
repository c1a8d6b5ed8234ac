import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/tally.mjs', import.meta.url));
const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

interface Started {
  events: Array<Record<string, unknown>>;
  url: string;
  stop(): Promise<number | null>;
}

async function start(dataDir: string): Promise<Started> {
  const child = spawn(process.execPath, [BIN, 'node', 'start', '--port', '0', '--data', dataDir, '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TALLY_NODE_PASSPHRASE: 'node start test' },
  });
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  const events: Array<Record<string, unknown>> = [];
  const url = await new Promise<string>((ready, fail) => {
    const timer = setTimeout(() => fail(new Error('node did not start within 30 s')), 30_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      const event = JSON.parse(line) as Record<string, unknown>;
      events.push(event);
      if (event['event'] === 'listening') {
        clearTimeout(timer);
        ready(String(event['url']));
      }
    });
    void exited.then((code) => fail(new Error(`node exited with ${code} before listening`)));
  });
  return {
    events,
    url,
    async stop() {
      child.kill('SIGINT');
      return exited;
    },
  };
}

test('`tally node start` creates a node once, serves over a real socket, stops cleanly on SIGINT, and reuses its data', async () => {
  const dataDir = join(await mkdtemp(join(tmpdir(), 'tally-cli-')), 'data');
  dirs.push(dataDir);
  const first = await start(dataDir);
  assert.ok(first.events.some((e) => e['event'] === 'created'), 'the first start reports the operator token');
  const health = await fetch(`${first.url}/v1/health`);
  assert.equal(health.status, 200);
  const info = (await (await fetch(`${first.url}/v1/info`)).json()) as { currency: { code: string }; certificates: { root: string } };
  assert.equal(info.currency.code, 'EUR');
  assert.equal(await first.stop(), 0);
  assert.equal((await stat(join(dataDir, 'identity', 'operator-token'))).mode & 0o777, 0o600);

  const second = await start(dataDir);
  assert.ok(!second.events.some((e) => e['event'] === 'created'), 'a later start creates nothing');
  const again = (await (await fetch(`${second.url}/v1/info`)).json()) as { certificates: { root: string } };
  assert.equal(again.certificates.root, info.certificates.root);
  assert.equal(await second.stop(), 0);
});
