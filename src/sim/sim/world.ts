/**
 * The world of one simulated run: a seeded random source, a simulated clock, the real issuer node
 * (openNode + createIssuerApp, requests through the app in memory) on an in-memory PGlite (and, for
 * a scheme that settles on chain, the process's anvil: chain.ts), secure elements on the
 * in-process host over memory storage and counters, an in-memory network with faults, the
 * invariants and the recorder. Nothing in it reads the wall clock or Math.random: the
 * same seed makes the same choices (keys the node makes for itself and request nonces excepted,
 * which no choice and no figure of the report depends on).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { currency, type Currency } from '../../core/amount.ts';
import { fromBase64url, toBase64url, toHex } from '../../core/bytes.ts';
import { signerFromSecret, type Signer, type SuiteName } from '../../core/crypto/suite.ts';
import { ethereumAddress } from '../../core/crypto/ethereum.ts';
import { bankChainKeyFile } from '../../issuer/chain/bank-key.ts';
import { writeKeyFile } from '../../issuer/identity/keystore.ts';
import { loadOrCreateIdentity } from '../../issuer/identity/node-identity.ts';
import { signRequest } from '../../issuer/client/request-auth.ts';
import { bigintColumn, type Database } from '../../issuer/db/database.ts';
import { pgliteDatabase } from '../../issuer/db/pglite.ts';
import { createIssuerApp } from '../../issuer/http/app.ts';
import { formatMinor } from '../../issuer/http/json.ts';
import { ISSUANCE_ACCOUNT, type SchemeModule } from '../../issuer/plugin.ts';
import { openNode } from '../../issuer/services.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { keyId } from '../../pki/key-id.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { nodeSealing } from '../../providers/node-sealing.ts';
import { InProcessHost, SimulatedCrash } from '../../secure-element/host.ts';
import { MemoryCounter, MemoryStorage } from '../../secure-element/memory-fixtures.ts';
import { deriveDeviceKeys, MASTER_SECRET_BYTES } from '../../secure-element/sealing.ts';
import type { CrashPoint } from '../../secure-element/secure-element.ts';
import type { CommandTable, TrustedApp } from '../../secure-element/trusted-app.ts';
import { isTallyError } from '../../core/errors.ts';
import { Rng } from '../fuzz/random.ts';
import { closeSimChain, openSimChain } from './chain.ts';
import { SimViolation, type SimAttack, type SimChain, type SimAudit, type SimClock, type SimElement, type SimFault, type SimMessage, type SimNetwork, type SimNode, type SimParameters, type SimRandom, type SimRecorder, type SimSnapshot, type SimWorld } from './plugin.ts';

/** The currency of simulated nodes. */
export const SIM_CURRENCY: Currency = currency('EUR', 2);
/** Where the simulated clock starts: 2027-01-15, like the tests' clock. */
export const SIM_CLOCK_START = 1_800_000_000_000;
/** The passphrase of a simulated node's keys (a throwaway identity in a temporary folder). */
const SIM_PASSPHRASE = 'tally sim node, a throwaway key';
/** The longest a message is delayed on the network, simulated ms. */
const NETWORK_DELAY_MAX_MS = 60_000;

/** The seeded random source (xoshiro128** seeded by splitmix32). */
export function simRandom(seed: number): SimRandom {
  const rng = new Rng(seed);
  return {
    u32: () => rng.u32(),
    below: (n) => rng.below(n),
    chance: (p) => rng.chance(p),
    pick: (items) => rng.pick(items),
    bytes: (n) => rng.bytes(n),
    bigint(min, max) {
      if (max <= min) return min;
      const span = max - min + 1n;
      // Two draws give 64 bits: far more than any span of amounts, so the bias is negligible.
      const wide = (BigInt(rng.u32()) << 32n) | BigInt(rng.u32());
      return min + (wide % span);
    },
  };
}

