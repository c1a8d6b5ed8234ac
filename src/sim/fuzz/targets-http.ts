/**
 * The issuer node's HTTP routes as fuzz targets: one per route that takes a body, driven in process
 * through the app (`app.request`) of a real node (every scheme served, PGlite in a temporary
 * folder). Valid bodies come from each route's request schema in the node's own OpenAPI document;
 * routes the document does not describe get any JSON. The first byte of an input picks the caller
 * (the operator, a registered user signing the request, or nobody) and the path parameters; the rest
 * is the body. Every answer must be a success or a 4xx problem with a stable code, never a 5xx;
 * after a refusal the audit must read exactly as before, and it must balance after every answer.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { currency } from '../../core/amount.ts';
import { toBase64url, toHex } from '../../core/bytes.ts';
import { signerFromSecret, type Signer } from '../../core/crypto/suite.ts';
import { signRequest } from '../../issuer/client/request-auth.ts';
import { bodyLimitOf, createIssuerApp, declaredBodyLimits, type SchemeModule } from '../../issuer/http/app.ts';
import { openNode } from '../../issuer/services.ts';
import { keyId } from '../../pki/key-id.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { SCHEMES } from '../../schemes/index.ts';
import { arbitraryOfSchema, jsonValue, type JsonSchema, type KnownValues } from './json-schema-arbitrary.ts';
import { describeThrown, FuzzFinding, type FuzzTarget, type Outcome } from './target.ts';

/** How long one request may take (a database write included) before it counts as a hang. */
const REQUEST_TIMEOUT_MS = 10_000;
/** A problem's code: capitals, digits and underscores. */
const PROBLEM_CODE = /^[A-Z][A-Z0-9_]*$/;

/** The node every HTTP target drives, opened by the first and closed by closeHttpNode. */
interface FuzzNode {
  readonly app: ReturnType<typeof createIssuerApp>;
  readonly operatorToken: string;
  readonly user: { signer: Signer; keyId: string; account: string };
  readonly limits: ReturnType<typeof declaredBodyLimits>;
  /** The audit as last read: what a refusal must leave as it is. */
  audit: string;
  calls: number;
  /** The error behind the last 5xx answer, once. */
  takeInternalError(): unknown;
  close(): Promise<void>;
}

let opening: Promise<FuzzNode> | undefined;

async function openFuzzNode(): Promise<FuzzNode> {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-fuzz-node-'));
  const schemes: SchemeModule[] = [];
  for (const scheme of SCHEMES) schemes.push(await scheme.node());
  const node = await openNode({ dataDir, provider: nodeProvider, currency: currency('EUR', 2), schemes, env: { TALLY_NODE_PASSPHRASE: 'fuzz passphrase' } });
  let internal: unknown;
  const app = createIssuerApp(node.services, schemes, { onInternalError: (error) => { internal = error; } });
  const suite = nodeProvider.suites.ed25519;
  const signer = signerFromSecret(suite, suite.generateSecretKey());
  const self: FuzzNode = {
    app,
    operatorToken: node.services.identity.operatorToken,
    user: { signer, keyId: toHex(keyId(signer.publicKey)), account: '' },
    limits: declaredBodyLimits(schemes),
    audit: '',
    calls: 0,
    takeInternalError() {
      const error = internal;
      internal = undefined;
      return error;
    },
    async close() {
      await node.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  const registered = await send(self, 'POST', '/v1/users', utf8(JSON.stringify({ publicKey: { suite: 'ed25519', key: toBase64url(signer.publicKey.key) } })), 1);
  if (registered.status !== 201) throw new Error(`the fuzz node refused to register its user: ${registered.status} ${await registered.text()}`);
  self.user.account = ((await registered.json()) as { account: string }).account;
  // Money to move, so that routes that spend reach their ledger code.
  const minted = await send(self, 'POST', '/v1/operator/mint', utf8(JSON.stringify({ account: self.user.account, amount: '1000.00' })), 0);
  if (minted.status !== 200) throw new Error(`the fuzz node refused to mint: ${minted.status} ${await minted.text()}`);
  self.audit = await readAudit(self);
  return self;
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** The shared node, opened on first use. */
function fuzzNode(): Promise<FuzzNode> {
  opening ??= openFuzzNode();
  return opening;
}

/** Closes the shared node, if it was opened. */
export async function closeHttpNode(): Promise<void> {
  const node = opening;
  opening = undefined;
  if (node !== undefined) await (await node).close();
}

/** Sends a request as caller 0 (the operator), 1 (the user, signed) or 2 (nobody). */
function send(node: FuzzNode, method: string, path: string, body: Uint8Array, caller: number): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'idempotency-key': `fuzz-call-${++node.calls}` };
  if (caller === 0) headers['authorization'] = `Bearer ${node.operatorToken}`;
  if (caller === 1) Object.assign(headers, signRequest({ signer: node.user.signer, keyId: node.user.keyId, method, path, body, timestamp: Date.now() }));
  return Promise.resolve(node.app.request(path, { method, headers, body: new Uint8Array(body) }));
}

/** The audit as the operator reads it: the state a refused request must not change. */
async function readAudit(node: FuzzNode): Promise<string> {
  const res = await node.app.request('/v1/audit', { headers: { authorization: `Bearer ${node.operatorToken}` } });
  const text = await res.text();
  if (res.status !== 200) throw new FuzzFinding(`the audit answered ${res.status}: ${text.slice(0, 300)}`);
  const audit = JSON.parse(text) as { balanced?: unknown };
  if (audit.balanced !== true) throw new FuzzFinding(`the audit does not balance: ${text.slice(0, 500)}`);
  return text;
}

/** A route as the OpenAPI document or the app's route list gives it. */
interface Route {
  readonly method: string;
  /** Hono's form: `/v1/accounts/:id`. */
  readonly path: string;
  readonly schema: JsonSchema | undefined;
}

/** Values a path parameter takes, by the input's first byte. */
function fillPath(path: string, node: FuzzNode, pick: number): string {
  const values = [node.user.account, node.user.keyId, 'x', '0', 'ops', '%2e%2e'];
  return path.replace(/:[A-Za-z0-9_]+/g, () => values[pick % values.length] as string);
}

/** The routes that take a body: from the OpenAPI document (with schemas), then the undocumented ones. */
async function bodyRoutes(): Promise<{ routes: Route[]; refs: (ref: string) => JsonSchema | undefined }> {
  const node = await fuzzNode();
  const doc = (await (await node.app.request('/openapi.json')).json()) as {
    paths: Record<string, Record<string, { requestBody?: { content?: Record<string, { schema?: JsonSchema }> } }>>;
    components?: { schemas?: Record<string, JsonSchema> };
  };
  const routes = new Map<string, Route>();
  for (const [path, operations] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const schema = operation.requestBody?.content?.['application/json']?.schema;
      if (schema === undefined) continue;
      const honoPath = path.replace(/\{([^}]+)\}/g, ':$1');
      routes.set(`${method.toUpperCase()} ${honoPath}`, { method: method.toUpperCase(), path: honoPath, schema });
    }
  }
  for (const route of node.app.routes) {
    if (!['POST', 'PUT', 'PATCH', 'DELETE'].includes(route.method) || route.path.includes('*')) continue;
    const key = `${route.method} ${route.path}`;
    if (!routes.has(key)) routes.set(key, { method: route.method, path: route.path, schema: undefined });
  }
  const components = doc.components?.schemas ?? {};
  const refs = (ref: string) => components[ref.replace('#/components/schemas/', '')];
  return { routes: [...routes.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.method < b.method ? -1 : 1)), refs };
}

