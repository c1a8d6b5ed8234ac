/**
 * What the OTP bank keeps cannot link a withdrawal to the deposit of its coin (OTP §5: "privacy and
 * anonymity in payments"), checked on everything it stores: every row of every otp_* table, the
 * ledger's transfers and the stored answers of the idempotency table, before and after each step.
 * The check runs with one holder withdrawing and depositing the same coin with the same device —
 * the hardest case, where any stored device key, serial, signature or derived value would show.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { fromBase64url, toBase64url, toHex } from '../../core/bytes.ts';
import { closeTestTemplates, testBackends } from '../../issuer/db/test-databases.ts';
import type { Queryable } from '../../issuer/plugin.ts';
import { otpNode } from './node-fixtures.ts';

after(() => closeTestTemplates());

/** A JSON replacer for rows: bytes as hex (read from the holder: a driver's Buffer would turn into JSON first), bigints marked. */
function encodeValue(this: unknown, key: string, value: unknown): unknown {
  const raw: unknown = (this as Record<string, unknown>)[key];
  if (raw instanceof Uint8Array) return { bytes: toHex(new Uint8Array(raw)) };
  return typeof value === 'bigint' ? { bigint: value.toString() } : value;
}

/** Every row of the tables that may hold what a withdrawal or a deposit left, each as JSON text. */
async function snapshot(q: Queryable): Promise<Set<string>> {
  const tables = await q.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND (table_name LIKE 'otp\\_%' OR table_name IN ('transfers', 'idempotency')) ORDER BY 1`,
  );
  assert.ok(tables.rows.length >= 8, `the otp tables and the ledger's: ${tables.rows.map((t) => t.table_name).join(', ')}`);
  const rows = new Set<string>();
  for (const { table_name: table } of tables.rows) {
    const { rows: found } = await q.query<Record<string, unknown>>(`SELECT * FROM ${table}`);
    for (const row of found) rows.add(JSON.stringify({ table, row }, encodeValue));
  }
  return rows;
}

/**
 * The values of some rows: byte strings (as hex, with base64url text that decodes to 16 bytes or
 * more taken as bytes too, which is how stored answers carry signatures and records) and text.
 * Numbers are left out: they are amounts, counts and sequence numbers.
 */
function values(rows: Iterable<string>): { bytes: Set<string>; text: Set<string> } {
  const bytes = new Set<string>();
  const text = new Set<string>();
  const visit = (v: unknown): void => {
    if (v === null || typeof v === 'number' || typeof v === 'boolean') return;
    if (typeof v === 'string') {
      text.add(v);
      if (/^[A-Za-z0-9_-]{22,}$/.test(v)) {
        const decoded = fromBase64url(v);
        if (decoded.length >= 16) bytes.add(toHex(decoded));
      }
      return;
    }
    if (Array.isArray(v)) return v.forEach(visit);
    if (typeof v === 'object') {
      const record = v as Record<string, unknown>;
      if (typeof record['bytes'] === 'string' && Object.keys(record).length === 1) return void bytes.add(record['bytes']);
      if (typeof record['bigint'] === 'string' && Object.keys(record).length === 1) return;
      Object.values(record).forEach(visit);
    }
  };
  for (const row of rows) visit((JSON.parse(row) as { row: unknown }).row);
  return { bytes, text };
}

function added(before: Set<string>, after: Set<string>): string[] {
  return [...after].filter((row) => !before.has(row));
}

/** Byte strings of at least 8 bytes (16 hex digits) that occur in both sets, whole or one inside the other. */
function sharedBytes(a: Set<string>, b: Set<string>, excluded: Set<string>): string[] {
  const shared: string[] = [];
  for (const x of a) {
    if (x.length < 16 || excluded.has(x)) continue;
    for (const y of b) {
      if (y.length < 16 || excluded.has(y)) continue;
      // Aligned to whole bytes: a hex match at an odd offset is not the same bytes.
      const inside = (outer: string, inner: string) => {
        for (let at = outer.indexOf(inner); at >= 0; at = outer.indexOf(inner, at + 1)) if (at % 2 === 0) return true;
        return false;
      };
      if (inside(x, y) || inside(y, x)) shared.push(`${x.slice(0, 32)}… ~ ${y.slice(0, 32)}…`);
    }
  }
  return shared;
}

for (const backend of testBackends()) {
  describe(`OTP anonymity on ${backend.kind}`, { skip: backend.skip }, () => {
    test("nothing the bank stores of a withdrawal appears in what it stores of the deposit of the same coin", async () => {
      const n = await otpNode(backend);
      try {
        const alice = await n.client();
        await n.mint(alice, '5.00');
        const { depositKey, classes } = await n.params();
        const entry = await n.classOf(100n);
        const { db } = n.h.node.services;
        const start = await snapshot(db);
        const { res, coins } = await n.withdraw(alice, [entry]);
        assert.equal(res.status, 200);
        const coin = coins[0];
        assert.ok(coin !== undefined);
        const withdrawn = await snapshot(db);
        // Time passes between a withdrawal and a deposit; the times the bank records are then different values.
        n.h.tick(3_600_000);
        const deposit = await n.deposit(alice, [n.sealForDeposit({ coin, tags: [] }, depositKey)]);
        assert.deepEqual(deposit.outcomes, ['credited']);
        const deposited = await snapshot(db);

        const withdrawal = values(added(start, withdrawn));
        const spending = values(added(withdrawn, deposited));
        assert.ok(withdrawal.bytes.size > 0 && spending.bytes.size > 0, 'both steps stored bytes to compare');
        // Public, or the same holder's on both sides by construction of this test:
        // - class ids and their denominations: the bank publishes them, and a coin names its class;
        // - the holder's account id and key id (the caller of both requests), the float account and the issuance account;
        // - the currency, and amounts and counts (numbers, or their decimal text).
        const excludedText = new Set<string>([
          ...classes.map((c) => toHex(c.coinClass.classId)),
          ...classes.map((c) => toBase64url(c.coinClass.classId)),
          alice.account,
          alice.keyId,
          'float:otp',
          'EUR',
          entry.coinClass.denomination,
          '1.00',
        ]);
        const excludedBytes = new Set<string>(classes.map((c) => toHex(c.coinClass.classId)));
        const sharedText = [...withdrawal.text].filter((t) => spending.text.has(t) && !excludedText.has(t));
        assert.deepEqual(sharedText, [], 'text stored by both the withdrawal and the deposit');
        assert.deepEqual(sharedBytes(withdrawal.bytes, spending.bytes, excludedBytes), [], 'bytes stored by both the withdrawal and the deposit');
        // And directly: the coin's serial, prefix and signature were never stored at withdrawal.
        for (const secret of [coin.serial, coin.prefix, coin.signature]) {
          assert.deepEqual(sharedBytes(withdrawal.bytes, new Set([toHex(secret)]), new Set()), [], 'the withdrawal stored nothing of the coin');
        }
        // The deposit's rows do carry the serial: that is what makes a second deposit of it a double spend.
        assert.ok([...spending.bytes].some((b) => b === toHex(coin.serial)));
        await n.conservation(0n);
      } finally {
        await n.h.close();
      }
    });
  });
}