/** Counters, attacks and the loss over simulated time. */
export class Recorder implements SimRecorder {
  readonly counters = new Map<string, number>();
  readonly attacks: SimAttack[] = [];
  bytesSent = 0;
  lost = 0n;
  /** (simulated time, loss, attacks detected so far), one point per sample. */
  readonly series: Array<{ at: number; loss: bigint; bound: bigint; detected: number }> = [];
  constructor(private readonly clock: SimClock) {}
  count(name: string, n = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + n);
  }
  attack(kind: string, device: string, bound: bigint): SimAttack {
    const attack: SimAttack = { kind, at: this.clock.now(), device, bound, outcome: 'pending', attributed: false, detectedAt: null };
    this.attacks.push(attack);
    return attack;
  }
  bytes(n: number): void {
    this.bytesSent += n;
  }
  loss(minor: bigint): void {
    this.lost = minor;
  }
  /** The sum of the attacks' bounds. */
  bound(): bigint {
    return this.attacks.reduce((sum, a) => sum + a.bound, 0n);
  }
  sample(): void {
    this.series.push({ at: this.clock.now(), loss: this.lost, bound: this.bound(), detected: this.attacks.filter((a) => a.outcome === 'detected').length });
  }
}

/**
 * Databases emptied by earlier runs of this process, ready for the next: a new PGlite costs seconds
 * of CPU (most of a small run's). A database is emptied with its schema kept: every table but the
 * migrations' record truncated and every sequence restarted, which leaves it as the node's
 * migrations left it on a new database (the migrations insert no rows), so the next run of the
 * same schemes skips them (about a third of a small run's time). A run of other schemes gets it
 * with its schema dropped (as a new database).
 */
const idle: Array<{ pg: PGlite; schemes: string }> = [];

/** Makes a new database when none is idle: PGlite's own initdb, unless useNewSimDatabases says otherwise. */
let newDatabase: () => Promise<PGlite> = () => PGlite.create();

/**
 * How this process makes a new database when none is idle: a new cluster either way (the tests
 * load their run's tarball of one, test-pglite-cluster.ts, rather than run initdb again).
 */
export function useNewSimDatabases(make: () => Promise<PGlite>): void {
  newDatabase = make;
}

/** The key of a run's schemes in the pool: the same schemes apply the same migrations. */
function schemesKey(schemes: readonly SchemeModule[]): string {
  return schemes.map((s) => s.name).sort().join(',');
}

/** A database for a run of `schemes`: one emptied after a run of the same schemes, else one emptied of everything, else a new one. */
async function takeDatabase(schemes: readonly SchemeModule[]): Promise<PGlite> {
  const key = schemesKey(schemes);
  const same = idle.findIndex((d) => d.schemes === key);
  if (same >= 0) return (idle.splice(same, 1)[0] as { pg: PGlite }).pg;
  const other = idle.pop();
  if (other === undefined) return newDatabase();
  try {
    for (const sql of ['DROP SCHEMA public CASCADE', 'CREATE SCHEMA public']) await other.pg.exec(sql);
    return other.pg;
  } catch {
    await other.pg.close().catch(() => undefined);
    return newDatabase();
  }
}

/** The statements that empty the public schema's tables but the migrations' record, and restart its sequences. */
const EMPTYING_SQL = `SELECT
  (SELECT 'TRUNCATE ' || string_agg(format('%I.%I', schemaname, tablename), ', ') || ' RESTART IDENTITY CASCADE'
     FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations') AS truncate,
  (SELECT string_agg(format('ALTER SEQUENCE %I.%I RESTART', schemaname, sequencename), '; ')
     FROM pg_sequences WHERE schemaname = 'public') AS restart`;

/** Empties a run's database for the next run, or closes it when it cannot be emptied. */
async function giveBack(pg: PGlite, schemes: readonly SchemeModule[]): Promise<void> {
  try {
    await pg.exec('ROLLBACK');
    const { rows } = await pg.query<{ truncate: string | null; restart: string | null }>(EMPTYING_SQL);
    const { truncate, restart } = rows[0] ?? { truncate: null, restart: null };
    // The ledger's append-only tables refuse TRUNCATE by a trigger, which fires only in the default role.
    await pg.exec('SET session_replication_role = replica');
    if (truncate !== null) await pg.exec(truncate);
    if (restart !== null) await pg.exec(restart);
    // One statement: a script runs as one transaction block, and DISCARD ALL refuses one. It resets the role too.
    await pg.exec('DISCARD ALL');
    idle.push({ pg, schemes: schemesKey(schemes) });
  } catch {
    await pg.close().catch(() => undefined);
  }
}

/** Closes the databases kept for later runs, and stops the process's chain; call it when no more runs follow. */
export async function closeSimDatabases(): Promise<void> {
  for (const { pg } of idle.splice(0)) await pg.close();
  await closeSimChain();
}

