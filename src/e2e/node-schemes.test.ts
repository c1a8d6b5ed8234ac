/**
 * `tally node start --schemes`: a node serves only the schemes named; without a scheme that
 * settles on a chain it starts no anvil; /v1/info lists what it serves; a route of another scheme
 * and a wallet of another scheme are refused saying which schemes it serves; bad names are bad
 * usage naming the known ones. Ends with the node's audit balanced.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { killChildren, startNode, type NodeProcess } from '../cli/e2e-process.ts';
import { runTally, tallyCommands } from '../cli/e2e-run.ts';
import { canListProcesses, chainProcessesOf } from '../issuer/chain/test-fixtures.ts';
import { SCHEMES } from '../schemes/index.ts';

const PASSPHRASE = 'node start schemes test';
const KNOWN = SCHEMES.map((scheme) => scheme.name).join(', ');

describe('tally node start --schemes', () => {
  let base = '';
  let dataDir = '';
  let node: NodeProcess;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'tally-cli-schemes-'));
    dataDir = join(base, 'data');
    // The flag wins over $TALLY_SCHEMES (a name it does not know would stop the start).
    process.env['TALLY_SCHEMES'] = 'nonesuch';
    try {
      node = await startNode(dataDir, 0, { passphrase: PASSPHRASE, args: ['--schemes', 'otp, ops'] });
    } finally {
      delete process.env['TALLY_SCHEMES'];
    }
  });
  after(async () => {
    if (node !== undefined) assert.equal(await node.stop(), 0, 'the node stops cleanly');
    killChildren();
    await rm(base, { recursive: true, force: true });
  });

  it('serves the schemes named, in the registry order, and starts no chain', async () => {
    const info = (await (await fetch(`${node.url}/v1/info`)).json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(info['schemes'] as object), ['ops', 'otp']);
    assert.equal('chain' in info, false, 'no chain in /v1/info');
    assert.equal(await stat(join(dataDir, 'chain')).then(() => true, () => false), false, 'no chain folder');
    if (await canListProcesses()) assert.deepEqual(await chainProcessesOf(dataDir), [], 'no anvil');
  });

  it("a route of a scheme it does not serve is a 404 naming the schemes it serves; a mistyped node route stays a plain 404", async () => {
    const answer = await fetch(`${node.url}/v1/chain/params`);
    assert.equal(answer.status, 404);
    const { error } = (await answer.json()) as { error: { code: string; message: string; details: Record<string, unknown> } };
    assert.equal(error.code, 'SCHEME_NOT_SERVED');
    assert.equal(error.message, 'no route GET /v1/chain/params: this node does not serve a scheme chain (it serves ops, otp)');
    assert.deepEqual(error.details, { scheme: 'chain', served: ['ops', 'otp'] });
    const served = await fetch(`${node.url}/v1/ops/nonesuch`);
    assert.equal(served.status, 404);
    assert.equal(((await served.json()) as { error: { code: string } }).error.code, 'NOT_FOUND', 'a served scheme without that route');
    const plain = await fetch(`${node.url}/v1/infos`);
    assert.equal(((await plain.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
  });

  it('a wallet of a scheme it does not serve is refused before anything is registered; one it serves is made', async () => {
    const home = join(base, 'home');
    const env = { ...process.env, TALLY_HOME: home, TALLY_NODE: node.url, TALLY_OPERATOR_TOKEN: undefined, TALLY_WALLET_PASSPHRASE: 'carol passphrase', TALLY_PASSWORD: 'a payment password' };
    const { ok, refusedRun } = tallyCommands(env);
    for (const scheme of ['chain', 'dotm']) {
      const { error } = await refusedRun('WALLET_UNSUPPORTED', 'wallet', 'create', 'carol', '--scheme', scheme);
      assert.equal(error['message'], `cannot create carol: the node at ${node.url} does not serve ${scheme} (it serves ops, otp): start it with ${scheme} among its --schemes, or use another node`);
    }
    await refusedRun('WALLET_NOT_FOUND', 'wallet', 'balance', 'carol');
    // A wallet of a scheme it serves (OPS without a secure element: no OEM needed).
    const made = await ok('wallet', 'create', 'carol', '--scheme', 'ops', '--no-secure-element');
    assert.equal(made['scheme'], 'ops');
    const audit = await ok('audit', '--data', dataDir);
    assert.equal(audit['balanced'], true, JSON.stringify(audit));
    assert.deepEqual(audit['floatsUnchecked'], [], 'nothing outstanding offline in a scheme it does not serve');
  });

  it('an unknown or empty name is bad usage naming the known schemes, from the flag or from $TALLY_SCHEMES', async () => {
    const cases: [readonly string[], Record<string, string>, string][] = [
      [['--schemes', 'ops,nonesuch,otp'], {}, `--schemes: no scheme "nonesuch"; this version runs ${KNOWN}`],
      [['--schemes', ','], {}, `--schemes: expected scheme names separated by commas (${KNOWN}), got ","`],
      [[], { TALLY_SCHEMES: 'chain,tee' }, `$TALLY_SCHEMES: no scheme "tee"; this version runs ${KNOWN}`],
    ];
    for (const [args, extra, message] of cases) {
      const run = await runTally(['node', 'start', '--port', '0', '--data', join(base, 'never'), ...args], { ...process.env, ...extra, TALLY_NODE_PASSPHRASE: PASSPHRASE });
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.equal(run.stderr.split('\n')[0], `tally node start: ${message}`);
    }
    assert.equal(await stat(join(base, 'never')).then(() => true, () => false), false, 'nothing was made');
    const help = await runTally(['node', 'start', '--help'], process.env);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--schemes NAME,\.\.\. +the schemes the node serves/);
  });
});
