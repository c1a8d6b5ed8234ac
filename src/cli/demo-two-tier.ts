/**
 * `tally demo --two-tier`: the two tiers told step by step against fresh local nodes: a central
 * bank, two intermediaries enrolled at it (and a third refused), money issued into their reserves
 * and minted to customers no further than each reserve, a revocation, and the system's audit.
 * Everything is real: three nodes on local ports, each with its own data folder and PGlite database.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toBase64url, toHex } from '../core/bytes.ts';
import { signerFromSecret } from '../core/crypto/suite.ts';
import { isTallyError } from '../core/errors.ts';
import { signRequest } from '../issuer/client/request-auth.ts';
import { enrol } from '../issuer/tier/enrol.ts';
import { keyId } from '../pki/key-id.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { enrollOem } from '../wallet/factory.ts';
import { NodeClient } from '../wallet/node-client.ts';
import type { Scheme } from '../schemes/scheme.ts';
import type { DemoBank, TwoTierDemoContext } from './plugin.ts';
import { DEFAULT_CURRENCY, startNode, type RunningNode } from './node-start.ts';

/** One told step as `--json` prints it. */
interface Step {
  step: string;
  [key: string]: unknown;
}

const PASSPHRASE = 'two-tier demo passphrase';

type Answer = Record<string, unknown>;

