/**
 * The issuer node's HTTP API: Hono with zod-validated JSON bodies and an OpenAPI document at
 * `/openapi.json`. Every request passes the body limit and caller identification first; every
 * error answers `{"error": {code, message, details}}`.
 */
import { createHash } from 'node:crypto';
import { OpenAPIHono } from '@hono/zod-openapi';
import { ApiProblem, problemResponse, toProblem } from './problem.ts';
import { identifyCaller } from './auth.ts';
import { BODY_BYTES_MAX, type IssuerEnv, type IssuerServices } from './context.ts';
import { ROUTE_BODY_BYTES_MAX, type SchemeModule } from './scheme-module.ts';
import { registerLedgerRoutes } from './routes-ledger.ts';
import { registerNodeRoutes } from './routes-node.ts';
import { registerRegistryRoutes } from './routes-registry.ts';
import { registerCentralBankRoutes } from './routes-central-bank.ts';
import { registerSystemAuditRoutes } from './routes-cb-audit.ts';
import { registerClaimRoutes } from './routes-claims.ts';
import { registerCentralBankPublications, registerPeerRoutes } from './routes-publications.ts';
import { registerTierRoutes } from './routes-tier.ts';

export type { SchemeModule } from './scheme-module.ts';

/** An app whose validation failures answer BODY_INVALID naming every field. */
function newApp(): OpenAPIHono<IssuerEnv> {
  return new OpenAPIHono<IssuerEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        const issues = result.error.issues.map((issue) => `${['body', ...issue.path.map(String)].join('.')}: ${issue.message}`);
        throw new ApiProblem('BODY_INVALID', issues.join('; '), { issues });
      }
    },
  });
}

/** What the app tells its host besides the answers. */
export interface IssuerAppOptions {
  /**
   * Called with the error behind every 500 answer (what was thrown, and the request it broke),
   * so the host can log its cause; the caller only gets a neutral message.
   */
  onInternalError?: ((error: unknown, request: { method: string; path: string }) => void) | undefined;
}

/**
 * Reads a request body as it streams in, stopping at `max` bytes: a body over the limit is
 * refused without reading the rest, whether or not it declared its length (chunked uploads do not).
 * @throws ApiProblem BODY_TOO_LARGE
 */
export async function readBodyLimited(request: Request, max: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (declared > max) throw new ApiProblem('BODY_TOO_LARGE', `request body of ${declared} bytes is over the limit of ${max}`, { max });
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > max) {
        // Stop pulling: the rest of the upload stays unread, and the answer closes the connection.
        void reader.cancel().catch(() => undefined);
        throw new ApiProblem('BODY_TOO_LARGE', `request body is over the limit of ${max} bytes`, { max });
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const body = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.byteLength;
  }
  return body;
}

/** True when `path` matches the route pattern `pattern` (`:name` segments match any non-empty one). */
function pathMatches(pattern: string, path: string): boolean {
  const want = pattern.split('/');
  const have = path.split('/');
  return want.length === have.length && want.every((part, i) => (part.startsWith(':') ? (have[i] ?? '') !== '' : part === have[i]));
}

/** A declared body limit, with its full path. */
interface BodyLimit {
  readonly method: string;
  readonly path: string;
  readonly bytesMax: number;
}

/**
 * The body limits the schemes' routes declare, under their mount points.
 * @throws RangeError for a limit that is not a whole number of bytes in 1..ROUTE_BODY_BYTES_MAX
 */
export function declaredBodyLimits(schemes: readonly SchemeModule[]): BodyLimit[] {
  return schemes.flatMap((scheme) =>
    (scheme.bodyLimits ?? []).map((limit) => {
      if (!Number.isSafeInteger(limit.bytesMax) || limit.bytesMax < 1 || limit.bytesMax > ROUTE_BODY_BYTES_MAX) {
        throw new RangeError(`scheme ${scheme.name}: the body limit of ${limit.method} ${limit.path} must be 1..${ROUTE_BODY_BYTES_MAX} bytes, not ${limit.bytesMax}`);
      }
      return { method: limit.method, path: `/v1/${scheme.name}${limit.path}`, bytesMax: limit.bytesMax };
    }),
  );
}

/** The body limit of a request: the one its route declares, or the node's default. */
export function bodyLimitOf(limits: readonly BodyLimit[], method: string, path: string): number {
  return limits.find((limit) => limit.method === method && pathMatches(limit.path, path))?.bytesMax ?? BODY_BYTES_MAX;
}

/**
 * The methods routed at `path` (HEAD with every GET), from the app's routes; empty when no route
 * matches the path at all.
 */
export function allowedMethods(routes: readonly { method: string; path: string }[], path: string): string[] {
  const methods = new Set<string>();
  for (const route of routes) {
    if (route.method === 'ALL' || route.path.includes('*')) continue;
    if (pathMatches(route.path, path)) {
      methods.add(route.method);
      if (route.method === 'GET') methods.add('HEAD');
    }
  }
  return [...methods].sort();
}

/**
 * The answer for a path no route takes. Under `/v1/NAME/` where no route lives, NAME is taken for
 * a scheme this node does not serve (a node may serve only some, `tally node start --schemes`): the
 * answer says so and names the schemes it serves, so a wallet of another scheme learns why.
 */
