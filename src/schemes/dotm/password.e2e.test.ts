/**
 * The payment password of a DOT-M wallet through the `tally` command line, every party its own
 * process: the account key is never on disk in the clear (wallet.db and its WAL), a withdrawal
 * needs pwd and a locked wallet gives nothing up, a key file sealed under another password is
 * refused with nothing changed, and a wallet.json of an earlier version (the key in the clear) is
 * sealed on its first unlock, as it moves into the store. Ends with the audit balanced and the float equal to what the SEs hold.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fromBase64url, fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret } from '../../core/crypto/suite.ts';
import { sealKey } from '../../issuer/identity/keystore.ts';
import { keyId } from '../../pki/key-id.ts';
import { NodeClient } from '../../wallet/node-client.ts';
import { auditAnswer, userAnswer } from '../../wallet/node-answers.ts';
import { PASSWORD_TRIES_MAX } from './trusted-app.ts';
import { editWalletFile, readWalletFile, toLegacyFolder, walletBytesOnDisk } from '../../wallet/store/test-wallet-file.ts';
import { BIN, dropNodeDatabases, killChildren, nodeDatabaseArgs, startNode, type Json } from '../../cli/e2e-process.ts';

const dirs: string[] = [];
after(async () => {
  killChildren();
  await dropNodeDatabases();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const PASSWORD = 'right horse';

/** Every string in `text` that could be a 32-byte key written out (hex or base64url). */
function keyShaped(text: string): Uint8Array[] {
  const hex = [...text.matchAll(/(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])/g)].map((m) => fromHex(m[0].toLowerCase()));
  const b64 = [...text.matchAll(/(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g)].map((m) => fromBase64url(m[0]));
  return [...hex, ...b64].filter((b) => b.length === 32);
}

/** True when some key-shaped string of the wallet's files is the secret of the account key `accountKeyId`. */
function holdsAccountKey(text: string, accountKeyId: string): boolean {
  return keyShaped(text).some((candidate) => toHex(keyId(signerFromSecret(nobleEd25519, candidate).publicKey)) === accountKeyId);
}

