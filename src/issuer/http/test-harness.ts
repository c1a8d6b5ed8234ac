/**
 * A node for HTTP tests (not exported): a fresh database of one backend, an identity in a temporary
 * folder, a clock the test moves, and helpers that send plain, operator and signed requests
 * through the app in memory.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { currency } from '../../core/amount.ts';
import { toBase64url, toHex } from '../../core/bytes.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret, type Signer, type SuiteName } from '../../core/crypto/suite.ts';
import { keyId } from '../../pki/key-id.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { signRequest } from '../client/request-auth.ts';
import { identityDir } from '../identity/layout.ts';
import { loadOrCreateIdentity } from '../identity/node-identity.ts';
import type { testBackends } from '../db/test-databases.ts';
import { openNode } from '../services.ts';
import { startSettleWorkers } from '../queue/settle-queue.ts';
import { deleteTestStream } from '../queue/test-nats.ts';
import { createIssuerApp, type SchemeModule } from './app.ts';

/** The currency of test nodes. */
export const EUR = currency('EUR', 2);
/** The test clock's start: 2027-01-15. */
export const CLOCK_START = 1_800_000_000_000;

type Backend = ReturnType<typeof testBackends>[number];

/** A registered account holder. */
export interface TestUser {
  readonly user: Signer;
  readonly account: string;
  readonly keyId: string;
  readonly certificate: string;
}

/** The passphrase of test nodes' keys. */
const PASSPHRASE = 'test passphrase';

/** Per suite, a data folder of this process holding the identity its test nodes start with. */
const identities = new Map<SuiteName, Promise<string>>();

/**
 * Where a test node's identity is copied from: one made by loadOrCreateIdentity for this process
 * and `suite`, at CLOCK_START with the tests' passphrase and currency, exactly as a node's first
 * start at the test clock makes it. Making one seals four keys with scrypt (about 0.4 s of CPU),
 * which every test paid again; the copy takes milliseconds. Each test node still loads and checks
 * its copy (the keys unsealed, the certificates verified) in a data folder and a database of its
 * own, so what a test sees of its node is what a new node shows; only the keys are the same in
 * every test of a file, and no test of a node here compares them with another test's. The
 * creation itself is node-identity.test.ts's.
 */
function identityTemplate(suite: SuiteName): Promise<string> {
  let made = identities.get(suite);
  if (made === undefined) {
    made = (async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'tally-identity-'));
      process.once('exit', () => rmSync(dataDir, { recursive: true, force: true }));
      await loadOrCreateIdentity({ dataDir, passphrase: PASSPHRASE, provider: nodeProvider, currency: EUR, suite, now: CLOCK_START });
      return dataDir;
    })();
    identities.set(suite, made);
  }
  return made;
}

