/**
 * One run of `bench chain`: an offline account's whole life between two isolated trusted apps and
 * the contract, every trusted-app command timed as the wallet calls it (Figure 3) and every
 * transaction timed and its gas read (Table II):
 *
 *   P1  the payer's TA opens an account (Algorithm 2); the funder deposits into it on chain (the
 *       first deposit of an account) and the TA credits the node's receipt
 *   P2  payments to the payee's TA: transfer (payer), receive (payee), pay (payer); uploads of 1
 *       (the first: it binds the account), 1, 3 and 5 acknowledged payments built by the payer's TA
 *       (`onchainUpdate`), sent to `reconcile`, then the node's statements finalized by both TAs
 *   P3  onchainUpdate of 3 items + finalize of their statement (the 3-payment upload)
 *   P4  withdraw (uploaded and paid out on chain), then a second deposit credited (recharge)
 *   P5  logout (the closing, uploaded), finalize of the statement that the account is closed, clean
 *   and, on chain only, a broken TEE's account bound and then frozen by an upload with a bad item.
 *
 * The amounts are chosen so the account ends empty on chain and in its TA: every run leaves only
 * the payee's balance behind, which the bench checks against the chain at the end.
 */
import { ethereumAddress } from '../../core/crypto/ethereum.ts';
import type { ChainService } from '../../sim/bench/plugin.ts';
import { bytesOf, depositTo, readAccount, reconcile, type Deployment, type Reconciled, type Sender, type Sent, type TaUpload } from './bench-chain.ts';
import type { BenchIssuer } from './bench-issuer.ts';
import type { BrokenTee, Device } from './bench-parties.ts';
import type { Statement } from './messages.ts';
import { buildTxOff } from './tx-off.ts';
import { PAYMENT_KIND, paymentHash, signingInput, uploadHash, uploadItems, type PaymentKind } from './typed-data.ts';

/** What one run moves, minor units. */
export const AMOUNTS = { firstDeposit: 100_000n, payment: 100n, withdrawal: 5_000n, recharge: 20_000n } as const;
/** The acknowledged payments of each upload after the first, as Table II lists them. */
export const UPLOAD_SIZES = [1, 3, 5] as const;

/** The trusted-app commands timed in each run (ms each). */
export const TA_COMMANDS = ['open', 'deposit', 'transfer', 'receive', 'pay', 'exchange', 'onchainUpdate', 'finalize', 'finalize (payee)', 'withdraw', 'recharge', 'logout', 'finalize (closed)', 'clean'] as const;
/** A trusted-app command timed in each run. */
export type TaCommand = (typeof TA_COMMANDS)[number];

/** The transactions timed in each run. */
export const CHAIN_CALLS = ['deposit (first of an account)', 'deposit (next)', 'reconcile 1 (first upload: binds)', 'reconcile 1', 'reconcile 3', 'reconcile 5', 'withdrawal', 'closing', 'freeze'] as const;
/** A transaction timed in each run. */
export type ChainCall = (typeof CHAIN_CALLS)[number];

/** What the lifecycle runs on. */
export interface Stage {
  readonly chain: ChainService;
  readonly deployment: Deployment;
  readonly issuer: BenchIssuer;
  readonly payer: Device;
  readonly payee: Device;
  /** The payee's offline account (opened once, never closed). */
  readonly payeeAccount: Uint8Array;
  readonly funder: Sender;
  readonly relayer: Sender;
  /** Where withdrawals and closings are paid out. */
  readonly cashOut: Uint8Array;
  readonly broken: BrokenTee;
}

/** One run's times and sends. */
export interface RunSample {
  readonly ta: Record<TaCommand, number>;
  readonly chain: Record<ChainCall, Sent>;
  /** Every payment's transfer and whole exchange (transfer + receive + pay), ms. */
  readonly payments: { transfer: number; exchange: number }[];
}

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await run();
  return { value, ms: performance.now() - start };
}

function expectEvents(reconciled: Reconciled, what: string, counts: Readonly<Record<string, number>>): void {
  for (const [name, count] of Object.entries(counts)) {
    const seen = reconciled.events.filter((e) => e === name).length;
    if (seen !== count) throw new Error(`${what}: expected ${count} ${name} event(s), the chain answered ${reconciled.events.join(', ')}`);
  }
}

