/**
 * The payment link through the `tally` command line, every party its own process: what a refusal
 * tells the peer (a code and a fixed sentence; the details stay with the device that refused), a
 * payer started right after its payee (no sleep), `--timeout` bounding the handshake on both sides,
 * and wallets of different schemes told apart. Ends with the node's audit balanced.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { BIN, dropNodeDatabases, killChildren, nodeDatabaseArgs, startNode, track, type Json } from '../cli/e2e-process.ts';

const dirs: string[] = [];
const sockets: Socket[] = [];
after(async () => {
  killChildren();
  await dropNodeDatabases();
  for (const socket of sockets) socket.destroy();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** When the process exited (Date.now()). */
  exitedAt: number;
  /** The last `--json` line. */
  last: Json;
}

/** Settles as `promise` does, or fails after `ms` naming what did not happen. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** A port free a moment ago (nobody listens on it now). */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

test('the payment link through the CLI: neutral refusals, pay right after receive, --timeout on the handshake, schemes told apart, audit balanced', { timeout: 600_000 }, async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'tally-link-e2e-'));
  dirs.push(root);
  const dataDir = join(root, 'node');
  const node = await startNode(dataDir, 0, { passphrase: 'link e2e', args: ['--schemes', 'ops,dotm', ...(await nodeDatabaseArgs())] });
  const env: Record<string, string | undefined> = {
    ...process.env,
    TALLY_HOME: join(root, 'home'),
    TALLY_NODE: node.url,
    TALLY_PASSWORD: 'right horse',
    TALLY_OPERATOR_TOKEN: (await readFile(join(dataDir, 'identity', 'operator-token'), 'utf8')).trim(),
  };

  /** Starts `tally ARGS --json`; `listening` settles with the port once it announces one. */
  const start = (args: string[], extra: Record<string, string> = {}) => {
    const child = spawn(process.execPath, [BIN, ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...env, ...extra } });
    track(child);
    let stdout = '';
    let stderr = '';
    let announce: (port: number) => void = () => {};
    const listening = new Promise<number>((resolve) => (announce = resolve));
    createInterface({ input: child.stdout }).on('line', (line) => {
      stdout += `${line}\n`;
      const event = JSON.parse(line) as Json;
      if (event['event'] === 'listening') announce(Number(event['port']));
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const done = new Promise<Run>((resolve) =>
      child.on('close', (code) => {
        const lines = stdout.trim().split('\n');
        resolve({ code, stdout, stderr, exitedAt: Date.now(), last: JSON.parse(lines[lines.length - 1] || '{}') as Json });
      }),
    );
    return { listening, done };
  };
  const ok = async (...args: string[]): Promise<Json> => {
    const r = await start(args).done;
    assert.equal(r.code, 0, `tally ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
    return r.last;
  };
  /** The `--json` error of a run that failed (exit 1). */
  const errorOf = (r: Run, what: string): { code: string; message: string; details: Json } => {
    assert.equal(r.code, 1, `${what} should fail: ${r.stdout}${r.stderr}`);
    return r.last['error'] as { code: string; message: string; details: Json };
  };

  await ok('operator', 'oem');
  await ok('wallet', 'create', 'alice', '--scheme', 'ops');
  await ok('wallet', 'create', 'bob', '--scheme', 'ops');
  await ok('wallet', 'create', 'carol', '--scheme', 'dotm');
  await ok('wallet', 'create', 'dave', '--scheme', 'dotm');
  await ok('operator', 'mint', 'alice', '100.00');
  await ok('operator', 'mint', 'carol', '100.00');
  assert.equal((await ok('wallet', 'deposit', 'alice', '31.00'))['offline'], '31.00');
  assert.equal((await ok('wallet', 'deposit', 'carol', '20.00'))['offline'], '20.00');

  // Item 13: `pay --connect` started together with `receive --listen` (no sleep, no wait for the
  // listening line): the payer retries the refused connection until the payee listens.
  await t.test('pay started with receive, no sleep: the payer retries until the payee listens', async () => {
    for (const [payer, payee] of [['alice', 'bob'], ['carol', 'dave']] as const) {
      const port = await freePort();
      const receiving = start(['receive', payee, '1.00', '--listen', String(port), '--timeout', '60']);
      const paying = start(['pay', payer, '--connect', `127.0.0.1:${port}`, '--expect', '1.00', '--timeout', '60']);
      const [paid, received] = await Promise.all([paying.done, receiving.done]);
      assert.equal(paid.code, 0, `${payer} pays at once: ${paid.stderr}${paid.stdout}`);
      assert.equal(received.code, 0, `${payee} receives: ${received.stderr}${received.stdout}`);
      assert.equal(received.last['amount'], '1.00');
    }
  });

  // Item 11: an OPS payer short of money. The payee learns that the payer declined, not its
  // balance; the payer's own output has the details.
  await t.test('an OPS payer short of money: the payee gets PAYER_DECLINED and no balance', async () => {
    const short = start(['receive', 'bob', '500.00', '--listen', '0', '--timeout', '30']);
    const shortPay = await start(['pay', 'alice', '--connect', `127.0.0.1:${await short.listening}`]).done;
    const own = errorOf(shortPay, 'a payment over the balance');
    assert.equal(own.details['reason'], 'INSUFFICIENT_FUNDS', JSON.stringify(own));
    assert.match(own.message, /30\.00|3000/, `the payer sees its balance: ${own.message}`);
    const told = await short.done;
    const peerSide = errorOf(told, "the payee's receive");
    assert.equal(peerSide.code, 'PEER_REFUSED');
    assert.deepEqual(peerSide.details, { code: 'PAYER_DECLINED' });
    assert.equal(peerSide.message, "the payer refused: the payer's wallet declined to make this payment [PAYER_DECLINED]");
    assert.doesNotMatch(told.stderr + JSON.stringify(peerSide), /30\.00|3000|INSUFFICIENT|balance/, "nothing of the payer's balance reaches the payee");

  });

  // Item 11: a DOT-M payer short of value. The payee learns that the payer declined, not what it holds.
  await t.test('a DOT-M payer short of value: the payee gets PAYER_DECLINED and nothing of what the payer holds', async () => {
    const short = start(['receive', 'dave', '500.00', '--listen', '0', '--timeout', '30']);
    const shortPay = await start(['pay', 'carol', '--connect', `127.0.0.1:${await short.listening}`]).done;
    const own = errorOf(shortPay, 'a payment over what the blocks hold');
    assert.equal(own.details['reason'], 'INSUFFICIENT_FUNDS', JSON.stringify(own));
    assert.match(own.message, /19\.00/, `the payer sees what it holds: ${own.message}`);
    const told = await short.done;
    const peerSide = errorOf(told, "the payee's receive");
    assert.equal(peerSide.code, 'PEER_REFUSED');
    assert.deepEqual(peerSide.details, { code: 'PAYER_DECLINED' });
    assert.equal(peerSide.message, "the payer closed the transaction (payer-declined): the payer's wallet declined to make this payment [PAYER_DECLINED]");
    assert.doesNotMatch(told.stderr + JSON.stringify(peerSide), /19\.00|1900|INSUFFICIENT|value|balance/, "nothing of the payer's holdings reaches the payee");
  });

  // Item 11: a DOT-M payer with a wrong password. Its account key (which binds the link) is sealed
  // under the password, so it stops before connecting: the payee learns nothing at all of it.
  await t.test('a DOT-M payer with a wrong password stops before the link: the payee learns nothing of it', async () => {
    const locked = start(['receive', 'dave', '1.00', '--listen', '0', '--timeout', '5']);
    const wrongPay = await start(['pay', 'carol', '--connect', `127.0.0.1:${await locked.listening}`], { TALLY_PASSWORD: 'wrong horse' }).done;
    const ownWrong = errorOf(wrongPay, 'a wrong password');
    assert.equal(ownWrong.details['reason'], 'WRONG_PASSWORD');
    assert.match(ownWrong.message, /4 tries left/, `the payer sees its tries left: ${ownWrong.message}`);
    const toldWrong = await locked.done;
    const peerWrong = errorOf(toldWrong, "the payee's receive");
    assert.equal(peerWrong.code, 'TIMEOUT', 'no payer came');
    assert.doesNotMatch(toldWrong.stderr + JSON.stringify(peerWrong), /tries|password|LOCK/i, 'nothing of the password reaches the payee');
    assert.equal((await ok('wallet', 'balance', 'carol'))['passwordTriesLeft'], 4);
  });

  // Item 13: a listener that takes the TCP connection and never answers the handshake. With
  // --timeout 2 each payer gives up about 2 s after connecting, with TIMEOUT.
  await t.test('--timeout bounds the handshake: payers and payees give up after about 2 s', async () => {
    // Timed from the connection to the moment the wallet drops it (the wallet's own deadline, not
    // how long the process then takes to exit).
    const connections: Promise<{ connectedAt: number; droppedAt: number }>[] = [];
    const silent = createServer((socket) => {
      sockets.push(socket);
      const connectedAt = Date.now();
      socket.on('error', () => {});
      socket.resume(); // read (and drop) what the payer sends, so its close is seen
      connections.push(new Promise((resolve) => socket.once('close', () => resolve({ connectedAt, droppedAt: Date.now() }))));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      for (const payer of ['alice', 'carol']) {
        const before = connections.length;
        const r = await start(['pay', payer, '--connect', `127.0.0.1:${(silent.address() as AddressInfo).port}`, '--timeout', '2']).done;
        const error = errorOf(r, `${payer} against a silent listener`);
        assert.equal(error.code, 'TIMEOUT', JSON.stringify(error));
        const connection = connections[before];
        assert.ok(connection !== undefined && connections.length === before + 1, 'the payer connected once');
        const { connectedAt, droppedAt } = await within(connection, 10_000, `${payer} dropping the connection`);
        const waitedMs = droppedAt - connectedAt;
        t.diagnostic(`${payer} gave up ${waitedMs} ms after connecting`);
        assert.ok(waitedMs >= 1_500 && waitedMs < 3_000, `${payer} waited ${waitedMs} ms, expected about 2000`);
      }
    } finally {
      silent.close();
    }
    // And the payee: a peer that connects and says nothing ends `receive --timeout 2` as promptly.
    for (const payee of ['bob', 'dave']) {
      const waiting = start(['receive', payee, '1.00', '--listen', '0', '--timeout', '2']);
      const port = await waiting.listening;
      const mute = connect(port, '127.0.0.1');
      sockets.push(mute);
      mute.on('error', () => {});
      mute.resume(); // read (and drop) what the payee sends, so its close is seen
      const dropped = new Promise<number>((resolve) => mute.once('close', () => resolve(Date.now())));
      const at = await new Promise<number>((resolve) => mute.once('connect', () => resolve(Date.now())));
      const r = await waiting.done;
      assert.equal(errorOf(r, `${payee} against a mute payer`).code, 'TIMEOUT');
      const waitedMs = (await within(dropped, 10_000, `${payee} dropping the connection`)) - at;
      t.diagnostic(`${payee} gave up ${waitedMs} ms after the connection`);
      assert.ok(waitedMs >= 1_500 && waitedMs < 3_000, `${payee} waited ${waitedMs} ms, expected about 2000`);
    }
  });

  // Item 13: wallets of different schemes: both sides say so, naming both schemes.
  await t.test('wallets of different schemes: both sides report SCHEME_MISMATCH naming both', async () => {
    for (const [payer, payee, payerScheme, payeeScheme] of [['alice', 'dave', 'ops', 'dotm'], ['carol', 'bob', 'dotm', 'ops']] as const) {
      const receiving = start(['receive', payee, '1.00', '--listen', '0', '--timeout', '30']);
      const paying = await start(['pay', payer, '--connect', `127.0.0.1:${await receiving.listening}`, '--timeout', '30']).done;
      const payerError = errorOf(paying, `${payer} paying ${payee}`);
      const payeeError = errorOf(await receiving.done, `${payee} receiving from ${payer}`);
      assert.equal(payerError.code, 'SCHEME_MISMATCH', JSON.stringify(payerError));
      assert.equal(payeeError.code, 'SCHEME_MISMATCH', JSON.stringify(payeeError));
      assert.deepEqual(payerError.details, { local: payerScheme, peer: payeeScheme });
      assert.deepEqual(payeeError.details, { local: payeeScheme, peer: payerScheme });
      assert.equal(payerError.message, `the peer's wallet runs scheme ${payeeScheme}, this one ${payerScheme}: a payment needs two wallets of the same scheme`);
    }
  });

  // Nothing moved but the two 1.00 payments.
  assert.equal((await ok('wallet', 'balance', 'alice'))['offline'], '30.00');
  assert.equal((await ok('wallet', 'balance', 'carol'))['offline'], '19.00');
  assert.equal((await ok('wallet', 'balance', 'dave'))['offline'], '1.00');
  const audit = await ok('audit');
  assert.equal(audit['balanced'], true);
  const eur = (audit['currencies'] as { totalIssued: string; totalOnline: string; totalOfflineFloat: string }[])[0];
  assert.ok(eur !== undefined);
  // Minor units, or decimal strings with the currency's two decimals: either reads the same here.
  const minor = (value: string) => BigInt(value.replace('.', ''));
  assert.equal(minor(eur.totalOnline) + minor(eur.totalOfflineFloat), minor(eur.totalIssued));
  assert.equal(minor(eur.totalIssued), 20_000n);
  assert.equal(await node.stop(), 0);
});
