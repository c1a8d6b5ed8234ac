/**
 * What a user reads when the command line refuses: amounts in decimal major units with the
 * currency ("31.00 EUR"), never minor units, and the user's own command named ("pay refused: ..."),
 * never the trusted app's ("ops.pay"). Every party is its own process: a node, OPS and DOT-M
 * wallets with isolated secure elements. Ends with the node's audit balanced.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { dropNodeDatabases, killChildren, nodeDatabaseArgs, startNode } from '../cli/e2e-process.ts';
import { tallyCommands } from '../cli/e2e-run.ts';

const dirs: string[] = [];
after(async () => {
  killChildren();
  await dropNodeDatabases();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** A whole number of three or more digits standing alone (not in a decimal amount or an id): how minor units would show. */
const MINOR_UNITS = /(?<![0-9A-Za-z.:])[0-9]{3,}(?![0-9A-Za-z]|\.[0-9])/;

test('refusals name the user command and show amounts as "31.00 EUR", never minor units; audit balanced', { timeout: 300_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'tally-messages-'));
  dirs.push(root);
  const dataDir = join(root, 'node');
  const node = await startNode(dataDir, 0, { passphrase: 'messages e2e', args: ['--schemes', 'ops,dotm', ...(await nodeDatabaseArgs())] });
  const env: Record<string, string | undefined> = { ...process.env, TALLY_HOME: join(root, 'home'), TALLY_NODE: node.url, TALLY_PASSWORD: 'a payment password' };
  env['TALLY_OPERATOR_TOKEN'] = (await readFile(join(dataDir, 'identity', 'operator-token'), 'utf8')).trim();

  const { run, ok, refusedRun, listen } = tallyCommands(env);
  /** Runs a refused command (with --json: the error on stdout, the line on stderr) and answers the line a user reads. */
  const refusal = async (code: string, ...args: string[]): Promise<string> => {
    const { error, run: r } = await refusedRun(code, ...args);
    assert.equal(`tally: ${String(error['message'])} [${code}]\n`, r.stderr, 'the JSON error says what the line says');
    assert.doesNotMatch(r.stderr, MINOR_UNITS, `no minor units: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\b(ops|dotm)\.[a-z]+ refused/, `no trusted-app command: ${r.stderr}`);
    return r.stderr;
  };

  await ok('operator', 'oem');
  await ok('wallet', 'create', 'alice', '--scheme', 'ops');
  await ok('wallet', 'create', 'bob', '--scheme', 'ops');
  await ok('operator', 'mint', 'alice', '100.00');
  await ok('wallet', 'deposit', 'alice', '31.00');

  // OPS: a payment and a withdrawal over the offline balance.
  const request = String((await ok('request', 'bob', '50.00'))['token']);
  const pay = await refusal('SE_REJECTED', 'pay', 'alice', request);
  assert.match(pay, /^tally: pay refused: .*31\.00 EUR.*50\.00 EUR/, pay);
  const withdraw = await refusal('SE_REJECTED', 'wallet', 'withdraw', 'alice', '40.00');
  assert.match(withdraw, /^tally: wallet withdraw refused: .*31\.00 EUR.*40\.00 EUR/, withdraw);
  assert.equal((await ok('wallet', 'balance', 'alice'))['pendingSteps'], 0, 'a refused pay or withdraw leaves no step behind');
  // Over the holding limit (300.00 EUR by default), and with no online money (the node's refusal).
  const limit = await refusal('SE_REJECTED', 'wallet', 'deposit', 'alice', '290.00');
  assert.match(limit, /^tally: wallet deposit refused: .*321\.00 EUR.*300\.00 EUR/, limit);
  const broke = await refusal('NODE_REFUSED', 'wallet', 'deposit', 'bob', '1.00');
  assert.match(broke, /holds 0\.00 EUR, less than the 1\.00 EUR requested \[INSUFFICIENT_FUNDS\]/, broke);
  // An amount past what an account may hold is shown as typed, against the maximum in the currency.
  const huge = await refusal('AMOUNT_OVERFLOW', 'wallet', 'deposit', 'alice', '99999999999999999.99');
  assert.match(huge, /99999999999999999\.99 EUR is over the maximum of 92233720368547758\.07 EUR/, huge);

  // DOT-M: a withdrawal and a payment over the link for more than the wallet holds.
  await ok('wallet', 'create', 'dave', '--scheme', 'dotm');
  await ok('wallet', 'create', 'erin', '--scheme', 'dotm');
  await ok('operator', 'mint', 'dave', '10.00');
  await ok('wallet', 'deposit', 'dave', '10.00', '--blocks', '2');
  const balance = await run(['wallet', 'balance', 'dave']);
  assert.match(balance.stdout, /value 5\.00 EUR {2}remaining 5\.00 EUR/, balance.stdout);
  const redeem = await refusal('SE_REJECTED', 'wallet', 'withdraw', 'dave', '20.00');
  assert.match(redeem, /^tally: wallet withdraw refused: the wallet holds 10\.00 EUR, less than the 20\.00 EUR/, redeem);
  const { port, exit: exited } = await listen('erin', '50.00', '--timeout', '20');
  const paid = await run(['pay', 'dave', '--connect', `127.0.0.1:${port}`]);
  assert.equal(paid.code, 1, paid.stdout + paid.stderr);
  assert.match(paid.stderr, /^tally: pay refused: the wallet holds 10\.00 EUR, less than the 50\.00 EUR asked for \[SE_REJECTED\]\n$/, paid.stderr);
  assert.equal(await exited, 1, 'the payee saw the payer refuse');

  // Nothing moved: the audit balances and the money is where it was.
  const audit = await ok('audit');
  assert.equal(audit['balanced'], true, JSON.stringify(audit));
  assert.equal((await ok('wallet', 'balance', 'alice'))['offline'], '31.00');
  assert.equal((await ok('wallet', 'balance', 'dave'))['offline'], '10.00');
  assert.equal(await node.stop(), 0);
});
