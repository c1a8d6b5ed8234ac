/**
 * OPERA's side of `bench settle` (src/sim/bench/settle.ts): tokens paid offline between real ODWs,
 * then deposited by their payees (`POST /v1/opera/deposit`; `/v1/opera/settle` is for a transaction
 * an ODW will no longer finish, not for tokens received). For each token the node checks the bank's
 * Ed25519 signature (paper §3.1, Table 1), moves its serial from issued to deposited once, keeps its
 * escrow tags, and credits the depositor; each request is signed by the ODW's device key and is one
 * transaction with one signed receipt.
 *
 * A payment here is one token of 0.01 (the paper's least valuable, §5.2): the node settles tokens,
 * whatever payment carried them. The ODWs pay each other in sessions of up to SESSION_TOKENS tokens
 * (runOdw on both sides over a link in memory: Stage 1's proofs, a box per token), so that the
 * proofs of Stage 1 are spread over many tokens. Payers are charged each row's tokens through the
 * node before the row. An ODW holds one deposit under way at a time, so each payee receives at
 * most DEPOSIT_TOKENS a row and signs that deposit request (depositRequest) before the clock
 * starts; the node's receipts are taken by the ODWs (depositTake) after the row, untimed. Every ODW
 * is provisioned as a wallet provisions it (its TPM, swtpm, quoted for its anonymous credential);
 * the ODWs run in this process and in memory.
 */
import { join } from 'node:path';
import { fromBase64url, toBase64url } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { memoryPair, openLink } from '../../channel/index.ts';
import { inBatches, upTo, type BenchNode, type DeviceLimits, type PreparedBody, type SettleContext, type SettleSubmitter, type SettleWorkload, type SettleWorld } from '../../sim/bench/plugin.ts';
import { chargeTokens, makeParty, TOKEN_MINOR, worldOn, type OperaWorld, type Party } from './bench-setup.ts';
import { depositReceiptCodec, OPERA_SCHEME, TOKENS_PER_MESSAGE_MAX } from './messages.ts';
import { runOdw } from './session.ts';
import { odwOf } from './wallet-base.ts';

const DEPOSIT_ROUTE = '/v1/opera/deposit';
/** Tokens in one deposit: a request of TOKENS_PER_MESSAGE_MAX paid tokens, each with its escrow tags, would be larger than a request may be. */
const DEPOSIT_TOKENS = 512;
/** Most tokens in one offline payment. */
const SESSION_TOKENS = 256;
/** ODWs set up at once (each starts a swtpm for its credential). */
const SETUP_CONCURRENCY = 4;
/** How long a side of a payment waits for the other's next message. */
const STEP_TIMEOUT_MS = 120_000;

/** A deposit signed by the payee's ODW and encoded before the clock starts. */
interface PreparedDeposit {
  readonly payee: Party;
  readonly body: PreparedBody;
  readonly tokens: number;
}

/** The node's answer to a deposit, as the bench reads it. */
interface DepositAnswer {
  readonly credited: string;
  readonly receipt: string;
}

/** Runs `work` for `count` items, at most `limit` at once; answers the results in order. */
/** Sends one prepared deposit and checks that every token in it was credited; answers the receipt for the ODW to take later. */
async function deposit(node: BenchNode, d: PreparedDeposit): Promise<string> {
  const response = await node.sendPrepared(d.payee.signer, 'POST', DEPOSIT_ROUTE, d.body);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`deposit of ${d.payee.name} refused: ${response.status} ${text.slice(0, 500)}`);
  const answer = JSON.parse(text) as DepositAnswer;
  const expected = node.amount(BigInt(d.tokens) * TOKEN_MINOR);
  if (answer.credited !== expected) throw new Error(`deposit of ${d.payee.name}: ${answer.credited} credited for ${d.tokens} tokens worth ${expected}`);
  return answer.receipt;
}

/** `payer` pays `count` tokens to `payee` in sessions of at most SESSION_TOKENS, both ODWs' sides run here. */
async function pay(payer: Party, payee: Party, count: number): Promise<void> {
  for (let left = count; left > 0; left -= SESSION_TOKENS) {
    const n = Math.min(left, SESSION_TOKENS);
    const [a, b] = memoryPair();
    const payerLink = openLink(a);
    const payeeLink = openLink(b);
    // The handshake hash a secure link would give both sides; the link is not what is measured.
    const handshakeHash = randomBytes(64);
    try {
      const [, got] = await Promise.all([
        runOdw(payerLink, handshakeHash, 'payer', odwOf(payer.se), { stepTimeoutMs: STEP_TIMEOUT_MS }),
        runOdw(payeeLink, handshakeHash, 'payee', odwOf(payee.se), { amount: BigInt(n) * TOKEN_MINOR, stepTimeoutMs: STEP_TIMEOUT_MS }),
      ]);
      if (got.count !== n) throw new Error(`${payer.name} paid ${payee.name}: ${got.count} tokens moved, ${n} asked`);
    } finally {
      payerLink.close();
      payeeLink.close();
    }
  }
}

