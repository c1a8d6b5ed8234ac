/**
 * OPS request tokens through the `tally` command line, every party its own process: the payer
 * sees whom it pays (the payee's user key id and its device), a token relayed with the receiver
 * swapped (signature kept, re-signed by another user, forged, or stripped) is refused with nothing
 * paid, a request paid before is refused unless `--again`, and `--payee` refuses a request signed
 * by another user. Ends with the audit balanced and the float equal to what the SEs hold plus the
 * payments not yet collected.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fromBase64url } from '../../core/bytes.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret } from '../../core/crypto/suite.ts';
import { encodeText } from '../../core/text.ts';
import { signRequest } from './request.ts';
import { walletDir, walletPaths } from '../../wallet/home.ts';
import { openSlot } from '../../secure-element/key-slot.ts';
import { readRequestToken, requestToken } from './tokens.ts';
import { readWalletFile } from '../../wallet/store/test-wallet-file.ts';
import { BIN, dropNodeDatabases, killChildren, nodeDatabaseArgs, startNode, type Json } from '../../cli/e2e-process.ts';

const dirs: string[] = [];
after(async () => {
  killChildren();
  await dropNodeDatabases();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

test('OPS request tokens through the CLI: the payer sees whom it pays, a swapped receiver is refused, a request is paid once unless --again, audit balanced', { timeout: 240_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'tally-request-e2e-'));
  dirs.push(root);
  const home = join(root, 'home');
  const dataDir = join(root, 'node');
  const args = ['--schemes', 'ops', ...(await nodeDatabaseArgs())];
  const node = await startNode(dataDir, 0, { passphrase: 'request e2e', args });
  const env: Record<string, string | undefined> = { ...process.env, TALLY_HOME: home, TALLY_NODE: node.url, TALLY_WALLET_PASSPHRASE: 'request e2e passphrase' };
  env['TALLY_OPERATOR_TOKEN'] = (await readFile(join(dataDir, 'identity', 'operator-token'), 'utf8')).trim();

  const run = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    new Promise((done) => {
      const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('exit', (code) => done({ code, stdout, stderr }));
    });
  const lastJson = (stdout: string): Json => JSON.parse(stdout.trim().split('\n').pop() as string) as Json;
  const ok = async (...args: string[]): Promise<Json> => {
    const r = await run([...args, '--json']);
    assert.equal(r.code, 0, `tally ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
    return lastJson(r.stdout);
  };
  const refused = async (code: string, reason: string | null, ...args: string[]): Promise<Json> => {
    const r = await run([...args, '--json']);
    assert.equal(r.code, 1, `tally ${args.join(' ')} should fail with ${code}: ${r.stdout}${r.stderr}`);
    const error = (lastJson(r.stdout) as { error: Json }).error;
    assert.equal(error['code'], code, JSON.stringify(error));
    if (reason !== null) assert.equal((error['details'] as Json)['reason'], reason, JSON.stringify(error));
    return error;
  };
  const data = async (name: string) => readWalletFile(join(home, 'wallets', name));
  const offline = async (name: string) => (await ok('wallet', 'balance', name))['offline'] as string;
  /** alice's offline balance and sent log do not move. */
  const nothingPaid = async (before: { offline: string; sent: number }) => {
    assert.equal(await offline('alice'), before.offline, 'nothing paid');
    assert.equal((await data('alice')).sent.length, before.sent, 'nothing sent');
  };

  await ok('operator', 'oem');
  await ok('wallet', 'create', 'alice');
  await ok('wallet', 'create', 'bob');
  await ok('wallet', 'create', 'mallory');
  await ok('wallet', 'create', 'carol', '--no-secure-element');
  await ok('operator', 'mint', 'alice', '100.00');
  await ok('wallet', 'deposit', 'alice', '50.00');
  const [bob, mallory, carol] = [await data('bob'), await data('mallory'), await data('carol')];

  // Offline from here: the node is stopped.
  assert.equal(await node.stop(), 0);

  // bob asks 2.00; alice pays and is shown bob's user key and device, in --json and on stderr.
  const bobToken = String((await ok('request', 'bob', '2.00', '--memo', 'beans'))['token']);
  const paid = await ok('pay', 'alice', bobToken);
  assert.deepEqual(paid['payee'], { keyId: bob.user.keyId, receiver: bob.device?.keyId, receiverRole: 'device' });
  const text = await run(['pay', 'alice', String((await ok('request', 'carol', '1.00'))['token'])]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^tally1[^\n]+\n$/, 'stdout is the payment token alone');
  assert.ok(text.stderr.includes(`to user ${carol.user.keyId}, who signed the request`), text.stderr);
  await ok('accept', 'bob', String(paid['token']));
  let before = { offline: await offline('alice'), sent: (await data('alice')).sent.length };
  assert.equal(before.offline, '47.00');

  // The same request again: refused, nothing paid; paid once more with --again.
  const again = await refused('REQUEST_PAID', null, 'pay', 'alice', bobToken);
  assert.match(String(again['message']), /already paid.*--again/);
  await nothingPaid(before);
  const twice = await ok('pay', 'alice', bobToken, '--again');
  await ok('accept', 'bob', String(twice['token']));
  before = { offline: await offline('alice'), sent: (await data('alice')).sent.length };
  assert.equal(before.offline, '45.00');

  // A relay swaps the receiver for mallory's device.
  const genuine = readRequestToken(String((await ok('request', 'bob', '3.00'))['token']));
  const malloryDevice = fromBase64url(mallory.device?.certificate ?? '');
  await refused('PAYMENT_INVALID', 'signature', 'pay', 'alice', requestToken({ ...genuine, receiver: malloryDevice }));
  // ... and re-signs it with mallory's user key, still naming bob as the payee.
  // (mallory has her own key: her secure element's key slot opens it for her.)
  const malloryHeld = mallory.user.held;
  assert.ok(malloryHeld?.kind === 'se', 'mallory\'s key is held by her secure element');
  const malloryMaster = await readFile(join(walletPaths(walletDir(home, 'mallory')).se, 'master.key'));
  const malloryKey = signerFromSecret(nobleEd25519, openSlot(malloryMaster, 'account', fromBase64url(malloryHeld.box)));
  const { signature: _signature, ...fields } = genuine;
  await refused('PAYMENT_INVALID', 'signature', 'pay', 'alice', requestToken(signRequest(malloryKey, { ...fields, receiver: malloryDevice })));
  // ... or forges the signature, or strips it (a token in the unsigned form).
  await refused('PAYMENT_INVALID', 'signature', 'pay', 'alice', requestToken({ ...genuine, receiver: malloryDevice, signature: new Uint8Array(64).fill(9) }));
  await refused('PAYMENT_INVALID', 'unsigned request', 'pay', 'alice', encodeText({ t: 'ops-request', amount: 300n, receiver: malloryDevice, memo: '' }));
  // ... or makes it mallory's own request: alice, who means to pay bob, says so and is refused; she would see mallory's key otherwise.
  const asMallory = requestToken(signRequest(malloryKey, { ...fields, receiver: malloryDevice, payee: fromBase64url(mallory.user.certificate) }));
  await refused('PAYMENT_INVALID', 'payee', 'pay', 'alice', asMallory, '--payee', bob.user.keyId.slice(0, 16));
  await nothingPaid(before);
  // The genuine request is still payable to bob, and --payee accepts it.
  const third = await ok('pay', 'alice', requestToken(genuine), '--payee', bob.user.keyId);
  assert.equal((third['payee'] as Json)['keyId'], bob.user.keyId);
  await ok('accept', 'bob', String(third['token']));
  await ok('collect', 'bob');
  assert.equal(await offline('bob'), '7.00');

  // Online again: the audit balances; the float is what the SEs hold plus the 1.00 to carol not yet claimed.
  const again2 = await startNode(dataDir, node.port, { passphrase: 'request e2e', args });
  const audit = await ok('audit');
  assert.equal(audit['balanced'], true);
  const float = String((audit['currencies'] as Json[])[0]?.['totalOfflineFloat']);
  const minor = (s: string) => (s.includes('.') ? Math.round(Number(s) * 100) : Number(s));
  assert.equal(await offline('alice'), '42.00');
  assert.equal(minor(float), 4200 + 700 + 100, 'float = alice 42.00 + bob 7.00 + 1.00 to carol in flight');
  assert.equal(await again2.stop(), 0);
});
