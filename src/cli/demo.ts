/**
 * `tally demo`: a full OPS story against a fresh local node, told step by step. Everything is real:
 * an issuer node on a local port with its own PGlite database, three wallets in a temporary home
 * (two with isolated secure element processes, one without), a payment by token and one over
 * TCP + Noise, a replay refused, and the ledger's audit at the end. `--keep` leaves the folders.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isTallyError } from '../core/errors.ts';
import { enrollOem } from '../wallet/factory.ts';
import { NodeClient } from '../wallet/node-client.ts';
import { Wallet } from '../wallet/wallet.ts';
import { DEFAULT_CURRENCY, startNode } from './node-start.ts';

export const DEMO_USAGE = 'tally demo [--keep] [--json]   (narrates a full OPS story against a fresh local node)';

interface Step {
  step: string;
  [key: string]: unknown;
}

/** Runs the demo; returns the exit code (1 when the audit does not balance). */
export async function runDemo(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { keep: { type: 'boolean', default: false }, json: { type: 'boolean', default: false } }, strict: true });
  const json = values.json === true;
  const steps: Step[] = [];
  const say = (text: string, step: Step) => {
    steps.push(step);
    process.stdout.write(json ? `${JSON.stringify(step)}\n` : `${text}\n`);
  };
  const root = await mkdtemp(join(tmpdir(), 'tally-demo-'));
  const home = join(root, 'home');
  const silent = { log: () => undefined };
  const node = await startNode({
    port: 0,
    host: '127.0.0.1',
    dataDir: join(root, 'node'),
    env: { TALLY_NODE_PASSPHRASE: 'demo passphrase' },
    currency: DEFAULT_CURRENCY,
    logger: silent,
    print: () => undefined,
  });
  const opened: Wallet[] = [];
  let exit = 0;
  try {
    say(`1. An issuer node runs at ${node.url} (data in ${root}/node, embedded PGlite).`, { step: 'node', url: node.url });
    const client = new NodeClient(node.url);
    const oem = await enrollOem(home, client, node.operatorToken);
    say(`2. Factory step: the operator enrols a software OEM (${oem.keyId.slice(0, 16)}...) and allows the OPS trusted app build ${oem.measurement.slice(0, 16)}...`, { step: 'oem', oem: oem.keyId, measurement: oem.measurement });

    const create = async (name: string, secureElement: boolean) => {
      const w = await Wallet.create({ home, name, node: node.url, secureElement });
      opened.push(w);
      return w;
    };
    const alice = await create('alice', true);
    const bob = await create('bob', true);
    const carol = await create('carol', false);
    say('3. Wallets: alice and bob each get an isolated secure element (attested by the OEM, certified by the node); carol has none.', {
      step: 'wallets',
      alice: alice.snapshot().device?.keyId,
      bob: bob.snapshot().device?.keyId,
      carol: carol.snapshot().user.account,
    });

    await client.operator(node.operatorToken, 'POST', '/v1/operator/mint', { body: { account: alice.snapshot().user.account, amount: '100.00' }, idempotencyKey: 'demo-mint' });
    say('4. The central bank mints 100.00 EUR into alice\'s online account.', { step: 'mint', amount: '100.00' });

    const dep = await alice.deposit('60.00');
    say(`5. alice deposits 60.00 into her secure element (Figure 5): offline balance ${dep.offline}.`, { step: 'deposit', ...dep });

    const { token: requestToken } = bob.request('12.50', 'coffee beans');
    say(`6. bob, offline, asks for 12.50 with a request token:\n   ${requestToken.slice(0, 60)}...`, { step: 'request', token: requestToken });
    const paid = await alice.pay(requestToken);
    say(`7. alice's TA pays it (Figure 7) and she hands over the payment token:\n   ${paid.token.slice(0, 60)}...`, { step: 'pay', index: paid.entry.index, token: paid.token });
    const accepted = await bob.accept(paid.token);
    say(`8. bob verifies it offline (PayVerify, Figure 8) and stores it: ${bob.format(BigInt(accepted.amount))} from device ${accepted.sender.slice(0, 16)}...`, { step: 'accept', amount: bob.format(BigInt(accepted.amount)) });
    try {
      await bob.accept(paid.token);
      say('   (the replay was accepted: this must not happen)', { step: 'replay', refused: false });
      exit = 1;
    } catch (e) {
      say(`   The same token shown again is refused: ${isTallyError(e) ? e.code : String(e)}.`, { step: 'replay', refused: true, code: isTallyError(e) ? e.code : String(e) });
    }
    const collected = await bob.collect();
    say(`9. bob collects it into his secure element: offline balance ${collected.offline}.`, { step: 'collect', offline: collected.offline });

    let port = 0;
    const listening = new Promise<void>((ready) => {
      void carol
        .receive('5.00', { port: 0, host: '127.0.0.1', timeoutMs: 30_000, memo: 'bread', onListening: (p) => { port = p; ready(); } })
        .then((entry) => say(`10. carol, listening on TCP, received ${carol.format(BigInt(entry.amount))} from bob over a Noise session bound to both certificates.`, { step: 'receive', amount: carol.format(BigInt(entry.amount)) }))
        .catch((e: unknown) => say(`10. carol's receive failed: ${String(e)}`, { step: 'receive', error: String(e) }));
    });
    await listening;
    const overLink = await bob.payTo('127.0.0.1', port, { expect: '5.00', timeoutMs: 30_000 });
    say(`11. bob re-spends offline (offline transitivity): paid ${bob.format(overLink.payment.amount)} to carol, confirmed: ${overLink.confirmed}.`, { step: 'pay-link', confirmed: overLink.confirmed });
    await new Promise((r) => setTimeout(r, 50));

    const claimed = await carol.claim();
    say(`12. carol, without a secure element, claims it online (Figure 9): online balance ${claimed.online}.`, { step: 'claim', online: claimed.online });
    for (const w of [alice, bob]) {
      const s = await w.sync();
      say(`13. ${w.name} syncs: report reconciled, revocation list v${s.crlVersion}, fraud cases: ${s.fraud.length}.`, { step: 'sync', wallet: w.name, ...s });
    }
    const wd = await alice.withdraw('20.00');
    say(`14. alice withdraws 20.00 back online (Figure 6): online balance ${wd.online}.`, { step: 'withdraw', ...wd });

    for (const w of [alice, bob, carol]) {
      const b = await w.balance();
      say(`    ${w.name.padEnd(6)} online ${b.online ?? '?'}  offline ${b.offline ?? '-'}`, { step: 'balance', wallet: w.name, online: b.online, offline: b.offline });
    }
    const audit = (await client.operator<{ balanced: boolean }>(node.operatorToken, 'GET', '/v1/audit')).body;
    say(`15. The node's audit: ${audit.balanced ? 'balanced' : 'NOT balanced'} (issued money = online accounts + the offline float).`, { step: 'audit', ...audit });
    if (!audit.balanced) exit = 1;
  } finally {
    for (const w of opened) await w.close().catch(() => undefined);
    await node.stop();
    if (values.keep !== true) await rm(root, { recursive: true, force: true });
    else process.stderr.write(`kept ${root}\n`);
  }
  return exit;
}