function notFound(routes: readonly { path: string }[], schemes: readonly SchemeModule[], method: string, path: string): ApiProblem {
  const segment = /^\/v1\/([a-z][a-z0-9-]{1,31})\//.exec(path)?.[1];
  if (segment !== undefined && !routes.some((route) => route.path.startsWith(`/v1/${segment}/`))) {
    const served = schemes.map((scheme) => scheme.name);
    return new ApiProblem('SCHEME_NOT_SERVED', `no route ${method} ${path}: this node does not serve a scheme ${segment} (it serves ${served.length === 0 ? 'none' : served.join(', ')})`, { scheme: segment, served });
  }
  return new ApiProblem('NOT_FOUND', `no route ${method} ${path}`, {});
}

/** Builds the app; `schemes` mount their routes under `/v1/{scheme}/`. */
export function createIssuerApp(services: IssuerServices, schemes: readonly SchemeModule[] = [], options: IssuerAppOptions = {}): OpenAPIHono<IssuerEnv> {
  const app = newApp();
  const bodyLimits = declaredBodyLimits(schemes);

  app.use('*', async (c, next) => {
    const bodiless = c.req.method === 'GET' || c.req.method === 'HEAD';
    if (bodiless && (c.req.header('transfer-encoding') !== undefined || Number(c.req.header('content-length') ?? '0') > 0)) {
      // The server would read such a body to the end just to throw it away: refuse it, unread.
      throw new ApiProblem('BODY_INVALID', `a ${c.req.method} request takes no body`, { unread: true });
    }
    const raw = bodiless ? new Uint8Array(0) : await readBodyLimited(c.req.raw, bodyLimitOf(bodyLimits, c.req.method, new URL(c.req.url).pathname));
    c.set('rawBody', raw);
    // Hashed once, natively: the signature check and the idempotency record both need it, and a
    // settlement batch is a megabyte (about 20 ms for the JavaScript SHA-256, 1 ms here).
    c.set('bodyHash', new Uint8Array(createHash('sha256').update(raw).digest()));
    let jsonBody: unknown;
    if (raw.length > 0) {
      try {
        jsonBody = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
      } catch {
        throw new ApiProblem('BODY_INVALID', 'request body is not valid JSON in UTF-8', {});
      }
    }
    c.set('jsonBody', jsonBody);
    c.set('caller', await identifyCaller(services, c));
    await next();
  });

  registerNodeRoutes(app, services, schemes);
  registerLedgerRoutes(
    app,
    services,
    schemes.flatMap((scheme) => (scheme.holdings === undefined ? [] : [scheme.holdings])),
    schemes.flatMap((scheme) => (scheme.audit === undefined ? [] : [{ scheme: scheme.name, audit: scheme.audit.bind(scheme) }])),
    schemes.flatMap((scheme) => (scheme.floatAccount === undefined ? [] : [scheme.floatAccount])),
  );
  registerRegistryRoutes(app, services, schemes);
  if (services.identity.role === 'central-bank') {
    registerCentralBankRoutes(app, services);
    registerClaimRoutes(app, services);
    registerCentralBankPublications(app, services);
    registerSystemAuditRoutes(app, services);
  } else {
    app.all('/v1/cb/*', () => {
      throw new ApiProblem('ROLE_MISMATCH', `this node is ${services.identity.role === 'intermediary' ? 'an intermediary' : 'a standalone node'}, not a central bank: the /v1/cb/ routes are a central bank's`, { role: services.identity.role });
    });
  }
  registerTierRoutes(app, services);
  registerPeerRoutes(app, services);
  for (const scheme of schemes) {
    if (!/^[a-z][a-z0-9-]{1,31}$/.test(scheme.name)) throw new RangeError(`scheme name ${JSON.stringify(scheme.name)} is not a path segment`);
    const sub = newApp();
    scheme.register(sub, services);
    app.route(`/v1/${scheme.name}`, sub);
  }

  app.doc('/openapi.json', {
    openapi: '3.0.3',
    info: { title: 'Tally issuer node', version: '1', description: 'Accounts, devices, online transfers and audit of a Tally issuer node.' },
  });
  app.notFound((c) => {
    const path = new URL(c.req.url).pathname;
    const allowed = allowedMethods(app.routes, path);
    if (allowed.length === 0) return problemResponse(c, notFound(app.routes, schemes, c.req.method, path));
    c.header('allow', allowed.join(', '));
    return problemResponse(c, new ApiProblem('METHOD_NOT_ALLOWED', `${path} does not take ${c.req.method}; it takes ${allowed.join(', ')}`, { allowed }));
  });
  app.onError((e, c) => {
    const problem = toProblem(e);
    if (problem.status >= 500) options.onInternalError?.(e, { method: c.req.method, path: new URL(c.req.url).pathname });
    // An oversized body is left unread: close the connection rather than read the rest to reuse it.
    if (problem.code === 'BODY_TOO_LARGE' || problem.details['unread'] === true) c.header('connection', 'close');
    return problemResponse(c, problem);
  });
  return app;
}