/** The node's statement of `account` for the payments of `upload`, read from the chain now. */
async function statementFor(stage: Stage, account: Uint8Array, upload: TaUpload): Promise<Statement> {
  const payments = upload.items.map((i) => ({ hash: paymentHash(i.txOff.payment), payer: i.txOff.payment.payer, counter: i.txOff.payment.counter }));
  const view = await readAccount(stage.chain, stage.deployment, account, payments);
  const { chainId, contract } = stage.deployment.domain;
  return stage.issuer.statement({ chainId, contract, account, status: view.status, balance: view.balance, payments: view.payments, block: view.block, at: view.at });
}

/** The node's receipt of a deposit it saw mined. */
async function depositReceipt(stage: Stage, account: Uint8Array, amount: bigint) {
  const deposited = await depositTo(stage.chain, stage.deployment, stage.funder, account, amount);
  const block = await stage.chain.publicClient.getBlock({ blockNumber: deposited.sent.receipt.blockNumber });
  const { chainId, contract } = stage.deployment.domain;
  const receipt = stage.issuer.depositReceipt({ chainId, contract, account, index: deposited.index, amount, txHash: bytesOf(deposited.sent.receipt.transactionHash), block: block.number, at: Number(block.timestamp) * 1000 });
  return { deposited, receipt };
}

/** `count` payments of the payer to the payee, each acknowledged; answers their times. */
async function pay(stage: Stage, count: number): Promise<{ transfer: number; receive: number; pay: number; exchange: number }[]> {
  const out = [];
  for (let k = 0; k < count; k++) {
    const start = performance.now();
    const sent = await timed(() => stage.payer.se.call('transfer', { payee: stage.payeeAccount, amount: AMOUNTS.payment, now: Date.now() }));
    const got = await timed(() => stage.payee.se.call('receive', { txOff: sent.value.txOff, now: Date.now() }));
    if (!got.value.credited) throw new Error(`the payee's TA refused a payment: ${got.value.reason ?? 'no reason'}`);
    const paid = await timed(() => stage.payer.se.call('pay', { ack: got.value.ack }));
    out.push({ transfer: sent.ms, receive: got.ms, pay: paid.ms, exchange: performance.now() - start });
  }
  return out;
}

/** The payer's TA uploads what it holds; the chain reconciles it; both TAs take the node's statements. */
async function settle(stage: Stage, account: Uint8Array, what: string, events: Readonly<Record<string, number>>) {
  const upload = await timed(() => stage.payer.se.call('onchainUpdate', {}));
  const reconciled = await reconcile(stage.chain, stage.deployment, stage.relayer, upload.value);
  expectEvents(reconciled, what, events);
  const statement = await statementFor(stage, account, upload.value);
  const mine = await timed(() => stage.payer.se.call('finalize', { statement }));
  return { upload, reconciled, items: upload.value.items.length, finalize: mine, statementPayee: () => statementFor(stage, stage.payeeAccount, upload.value) };
}

/** The payee's TA takes its statement of the same upload; answers the time of its finalize. */
async function payeeFinalize(stage: Stage, statement: () => Promise<Statement>): Promise<number> {
  const s = await statement();
  return (await timed(() => stage.payee.se.call('finalize', { statement: s }))).ms;
}

