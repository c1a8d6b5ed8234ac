/**
 * Random sequences of mints and transfers among a few accounts, many of them refused (overdraft,
 * unknown account, other currency, bad amount, reused key), against a simple in-memory model:
 * every answer matches the model, balances match it, and conservation holds after every run.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { closeTestTemplates, testBackends } from '../db/test-databases.ts';
import type { AccountKind } from './account.ts';
import type { JsonValue } from './json.ts';
import type { Ledger } from './ledger.ts';
import type { LedgerResultCode } from './result.ts';
import { assertBalanced, currencyOf, openAccounts, openTestLedger, type TestLedger } from './test-fixtures.ts';
import type { TransferResult } from './transfer.ts';

after(closeTestTemplates);

const RUNS = 60;
const OPS_MIN = 10;
const OPS_MAX = 40;
/** Slots: 0 issuance, 1-3 users, 4 float, 5 settlement, 6 never opened, 7 a user in another currency. */
const SLOTS: readonly (AccountKind | 'unknown' | 'foreign')[] = ['issuance', 'user', 'user', 'user', 'offline-float', 'settlement', 'unknown', 'foreign'];
const FOREIGN_CURRENCY = 'XOT';

interface Move {
  readonly key: string;
  readonly debit: string;
  readonly credit: string;
  readonly amount: bigint;
  readonly kind: string;
  readonly reference: JsonValue | undefined;
}

type Op =
  | { readonly type: 'mint'; readonly account: number; readonly amount: bigint; readonly key: number }
  | { readonly type: 'transfer'; readonly debit: number; readonly credit: number; readonly amount: bigint; readonly key: number; readonly reference: JsonValue | undefined }
  | { readonly type: 'again'; readonly index: number; readonly alter: boolean };

const amountArb = fc.oneof(
  { weight: 12, arbitrary: fc.bigInt({ min: 1n, max: 400n }) },
  { weight: 1, arbitrary: fc.constantFrom(0n, -3n, AMOUNT_MINOR_MAX + 1n) },
  { weight: 2, arbitrary: fc.constantFrom(AMOUNT_MINOR_MAX, AMOUNT_MINOR_MAX - 1n) },
);
// Mostly users, so that money moves; sometimes the issuance, float, settlement or a wrong account.
const slotArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 3 }) },
  { weight: 2, arbitrary: fc.integer({ min: 4, max: 5 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 6, 7) },
);
const keyArb = fc.nat(12);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ type: fc.constant('mint' as const), account: slotArb, amount: amountArb, key: keyArb }) },
  {
    weight: 6,
    arbitrary: fc.record({
      type: fc.constant('transfer' as const),
      debit: slotArb,
      credit: slotArb,
      amount: amountArb,
      key: keyArb,
      reference: fc.constantFrom<JsonValue | undefined>(undefined, { note: 'a' }, 'b'),
    }),
  },
  { weight: 2, arbitrary: fc.record({ type: fc.constant('again' as const), index: fc.nat(), alter: fc.boolean() }) },
);

type Expected = { readonly ok: true; readonly replayOf: bigint | undefined } | { readonly ok: false; readonly code: LedgerResultCode };

/** What the ledger should do, kept as plainly as possible. */
class Model {
  readonly balances = new Map<string, bigint>();
  readonly kinds = new Map<string, { kind: AccountKind; currency: string }>();
  readonly done = new Map<string, { move: Move; id: bigint }>();

  constructor(readonly currency: string) {}

  open(id: string, kind: AccountKind, currency: string): void {
    this.kinds.set(id, { kind, currency });
    this.balances.set(id, 0n);
  }

  issuanceOf(currency: string): string | undefined {
    return [...this.kinds].find(([, a]) => a.kind === 'issuance' && a.currency === currency)?.[0];
  }

  expectMint(account: string, amount: bigint, key: string): { expected: Expected; move?: Move } {
    if (amount <= 0n || amount > AMOUNT_MINOR_MAX) return { expected: { ok: false, code: 'AMOUNT_INVALID' } };
    const target = this.kinds.get(account);
    if (target === undefined) return { expected: { ok: false, code: 'ACCOUNT_UNKNOWN' } };
    if (target.kind === 'issuance') return { expected: { ok: false, code: 'SAME_ACCOUNT' } };
    if (target.kind !== 'user') return { expected: { ok: false, code: 'ACCOUNT_RESTRICTED' } };
    const issuance = this.issuanceOf(target.currency);
    if (issuance === undefined) return { expected: { ok: false, code: 'ACCOUNT_UNKNOWN' } };
    const move = { key, debit: issuance, credit: account, amount, kind: 'mint', reference: undefined };
    return { expected: this.expectTransfer(move), move };
  }

  expectTransfer(m: Move): Expected {
    if (m.amount <= 0n || m.amount > AMOUNT_MINOR_MAX) return { ok: false, code: 'AMOUNT_INVALID' };
    if (m.debit === m.credit) return { ok: false, code: 'SAME_ACCOUNT' };
    const prior = this.done.get(m.key);
    if (prior !== undefined) {
      const same = prior.move.debit === m.debit && prior.move.credit === m.credit && prior.move.amount === m.amount && prior.move.kind === m.kind;
      return same && JSON.stringify(prior.move.reference) === JSON.stringify(m.reference) ? { ok: true, replayOf: prior.id } : { ok: false, code: 'IDEMPOTENCY_CONFLICT' };
    }
    const debit = this.kinds.get(m.debit);
    const credit = this.kinds.get(m.credit);
    if (debit === undefined || credit === undefined) return { ok: false, code: 'ACCOUNT_UNKNOWN' };
    if (debit.currency !== credit.currency) return { ok: false, code: 'CURRENCY_MISMATCH' };
    const from = this.balances.get(m.debit) ?? 0n;
    const to = this.balances.get(m.credit) ?? 0n;
    if (debit.kind !== 'issuance' && from < m.amount) return { ok: false, code: 'INSUFFICIENT_FUNDS' };
    if (from - m.amount < -AMOUNT_MINOR_MAX || to + m.amount > AMOUNT_MINOR_MAX) return { ok: false, code: 'BALANCE_OVERFLOW' };
    return { ok: true, replayOf: undefined };
  }

