/**
 * Identical DOT-M wallet registrations (§3.3.1) sent at once, through HTTP, on PGlite and
 * PostgreSQL: one registers, every other caller is told it is registered, never a 500, and the
 * audit stays balanced (src/issuer/http/registration-races.test.ts races the node's own registrations).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import type { Harness } from '../../issuer/http/test-harness.ts';
import { dotmNode } from './test-fixtures.ts';

after(() => closeTestTemplates());

/** How many identical requests go out at once. */
const PARALLEL = 20;
/** Rounds of them, each on new keys. */
const ROUNDS = 3;

type Answer = { status: number; code: string | undefined; text: string };

async function answers(requests: Array<Response | Promise<Response>>): Promise<Answer[]> {
  return Promise.all(
    requests.map(async (pending) => {
      const res = await pending;
      const text = await res.text();
      const code = res.status >= 400 ? (JSON.parse(text) as { error: { code: string } }).error.code : undefined;
      return { status: res.status, code, text };
    }),
  );
}

/** One success, every other answer ALREADY_REGISTERED, none a 500. */
function oneWins(all: Answer[], created = 201): void {
  for (const a of all) assert.ok(a.status < 500, `a concurrent registration answered ${a.status}: ${a.text}`);
  assert.equal(all.filter((a) => a.status === created).length, 1, JSON.stringify(all.map((a) => a.status)));
  for (const a of all.filter((x) => x.status !== created)) {
    assert.equal(a.status, 409, a.text);
    assert.equal(a.code, 'ALREADY_REGISTERED', a.text);
  }
}

async function rows(h: Harness, table: string): Promise<number> {
  return Number((await h.node.services.db.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM ${table}`)).rows[0]?.n);
}

for (const backend of testBackends()) {
  describe(`concurrent DOT-M registrations on ${backend.kind}`, { skip: backend.skip }, () => {
    test(`${PARALLEL} identical DOT-M wallet registrations: one registers, the rest are told it is registered`, async () => {
      const n = await dotmNode(backend);
      try {
        for (let round = 0; round < ROUNDS; round++) {
          const ta = await n.unregistered(`racer${round}`);
          const body = n.registration(ta);
          oneWins(await answers(Array.from({ length: PARALLEL }, () => n.register(ta, body))));
          assert.equal(await rows(n.h, 'dotm_wallets'), round + 1);
        }
        assert.equal((await n.h.audit()).balanced, true);
      } finally {
        await n.close();
      }
    });
  });
}
