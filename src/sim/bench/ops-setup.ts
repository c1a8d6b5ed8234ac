/**
 * What `bench ops` stands on: an issuer node with OPS served over a real HTTP socket (PGlite in a
 * temporary folder, or a fresh PostgreSQL schema), a client that signs its requests, and parties:
 * account holders with an isolated secure element (child process, file counter) registered with
 * an OEM attestation and certified, or plain account holders without one.
 */
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { currency, type Currency } from '../../core/amount.ts';
import { fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { signerFromSecret, type Signer } from '../../core/crypto/suite.ts';
import { signRequest } from '../../issuer/client/request-auth.ts';
import type { Database } from '../../issuer/db/database.ts';
import { dropPostgresSchema, openPostgres } from '../../issuer/db/postgres.ts';
import { createIssuerApp } from '../../issuer/http/app.ts';
import type { DeviceLimits } from '../../issuer/http/context.ts';
import type { NodeIdentity } from '../../issuer/identity/node-identity.ts';
import { openNode } from '../../issuer/services.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { opsNodePart, OPS_FLOAT_ACCOUNT } from '../../schemes/ops/node.ts';
import { depositConfirmationCodec, syncAckCodec } from '../../schemes/ops/messages.ts';
import { opsTrustedApp, type OpsState } from '../../schemes/ops/trusted-app.ts';
import { IsolatedHost } from '../../secure-element/host-isolated.ts';

/** The currency of bench nodes. */
export const BENCH_CURRENCY: Currency = currency('EUR', 2);
/** The TA build the bench OEM attests and the bench node allows. */
const BENCH_MEASUREMENT = sha256(utf8('tally ops trusted app, bench build'));
/** Where the isolated host's child process finds the OPS trusted app. */
const OPS_APP_LOCATION = { module: new URL('../../schemes/ops/trusted-app.ts', import.meta.url).href, export: 'opsTrustedApp' };

/** An OPS secure element in its own process. */
export type OpsElement = IsolatedHost<OpsState, typeof opsTrustedApp.commands>;

/** A running bench node. */
export interface BenchNode {
  readonly url: string;
  readonly database: 'pglite' | 'postgres';
  readonly identity: NodeIdentity;
  /** Sends a request (signed by `who`, or with the operator token) and answers its JSON; throws on any status from 300 up. */
  call(who: Signer | 'operator', method: string, path: string, body?: unknown): Promise<unknown>;
  /** The same, answering the raw response (for the timed claims, which check the answer themselves). */
  send(who: Signer | 'operator', method: string, path: string, body?: unknown): Promise<Response>;
  stop(): Promise<void>;
}

/** How to open a bench node. */
export interface BenchNodeOptions {
  database: 'pglite' | 'postgres';
  /** Required for PostgreSQL: the server gets a fresh schema, dropped at stop. */
  postgresUrl?: string | undefined;
  deviceLimits: DeviceLimits;
}

/** Opens a node with the OPS module and serves it on a loopback port. */
export async function openBenchNode(options: BenchNodeOptions): Promise<BenchNode> {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-bench-ops-'));
  let db: Database | undefined;
  let dropSchema = async () => {};
  if (options.database === 'postgres') {
    const url = options.postgresUrl;
    if (url === undefined) throw new RangeError('postgresUrl: required for the postgres backend');
    const schema = `tally_bench_ops_${process.pid}_${nodeRandomBytes(4).toString('hex')}`;
    db = await openPostgres(url, { schema, poolSize: 20 });
    dropSchema = () => dropPostgresSchema(url, schema);
  }
  let node: Awaited<ReturnType<typeof openNode>>;
  try {
    // Without a database given, openNode opens PGlite in the data folder: on disk, as a node runs.
    node = await openNode({
      dataDir,
      db,
      provider: nodeProvider,
      currency: BENCH_CURRENCY,
      deviceLimits: options.deviceLimits,
      schemes: [opsNodePart],
      env: { TALLY_NODE_PASSPHRASE: 'bench passphrase' },
    });
  } catch (e) {
    await dropSchema();
    await rm(dataDir, { recursive: true, force: true });
    throw e;
  }
  const app = createIssuerApp(node.services, [opsNodePart]);
  const server = await new Promise<ReturnType<typeof serve>>((ready, fail) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => ready(s));
    s.once('error', fail);
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const token = node.services.identity.operatorToken;
  let calls = 0;
  const send = (who: Signer | 'operator', method: string, path: string, body?: unknown): Promise<Response> => {
    const text = body === undefined ? '' : JSON.stringify(body);
    const auth =
      who === 'operator'
        ? { authorization: `Bearer ${token}` }
        : signRequest({ signer: who, keyId: toHex(keyId(who.publicKey)), method, path, body: text, timestamp: Date.now() });
    const headers: Record<string, string> = { 'content-type': 'application/json', ...auth };
    if (method !== 'GET') headers['idempotency-key'] = `bench-${process.pid}-${++calls}`;
    return fetch(`${url}${path}`, { method, headers, ...(method === 'GET' ? {} : { body: text }) });
  };
  return {
    url,
    database: options.database,
    identity: node.services.identity,
    send,
    async call(who, method, path, body) {
      const response = await send(who, method, path, body);
      const text = await response.text();
      if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${text}`);
      return JSON.parse(text) as unknown;
    },
    async stop() {
      await new Promise<void>((done) => server.close(() => done()));
      await node.close();
      await dropSchema();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A registered account holder. */
export interface BenchUser {
  readonly signer: Signer;
  readonly keyId: string;
  readonly account: string;
  /** The user (client) certificate: what its links are bound with and what payers pay to. */
  readonly certificate: Uint8Array;
}

/** A registered account holder with a certified OPS secure element. */
export interface BenchDevice extends BenchUser {
  readonly se: OpsElement;
  /** The TA's key id, as the node names the device. */
  readonly device: string;
  /** The TA's certificate (T.cert): what payers pay to. */
  readonly taCertificate: Uint8Array;
}

/** Registers an account holder with a fresh Ed25519 key. */
export async function registerUser(node: BenchNode): Promise<BenchUser> {
  const suite = nodeProvider.suites.ed25519;
  const signer = signerFromSecret(suite, suite.generateSecretKey());
  const body = (await node.call(signer, 'POST', '/v1/users', { publicKey: { suite: 'ed25519', key: toBase64url(signer.publicKey.key) } })) as { keyId: string; account: string; certificate: string };
  return { signer, keyId: body.keyId, account: body.account, certificate: fromBase64url(body.certificate) };
}

/** Enrols a bench OEM and allows the bench TA build; answers what registers devices. */
export async function enrolOem(node: BenchNode): Promise<{ oem: Signer; oemKeyId: string }> {
  const suite = nodeProvider.suites.ed25519;
  const oem = signerFromSecret(suite, suite.generateSecretKey());
  const enrolled = (await node.call('operator', 'POST', '/v1/operator/oems', { name: 'Bench OEM', publicKey: { suite: 'ed25519', key: toBase64url(oem.publicKey.key) } })) as { keyId: string };
  await node.call('operator', 'POST', '/v1/operator/measurements', { measurement: toHex(BENCH_MEASUREMENT), scheme: 'ops', description: 'bench build' });
  return { oem, oemKeyId: enrolled.keyId };
}

/**
 * An account holder with a TA: registers the user, starts an isolated secure element in `dir`
 * (file counter beside it), runs Init, registers the device with the OEM's attestation, runs CertInit.
 */
export async function deviceClient(node: BenchNode, oem: { oem: Signer; oemKeyId: string }, dir: string): Promise<BenchDevice> {
  const user = await registerUser(node);
  const se: OpsElement = await IsolatedHost.start({ app: opsTrustedApp, location: OPS_APP_LOCATION, dir: join(dir, 'se'), counter: { kind: 'file', path: join(dir, 'counter') }, provision: true });
  try {
    const { identity } = node;
    const init = await se.call('init', { root: encodeCertificate(identity.root.certificate), owner: fromHex(user.keyId) });
    const attestation = attestDevice(oem.oem, { sePublicKey: init.publicKey, model: 'Bench SE', taMeasurement: BENCH_MEASUREMENT });
    const registered = (await node.call(user.signer, 'POST', '/v1/devices', {
      publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) },
      scheme: 'ops',
      oem: oem.oemKeyId,
      attestation: toBase64url(encodeAttestation(attestation)),
      proof: toBase64url(init.proof),
    })) as { keyId: string; certificate: string };
    const taCertificate = fromBase64url(registered.certificate);
    await se.call('certInit', { certificate: taCertificate, intermediary: encodeCertificate(identity.intermediary.certificate), issuerNode: encodeCertificate(identity.issuerNode.certificate) });
    return { ...user, se, device: registered.keyId, taCertificate };
  } catch (e) {
    await se.close();
    throw e;
  }
}

/** Mints `amount` to the holder's account and deposits it to its TA (Figure 5 end to end). */
export async function fundDevice(node: BenchNode, device: BenchDevice, amount: string): Promise<void> {
  await node.call('operator', 'POST', '/v1/operator/mint', { account: device.account, amount });
  const body = (await node.call(device.signer, 'POST', '/v1/ops/deposits', { device: device.device, amount })) as { confirmation: string };
  await device.se.call('deposit', { confirmation: depositConfirmationCodec.decode(decodeCbor(fromBase64url(body.confirmation)), 'confirmation') });
}

/**
 * Syncs a TA: its signed report to the node, the node's ack and revocation list back. This clears
 * what the TA keeps between syncs and moves its trusted time to the node's clock.
 * @throws Error when the node finds fraud: a bench device must never be suspected
 */
export async function syncDevice(node: BenchNode, device: BenchDevice): Promise<void> {
  const report = await device.se.call('report', {});
  const body = (await node.call(device.signer, 'POST', '/v1/ops/sync', { device: device.device, report: toBase64url(encodeCbor({ body: { ...report.body }, signature: report.signature })) })) as {
    ack: string;
    crl: string;
    fraud: unknown[];
  };
  if (body.fraud.length > 0) throw new Error(`sync of ${device.device} found fraud: ${JSON.stringify(body.fraud)}`);
  await device.se.call('syncAck', { ack: syncAckCodec.decode(decodeCbor(fromBase64url(body.ack)), 'ack'), crl: fromBase64url(body.crl) });
}

/**
 * Asserts the node's audit is balanced; answers what `float:ops` holds, in minor units.
 * @throws Error when the audit is not balanced
 */
export async function assertAuditBalanced(node: BenchNode): Promise<bigint> {
  const audit = (await node.call('operator', 'GET', '/v1/audit')) as { balanced: boolean; currencies: Array<{ offlineFloat: Array<{ account: string; amount: string }> }> };
  if (audit.balanced !== true) throw new Error(`${node.database}: the audit is not balanced (ledger or offline exposure)`);
  const float = audit.currencies[0]?.offlineFloat.find((f) => f.account === OPS_FLOAT_ACCOUNT);
  // The audit gives decimal strings in major units (two decimals in the bench's currency).
  return BigInt((float?.amount ?? '0.00').replace('.', ''));
}

/** The balance of a holder's account, as the node formats it. */
export async function accountBalance(node: BenchNode, user: BenchUser): Promise<string> {
  return ((await node.call(user.signer, 'GET', `/v1/accounts/${user.account}`)) as { balance: string }).balance;
}