  record(m: Move, id: bigint): void {
    this.done.set(m.key, { move: m, id });
    this.balances.set(m.debit, (this.balances.get(m.debit) ?? 0n) - m.amount);
    this.balances.set(m.credit, (this.balances.get(m.credit) ?? 0n) + m.amount);
    for (const [id2, balance] of this.balances) assert.ok(this.kinds.get(id2)?.kind === 'issuance' || balance >= 0n, 'the model never overdraws');
  }

  total(kind: AccountKind): bigint {
    let sum = 0n;
    for (const [id, a] of this.kinds) if (a.kind === kind && a.currency === this.currency) sum += this.balances.get(id) ?? 0n;
    return sum;
  }
}

function check(label: string, actual: TransferResult, expected: Expected, move: Move | undefined): void {
  if (!expected.ok) {
    assert.equal(actual.ok ? 'ok' : actual.code, expected.code, label);
    return;
  }
  assert.ok(actual.ok, `${label}: expected ok, got ${actual.ok ? '' : `${actual.code}: ${actual.message}`}`);
  assert.ok(move !== undefined);
  assert.deepEqual(
    [actual.transfer.debit, actual.transfer.credit, actual.transfer.amount, actual.transfer.kind, actual.transfer.reference],
    [move.debit, move.credit, move.amount, move.kind, move.reference ?? null],
    label,
  );
  if (expected.replayOf !== undefined) assert.equal(actual.transfer.id, expected.replayOf, `${label}: a replay answers the original`);
}

for (const backend of testBackends()) {
  describe(`ledger against a model on ${backend.kind}`, { skip: backend.skip }, () => {
    let t: TestLedger;
    let ledger: Ledger;
    let run = 0;
    before(async () => {
      t = await openTestLedger(backend);
      ledger = t.ledger;
    });
    after(() => t.dispose());

    async function execute(ops: readonly Op[]): Promise<void> {
      run++;
      const tag = `r${run}`;
      const model = new Model(`P${String(run).padStart(5, '0')}`);
      const ids = SLOTS.map((slot, i) => `${slot === 'issuance' ? 'cb' : 'acct'}:${tag}-${i}`);
      for (const [i, slot] of SLOTS.entries()) {
        const id = ids[i] ?? '';
        if (slot === 'unknown') continue;
        const kind = slot === 'foreign' ? 'user' : slot;
        const currency = slot === 'foreign' ? FOREIGN_CURRENCY : model.currency;
        await openAccounts(ledger, currency, { [id]: kind });
        model.open(id, kind, currency);
      }
      const sent: { op: Op; move: Move | undefined }[] = [];
      for (const [n, original] of ops.entries()) {
        let op = original;
        if (op.type === 'again') {
          const earlier = sent[op.index % Math.max(sent.length, 1)]?.op;
          if (earlier === undefined || earlier.type === 'again') continue;
          op = op.alter ? { ...earlier, amount: earlier.amount + 1n } : earlier;
        }
        const key = `${tag}-k${op.key}`;
        let move: Move | undefined;
        let expected: Expected;
        let actual: TransferResult;
        if (op.type === 'mint') {
          const account = ids[op.account] ?? '';
          const predicted = model.expectMint(account, op.amount, key);
          expected = predicted.expected;
          move = predicted.move;
          actual = await ledger.mint({ idempotencyKey: key, account, amount: op.amount });
        } else {
          move = { key, debit: ids[op.debit] ?? '', credit: ids[op.credit] ?? '', amount: op.amount, kind: 'transfer', reference: op.reference };
          expected = model.expectTransfer(move);
          actual = await ledger.transfer({ idempotencyKey: key, debit: move.debit, credit: move.credit, amount: move.amount, kind: move.kind, reference: move.reference });
        }
        check(`op ${n} ${JSON.stringify(op, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}`, actual, expected, move);
        if (actual.ok && expected.ok && expected.replayOf === undefined && move !== undefined) model.record(move, actual.transfer.id);
        sent.push({ op, move });
      }
      for (const id of ids) assert.equal(await ledger.balance(id), model.balances.get(id), `balance of ${id}`);
      const audit = await assertBalanced(ledger);
      const mine = audit.currencies.find((c) => c.currency === model.currency);
      const issued = -(model.balances.get(ids[0] ?? '') ?? 0n);
      if (mine !== undefined) {
        assert.equal(mine.totalIssued, issued);
        assert.equal(mine.totalOnline, model.total('user'));
        assert.equal(mine.totalSettlement, model.total('settlement'));
        assert.equal(mine.totalOfflineFloat, model.total('offline-float'));
      }
      assert.equal(currencyOf(audit, FOREIGN_CURRENCY).totalOnline, 0n, 'nothing ever reaches a currency without issuance');
    }

    test('random operations keep the ledger equal to the model and conserved', { timeout: 120_000 }, async () => {
      await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: OPS_MIN, maxLength: OPS_MAX, size: 'max' }), execute), { numRuns: RUNS });
      await assertBalanced(ledger);
    });
  });
}
