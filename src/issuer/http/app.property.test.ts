/**
 * Random sequences of HTTP calls (mints, transfers, replays under the same idempotency key, reuse
 * of a key for another request, malformed amounts, unknown payees, overdrafts, calls by the wrong
 * party) against an in-memory model: every answer's status and code match the model's prediction,
 * balances match it, no account holder goes negative, and the audit balances after every run.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { closeTestTemplates, testBackends } from '../db/test-databases.ts';
import { setup, type Harness, type TestUser } from './test-harness.ts';

after(() => closeTestTemplates());

const RUNS = 12;
const USERS = 3;

type Op =
  | { readonly type: 'mint'; readonly to: number; readonly amount: string; readonly key: number; readonly asUser: boolean }
  | { readonly type: 'transfer'; readonly from: number; readonly to: number; readonly amount: string; readonly key: number };

const ALL = 'all';
const ALL_AND_A_CENT = 'all+0.01';
const format = (c: bigint) => `${c / 100n}.${String(c % 100n).padStart(2, '0')}`;

/** Amounts in cents: mostly valid, sometimes zero, too precise, negative or not a number. */
const amountArb = fc.oneof(
  { weight: 10, arbitrary: fc.integer({ min: 1, max: 5000 }).map((cents) => `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`) },
  { weight: 1, arbitrary: fc.constantFrom('0.00', '0.001', '-1.00', '1e3', '') },
  // The payer's whole balance, or a cent more: the edge of an overdraft.
  { weight: 3, arbitrary: fc.constantFrom(ALL, ALL_AND_A_CENT) },
);
/** A user slot, or USERS for an account nobody opened. */
const slotArb = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: USERS - 1 }) }, { weight: 1, arbitrary: fc.constant(USERS) });
const keyArb = fc.nat(8);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ type: fc.constant('mint' as const), to: slotArb, amount: amountArb, key: keyArb, asUser: fc.integer({ min: 0, max: 5 }).map((n) => n === 0) }) },
  { weight: 5, arbitrary: fc.record({ type: fc.constant('transfer' as const), from: fc.integer({ min: 0, max: USERS - 1 }), to: slotArb, amount: amountArb, key: keyArb }) },
);

/** Cents of a well-formed positive amount, else null. */
function cents(text: string): bigint | null {
  const m = /^(0|[1-9][0-9]*)\.([0-9]{2})$/.exec(text);
  if (m === null) return null;
  const value = BigInt(m[1] as string) * 100n + BigInt(m[2] as string);
  return value > 0n ? value : null;
}

/** What the model expects: a success, or an error's status and code. */
type Expected = { readonly ok: true } | { readonly ok: false; readonly status: number; readonly code: string };

const refused = (status: number, code: string): Expected => ({ ok: false, status, code });

let runNumber = 0;
let userSeed = 100;

