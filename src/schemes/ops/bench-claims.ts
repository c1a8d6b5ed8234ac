/**
 * Claims settled by the node, for `bench ops`: payments a TA made in advance to account holders
 * without a TA (OPS Figure 9) are claimed over a real HTTP socket, one per request with
 * `POST /v1/ops/claims` and many per request with `POST /v1/ops/claims/batch`, by one or several
 * claimers at once. Every claim must be credited, and the audit must balance at the end.
 */
import { toBase64url } from '../../core/bytes.ts';
import { summarise, type BenchHarness, type BenchNode, type BenchUser, type Latency } from '../../sim/bench/plugin.ts';
import { assertAuditBalanced, accountBalance, deviceClient, enrolOem, fundDevice, syncDevice, type BenchDevice } from './bench-setup.ts';
import { CLAIMS_BATCH_PAYMENTS_MAX, opsNodePart } from './node.ts';
import { encodePayment, REPORT_ENTRIES_MAX } from './messages.ts';

/** How claims are sent. */
export type ClaimMode = 'single' | 'batch';

/** One row: a backend, a way of claiming, a number of claimers at once. */
export interface ClaimsRow {
  database: 'pglite' | 'postgres';
  mode: ClaimMode;
  concurrency: number;
  claims: number;
  requests: number;
  /** Payments per request, on average (1 for single claims). */
  paymentsPerRequest: number;
  claimsPerSecond: number;
  /** Per request. */
  latency: Latency;
}

/** Options of the claims measurement on one backend. */
export interface ClaimsOptions {
  database: 'pglite' | 'postgres';
  /** Claims timed per row. */
  claimsPerRow: number;
  concurrencies: readonly number[];
  /** The node's device limits, from its defaults. */
  deviceLimits: Parameters<BenchHarness['openNode']>[0]['deviceLimits'];
}

/** Each claim is one cent. */
const CLAIM_AMOUNT_MINOR = 1n;
/** Untimed claims before the rows (half one by one, half in one batch), so the first row does not pay for a cold node. */
const WARMUP_CLAIMS = 16;

/**
 * Cuts encoded payments into batches as large as the route takes: at most `paymentsMax` payments
 * (CLAIMS_BATCH_PAYMENTS_MAX by default) and a JSON body within `bodyBytesMax`.
 */
