/**
 * Two tiers in one test process: a central bank and enrolled intermediaries, each a real node over
 * HTTP on loopback with its own database and data folder, for the tests of payments across banks.
 * The schemes come from the caller (this layer imports none); each bank certifies an OEM of its
 * own and registers the measurements it is given, so that devices can be registered there.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBase64url, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret, type Signer } from '../../core/crypto/suite.ts';
import { DEFAULT_CURRENCY, startNode, type RunningNode } from '../../cli/node-start.ts';
import { keyId } from '../../pki/key-id.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { signRequest } from '../client/request-auth.ts';
import { seedPgliteCluster } from '../db/test-pglite-cluster.ts';
import { loadIdentity } from '../identity/load-identity.ts';
import { enrol } from './enrol.ts';

/** The schemes a node serves, as `startNode` takes them. */
type Schemes = NonNullable<Parameters<typeof startNode>[0]['schemes']>;

export const TIERS_PASSPHRASE = 'two tiers test passphrase';
const silent = { log: () => undefined };
const env = { TALLY_NODE_PASSPHRASE: TIERS_PASSPHRASE };
let calls = 0;

export type Json = Record<string, unknown>;

/** A node's answer: its status and its JSON body. */
export interface Answer {
  readonly status: number;
  readonly body: Json;
}

