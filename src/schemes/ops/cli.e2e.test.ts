/**
 * OPS end to end through the `tally` command line, every party its own process: an issuer node
 * (`tally node start`, PGlite in its data folder), a payer with a secure element (alice), a payee
 * with one (bob), a payee without one (carol), each command a fresh `tally` process whose secure
 * element is yet another child process. Offline steps run with the node stopped. The attacks a
 * user can try from the command line are refused or detected. Ends with the node's audit and the
 * conservation of money: issued = online accounts + the offline float, and the float = what the
 * secure elements hold + what was paid by them and not yet collected or claimed.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { dropNodeDatabases, killChildren, nodeDatabaseArgs, startNode, type Json } from '../../cli/e2e-process.ts';
import { tallyCommands } from '../../cli/e2e-run.ts';

const dirs: string[] = [];
after(async () => {
  killChildren();
  await dropNodeDatabases();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** An amount the node shows (a decimal string in major units, two decimals here) in minor units. */
function minorOf(decimal: string): bigint {
  assert.match(decimal, /^-?[0-9]+\.[0-9]{2}$/);
  return BigInt(decimal.replace('.', ''));
}

test('OPS through the CLI: separate processes, token and TCP payments, offline with the node stopped, attacks refused, audit balanced', { timeout: 300_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'tally-cli-e2e-'));
  dirs.push(root);
  const home = join(root, 'home');
  const dataDir = join(root, 'node');
  const args = ['--schemes', 'ops', ...(await nodeDatabaseArgs())];
  let node = await startNode(dataDir, 0, { passphrase: 'cli e2e', args });
  const env: Record<string, string | undefined> = { ...process.env, TALLY_HOME: home, TALLY_NODE: node.url, TALLY_OPERATOR_TOKEN: '', TALLY_WALLET_PASSPHRASE: undefined };

  const { run, ok, refusedRun, listen } = tallyCommands(env);
  /** Runs with --json, expects exit 1 and the error code (and one line on stderr); answers the error. */
  const refused = async (code: string, ...args: string[]): Promise<Json> => (await refusedRun(code, ...args)).error;
  const token = (await import('node:fs/promises')).readFile(join(dataDir, 'identity', 'operator-token'), 'utf8');
  env.TALLY_OPERATOR_TOKEN = (await token).trim();

  // Operator and factory.
  const oem = await ok('operator', 'oem');
  assert.match(String(oem['measurement']), /^[0-9a-f]{64}$/);
  const alice = await ok('wallet', 'create', 'alice', '--scheme', 'ops');
  await ok('wallet', 'create', 'bob', '--scheme', 'ops');
  // Without a secure element the account key is sealed under a wallet passphrase: without one, nothing is created.
  await refused('PASSWORD_MISSING', 'wallet', 'create', 'carol', '--scheme', 'ops', '--no-secure-element');
  await refused('WALLET_NOT_FOUND', 'wallet', 'balance', 'carol');
  env.TALLY_WALLET_PASSPHRASE = 'carol passphrase';
  const carol = await ok('wallet', 'create', 'carol', '--scheme', 'ops', '--no-secure-element');
  assert.notEqual(alice['device'], null);
  assert.equal(carol['device'], null);
  await refused('WALLET_EXISTS', 'wallet', 'create', 'alice');
  await refused('WALLET_NOT_FOUND', 'wallet', 'balance', 'nobody');
  assert.equal((await run(['wallet', 'balance'])).code, 2, 'a missing NAME is bad usage');
  assert.equal((await ok('operator', 'mint', 'alice', '100.00'))['amount'], '100.00');
  await refused('AMOUNT_INVALID', 'wallet', 'deposit', 'alice', '1.234');

  // Figure 5: online -> offline.
  assert.equal((await ok('wallet', 'deposit', 'alice', '60.00'))['offline'], '60.00');
  await refused('NODE_REFUSED', 'wallet', 'deposit', 'bob', '1.00'); // bob has no online money
  await refused('WALLET_UNSUPPORTED', 'wallet', 'deposit', 'carol', '1.00');

  // Offline, with the node stopped: request, pay, accept, collect by token.
  assert.equal(await node.stop(), 0);
  const request = String((await ok('request', 'bob', '12.50', '--memo', 'beans'))['token']);
  assert.ok(request.startsWith('tally1'));
  const paid = await ok('pay', 'alice', request);
  const payment = String(paid['token']);
  await refused('PAYMENT_INVALID', 'accept', 'bob', request); // a request is not a payment
  await refused('PAYMENT_INVALID', 'accept', 'carol', payment); // meant for bob
  const altered = `${payment.slice(0, 40)}${payment[40] === 'A' ? 'B' : 'A'}${payment.slice(41)}`;
  await refused('TEXT_CHECKSUM', 'accept', 'bob', altered);
  assert.equal((await ok('accept', 'bob', payment))['amount'], '12.50');
  await refused('PAYMENT_REPLAYED', 'accept', 'bob', payment);
  assert.equal((await ok('collect', 'bob'))['offline'], '12.50');
  const offlineBalance = await ok('wallet', 'balance', 'alice');
  assert.equal(offlineBalance['online'], null, 'the node is down: the online balance is unknown');
  assert.equal(offlineBalance['offline'], '47.50');
  // A withdraw with the node down: the TA signs it, the wallet keeps the step and finishes it on
  // a later command once the node answers (below, at alice's sync).
  await refused('NODE_UNREACHABLE', 'wallet', 'withdraw', 'alice', '1.00');
  assert.equal((await ok('wallet', 'balance', 'alice'))['pendingSteps'], 1);

  // Re-spend offline over TCP + Noise: bob pays carol 5.00 (carol listens, bob connects).
  const first = await listen('carol', '5.00');
  await refused('PAYMENT_INVALID', 'pay', 'bob', '--connect', `127.0.0.1:${first.port}`, '--expect', '4.00');
  // The payer refused; carol's receive ends with that refusal, and nothing was paid.
  assert.equal(await first.exit, 1, 'carol saw the payer refuse');
  const second = await listen('carol', '5.00');
  const overLink = await ok('pay', 'bob', '--connect', `127.0.0.1:${second.port}`, '--expect', '5.00');
  assert.equal(overLink['confirmed'], true);
  assert.equal(await second.exit, 0);
  assert.equal(second.lines[second.lines.length - 1]?.['amount'], '5.00');
  // The same payment, shown again as a token, is a replay for carol.
  await refused('PAYMENT_REPLAYED', 'accept', 'carol', String(overLink['token']));

  // Back online: claim, sync, withdraw.
  node = await startNode(dataDir, node.port, { passphrase: 'cli e2e', args });
  const claimed = await ok('claim', 'carol');
  assert.equal((claimed['claimed'] as unknown[]).length, 1);
  assert.equal(claimed['online'], '5.00');
  await refused('WALLET_UNSUPPORTED', 'claim', 'bob');
  for (const name of ['alice', 'bob', 'carol']) assert.deepEqual((await ok('sync', name))['fraud'], []);
  assert.equal((await ok('wallet', 'balance', 'alice'))['pendingSteps'], 0, 'the cut withdraw was finished');
  assert.equal((await ok('wallet', 'withdraw', 'alice', '7.50'))['online'], '48.50');
  // Conservation: the float is exactly what the two secure elements hold (carol claimed all she got).
  const offline = async (name: string) => BigInt(String((await ok('wallet', 'balance', name))['offline']).replace('.', ''));
  const midAudit = await ok('audit');
  assert.equal(midAudit['balanced'], true);
  const mid = (midAudit['currencies'] as { totalOfflineFloat: string; totalOnline: string }[])[0];
  assert.equal(minorOf(mid?.totalOfflineFloat ?? '-1'), (await offline('alice')) + (await offline('bob')));
  assert.equal(minorOf(mid?.totalOnline ?? '-1'), 4_850n + 500n);
  const history = (await ok('wallet', 'history', 'alice'))['events'] as { kind: string }[];
  assert.deepEqual(history.map((e) => e.kind), ['created', 'deposit', 'pay', 'withdraw', 'sync', 'withdraw']);

  // A cloned secure element (the whole wallet folder copied, file counter and all) pays carol
  // with the index alice's own TA uses next: the node sees two payments under one (device, index).
  await cp(join(home, 'wallets', 'alice'), join(home, 'wallets', 'alice-clone'), { recursive: true });
  const r1 = String((await ok('request', 'carol', '2.00'))['token']);
  const honest = String((await ok('pay', 'alice', String((await ok('request', 'bob', '2.00'))['token'])))['token']);
  const forked = String((await ok('pay', 'alice-clone', r1))['token']);
  await ok('accept', 'bob', honest);
  await ok('collect', 'bob');
  await ok('accept', 'carol', forked);
  await ok('sync', 'alice');
  const fraud = await ok('claim', 'carol');
  const sync = await ok('sync', 'bob');
  const flagged = [...((sync['fraud'] as { device: string; kind: string }[]) ?? [])];
  const refusedClaims = fraud['refused'] as { reason: string }[];
  assert.ok(
    refusedClaims.some((e) => /DOUBLE_SPEND|CERT_REVOKED/.test(e.reason)) || flagged.some((f) => f.device === alice['device']),
    `the clone is caught: ${JSON.stringify({ fraud, sync })}`,
  );
  // alice's device is revoked: its next payment is refused by a synced payee.
  await ok('sync', 'carol');
  const late = String((await ok('pay', 'alice-clone', String((await ok('request', 'carol', '1.00'))['token'])))['token']);
  await refused('CERT_REVOKED', 'accept', 'carol', late);

  // A restored older SE state (only the sealed state copied back, the counter kept) is refused.
  await cp(join(home, 'wallets', 'bob', 'se'), join(root, 'bob-se-old'), { recursive: true });
  await ok('pay', 'bob', String((await ok('request', 'carol', '0.50'))['token']));
  await rm(join(home, 'wallets', 'bob', 'se'), { recursive: true });
  await cp(join(root, 'bob-se-old'), join(home, 'wallets', 'bob', 'se'), { recursive: true });
  await refused('ROLLBACK_DETECTED', 'wallet', 'balance', 'bob');

  // The whole wallet folder restored from a copy (sealed state and file counter together, which no
  // file counter can notice) withdraws what it already paid: the node holds the payment, so the
  // withdrawal's counters show an older state. Refused, the device named and revoked, nothing credited.
  await ok('wallet', 'create', 'erin', '--scheme', 'ops');
  await ok('operator', 'mint', 'erin', '10.00');
  await ok('wallet', 'deposit', 'erin', '10.00');
  await cp(join(home, 'wallets', 'erin'), join(root, 'erin-copy'), { recursive: true });
  await ok('accept', 'carol', String((await ok('pay', 'erin', String((await ok('request', 'carol', '6.00'))['token'])))['token']));
  await ok('claim', 'carol');
  await rm(join(home, 'wallets', 'erin'), { recursive: true });
  await cp(join(root, 'erin-copy'), join(home, 'wallets', 'erin'), { recursive: true });
  assert.equal((await ok('wallet', 'balance', 'erin'))['offline'], '10.00', 'the restored state still shows what it paid');
  const rolledBack = await refused('NODE_REFUSED', 'wallet', 'withdraw', 'erin', '10.00');
  assert.match(String(rolledBack['message']), /older state.*FRAUD_DETECTED/);
  assert.equal((await ok('wallet', 'balance', 'erin'))['online'], '0.00', 'nothing was credited');
  const cases = (await ok('audit'))['exposure'] as { scheme: string; exposed: unknown[] }[];
  assert.deepEqual(cases.find((e) => e.scheme === 'ops')?.exposed, [], 'no device paid out more than the node knows it had');

  // The audit, and conservation across the wallets.
  const audit = await ok('audit');
  assert.equal(audit['balanced'], true);
  const eur = (audit['currencies'] as { totalIssued: string; totalOnline: string; totalOfflineFloat: string }[])[0];
  assert.ok(eur !== undefined);
  assert.equal(minorOf(eur.totalIssued), 11_000n, '100.00 for alice, 10.00 for erin');
  assert.equal(minorOf(eur.totalOnline) + minorOf(eur.totalOfflineFloat), 11_000n);
  for (const e of audit['exposure'] as { scheme: string; balanced: boolean; unexplained: string }[]) assert.equal(e.balanced, true, `${e.scheme} exposure: ${e.unexplained}`);
  assert.equal(await node.stop(), 0);
});