/** A Database whose close() leaves the database open: the node process restarts, the database server does not. */
function surviving(db: Database): Database {
  return { kind: db.kind, query: (sql, params) => db.query(sql, params), exec: (sql) => db.exec(sql), transaction: (fn, options) => db.transaction(fn, options), close: async () => {} };
}

/** How a run reports progress: one call per step. */
export type StepListener = (step: number) => void;

/** A node of several schemes (a mixed population): a SimNode that also answers what every user account holds. */
export interface MixNode extends SimNode {
  /** Every user account of the run's currency and its balance, minor units. */
  userBalances(): Promise<Map<string, bigint>>;
  /** Per account, what the issuance account moved into it (less what came back), minor units: where the node's money was issued. */
  issuedTo(): Promise<Map<string, bigint>>;
}

/** The world of one run, and what closes it. */
export interface World extends SimWorld {
  /** Opens the run's one node with every scheme of `schemes` (a mixed population opens one node for all its schemes). */
  openNodeOf(schemes: readonly SchemeModule[]): Promise<MixNode>;
  readonly recorder: Recorder;
  readonly steps: () => number;
  close(): Promise<void>;
}

/** Makes the world of one run of `params`. */
export function makeWorld(params: SimParameters, onStep: StepListener): World {
  const random = simRandom(params.seed);
  let time = SIM_CLOCK_START;
  const clock: SimClock = {
    now: () => time,
    advance(ms) {
      if (!(ms >= 0)) throw new RangeError(`the simulated clock only moves forward, not by ${ms} ms`);
      time += Math.floor(ms);
    },
  };
  const recorder = new Recorder(clock);
  const invariants: Array<{ name: string; check: () => Promise<string | null> }> = [];
  const closers: Array<() => Promise<void>> = [];
  let steps = 0;
  let calls = 0;
  let chain: SimChain | null = null;

  const world: World = {
    params,
    random,
    clock,
    provider: nodeProvider,
    recorder,
    steps: () => steps,
    openNode(scheme: SchemeModule): Promise<SimNode> {
      return world.openNodeOf([scheme]);
    },
    async openNodeOf(schemes: readonly SchemeModule[]): Promise<MixNode> {
      const dataDir = await mkdtemp(join(tmpdir(), 'tally-sim-node-'));
      const pg = await takeDatabase(schemes);
      const db = pgliteDatabase(pg);
      closers.push(async () => {
        await giveBack(pg, schemes);
        await rm(dataDir, { recursive: true, force: true });
      });
      let rpcUrl: string | undefined;
      if (schemes.some((s) => s.usesChain === true)) {
        // The bank's chain key from the seed, so that it deploys the same contracts at the same addresses each run; gas from the dev chain.
        const onChain = await world.chain();
        const suite = nodeProvider.suites.secp256k1;
        const secretKey = random.bytes(32);
        // The node's identity first (as its first start would make it), then the bank's chain key beside it.
        await loadOrCreateIdentity({ dataDir, passphrase: SIM_PASSPHRASE, provider: nodeProvider, currency: SIM_CURRENCY, now: clock.now() });
        await writeKeyFile(bankChainKeyFile(dataDir), { suite, secretKey }, SIM_PASSPHRASE);
        await onChain.fund(`0x${toHex(ethereumAddress({ suite: 'secp256k1', key: suite.publicKey(secretKey) }))}`);
        rpcUrl = onChain.rpcUrl;
      }
      const open = async () => {
        // Identifiers the node makes (DOT-M's serials) come from the seed: a trusted app breaks ties between equal blocks by serial.
        const node = await openNode({ dataDir, db: surviving(db), provider: nodeProvider, currency: SIM_CURRENCY, env: { TALLY_NODE_PASSPHRASE: SIM_PASSPHRASE }, now: clock.now, identifiers: (length) => random.bytes(length), schemes: [...schemes], ...(rpcUrl === undefined ? {} : { chain: { rpcUrl } }) });
        return { node, app: createIssuerApp(node.services, [...schemes]) };
      };
      let current = await open();
      closers.push(() => current.node.close());
      const { identity } = current.node.services;
      const request: SimNode['request'] = async (who, method, path, body, options = {}) => {
        const text = body === undefined ? '' : JSON.stringify(body);
        const auth =
          who === 'operator'
            ? { authorization: `Bearer ${identity.operatorToken}` }
            : signRequest({ signer: who, keyId: toHex(keyId(who.publicKey)), method, path, body: text, timestamp: clock.now() });
        const headers: Record<string, string> = { 'content-type': 'application/json', ...auth };
        if (method !== 'GET') headers['idempotency-key'] = options.idempotencyKey ?? `sim-call-${++calls}`;
        const response = await current.app.request(path, { method, headers, ...(body === undefined ? {} : { body: text }) });
        const answer = await response.text();
        return { status: response.status, body: answer === '' ? null : (JSON.parse(answer) as unknown) };
      };
      const expect = async (who: Signer | 'operator', method: string, path: string, body: unknown, status: number) => {
        const answer = await request(who, method, path, body);
        if (answer.status !== status) throw new Error(`${method} ${path}: expected ${status}, got ${answer.status} ${JSON.stringify(answer.body)}`);
        return answer.body as Record<string, string>;
      };
      const freshSigner = () => signerFromSecret(nodeProvider.suites.ed25519, random.bytes(32));
      return {
        certificates: { root: identity.root.certificate, intermediary: identity.intermediary.certificate, issuerNode: identity.issuerNode.certificate },
        deviceLimits: current.node.services.deviceLimits,
        amount: (minor) => formatMinor(SIM_CURRENCY, minor),
        request,
        async registerUser() {
          const signer = freshSigner();
          const body = await expect(signer, 'POST', '/v1/users', { publicKey: { suite: 'ed25519', key: toBase64url(signer.publicKey.key) } }, 201);
          return { signer, keyId: body['keyId'] as string, account: body['account'] as string, certificate: fromBase64url(body['certificate'] as string) };
        },
        async enrolOem(scheme, measurement) {
          const signer = freshSigner();
          const body = await expect('operator', 'POST', '/v1/operator/oems', { name: `Sim OEM (${scheme})`, publicKey: { suite: 'ed25519', key: toBase64url(signer.publicKey.key) } }, 201);
          await expect('operator', 'POST', '/v1/operator/measurements', { measurement: toHex(measurement), scheme, description: 'sim build' }, 201);
          return { signer, keyId: body['keyId'] as string };
        },
        async registerDevice(user, oem, device) {
          const attestation = attestDevice(oem.signer, { sePublicKey: device.publicKey, model: device.model, taMeasurement: device.measurement });
          const body = await expect(user, 'POST', '/v1/devices', {
            publicKey: { suite: device.publicKey.suite, key: toBase64url(device.publicKey.key) },
            scheme: device.scheme,
            oem: oem.keyId,
            attestation: toBase64url(encodeAttestation(attestation)),
            proof: toBase64url(device.proof),
          }, 201);
          return { keyId: body['keyId'] as string, certificate: fromBase64url(body['certificate'] as string) };
        },
        async mint(account, minor) {
          await expect('operator', 'POST', '/v1/operator/mint', { account, amount: formatMinor(SIM_CURRENCY, minor) }, 200);
        },
        async audit(): Promise<SimAudit> {
          const audit = await current.node.services.ledger.audit();
          const eur = audit.currencies.find((c) => c.currency === SIM_CURRENCY.code);
          return {
            balanced: audit.balanced,
            issued: eur?.totalIssued ?? 0n,
            online: eur?.totalOnline ?? 0n,
            settlement: eur?.totalSettlement ?? 0n,
            floats: new Map((eur?.offlineFloat ?? []).map((f) => [f.account, f.amount])),
          };
        },
        async restart() {
          await current.node.close();
          current = await open();
        },
        async issuedTo() {
          // Net of what went back to the issuance account.
          const rows = await db.query<{ account: string; net: bigint }>(
            `SELECT account, sum(delta)::bigint AS net FROM (SELECT credit_account AS account, amount AS delta FROM transfers WHERE debit_account = $1 AND currency = $2 UNION ALL SELECT debit_account, -amount FROM transfers WHERE credit_account = $1 AND currency = $2) moved GROUP BY account`,
            [ISSUANCE_ACCOUNT, SIM_CURRENCY.code],
          );
          return new Map(rows.rows.map((r) => [r.account, bigintColumn(r, 'net')]));
        },
        async userBalances() {
          const rows = await db.query<{ id: string; balance: bigint }>(`SELECT id, balance FROM accounts WHERE kind = 'user' AND currency = $1`, [SIM_CURRENCY.code]);
          return new Map(rows.rows.map((r) => [r.id, bigintColumn(r, 'balance')]));
        },
      };
    },
    async chain(): Promise<SimChain> {
      chain ??= await openSimChain(clock);
      return chain;
    },
    async element<S, C extends CommandTable<S>>(app: TrustedApp<S, C>): Promise<SimElement<C>> {
      const storage = new MemoryStorage();
      await storage.createMaster(random.bytes(MASTER_SECRET_BYTES));
      return elementOn(app, storage, new MemoryCounter(), true);
    },
    network<T>(): SimNetwork<T> {
      return network<T>(random, clock, recorder, params.faults);
    },
    async step(force = false) {
      steps++;
      onStep(steps);
      if (!force && steps % params.checkEvery !== 0) return;
      for (const { name, check } of invariants) {
        const broken = await check();
        if (broken !== null) throw new SimViolation(name, broken, steps, clock.now());
      }
      recorder.sample();
    },
    invariant(name, check) {
      invariants.push({ name, check });
    },
    violated(name, what): never {
      throw new SimViolation(name, what, steps, clock.now());
    },
    async close() {
      for (const close of closers.reverse()) await close().catch(() => undefined);
    },
  };

  async function elementOn<S, C extends CommandTable<S>>(app: TrustedApp<S, C>, storage: MemoryStorage, counter: MemoryCounter, provision: boolean): Promise<SimElement<C>> {
    let crash: CrashPoint | null = null;
    const options = {
      app,
      storage,
      counter,
      provider: nodeProvider,
      sealing: nodeSealing,
      onCrashPoint(point: CrashPoint) {
        if (point === crash) {
          crash = null;
          throw new SimulatedCrash(point);
        }
      },
    };
    let host = provision ? await InProcessHost.provision(options) : await InProcessHost.open(options);
    let storageNow = storage;
    const element: SimElement<C> = {
      get se() {
        return host;
      },
      crashAt(point) {
        crash = point;
      },
      async reopen() {
        await host.close().catch(() => undefined);
        host = await InProcessHost.open({ ...options, storage: storageNow });
      },
      async clone() {
        return elementOn(app, storageNow.clone(), counter.clone(), false);
      },
      extractKey(label, suite: SuiteName = 'ed25519') {
        const master = storageNow.master;
        if (master === null) throw new Error('the element has no master secret');
        return deriveDeviceKeys(master, nodeProvider, nodeSealing).signer(app.name, label, suite);
      },
      snapshot() {
        return { kind: 'sim-snapshot', storage: storageNow.clone() } as SimSnapshot;
      },
      async restore(snapshot) {
        const saved = (snapshot as SimSnapshot & { storage: MemoryStorage }).storage;
        await host.close().catch(() => undefined);
        storageNow = saved.clone();
        try {
          host = await InProcessHost.open({ ...options, storage: storageNow });
          return null;
        } catch (e) {
          if (isTallyError(e)) return e.code;
          throw e;
        }
      },
      close: () => host.close(),
    };
    closers.push(() => host.close());
    return element;
  }

  return world;
}