/** One HTTP request; the body is JSON (or `raw` as it is). */
export async function send(base: string, method: string, path: string, options: { body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const text = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const request = () => fetch(new URL(path, base), { method, headers: { 'content-type': 'application/json', ...options.headers }, ...(text === undefined ? {} : { body: text }) });
  let res: Response;
  try {
    res = await request();
  } catch (e) {
    // The nodes run in this process: when a secure element's work holds the event loop past the
    // server's keep-alive timeout, the server may close an idle connection just as the client
    // reuses it. Such a reset comes before the request is read, so it is sent once more, as it
    // was; had it been read, the node would answer the second one as a replay, not silently.
    if (!isConnectionReset(e)) throw e;
    res = await request();
  }
  const got = await res.text();
  return { status: res.status, body: got === '' ? {} : (JSON.parse(got) as Json) };
}

/** Whether a fetch failed because the connection was reset or closed under it. */
function isConnectionReset(e: unknown): boolean {
  const cause = e instanceof Error ? (e.cause as { code?: unknown } | undefined) : undefined;
  return e instanceof TypeError && (cause?.code === 'ECONNRESET' || cause?.code === 'UND_ERR_SOCKET');
}

/** The headers of a request signed by `signer`, with a fresh idempotency key. */
export function signedHeaders(signer: Signer, method: string, path: string, body: string): Record<string, string> {
  return { ...signRequest({ signer, keyId: toHex(keyId(signer.publicKey)), method, path, body, timestamp: Date.now() }), 'idempotency-key': `test-${++calls}-${Date.now()}` };
}

/** A request signed by `signer` (a customer's key, or an intermediary's at the central bank). */
export async function signed(base: string, signer: Signer, method: string, path: string, body?: unknown, idempotencyKey?: string): Promise<Answer> {
  const raw = body === undefined ? '' : JSON.stringify(body);
  const headers = signedHeaders(signer, method, path, raw);
  if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey;
  return send(base, method, path, { ...(body === undefined ? {} : { raw }), headers });
}

/** A node and its operator. */
export class TierNode {
  constructor(
    readonly name: string,
    public running: RunningNode,
    readonly dataDir: string,
  ) {}

  get url(): string {
    return this.running.url;
  }

  /** An operator request (bearer token), whatever its answer. */
  operator(method: string, path: string, body?: unknown): Promise<Answer> {
    return send(this.url, method, path, { ...(body === undefined ? {} : { body }), headers: { authorization: `Bearer ${this.running.operatorToken}`, 'idempotency-key': `op-${++calls}-${Date.now()}` } });
  }

  /** An operator request that must succeed; its body. */
  async ok(method: string, path: string, body?: unknown): Promise<Json> {
    const a = await this.operator(method, path, body);
    assert.ok(a.status >= 200 && a.status < 300, `${this.name} ${method} ${path}: ${a.status} ${JSON.stringify(a.body)}`);
    return a.body;
  }
}

/** An intermediary, with its key (loaded from its folder, as its operator holds it) for the central bank's routes. */
export class TierBank extends TierNode {
  keyId = '';
  signer!: Signer;
  /** An OEM this bank certified, for its customers' devices. */
  oem!: Signer;
  oemKeyId = '';
  certificates!: { root: Uint8Array; intermediary: Uint8Array; issuerNode: Uint8Array };

  constructor(
    name: string,
    running: RunningNode,
    dataDir: string,
    private readonly startAgain: () => Promise<RunningNode>,
  ) {
    super(name, running, dataDir);
  }

  /** One sync with the central bank, now. */
  sync(): Promise<Json> {
    return this.ok('POST', '/v1/operator/reserve/sync');
  }

  /** The bank's own audit, which must balance. */
  async audit(): Promise<Json> {
    const a = await this.ok('GET', '/v1/audit');
    assert.equal(a['balanced'], true, `${this.name}'s audit: ${JSON.stringify(a)}`);
    return a;
  }

  /** Whether the node is stopped (see stop and restart). */
  stopped = false;

  /** Stops the node (its data folder and database stay). */
  async stop(): Promise<void> {
    await this.running.stop();
    this.stopped = true;
  }

  /** Starts the stopped node again over the same folder. */
  async restart(): Promise<void> {
    this.running = await this.startAgain();
    this.stopped = false;
  }
}

/** A registered customer of a bank: its key, account and client certificate. */
export interface TierCustomer {
  readonly bank: TierBank;
  readonly user: Signer;
  readonly keyId: string;
  readonly account: string;
  readonly certificate: Uint8Array;
}

let seeds = 40;

/** A new customer of `bank`. */
export async function customer(bank: TierBank): Promise<TierCustomer> {
  const user = signerFromSecret(nobleEd25519, sha256(utf8(`tier customer ${++seeds} ${process.pid}`)));
  const a = await signed(bank.url, user, 'POST', '/v1/users', { publicKey: { suite: 'ed25519', key: toBase64url(user.publicKey.key) } });
  assert.equal(a.status, 201, JSON.stringify(a.body));
  return { bank, user, keyId: a.body['keyId'] as string, account: a.body['account'] as string, certificate: fromBase64url(a.body['certificate'] as string) };
}

/** A customer's account balance, in major units. */
export async function balance(c: TierCustomer): Promise<string> {
  const a = await signed(c.bank.url, c.user, 'GET', `/v1/accounts/${c.account}`);
  assert.equal(a.status, 200, JSON.stringify(a.body));
  return a.body['balance'] as string;
}

/** A claim the customer's bank presented for it, as the customer reads it. */
export async function claimState(c: TierCustomer, claimId: string): Promise<Json> {
  const a = await signed(c.bank.url, c.user, 'GET', `/v1/interbank/claims/${claimId}`);
  assert.equal(a.status, 200, JSON.stringify(a.body));
  return a.body;
}

/** Major units ("12.34") to minor. */
export function minor(decimal: string): bigint {
  assert.match(decimal, /^-?[0-9]+\.[0-9]{2}$/);
  return BigInt(decimal.replace('.', ''));
}

/** Minor units to major ("12.34"). */
export function money(m: bigint): string {
  const sign = m < 0n ? '-' : '';
  const a = m < 0n ? -m : m;
  return `${sign}${a / 100n}.${(a % 100n).toString().padStart(2, '0')}`;
}

/** What a bank is started with. */
export interface BankOptions {
  /** Trusted-app measurements to register (scheme and hex measurement), for devices of those schemes. */
  readonly measurements?: readonly { scheme: string; measurement: string }[];
  /** The reserve the central bank issues to it (major units); none when '0.00'. */
  readonly reserve?: string;
  /** Its schemes, when not the tiers' own (a bank set up apart, such as one joining another's chain deployment). */
  readonly schemes?: Schemes;
  /** The Ethereum endpoint its chain schemes settle on (another bank's chain); its own embedded chain when absent. */
  readonly ethRpc?: string;
  /** The contract deployment on that chain its schemes join (`--chain-contract`). */
  readonly chainContract?: `0x${string}`;
}

/** A central bank and the intermediaries started under it. */
export class Tiers {
  readonly banks: TierBank[] = [];

  private constructor(
    readonly root: string,
    readonly cb: TierNode,
    private readonly schemes: Schemes,
  ) {}

  /** A central bank in a temporary folder. */
  static async start(options: { schemes: Schemes; tag?: string }): Promise<Tiers> {
    const root = await mkdtemp(join(tmpdir(), `tally-tiers-${options.tag ?? 'test'}-`));
    const dataDir = join(root, 'cb');
    // A copy of the tests' new PGlite cluster rather than initdb at each node's first start (test-pglite-cluster.ts).
    await seedPgliteCluster(dataDir);
    const running = await startNode({ port: 0, host: '127.0.0.1', dataDir, env, currency: DEFAULT_CURRENCY, role: 'central-bank', logger: silent, print: () => undefined });
    return new Tiers(root, new TierNode('central bank', running, dataDir), options.schemes);
  }

  /** An intermediary: enrolled, approved, started, with an OEM, its measurements and a reserve; every bank synced after. */
  async bank(name: string, options: BankOptions = {}): Promise<TierBank> {
    const dataDir = join(this.root, name);
    const asked = await enrol({ dataDir, passphrase: TIERS_PASSPHRASE, provider: nodeProvider, centralBank: this.cb.url, name, now: () => Date.now() });
    assert.equal(asked.status, 'pending');
    await this.cb.ok('POST', `/v1/cb/operator/enrolments/${asked.keyId}/approve`);
    const schemes = options.schemes ?? this.schemes;
    const ethRpc = { ...(options.ethRpc === undefined ? {} : { ethRpc: options.ethRpc }), ...(options.chainContract === undefined ? {} : { chainContract: options.chainContract }) };
    await seedPgliteCluster(dataDir);
    const start = () => startNode({ port: 0, host: '127.0.0.1', dataDir, env, schemes, currency: DEFAULT_CURRENCY, logger: silent, print: () => undefined, tierSyncMs: 0, ...ethRpc });
    const bank = new TierBank(name, await start(), dataDir, start);
    bank.keyId = asked.keyId;
    const identity = await loadIdentity({ dataDir, passphrase: TIERS_PASSPHRASE, provider: nodeProvider, currency: DEFAULT_CURRENCY, now: Date.now(), log: () => undefined });
    bank.signer = identity.intermediary.signer;
    assert.equal(toHex(keyId(bank.signer.publicKey)), asked.keyId);
    const info = await send(bank.url, 'GET', '/v1/info');
    const certs = info.body['certificates'] as Record<string, string>;
    bank.certificates = { root: fromBase64url(certs['root'] as string), intermediary: fromBase64url(certs['intermediary'] as string), issuerNode: fromBase64url(certs['issuerNode'] as string) };
    bank.oem = signerFromSecret(nobleEd25519, sha256(utf8(`oem of ${name}`)));
    const oem = await bank.ok('POST', '/v1/operator/oems', { name: `OEM of ${name}`, publicKey: { suite: 'ed25519', key: toBase64url(bank.oem.publicKey.key) } });
    bank.oemKeyId = oem['keyId'] as string;
    for (const m of options.measurements ?? []) await bank.ok('POST', '/v1/operator/measurements', { measurement: m.measurement, scheme: m.scheme, description: 'test build' });
    const reserve = options.reserve ?? '1000.00';
    if (reserve !== '0.00') await this.cb.ok('POST', '/v1/cb/operator/issue', { intermediary: asked.keyId, amount: reserve });
    this.banks.push(bank);
    await this.syncAll();
    return bank;
  }

  /** Each running bank synced once, in the order they were started (a stopped one is skipped). */
  async syncAll(): Promise<void> {
    for (const b of this.banks) if (!b.stopped) await b.sync();
  }

  /** A bank's reserve at the central bank, in major units. */
  async reserveOf(bank: TierBank): Promise<string> {
    const list = (await this.cb.ok('GET', '/v1/cb/intermediaries'))['intermediaries'] as Json[];
    return list.find((i) => i['keyId'] === bank.keyId)?.['reserve'] as string;
  }

  /** Every bank synced three rounds (a claim, its decision and its outcome each take one), every audit balanced, the system's too; the system's audit. */
  async settleAndAudit(): Promise<Json> {
    const stopped = this.banks.filter((b) => b.stopped).map((b) => b.name);
    assert.deepEqual(stopped, [], 'every bank runs when the system is audited');
    for (let round = 0; round < 3; round++) await this.syncAll();
    for (const b of this.banks) await b.audit();
    const system = await this.cb.ok('GET', '/v1/cb/audit');
    assert.equal(system['balanced'], true, `the system's audit: ${JSON.stringify(system)}`);
    return system;
  }

  /** Stops every node and removes the folder. */
  async stop(): Promise<void> {
    for (const n of [...this.banks.filter((b) => !b.stopped), this.cb]) await n.running.stop().catch(() => undefined);
    await rm(this.root, { recursive: true, force: true });
  }
}