export function batchesFor(texts: readonly string[], bodyBytesMax: number, paymentsMax = CLAIMS_BATCH_PAYMENTS_MAX): string[][] {
  const empty = JSON.stringify({ payments: [] }).length;
  const batches: string[][] = [];
  let current: string[] = [];
  let bytes = empty;
  for (const text of texts) {
    // The text's quotes, and a comma before every entry but the first (base64url needs no escaping).
    const added = text.length + 2 + (current.length > 0 ? 1 : 0);
    if (current.length > 0 && (current.length === paymentsMax || bytes + added > bodyBytesMax)) {
      batches.push(current);
      current = [];
      bytes = empty;
    }
    bytes += text.length + 2 + (current.length > 0 ? 1 : 0);
    current.push(text);
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/** Makes `count` payments from the payer's TA, cycling over `receivers`; syncs the TA whenever it reaches its limit. */
async function makePayments(node: BenchNode, payer: BenchDevice, receivers: readonly BenchUser[], count: number): Promise<string[][]> {
  const perReceiver: string[][] = receivers.map(() => []);
  const status = await payer.se.call('status', {});
  let unsynced = status.unsyncedPayments;
  for (let k = 0; k < count; k++) {
    if (unsynced >= Math.min(status.offlinePaymentsMax, REPORT_ENTRIES_MAX)) {
      await syncDevice(node, payer);
      unsynced = 0;
    }
    unsynced++;
    const w = k % receivers.length;
    const payment = await payer.se.call('pay', { amount: CLAIM_AMOUNT_MINOR, receiver: (receivers[w] as BenchUser).certificate });
    (perReceiver[w] as string[]).push(toBase64url(encodePayment(payment)));
  }
  // Reported before they are claimed, as a payer that synced after paying would have.
  await syncDevice(node, payer);
  return perReceiver;
}

/** Sends one claim request and checks that every payment in it was credited. */
async function claim(node: BenchNode, who: BenchUser, mode: ClaimMode, texts: readonly string[]): Promise<void> {
  if (mode === 'single') {
    const response = await node.send(who.signer, 'POST', '/v1/ops/claims', { payment: texts[0] });
    if (response.status !== 200) throw new Error(`claim refused: ${response.status} ${await response.text()}`);
    await response.arrayBuffer();
    return;
  }
  const response = await node.send(who.signer, 'POST', '/v1/ops/claims/batch', { payments: texts });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`batch refused: ${response.status} ${text}`);
  const { results } = JSON.parse(text) as { results: Array<{ status: string }> };
  if (results.length !== texts.length || results.some((r) => r.status !== 'credited')) throw new Error(`batch not fully credited: ${text.slice(0, 500)}`);
}

/** Times one row: each claimer claims its own payments, all claimers at once. */
async function timeRow(node: BenchNode, claimers: readonly BenchUser[], mode: ClaimMode, payments: readonly string[][]): Promise<{ requests: number; claims: number; elapsedMs: number; samples: number[] }> {
  const work = payments.map((texts) => (mode === 'single' ? texts.map((t) => [t]) : batchesFor(texts, node.bodyBytesMax)));
  const samples: number[] = [];
  const started = performance.now();
  await Promise.all(
    work.map(async (requests, w) => {
      for (const texts of requests) {
        const t = performance.now();
        await claim(node, claimers[w] as BenchUser, mode, texts);
        samples.push(performance.now() - t);
      }
    }),
  );
  const elapsedMs = performance.now() - started;
  return { requests: samples.length, claims: payments.reduce((n, p) => n + p.length, 0), elapsedMs, samples };
}

/** Measures every row on one backend. */
export async function measureClaims(harness: BenchHarness, options: ClaimsOptions): Promise<ClaimsRow[]> {
  const { database } = options;
  const progress = (line: string) => harness.progress(`claims: ${line}`);
  const node = await harness.openNode({ schemes: [opsNodePart], database, deviceLimits: options.deviceLimits });
  const dir = await harness.tempDir(`ops-claims-${database}`);
  let payer: BenchDevice | undefined;
  try {
    const workers = Math.max(...options.concurrencies);
    progress(`${database}: setting up a payer TA (isolated) and ${workers} claimers without TA`);
    payer = await deviceClient(harness, node, await enrolOem(node), dir);
    const claimers: BenchUser[] = [];
    for (let w = 0; w < workers; w++) claimers.push(await node.registerUser());
    const plan = (['single', 'batch'] as const).flatMap((mode) => options.concurrencies.map((concurrency) => ({ mode, concurrency })));
    await fundDevice(node, payer, node.amount(BigInt(plan.length * options.claimsPerRow + WARMUP_CLAIMS) * CLAIM_AMOUNT_MINOR));

    const claimed = new Map<BenchUser, bigint>();
    const first = claimers[0] as BenchUser;
    const [warm = []] = await makePayments(node, payer, [first], WARMUP_CLAIMS);
    for (const text of warm.slice(0, WARMUP_CLAIMS / 2)) await claim(node, first, 'single', [text]);
    await claim(node, first, 'batch', warm.slice(WARMUP_CLAIMS / 2));
    claimed.set(first, BigInt(WARMUP_CLAIMS) * CLAIM_AMOUNT_MINOR);

    const rows: ClaimsRow[] = [];
    for (const { mode, concurrency } of plan) {
      progress(`${database}: ${options.claimsPerRow} payments to claim (${mode}, ${concurrency} at once), made by the TA`);
      const active = claimers.slice(0, concurrency);
      const payments = await makePayments(node, payer, active, options.claimsPerRow);
      progress(`${database}: claiming them`);
      const timed = await timeRow(node, active, mode, payments);
      active.forEach((who, w) => claimed.set(who, (claimed.get(who) ?? 0n) + BigInt((payments[w] as string[]).length) * CLAIM_AMOUNT_MINOR));
      rows.push({
        database,
        mode,
        concurrency,
        claims: timed.claims,
        requests: timed.requests,
        paymentsPerRequest: timed.claims / timed.requests,
        claimsPerSecond: (timed.claims * 1000) / timed.elapsedMs,
        latency: summarise(timed.samples),
      });
    }
    // Every claim credited exactly once: each claimer holds what was paid to it, and the books balance.
    for (const [who, amount] of claimed) {
      const expected = node.amount(amount);
      const held = await accountBalance(node, who);
      if (held !== expected) throw new Error(`${database}: claimer ${who.keyId} holds ${held}, expected ${expected}`);
    }
    await assertAuditBalanced(node);
    return rows;
  } finally {
    await payer?.se.close();
    await node.stop();
  }
}