/** Runs the two-tier demo; returns the exit code (1 when an audit does not balance or a refusal is missing). */
export async function runTwoTierDemo(options: { keep: boolean; json: boolean; schemes: readonly Scheme[] }): Promise<number> {
  const { json } = options;
  let told = 0;
  let exit = 0;
  const write = (text: string, step: Step) => process.stdout.write(json ? `${JSON.stringify(step)}\n` : `${text}\n`);
  const say = (text: string, step: Step) => {
    told += 1;
    write(`${told}. ${text.replace(/\n/g, `\n${' '.repeat(String(told).length + 2)}`)}`, { number: told, ...step });
  };
  const aside = (text: string, step: Step) => write(`${' '.repeat(String(told).length + 2)}${text}`, step);
  const missed = (what: string) => {
    aside(`(${what}: this must not happen)`, { step: 'missed', what });
    exit = 1;
  };

  const root = await mkdtemp(join(tmpdir(), 'tally-two-tier-'));
  const silent = { log: () => undefined };
  const env = { TALLY_NODE_PASSPHRASE: PASSPHRASE };
  const nodes = new Set<RunningNode>();
  const opened: { close(): Promise<void> }[] = [];
  const start = async (name: string, role?: 'central-bank', port = 0) => {
    // A central bank serves no scheme; the banks serve every scheme with a chapter here.
    const schemes = role === undefined ? options.schemes.filter((s) => s.cli.twoTierDemo !== undefined) : [];
    const node = await startNode({ port, host: '127.0.0.1', dataDir: join(root, name), env, currency: DEFAULT_CURRENCY, logger: silent, print: () => undefined, schemes, tierSyncMs: 0, ...(role === undefined ? {} : { role }) });
    nodes.add(node);
    return node;
  };
  const operator = async (node: RunningNode, method: 'GET' | 'POST', path: string, body?: Answer): Promise<Answer> => {
    const answer = await new NodeClient(node.url).operator(node.operatorToken, method, path, method === 'POST' ? { body: body ?? {}, idempotencyKey: `demo-${toHex(crypto.getRandomValues(new Uint8Array(8)))}` } : {});
    return answer.body as Answer;
  };
  try {
    const cb = await start('central-bank', 'central-bank');
    say(`A central bank runs at ${cb.url} (data in ${root}/central-bank): its root key ${cb.rootKeyId.slice(0, 16)}... only certifies, and it keeps the reserves of the intermediaries.`, { step: 'central-bank', url: cb.url, rootKeyId: cb.rootKeyId });

    const banks: { name: string; dir: string; keyId: string; node?: RunningNode }[] = [];
    for (const name of ['Bank A', 'Bank B']) {
      const dir = join(root, name.toLowerCase().replace(' ', '-'));
      const asked = await enrol({ dataDir: dir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, name, rootKeyId: cb.rootKeyId, now: Date.now });
      banks.push({ name, dir, keyId: asked.keyId });
    }
    say(`Bank A and Bank B each make an intermediary key and ask to be enrolled, signing their name, the currency, the root and the key with it: requests ${banks.map((b) => `${b.keyId.slice(0, 12)}...`).join(' and ')}, pending.`, { step: 'enrol', requests: banks.map((b) => ({ name: b.name, keyId: b.keyId })) });

    const dirC = join(root, 'bank-c');
    const askedC = await enrol({ dataDir: dirC, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, name: 'Bank C', rootKeyId: cb.rootKeyId, now: Date.now });
    for (const bank of banks) await operator(cb, 'POST', `/v1/cb/operator/enrolments/${bank.keyId}/approve`);
    await operator(cb, 'POST', `/v1/cb/operator/enrolments/${askedC.keyId}/refuse`, { reason: 'not a supervised institution' });
    say("The central bank's operator approves A and B (the root certifies their keys and opens a reserve for each) and refuses Bank C's request.", { step: 'decide', approved: banks.map((b) => b.keyId), refused: askedC.keyId });
    try {
      await start('bank-c');
      missed("a refused intermediary's node started");
    } catch (e) {
      aside(`Bank C's node does not start: ${isTallyError(e) ? `${e.code}, ${e.message}` : String(e)}`, { step: 'refused', code: isTallyError(e) ? e.code : String(e) });
    }

    for (const bank of banks) {
      await enrol({ dataDir: bank.dir, passphrase: PASSPHRASE, provider: nodeProvider, centralBank: cb.url, now: Date.now });
      bank.node = await start(bank.dir.slice(root.length + 1));
    }
    const [a, b] = banks.map((bank) => bank.node as RunningNode) as [RunningNode, RunningNode];
    say(`Both intermediaries run: Bank A at ${a.url}, Bank B at ${b.url}, each with its own database; neither holds the root key.`, { step: 'intermediaries', a: a.url, b: b.url });

    const [bankA, bankB] = banks as [(typeof banks)[number], (typeof banks)[number]];
    await operator(cb, 'POST', '/v1/cb/operator/issue', { intermediary: bankA.keyId, amount: '1000.00' });
    await operator(cb, 'POST', '/v1/cb/operator/issue', { intermediary: bankB.keyId, amount: '500.00' });
    const syncA = await operator(a, 'POST', '/v1/operator/reserve/sync');
    const syncB = await operator(b, 'POST', '/v1/operator/reserve/sync');
    const c = DEFAULT_CURRENCY.code;
    say(`The central bank issues 1000.00 ${c} into Bank A's reserve and 500.00 ${c} into Bank B's; each bank syncs and mirrors it: A ${String(syncA['reserve'])} ${c}, B ${String(syncB['reserve'])} ${c}, none of it in a customer's account yet.`, { step: 'issue', a: syncA, b: syncB });

    const alice = await registerCustomer(a);
    const bob = await registerCustomer(b);
    await operator(a, 'POST', '/v1/operator/mint', { account: alice, amount: '300.00' });
    await operator(b, 'POST', '/v1/operator/mint', { account: bob, amount: '120.00' });
    say(`alice opens an account at Bank A and bob one at Bank B; Bank A mints 300.00 ${c} to alice and Bank B 120.00 ${c} to bob, each from its reserve.`, { step: 'mint', alice, bob });
    try {
      await operator(b, 'POST', '/v1/operator/mint', { account: bob, amount: '400.00' });
      missed('Bank B minted more than its reserve holds');
    } catch (e) {
      aside(`Bank B cannot mint 400.00 ${c} more: its reserve has 380.00 ${c} left (${refusedCode(e)}).`, { step: 'over-mint', code: refusedCode(e) });
    }

    await operator(a, 'POST', '/v1/operator/reserve/sync');
    await operator(b, 'POST', '/v1/operator/reserve/sync');
    const audit = await operator(cb, 'GET', '/v1/cb/audit');
    const lines = (audit['intermediaries'] as Answer[]).map((i) => {
      const r = i['reported'] as Answer;
      return `${String(i['name'])}: reserve ${String(i['reserve'])} = online ${String(r['online'])} + offline ${String(r['offlineFloat'])} + not yet allocated ${String(r['unallocated'])} ${c}`;
    });
    say(`The system's audit: ${audit['balanced'] === true ? 'balanced' : 'NOT balanced'}; issued ${String(audit['issued'])} ${c} = reserves ${String(audit['reserves'])} ${c}, and each bank's books agree with its reserve:\n${lines.join('\n')}`, { step: 'audit', ...audit });
    if (audit['balanced'] !== true) exit = 1;

    // Payments across the two banks, each scheme's chapter in turn.
    const chapters = options.schemes.filter((s) => s.cli.twoTierDemo !== undefined);
    if (chapters.length > 0) {
      const demoBank = async (bank: (typeof banks)[number], label: string): Promise<DemoBank> => {
        const home = join(root, `home-${label}`);
        let node = bank.node as RunningNode;
        const client = () => new NodeClient(node.url);
        const oem = await enrollOem(home, client(), node.operatorToken, chapters.flatMap((s) => s.wallet.trustedApps));
        aside(`${bank.name} enrols a software OEM (${oem.keyId.slice(0, 16)}...) and allows the trusted app builds of ${oem.measurements.map((m) => m.scheme).join(', ')}: its customers' devices are certified by ${bank.name} alone.`, { step: 'oem', bank: bank.name, oem: oem.keyId });
        return {
          name: bank.name,
          keyId: bank.keyId,
          home,
          get node() {
            return node;
          },
          mint: async (account, amount, key) => {
            await client().operator(node.operatorToken, 'POST', '/v1/operator/mint', { body: { account, amount }, idempotencyKey: key });
          },
          stop: async () => {
            await node.stop();
            nodes.delete(node);
          },
          start: async () => {
            node = await start(bank.dir.slice(root.length + 1), undefined, Number(new URL(node.url).port));
          },
        };
      };
      const context: TwoTierDemoContext = {
        centralBank: cb,
        bankA: await demoBank(bankA, 'a'),
        bankB: await demoBank(bankB, 'b'),
        say,
        aside,
        missed,
        keep: (wallet) => opened.push(wallet),
        settle: async () => {
          for (let round = 0; round < 3; round++) for (const bank of [context.bankA, context.bankB]) await operator(bank.node as RunningNode, 'POST', '/v1/operator/reserve/sync');
          return operator(cb, 'GET', '/v1/cb/audit');
        },
        reserves: async () => {
          const listed = (await operator(cb, 'GET', '/v1/cb/intermediaries'))['intermediaries'] as { keyId: string; reserve: string }[];
          const of = (keyId: string) => listed.find((i) => i.keyId === keyId)?.reserve ?? '?';
          return { a: of(bankA.keyId), b: of(bankB.keyId) };
        },
      };
      for (const scheme of chapters) await scheme.cli.twoTierDemo?.(context);
      const after = await context.settle();
      say(`After the payments across the banks, the system's audit: ${after['balanced'] === true ? 'balanced' : 'NOT balanced'}; issued ${String(after['issued'])} ${c} = reserves ${String(after['reserves'])} ${c}, every bank's books agreeing with its reserve.`, { step: 'audit-after', ...after });
      if (after['balanced'] !== true) exit = 1;
    }

    await operator(cb, 'POST', '/v1/cb/operator/revoke', { intermediary: bankB.keyId, reason: 'licence withdrawn' });
    const learnt = await operator(b, 'POST', '/v1/operator/reserve/sync');
    say(`The central bank revokes Bank B: the root signs a new list of revoked intermediaries; Bank B learns it at its next sync (revoked: ${String(learnt['revoked'])}).`, { step: 'revoke', revoked: learnt['revoked'], version: learnt['rootListVersion'] });
    try {
      await operator(cb, 'POST', '/v1/cb/operator/issue', { intermediary: bankB.keyId, amount: '1.00' });
      missed('the central bank issued into a revoked reserve');
    } catch (e) {
      aside(`Nothing more is issued to it: ${refusedCode(e)}.`, { step: 'revoked-issue', code: refusedCode(e) });
    }
  } finally {
    for (const w of opened) await w.close().catch(() => undefined);
    for (const node of [...nodes].reverse()) await node.stop().catch(() => undefined);
    if (!options.keep) await rm(root, { recursive: true, force: true });
    else process.stderr.write(`kept ${root}\n`);
  }
  return exit;
}

/**
 * Registers a customer's key at a bank (`POST /v1/users`, signed by that key); answers the account id.
 * @throws Error when the bank does not answer 201 with an account
 */
export async function registerCustomer(node: RunningNode): Promise<string> {
  const suite = nodeProvider.suites.ed25519;
  const signer = signerFromSecret(suite, suite.generateSecretKey());
  const id = toHex(keyId(signer.publicKey));
  const body = JSON.stringify({ publicKey: { suite: 'ed25519', key: toBase64url(signer.publicKey.key) } });
  const headers = signRequest({ signer, keyId: id, method: 'POST', path: '/v1/users', body, timestamp: Date.now() });
  const res = await fetch(`${node.url}/v1/users`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json', 'idempotency-key': `user-${id.slice(0, 16)}` }, body });
  const answer = (await res.json()) as { account?: string };
  if (res.status !== 201 || answer.account === undefined) throw new Error(`registering a customer at ${node.url} failed (${res.status})`);
  return answer.account;
}

/** The code of a refusal: the node's own code when it refused, else the error's. */
function refusedCode(e: unknown): string {
  if (isTallyError(e, 'NODE_REFUSED')) return e.details.code;
  return isTallyError(e) ? e.code : String(e);
}