/** An in-memory network: each message is dropped, duplicated or delayed with probability `faults`. */
export function network<T>(random: SimRandom, clock: SimClock, recorder: SimRecorder, faults: number): SimNetwork<T> {
  let travelling: Array<SimMessage<T> & { seq: number }> = [];
  let seq = 0;
  const put = (payload: T, bytes: number, delay: number) => {
    travelling.push({ payload, bytes, at: clock.now() + delay, seq: ++seq });
    travelling.sort((a, b) => a.at - b.at || a.seq - b.seq);
  };
  return {
    send(payload, bytes) {
      recorder.bytes(bytes);
      const done: SimFault[] = [];
      if (random.chance(faults)) {
        done.push('dropped');
        recorder.count('faults.dropped');
        return done;
      }
      let delay = 0;
      if (random.chance(faults)) {
        delay = 1 + random.below(NETWORK_DELAY_MAX_MS);
        done.push('delayed');
        recorder.count('faults.delayed');
      }
      put(payload, bytes, delay);
      if (random.chance(faults)) {
        put(payload, bytes, 1 + random.below(NETWORK_DELAY_MAX_MS));
        done.push('duplicated');
        recorder.count('faults.duplicated');
      }
      return done;
    },
    due() {
      const now = clock.now();
      const ready = travelling.filter((m) => m.at <= now);
      travelling = travelling.filter((m) => m.at > now);
      return ready;
    },
    pending: () => travelling,
    drain() {
      const all = travelling;
      travelling = [];
      return all;
    },
  };
}
