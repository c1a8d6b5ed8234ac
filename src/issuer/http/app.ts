/**
 * The issuer node's HTTP API: Hono with zod-validated JSON bodies and an OpenAPI document at
 * `/openapi.json`. Every request passes the body limit and caller identification first; every
 * error answers `{"error": {code, message, details}}`.
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import { ApiProblem, problemResponse, toProblem } from './problem.ts';
import { identifyCaller } from './auth.ts';
import { BODY_BYTES_MAX, type IssuerEnv, type IssuerServices } from './context.ts';
import type { HoldingsReader } from '../ledger/exposure.ts';
import { registerLedgerRoutes } from './routes-ledger.ts';
import { registerNodeRoutes } from './routes-node.ts';
import { registerRegistryRoutes } from './routes-registry.ts';

/**
 * A scheme's online part: its tables (migrations numbered in its own range), what it sets up at
 * start (its offline float account), and its routes under `/v1/{name}/`.
 */
export interface SchemeModule {
  readonly name: string;
  /** A folder of `NNN_name.sql` migrations, numbered apart from the issuer's and other schemes'. */
  readonly migrationsDir?: URL | undefined;
  /** Runs once at every start, after the migrations. */
  prepare?(services: IssuerServices): Promise<void>;
  /** What the node knows the scheme's devices hold, for the audit's exposure check (inside its transaction). */
  holdings?: HoldingsReader | undefined;
  register(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void;
}

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

/** Builds the app; `schemes` mount their routes under `/v1/{scheme}/`. */
export function createIssuerApp(services: IssuerServices, schemes: readonly SchemeModule[] = []): OpenAPIHono<IssuerEnv> {
  const app = newApp();

  app.use('*', async (c, next) => {
    const declared = Number(c.req.header('content-length') ?? '0');
    if (declared > BODY_BYTES_MAX) throw new ApiProblem('BODY_TOO_LARGE', `request body of ${declared} bytes is over the limit of ${BODY_BYTES_MAX}`, { max: BODY_BYTES_MAX });
    const raw = c.req.method === 'GET' || c.req.method === 'HEAD' ? new Uint8Array(0) : new Uint8Array(await c.req.arrayBuffer());
    if (raw.length > BODY_BYTES_MAX) throw new ApiProblem('BODY_TOO_LARGE', `request body of ${raw.length} bytes is over the limit of ${BODY_BYTES_MAX}`, { max: BODY_BYTES_MAX });
    c.set('rawBody', raw);
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

  registerNodeRoutes(app, services);
  registerLedgerRoutes(app, services, schemes.flatMap((scheme) => (scheme.holdings === undefined ? [] : [scheme.holdings])));
  registerRegistryRoutes(app, services);
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
  app.notFound((c) => problemResponse(c, new ApiProblem('NOT_FOUND', `no route ${c.req.method} ${new URL(c.req.url).pathname}`, {})));
  app.onError((e, c) => problemResponse(c, toProblem(e)));
  return app;
}
