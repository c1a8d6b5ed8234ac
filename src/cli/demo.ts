/**
 * `tally demo`: a whole OPS and DOT-M story against a fresh local node, told step by step.
 * Everything is real: an issuer node on a local port with its own PGlite database, wallets in a
 * temporary home with isolated secure element processes (and one OPS wallet without), OPS payments
 * by token and over TCP + Noise, a replay refused, DOT-M currency blocks paid in the nine steps over
 * TCP + Noise, sync, withdrawals, and the ledger's audit at the end. Steps are numbered as they are
 * told. `--keep` leaves the folders.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isTallyError } from '../core/errors.ts';
import { DotmWallet } from '../wallet/dotm-wallet.ts';
import { enrollOem } from '../wallet/factory.ts';
import { NodeClient } from '../wallet/node-client.ts';
import { auditAnswer } from '../wallet/node-answers.ts';
import { Wallet } from '../wallet/wallet.ts';
import { DEFAULT_CURRENCY, startNode } from './node-start.ts';

/** One told step as `--json` prints it; numbered steps carry their `number`. */
interface Step {
  step: string;
  [key: string]: unknown;
}

/** The DOT-M payment password of the demo's wallets. */
const DEMO_PASSWORD = 'demo payment password';

/** Runs the demo; returns the exit code (1 when the audit does not balance or a refusal is missing). */
export async function runDemo(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { keep: { type: 'boolean', default: false }, json: { type: 'boolean', default: false } }, strict: true });
  const json = values.json === true;
  let told = 0;
  const write = (text: string, step: Step) => process.stdout.write(json ? `${JSON.stringify(step)}\n` : `${text}\n`);
  /** A numbered step: its number is the next one, whatever came before. */
  const say = (text: string, step: Step) => {
    told += 1;
    write(`${told}. ${text.replace(/\n/g, `\n${' '.repeat(String(told).length + 2)}`)}`, { number: told, ...step });
  };
  /** A line under the last step, without a number of its own. */
  const aside = (text: string, step: Step) => write(`${' '.repeat(String(told).length + 2)}${text}`, step);
  const c = DEFAULT_CURRENCY.code;

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
  const opened: { close(): Promise<void> }[] = [];
  let exit = 0;
  try {
    say(`An issuer node runs at ${node.url} (data in ${root}/node, embedded PGlite).`, { step: 'node', url: node.url });
    const client = new NodeClient(node.url);
    const mint = async (account: string, amount: string, key: string) => {
      await client.operator(node.operatorToken, 'POST', '/v1/operator/mint', { body: { account, amount }, idempotencyKey: key });
    };
    const oem = await enrollOem(home, client, node.operatorToken);
    say(`Factory step: the operator enrols a software OEM (${oem.keyId.slice(0, 16)}...) and allows the trusted app builds (OPS ${oem.measurement.slice(0, 16)}...).`, { step: 'oem', oem: oem.keyId, measurement: oem.measurement });

    // ------------------------------------------------------------------ OPS
    const create = async (name: string, secureElement: boolean) => {
      const w = await Wallet.create({ home, name, node: node.url, secureElement });
      opened.push(w);
      return w;
    };
    const alice = await create('alice', true);
    const bob = await create('bob', true);
    const carol = await create('carol', false);
    say('OPS wallets: alice and bob each get an isolated secure element (attested by the OEM, certified by the node); carol has none.', {
      step: 'wallets',
      scheme: 'ops',
      alice: alice.snapshot().device?.keyId,
      bob: bob.snapshot().device?.keyId,
      carol: carol.snapshot().user.account,
    });

    await mint(alice.snapshot().user.account, '100.00', 'demo-mint');
    say(`The central bank mints 100.00 ${c} into alice's online account.`, { step: 'mint', scheme: 'ops', amount: '100.00', currency: c });

    const dep = await alice.deposit('60.00');
    say(`alice deposits ${dep.amount} ${c} into her secure element (Figure 5): offline balance ${dep.offline} ${c}.`, { step: 'deposit', scheme: 'ops', currency: c, ...dep });

    const { token: requestToken } = bob.request('12.50', 'coffee beans');
    say(`bob, offline, asks for 12.50 ${c} with a request token:\n${requestToken.slice(0, 60)}...`, { step: 'request', token: requestToken });
    const paid = await alice.pay(requestToken);
    say(`alice's TA pays it (Figure 7) and she hands over the payment token:\n${paid.token.slice(0, 60)}...`, { step: 'pay', index: paid.entry.index, token: paid.token });
    const accepted = await bob.accept(paid.token);
    say(`bob verifies it offline (PayVerify, Figure 8) and stores it: ${bob.format(BigInt(accepted.amount))} ${c} from device ${accepted.sender.slice(0, 16)}...`, { step: 'accept', amount: bob.format(BigInt(accepted.amount)), currency: c });
    try {
      await bob.accept(paid.token);
      aside('(the replay was accepted: this must not happen)', { step: 'replay', refused: false });
      exit = 1;
    } catch (e) {
      aside(`The same token shown again is refused: ${isTallyError(e) ? e.code : String(e)}.`, { step: 'replay', refused: true, code: isTallyError(e) ? e.code : String(e) });
    }
    const collected = await bob.collect();
    say(`bob collects it into his secure element: offline balance ${collected.offline} ${c}.`, { step: 'collect', offline: collected.offline, currency: c });

    let port = 0;
    let listening!: () => void;
    const ready = new Promise<void>((resolve) => (listening = resolve));
    const receiving = carol.receive('5.00', { port: 0, host: '127.0.0.1', timeoutMs: 30_000, memo: 'bread', onListening: (p) => { port = p; listening(); } });
    receiving.catch(() => undefined);
    await Promise.race([ready, receiving]);
    const overLink = await bob.payTo('127.0.0.1', port, { expect: '5.00', timeoutMs: 30_000 });
    const entry = await receiving;
    say(`carol, listening on TCP, received ${carol.format(BigInt(entry.amount))} ${c} from bob over a Noise session bound to both certificates.`, { step: 'receive', amount: carol.format(BigInt(entry.amount)), currency: c });
    say(`bob re-spent offline what alice paid him (offline transitivity): paid ${bob.format(overLink.payment.amount)} ${c} to carol, confirmed: ${overLink.confirmed}.`, { step: 'pay-link', confirmed: overLink.confirmed });

    const claimed = await carol.claim();
    say(`carol, without a secure element, claims it online (Figure 9): online balance ${claimed.online} ${c}.`, { step: 'claim', online: claimed.online, currency: c });
    const synced = [];
    for (const w of [alice, bob]) synced.push({ wallet: w.name, ...(await w.sync()) });
    say(`alice and bob sync: reports reconciled, revocation list v${synced[0]?.crlVersion}, fraud cases: ${synced.reduce((n, s) => n + s.fraud.length, 0)}.`, { step: 'sync', scheme: 'ops', wallets: synced });
    const wd = await alice.withdraw('20.00');
    say(`alice withdraws ${wd.amount} ${c} back online (Figure 6): online balance ${wd.online} ${c}.`, { step: 'withdraw', scheme: 'ops', currency: c, ...wd });
    for (const w of [alice, bob, carol]) {
      const b = await w.balance();
      aside(`${w.name.padEnd(6)} online ${b.online ?? '?'} ${c}  offline ${b.offline === null ? '-' : `${b.offline} ${c}`}`, { step: 'balance', scheme: 'ops', wallet: w.name, online: b.online, offline: b.offline, currency: c });
    }

    // ------------------------------------------------------------------ DOT-M
    const createDotm = async (name: string) => {
      const w = await DotmWallet.create({ home, name, node: node.url, password: DEMO_PASSWORD });
      opened.push(w);
      return w;
    };
    const dave = await createDotm('dave');
    const erin = await createDotm('erin');
    say('DOT-M wallets: dave and erin, each with a secure element holding its user key (usk), wallet key (wsk) and payment password.', {
      step: 'wallets',
      scheme: 'dotm',
      dave: dave.snapshot().dotm?.wallet,
      erin: erin.snapshot().dotm?.wallet,
    });
    await mint(dave.snapshot().user.account, '50.00', 'demo-mint-dotm');
    say(`The central bank mints 50.00 ${c} into dave's online account.`, { step: 'mint', scheme: 'dotm', amount: '50.00', currency: c });
    const blocks = await dave.deposit('30.00', 3);
    say(`dave deposits ${blocks.amount} ${c} as ${blocks.blocks} currency blocks signed by the central bank (§3.3.2): offline balance ${blocks.offline} ${c}.`, { step: 'deposit', scheme: 'dotm', currency: c, ...blocks });

    let dotmPort = 0;
    let dotmListening!: () => void;
    const dotmReady = new Promise<void>((resolve) => (dotmListening = resolve));
    const erinReceiving = erin.receive('12.00', { port: 0, host: '127.0.0.1', timeoutMs: 30_000, onListening: (p) => { dotmPort = p; dotmListening(); } });
    erinReceiving.catch(() => undefined);
    await Promise.race([dotmReady, erinReceiving]);
    const dotmPaid = await dave.payTo('127.0.0.1', dotmPort, { password: DEMO_PASSWORD, expect: '12.00', timeoutMs: 30_000 });
    const dotmReceived = await erinReceiving;
    say(
      `erin listens on TCP; dave pays her ${dotmPaid.amount} ${c} offline in the nine steps over Noise (§3.3.3: request, password, records signed with usk appended to ${dotmPaid.blocks} block(s), verified by erin's secure element): erin's transaction ${dotmReceived.status}.`,
      { step: 'pay-dotm', amount: dotmPaid.amount, currency: c, payer: dotmPaid.status, payee: dotmReceived.status, tsn: dotmPaid.tsn, blocks: dotmPaid.blocks },
    );
    const dotmSynced = [];
    for (const w of [dave, erin]) {
      const s = await w.sync();
      dotmSynced.push({ wallet: w.name, uploaded: s.uploaded, refused: s.results.filter((r) => r.status === 'refused').length, findings: s.findings.length });
    }
    say(`dave and erin sync (online data updating, §3.3.4): ${dotmSynced.reduce((n, s) => n + s.uploaded, 0)} signed events uploaded, ${dotmSynced.reduce((n, s) => n + s.refused, 0)} refused, double-spending findings: ${dotmSynced.reduce((n, s) => n + s.findings, 0)}.`, {
      step: 'sync',
      scheme: 'dotm',
      wallets: dotmSynced,
    });
    const redeemed = await erin.withdraw('12.00', DEMO_PASSWORD);
    say(`erin withdraws ${redeemed.amount} ${c}: her secure element gives the block copies up and the node credits her account${redeemed.credited ? '' : ' (not yet: at the next sync)'}: online balance ${redeemed.online ?? '?'} ${c}.`, { step: 'withdraw', scheme: 'dotm', currency: c, ...redeemed });
    for (const w of [dave, erin]) {
      const b = await w.balance();
      aside(`${w.name.padEnd(6)} online ${b.online ?? '?'} ${c}  offline ${b.offline} ${c} in ${b.blocks.length} block(s)`, { step: 'balance', scheme: 'dotm', wallet: w.name, online: b.online, offline: b.offline, currency: c });
    }

    const audit = (await client.operator(node.operatorToken, 'GET', '/v1/audit', { answer: auditAnswer })).body;
    say(`The node's audit: ${audit.balanced ? 'balanced' : 'NOT balanced'} (issued money = online accounts + the offline floats of OPS and DOT-M).`, { step: 'audit', ...audit });
    if (!audit.balanced) exit = 1;
  } finally {
    for (const w of opened) await w.close().catch(() => undefined);
    await node.stop();
    if (values.keep !== true) await rm(root, { recursive: true, force: true });
    else process.stderr.write(`kept ${root}\n`);
  }
  return exit;
}
