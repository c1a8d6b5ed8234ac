/** What the DOT-M routes on the node share: an answer's schema, and a refusal with a code of this scheme. */
import { z } from '@hono/zod-openapi';
import type { StoredResponse } from '../../issuer/plugin.ts';

export const answer = (description: string, schema: z.ZodType) => ({ description, content: { 'application/json': { schema } } });

/** A stored refusal with a code of this scheme (the shared ApiErrorCode list does not name them). */
export function schemeRefusal(status: number, code: string, message: string): StoredResponse {
  return { status, body: { error: { code, message, details: {} } } };
}