/** The target of one route. */
function routeTarget(route: Route, refs: (ref: string) => JsonSchema | undefined, bytesMax: number, known: KnownValues): FuzzTarget {
  const bodies = route.schema === undefined ? jsonValue : arbitraryOfSchema(route.schema, refs, 0, known);
  const valid = fc.tuple(fc.integer({ min: 0, max: 255 }), bodies).map(([head, body]) => new Uint8Array([head, ...utf8(JSON.stringify(body) ?? 'null')]));
  return {
    name: `http/${route.method} ${route.path}`,
    group: 'http',
    bytesMax: bytesMax + 1,
    timeoutMs: REQUEST_TIMEOUT_MS,
    valid,
    structure: {
      toValue: (input) => ({ head: input[0] ?? 0, body: JSON.parse(new TextDecoder().decode(input.subarray(1))) as unknown }),
      fromValue: (value) => {
        const { head, body } = value as { head: unknown; body: unknown };
        const text = JSON.stringify(body);
        if (typeof head !== 'number' || text === undefined) throw new TypeError('not a body');
        return new Uint8Array([head & 0xff, ...utf8(text)]);
      },
    },
    async feed(input): Promise<Outcome> {
      const node = await fuzzNode();
      const head = input[0] ?? 0;
      const path = fillPath(route.path, node, head >> 2);
      const res = await send(node, route.method, path, input.subarray(1), head % 3);
      const text = await res.text();
      if (res.status >= 500) {
        const cause = node.takeInternalError();
        throw new FuzzFinding(`answered ${res.status}: ${text.slice(0, 300)}${cause === undefined ? '' : ` (behind it: ${describeThrown(cause)})`}`, { cause });
      }
      if (res.status >= 400) {
        let code: unknown;
        try {
          code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
        } catch {
          throw new FuzzFinding(`answered ${res.status} without a JSON problem: ${text.slice(0, 200)}`);
        }
        if (typeof code !== 'string' || !PROBLEM_CODE.test(code)) throw new FuzzFinding(`answered ${res.status} without a stable code: ${text.slice(0, 200)}`);
      }
      const audit = await readAudit(node);
      if (res.status >= 400 && audit !== node.audit) throw new FuzzFinding(`a refused request (${res.status}) changed the audit: ${text.slice(0, 200)}`);
      node.audit = audit;
      return res.status >= 400 ? 'rejected' : 'accepted';
    },
  };
}

/** One target per route that takes a body. Opens the shared node (close it with closeHttpNode). */
export async function httpTargets(): Promise<FuzzTarget[]> {
  const node = await fuzzNode();
  const { routes, refs } = await bodyRoutes();
  // Fresh Ed25519 keys (valid points, so a registration can succeed), the user's account and key id.
  const suite = nodeProvider.suites.ed25519;
  const keys = Array.from({ length: 64 }, () => toBase64url(suite.publicKey(suite.generateSecretKey())));
  const known: KnownValues = {
    account: fc.constant(node.user.account),
    to: fc.constant(node.user.account),
    keyId: fc.constant(node.user.keyId),
    publicKey: fc.constantFrom(...keys).map((key) => ({ suite: 'ed25519', key })),
    amount: fc.constantFrom('0.01', '1.00', '999.99', '1000.01'),
  };
  return routes.map((route) => routeTarget(route, refs, bodyLimitOf(node.limits, route.method, fillPath(route.path, node, 0)), known));
}