/** A broken TEE's account: bound by a correct upload, then frozen by one whose item no correct TEE signs (an amount above the attested balance). */
async function freeze(stage: Stage): Promise<Sent> {
  const { broken } = stage;
  const account = broken.account();
  const address = ethereumAddress(account.publicKey);
  const keys = { enclave: broken.enclave, account, certificate: new Uint8Array(0) };
  const upload = (counter: bigint, amount: bigint, kind: PaymentKind): TaUpload => {
    const txOff = buildTxOff(stage.deployment.domain, keys, { payee: stage.cashOut, amount, counter, tGen: BigInt(Math.floor(Date.now() / 1000)), kind, balance: 1n });
    const digest = uploadHash({ account: address, items: uploadItems([{ payment: paymentHash(txOff.payment), ack: 0 }]) });
    return { account: address, items: [{ txOff }], signature: broken.enclave.sign(signingInput(stage.deployment.domain, digest)) };
  };
  // A withdrawal of 1 from an account holding nothing on chain: verified, so it binds, and waits.
  expectEvents(await reconcile(stage.chain, stage.deployment, stage.relayer, upload(0n, 1n, PAYMENT_KIND.withdrawal)), 'the broken TEE binding its account', { Bound: 1, Recorded: 1 });
  const frozen = await reconcile(stage.chain, stage.deployment, stage.relayer, upload(1n, 2n, PAYMENT_KIND.withdrawal));
  expectEvents(frozen, 'the freeze', { Frozen: 1, Reconciled: 0 });
  return frozen.sent;
}

/** One whole run. @throws Error when a TA or the chain does not do what a correct one does */
export async function runLifecycle(stage: Stage): Promise<RunSample> {
  const { payer } = stage;
  const ta: Partial<Record<TaCommand, number>> = {};
  const chain: Partial<Record<ChainCall, Sent>> = {};
  const payments: RunSample['payments'] = [];

  const opened = await timed(() => payer.se.call('open', {}));
  ta.open = opened.ms;
  const account = opened.value.account;
  const first = await depositReceipt(stage, account, AMOUNTS.firstDeposit);
  chain['deposit (first of an account)'] = first.deposited.sent;
  ta.deposit = (await timed(() => payer.se.call('deposit', { receipt: first.receipt }))).ms;

  // The first upload binds the account to its enclave: measured apart, as its gas is not the steady one.
  for (const size of [0, ...UPLOAD_SIZES]) {
    const count = size === 0 ? 1 : size;
    const made = await pay(stage, count);
    payments.push(...made.map((m) => ({ transfer: m.transfer, exchange: m.exchange })));
    const settled = await settle(stage, account, `an upload of ${count}`, { Applied: count, Reconciled: 1 });
    if (settled.items !== count) throw new Error(`the TA uploaded ${settled.items} items, ${count} expected`);
    const payeeMs = await payeeFinalize(stage, settled.statementPayee);
    chain[size === 0 ? 'reconcile 1 (first upload: binds)' : (`reconcile ${size}` as ChainCall)] = settled.reconciled.sent;
    if (size === 3) {
      const firstPayment = made[0] as (typeof made)[number];
      Object.assign(ta, { transfer: firstPayment.transfer, receive: firstPayment.receive, pay: firstPayment.pay, exchange: firstPayment.exchange, onchainUpdate: settled.upload.ms, finalize: settled.finalize.ms, 'finalize (payee)': payeeMs });
    }
  }

  const withdrawn = await timed(() => payer.se.call('withdraw', { to: stage.cashOut, amount: AMOUNTS.withdrawal, now: Date.now() }));
  ta.withdraw = withdrawn.ms;
  chain.withdrawal = (await settle(stage, account, 'the withdrawal', { Withdrawn: 1, Reconciled: 1 })).reconciled.sent;
  const next = await depositReceipt(stage, account, AMOUNTS.recharge);
  chain['deposit (next)'] = next.deposited.sent;
  ta.recharge = (await timed(() => payer.se.call('deposit', { receipt: next.receipt }))).ms;

  const closing = await timed(() => payer.se.call('logout', { to: stage.cashOut, now: Date.now() }));
  ta.logout = closing.ms;
  const closed = await settle(stage, account, 'the closing', { Closed: 1, Reconciled: 1 });
  chain.closing = closed.reconciled.sent;
  ta['finalize (closed)'] = closed.finalize.ms;
  ta.clean = (await timed(() => payer.se.call('clean', {}))).ms;
  const left = await payer.se.call('status', {});
  if (left.status !== 'closed' || left.account !== undefined || left.balance !== 0n) throw new Error(`after clean the payer's TA is ${left.status} with ${left.balance} left`);

  chain.freeze = await freeze(stage);
  return { ta: ta as Record<TaCommand, number>, chain: chain as Record<ChainCall, Sent>, payments };
}