test('DOT-M password through the CLI: no clear account key on disk, withdraw needs pwd, a locked wallet gives nothing up, a foreign key file refused, an old wallet sealed on unlock, audit balanced', { timeout: 240_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'tally-dotm-pwd-'));
  dirs.push(root);
  const home = join(root, 'home');
  const dataDir = join(root, 'node');
  const node = await startNode(dataDir, 0, { passphrase: 'dotm password e2e', args: ['--schemes', 'dotm', ...(await nodeDatabaseArgs())] });
  const env: Record<string, string | undefined> = { ...process.env, TALLY_HOME: home, TALLY_NODE: node.url, TALLY_PASSWORD: PASSWORD };
  const token = (await readFile(join(dataDir, 'identity', 'operator-token'), 'utf8')).trim();
  env['TALLY_OPERATOR_TOKEN'] = token;

  const run = (args: string[], extra: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    new Promise((done) => {
      const child = spawn(process.execPath, [BIN, ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...env, ...extra } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('exit', (code) => done({ code, stdout, stderr }));
    });
  const lastJson = (stdout: string): Json => JSON.parse(stdout.trim().split('\n').pop() as string) as Json;
  const ok = async (args: string[], extra: Record<string, string> = {}): Promise<Json> => {
    const r = await run(args, extra);
    assert.equal(r.code, 0, `tally ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
    return lastJson(r.stdout);
  };
  const refused = async (code: string, reason: string | null, args: string[], extra: Record<string, string> = {}): Promise<Json> => {
    const r = await run(args, extra);
    assert.equal(r.code, 1, `tally ${args.join(' ')} should fail with ${code}: ${r.stdout}${r.stderr}`);
    const error = (lastJson(r.stdout) as { error: Json }).error;
    assert.equal(error['code'], code, JSON.stringify(error));
    if (reason !== null) assert.equal((error['details'] as Json)['reason'], reason, JSON.stringify(error));
    assert.match(r.stderr, new RegExp(`^tally: .+ \\[${code}\\]\\n$`), 'one clear error line');
    return error;
  };
  const walletDir = (name: string) => join(home, 'wallets', name);
  /** The wallet's data, as its wallet.json was (read from wallet.db). */
  const walletData = (name: string) => readWalletFile(walletDir(name));
  const onDisk = (name: string) => walletBytesOnDisk(walletDir(name));

  await ok(['operator', 'oem']);
  // A password the SE would refuse is refused before anything is registered: with no node
  // listening the answer is still the password's, not NODE_UNREACHABLE, and no folder is left.
  const short = await refused('DECODE_FAILED', null, ['wallet', 'create', 'shorty', '--scheme', 'dotm', '--node', 'http://127.0.0.1:9'], { TALLY_PASSWORD: 'abc' });
  assert.match(String(short['message']), /password: expected a payment password of 4 to 128 characters, got 3 characters/);
  assert.ok(!String(short['message']).includes('abc'), 'the password is not echoed');
  await refused('DECODE_FAILED', null, ['wallet', 'create', 'shorty', '--scheme', 'dotm'], { TALLY_PASSWORD: 'abc' });
  assert.deepEqual(await readdir(join(home, 'wallets')).catch(() => []), [], 'no wallet folder, staged or final');
  await ok(['wallet', 'create', 'alice', '--scheme', 'dotm']);
  await ok(['wallet', 'create', 'bob', '--scheme', 'dotm']);
  await ok(['operator', 'mint', 'alice', '50.00']);
  await ok(['operator', 'mint', 'bob', '10.00']);
  await ok(['wallet', 'deposit', 'alice', '30.00', '--blocks', '2']);
  await ok(['wallet', 'deposit', 'bob', '4.00']);

  // The account key is sealed: no field holds it, in hex or base64url, in wallet.db or its WAL.
  const aliceData = walletData('alice');
  assert.equal(aliceData.user.secret, undefined);
  assert.equal(typeof aliceData.user.sealed, 'string');
  assert.equal(holdsAccountKey(await onDisk('alice'), aliceData.user.keyId), false, 'the account key is not on disk in the clear');

  // A withdrawal with a wrong password: refused by alice's SE, one try gone, nothing given up.
  await refused('SE_REJECTED', 'WRONG_PASSWORD', ['wallet', 'withdraw', 'alice', '5.00'], { TALLY_PASSWORD: 'wrong horse' });
  assert.deepEqual(walletData('alice'), aliceData, 'the wallet data unchanged');
  const afterWrong = await ok(['wallet', 'balance', 'alice']);
  assert.deepEqual([afterWrong['offline'], afterWrong['online'], afterWrong['passwordTriesLeft']], ['30.00', '20.00', PASSWORD_TRIES_MAX - 1]);

  // Locked after the limit: then even the right password withdraws nothing, and nothing that needs the node runs.
  for (let k = 2; k < PASSWORD_TRIES_MAX; k++) await refused('SE_REJECTED', 'WRONG_PASSWORD', ['wallet', 'withdraw', 'alice', '5.00'], { TALLY_PASSWORD: `wrong ${k}` });
  await refused('SE_REJECTED', 'PASSWORD_LOCKED', ['wallet', 'withdraw', 'alice', '5.00'], { TALLY_PASSWORD: 'wrong last' });
  await refused('SE_REJECTED', 'PASSWORD_LOCKED', ['wallet', 'withdraw', 'alice', '5.00']);
  await refused('SE_REJECTED', 'PASSWORD_LOCKED', ['sync', 'alice']);
  const locked = await ok(['wallet', 'balance', 'alice']);
  assert.deepEqual([locked['offline'], locked['online'], locked['passwordTriesLeft'], locked['unsyncedEvents']], ['30.00', null, 0, 0], 'nothing given up');
  assert.deepEqual(walletData('alice'), aliceData, 'the wallet data unchanged');

  // The account holder unlocks it: a wrong password does not open the account key and asks the node
  // for nothing; the right one gets a ticket from the node, which the secure element takes once.
  await refused('PASSWORD_WRONG', null, ['wallet', 'unlock', 'alice'], { TALLY_PASSWORD: 'wrong again' });
  const unlocked = await ok(['wallet', 'unlock', 'alice']);
  assert.deepEqual([unlocked['unlocks'], unlocked['triesLeft']], [1, PASSWORD_TRIES_MAX]);
  await refused('SE_REJECTED', 'NOT_LOCKED', ['wallet', 'unlock', 'alice']);
  const reopened = await ok(['wallet', 'balance', 'alice']);
  assert.deepEqual([reopened['offline'], reopened['online'], reopened['passwordTriesLeft']], ['30.00', '20.00', PASSWORD_TRIES_MAX], 'unlocked: the password works again, nothing moved');

  // bob's key file replaced by one sealed under another password: the right pwd does not open it; nothing changes.
  const bobData = walletData('bob');
  const foreignSealed = toBase64url(await sealKey({ suite: nobleEd25519, secretKey: randomBytes(32) }, 'another password'));
  editWalletFile(walletDir('bob'), (data) => {
    data.user = { ...data.user, sealed: foreignSealed };
  });
  const foreign = walletData('bob');
  const wrongKey = await refused('PASSWORD_WRONG', null, ['wallet', 'withdraw', 'bob', '1.00']);
  assert.match(String(wrongKey['message']), /does not open the account key of wallet bob.*nothing was changed/);
  assert.deepEqual(walletData('bob'), foreign, 'the wallet data unchanged');
  editWalletFile(walletDir('bob'), (data) => {
    data.user = bobData.user;
  });
  assert.equal((await ok(['wallet', 'balance', 'bob']))['offline'], '4.00', 'nothing given up');

  // A wallet.json of an earlier version (the account key in the clear): sealed under pwd on its first unlock.
  const oldSecret = randomBytes(32);
  const oldAccount = signerFromSecret(nobleEd25519, oldSecret);
  const client = new NodeClient(node.url);
  const registered = await client.signed(oldAccount, 'POST', '/v1/users', { answer: userAnswer,
    body: { publicKey: { suite: 'ed25519', key: toBase64url(oldAccount.publicKey.key) } },
    idempotencyKey: `register-old-${toHex(keyId(oldAccount.publicKey))}`,
  });
  const { sealed: _sealed, ...bobUser } = bobData.user;
  const old = { ...walletData('bob'), user: { ...bobUser, secret: toHex(oldSecret), keyId: registered.body.keyId, account: registered.body.account, certificate: registered.body.certificate } };
  await toLegacyFolder(walletDir('bob'), old);
  assert.equal(holdsAccountKey(await onDisk('bob'), registered.body.keyId), true, 'the old format holds the key');
  // A wrong password does not migrate it.
  await refused('SE_REJECTED', 'WRONG_PASSWORD', ['wallet', 'balance', 'bob'], { TALLY_PASSWORD: 'wrong horse' });
  assert.equal(holdsAccountKey(await onDisk('bob'), registered.body.keyId), true);
  assert.equal(await stat(join(walletDir('bob'), 'wallet.db')).catch(() => null), null, 'not migrated');
  // Without the password it is not migrated either: the key would enter wallet.db in the clear.
  await refused('PASSWORD_MISSING', null, ['wallet', 'balance', 'bob'], { TALLY_PASSWORD: '' });
  assert.equal(await stat(join(walletDir('bob'), 'wallet.db')).catch(() => null), null, 'not migrated');
  assert.equal(holdsAccountKey(await onDisk('bob'), registered.body.keyId), true);
  const migrated = await ok(['wallet', 'balance', 'bob']);
  assert.equal(migrated['online'], '0.00', 'the node answers for the old account key');
  assert.equal(walletData('bob').user.secret, undefined);
  // wallet.db, its WAL and the backup of the old wallet.json: none holds the key in the clear.
  assert.equal(holdsAccountKey(await onDisk('bob'), registered.body.keyId), false, 'sealed on the first unlock');
  assert.equal((await ok(['wallet', 'balance', 'bob']))['online'], '0.00', 'and opens again under the password');
  const history = (await ok(['wallet', 'history', 'bob']))['events'] as Json[];
  assert.ok(history.some((e) => e['kind'] === 'account-sealed'));

  // The audit, and conservation: the float is what the two SEs hold.
  const audit = (await client.operator(token, 'GET', '/v1/audit', { answer: auditAnswer })).body;
  assert.equal(audit.balanced, true);
  const float = audit.currencies[0]?.totalOfflineFloat ?? '';
  // Minor units, or a decimal string.
  assert.equal(float.includes('.') ? Math.round(Number(float) * 100) : Number(float), 3400, 'float:dotm = 30.00 (alice) + 4.00 (bob)');
  assert.equal(await node.stop(), 0);
});