/** Opens a test node on `backend`; call `close()` in `finally`. */
export async function setup(backend: Backend, options: { schemes?: readonly SchemeModule[]; suite?: SuiteName | undefined; settle?: { natsUrl: string; shards: number; ackWaitMs?: number; shardDatabases?: readonly string[]; externalWorkers?: boolean } | undefined } = {}) {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-node-'));
  await cp(identityDir(await identityTemplate(options.suite ?? 'ed25519')), identityDir(dataDir), { recursive: true });
  const database = await backend.open({ poolSize: 20 });
  let clock = CLOCK_START;
  const node = await openNode({ dataDir, db: database.db, provider: nodeProvider, currency: EUR, env: { TALLY_NODE_PASSPHRASE: PASSPHRASE }, now: () => clock, schemes: options.schemes, settle: options.settle, ...(options.suite === undefined ? {} : { suite: options.suite }) });
  // With a settlement intake: a worker per shard, as `tally node start --nats` runs them.
  const handlers = new Map((options.schemes ?? []).flatMap((scheme) => [...(scheme.settleHandlers?.(node.services) ?? [])]));
  const workers = node.intake === undefined ? undefined : await startSettleWorkers(node.intake, handlers);
  // With shard databases: receivers of the credits between them for every place, as `tally node start` runs them
  // (for its own database only with external workers, which receive for the shards).
  const places = node.services.shardLedgers?.parties;
  const receivers = node.credits === undefined || places === undefined ? undefined : await node.credits.receive(options.settle?.externalWorkers === true ? ['home'] : places);
  const app = createIssuerApp(node.services, options.schemes);
  const operator = { authorization: `Bearer ${node.services.identity.operatorToken}` };
  // `to`: another app over the same node (say, the node as it runs without its settlement intake).
  const send = (method: string, path: string, init: { body?: unknown; headers?: Record<string, string>; raw?: string; to?: typeof app | undefined } = {}) =>
    (init.to ?? app).request(path, {
      method,
      ...(init.raw !== undefined || init.body !== undefined ? { body: init.raw ?? JSON.stringify(init.body) } : {}),
      headers: { 'content-type': 'application/json', ...init.headers },
    });
  const signed = (user: Signer, method: string, path: string, body?: unknown, extra: Record<string, string> = {}, nonce?: Uint8Array, to?: typeof app) => {
    const text = body === undefined ? '' : JSON.stringify(body);
    const headers = signRequest({ signer: user, keyId: toHex(keyId(user.publicKey)), method, path, body: text, timestamp: clock, nonce });
    return send(method, path, { ...(body === undefined ? {} : { raw: text }), headers: { ...headers, ...extra }, to });
  };
  /** The node's app as it answers without its settlement intake (started again without --nats). */
  const withoutIntake = () => createIssuerApp({ ...node.services, settleQueue: undefined }, options.schemes);
  let operatorCalls = 0;
  const asOperator = (method: string, path: string, body?: unknown) =>
    send(method, path, { ...(body === undefined ? {} : { body }), headers: { ...operator, 'idempotency-key': `operator-${++operatorCalls}-${Date.now()}` } });
  const audit = async () => (await (await send('GET', '/v1/audit', { headers: operator })).json()) as { balanced: boolean; transferCount: number };
  const register = async (seed: number): Promise<TestUser> => {
    const user = signerFromSecret(nobleEd25519, new Uint8Array(32).fill(seed));
    const res = await signed(user, 'POST', '/v1/users', { publicKey: { suite: 'ed25519', key: toBase64url(user.publicKey.key) } }, { 'idempotency-key': `register-${seed}` });
    assert.equal(res.status, 201, await res.clone().text());
    const body = (await res.json()) as { account: string; keyId: string; certificate: string };
    return { user, ...body };
  };
  const balance = async (who: { user: Signer; account: string }) => {
    const res = await signed(who.user, 'GET', `/v1/accounts/${who.account}`);
    assert.equal(res.status, 200, await res.clone().text());
    return ((await res.json()) as { balance: string }).balance;
  };
  return {
    app, node, dataDir, send, signed, withoutIntake, asOperator, operator, audit, register, balance,
    now: () => clock,
    tick: (ms: number) => { clock += ms; },
    async close() {
      // A scheme that uses the chain started an anvil: stop it with the test.
      await node.services.chain?.close();
      await workers?.stop();
      await receivers?.stop();
      if (node.credits !== undefined) {
        await node.credits.close();
        await deleteTestStream(options.settle?.natsUrl ?? '', node.credits.stream);
      }
      await node.services.shardLedgers?.close();
      if (node.intake !== undefined) {
        await node.intake.close();
        await deleteTestStream(options.settle?.natsUrl ?? '', node.intake.stream);
      }
      await database.dispose();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** An open test node. */
export type Harness = Awaited<ReturnType<typeof setup>>;

type ErrorBody = { error: { code: string; message: string; details: Record<string, unknown> } };

/** Asserts an error answer of `status` and `code`. */
export async function expectError(res: Response, status: number, code: string): Promise<ErrorBody['error']> {
  const body = (await res.json()) as ErrorBody;
  assert.equal(res.status, status, JSON.stringify(body));
  assert.equal(body.error.code, code, body.error.message);
  return body.error;
}