async function runOps(h: Harness, ops: readonly Op[]): Promise<void> {
  const run = ++runNumber;
  const users: TestUser[] = [];
  for (let i = 0; i < USERS; i++) users.push(await h.register(userSeed++ % 250 + 1));
  const accountOf = (slot: number) => (slot < USERS ? (users[slot] as TestUser).account : `user:nobody-${run}`);
  const balances = new Map<string, bigint>(users.map((u) => [u.account, 0n]));
  /** Requests sent, by idempotency key: what was sent and what it answered. */
  const sent = new Map<string, { fingerprint: string; status: number; body: string }>();

  for (const drawn of ops) {
    // "all" is the payer's balance as the model has it (for a mint, one unit).
    const whole = drawn.type === 'transfer' ? (balances.get((users[drawn.from] as TestUser).account) as bigint) : 100n;
    const op: Op = drawn.amount === ALL ? { ...drawn, amount: format(whole) } : drawn.amount === ALL_AND_A_CENT ? { ...drawn, amount: format(whole + 1n) } : drawn;
    // Keys are per caller: the operator's mints share one space, each user's transfers another.
    const key = op.type === 'mint' ? `prop-${run}-m-${op.key}` : `prop-${run}-t${op.from}-${op.key}`;
    const fingerprint = JSON.stringify([op.to, op.amount]);
    const earlier = sent.get(key);
    const amount = cents(op.amount);
    const asUser = op.type === 'mint' && op.asUser;
    // The route's order: who calls, the body, the amount's form; then the stored answer; then the ledger.
    let expected: Expected;
    let reachesLedger = false;
    if (asUser) expected = refused(403, 'FORBIDDEN');
    else if (!/^(0|[1-9][0-9]{0,18})(\.[0-9]{1,18})?$/.test(op.amount)) expected = refused(400, 'BODY_INVALID');
    else if (!/^(0|[1-9][0-9]*)(\.[0-9]{1,2})?$/.test(op.amount)) expected = refused(400, 'AMOUNT_INVALID');
    else {
      reachesLedger = true;
      if (earlier !== undefined) expected = earlier.fingerprint === fingerprint ? { ok: true } : refused(409, 'IDEMPOTENCY_CONFLICT');
      else if (amount === null) expected = refused(400, 'AMOUNT_INVALID');
      else if (op.to >= USERS) expected = refused(404, 'ACCOUNT_UNKNOWN');
      else if (op.type === 'transfer' && op.to === op.from) expected = refused(400, 'SAME_ACCOUNT');
      else if (op.type === 'transfer' && (balances.get((users[op.from] as TestUser).account) as bigint) < amount) expected = refused(422, 'INSUFFICIENT_FUNDS');
      else expected = { ok: true };
    }

    const body = op.type === 'mint' ? { account: accountOf(op.to), amount: op.amount } : { to: accountOf(op.to), amount: op.amount };
    const res =
      op.type === 'mint'
        ? asUser
          ? await h.signed((users[0] as TestUser).user, 'POST', '/v1/operator/mint', body, { 'idempotency-key': key })
          : await h.send('POST', '/v1/operator/mint', { body, headers: { ...h.operator, 'idempotency-key': key } })
        : await h.signed((users[op.from] as TestUser).user, 'POST', '/v1/transfers', body, { 'idempotency-key': key });
    const text = await res.text();
    const where = `${JSON.stringify(op)} answered ${res.status} ${text}`;

    if (reachesLedger && earlier !== undefined && earlier.fingerprint === fingerprint) {
      // A replay answers exactly what the first request answered, whatever that was, and changes nothing.
      assert.equal(res.status, earlier.status, where);
      assert.equal(text, earlier.body, where);
      continue;
    }
    if (expected.ok) {
      assert.equal(res.status, 200, where);
      const moved = amount as bigint;
      if (op.type === 'transfer') {
        const from = (users[op.from] as TestUser).account;
        balances.set(from, (balances.get(from) as bigint) - moved);
      }
      const to = accountOf(op.to);
      balances.set(to, (balances.get(to) as bigint) + moved);
    } else {
      assert.equal(res.status, expected.status, where);
      assert.equal((JSON.parse(text) as { error: { code: string } }).error.code, expected.code, where);
    }
    // What reached the ledger is stored under its key, refusals included; a conflict stores nothing new.
    if (reachesLedger && earlier === undefined) sent.set(key, { fingerprint, status: res.status, body: text });
  }

  for (const user of users) {
    const held = balances.get(user.account) as bigint;
    assert.ok(held >= 0n);
    const shown = await h.balance(user);
    assert.equal(shown, format(held), user.account);
  }
  assert.equal((await h.audit()).balanced, true);
}

for (const backend of testBackends()) {
  describe(`issuer HTTP API properties on ${backend.kind}`, { skip: backend.skip }, () => {
    test('random calls answer as the model predicts; balances never go negative; the audit balances', { timeout: 240_000 }, async () => {
      const h = await setup(backend);
      try {
        await fc.assert(
          fc.asyncProperty(fc.array(opArb, { minLength: 8, maxLength: 30 }), (ops) => runOps(h, ops)),
          { numRuns: RUNS },
        );
      } finally {
        await h.close();
      }
    });
  });
}