async function openWorld(context: SettleContext): Promise<SettleWorld> {
  const { harness, node } = context;
  const world: OperaWorld = await worldOn(harness, node);
  const root = await harness.tempDir('opera-settle');
  // One deposit a payee a row: a row needs its tokens over DEPOSIT_TOKENS payees, and one more per submitter for the rounding.
  const payeesMax = Math.ceil(context.paymentsPerRow / DEPOSIT_TOKENS) + context.submittersMax;
  const parties: Party[] = [];
  const make = async (name: string) => {
    const party = await makeParty(world, name, join(root, name.replace(' ', '-')), { kind: 'memory' });
    parties.push(party);
    return party;
  };
  let payers: Party[] = [];
  let payees: Party[] = [];
  try {
    payers = await inBatches(upTo(context.devices), SETUP_CONCURRENCY, (k) => make(`payer ${k}`));
    payees = await inBatches(upTo(payeesMax), SETUP_CONCURRENCY, (k) => make(`payee ${k}`));
  } catch (e) {
    await Promise.all(parties.map((p) => p.se.close()));
    throw e;
  }
  const deposited = new Map<Party, bigint>();
  /** Receipts the node gave in the last row, taken by their ODWs before the next row. */
  const receipts: Array<{ deposit: PreparedDeposit; receipt: string }> = [];

  async function takeReceipts(): Promise<void> {
    for (const { deposit: d, receipt } of receipts.splice(0)) {
      const out = await d.payee.se.call('depositTake', { receipt: depositReceiptCodec.decode(decodeCbor(fromBase64url(receipt)), 'receipt') });
      if (out.doubleSpent > 0 || out.refused > 0 || out.credited !== BigInt(d.tokens) * TOKEN_MINOR) throw new Error(`${d.payee.name}: the receipt credits ${out.credited} (${out.doubleSpent} double spent, ${out.refused} refused), ${d.tokens} tokens deposited`);
    }
  }

  return {
    async prepare(row) {
      await takeReceipts();
      // Each submitter's share, in deposits of at most DEPOSIT_TOKENS tokens, one payee each.
      const shares = Array.from({ length: row.submitters }, (_, w) => Math.floor(row.payments / row.submitters) + (w < row.payments % row.submitters ? 1 : 0));
      const plan = shares.map((share) => Array.from({ length: Math.ceil(share / DEPOSIT_TOKENS) }, (_, j) => Math.min(DEPOSIT_TOKENS, share - j * DEPOSIT_TOKENS)));
      const slots = plan.flat();
      if (slots.length > payees.length) throw new RangeError(`a row of ${row.payments} payments needs ${slots.length} payees, ${payees.length} were made`);
      // The payers take the payees in turn; each is charged what it pays just before. One payment
      // at a time: the ODWs run in this process, and a payment of hundreds of tokens keeps its
      // thread for seconds, so a charge sent meanwhile by another payer would wait that long for its
      // answer to be read, past the client's timeout (at about 2,000 tokens a row, the bench used
      // to stop on "cannot reach the issuer node" while the node sat idle).
      for (const [s, count] of slots.entries()) {
        const payer = payers[s % payers.length] as Party;
        await chargeTokens(world, payer, Math.min(count, TOKENS_PER_MESSAGE_MAX));
        await pay(payer, payees[s] as Party, count);
        row.made(count);
      }
      // Each payee's deposit request, signed by its ODW, and encoded, before the clock starts.
      const prepared = await Promise.all(
        slots.map(async (count, s): Promise<PreparedDeposit> => {
          const payee = payees[s] as Party;
          const { request } = await payee.se.call('depositRequest', {});
          if (request.body.tokens.length !== count) throw new Error(`${payee.name}'s deposit carries ${request.body.tokens.length} tokens, ${count} were paid to it`);
          deposited.set(payee, (deposited.get(payee) ?? 0n) + BigInt(count) * TOKEN_MINOR);
          return { payee, tokens: count, body: node.prepare({ device: payee.device, request: toBase64url(encodeCbor(request)) }) };
        }),
      );
      let next = 0;
      return plan.map((deposits): SettleSubmitter => {
        const mine = prepared.slice(next, next + deposits.length);
        next += deposits.length;
        return {
          requests: mine.length,
          async submit(i) {
            const d = mine[i];
            if (d === undefined) throw new RangeError(`request ${i} of ${mine.length}`);
            receipts.push({ deposit: d, receipt: await deposit(node, d) });
            return d.tokens;
          },
        };
      });
    },
    async verify() {
      await takeReceipts();
      for (const [payee, amount] of deposited) {
        const held = ((await node.call(payee.signer, 'GET', `/v1/accounts/${payee.account}`)) as { balance: string }).balance;
        if (held !== node.amount(amount)) throw new Error(`${payee.name} holds ${held}, deposited ${node.amount(amount)}`);
        const status = await payee.se.call('status', {});
        if (status.balance !== 0n) throw new Error(`${payee.name}'s ODW still holds ${status.balance}`);
      }
    },
    async close() {
      await Promise.all(parties.map((p) => p.se.close()));
    },
  };
}

/** OPERA tokens deposited by their payees, for `npm run bench -- settle`. */
export const operaSettle: SettleWorkload = {
  name: 'deposits',
  // The bank's signature on each token, and the ODW's on its deposit request (one a request of DEPOSIT_TOKENS).
  verificationsPerPayment: 1 + 1 / DEPOSIT_TOKENS,
  schemes: [OPERA_SCHEME],
  // With `--shards N`: rows on a node with N shard databases, where the tokens live on their serials' shards.
  shardDatabases: true,
  describes: `OPERA tokens of 0.01 paid offline between ODWs (sessions of up to ${SESSION_TOKENS} tokens), deposited by their payees (${DEPOSIT_ROUTE}, ${DEPOSIT_TOKENS} tokens a request signed by the ODW, one payment a token); the node checks each token's bank signature (Ed25519), moves its serial from issued to deposited once, keeps its escrow tags and credits the payee`,
  deviceLimits: (defaults: DeviceLimits): DeviceLimits => defaults,
  open: openWorld,
};
