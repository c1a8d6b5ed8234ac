/**
 * An OPERA wallet: an account at the node and an ODW (the trusted app in an isolated secure element)
 * that holds tokens.
 * - `deposit` (account → tokens): the bank charges tokens into the ODW, in a journal step, so a crash
 *   after the bank answered finishes with its idempotent answer;
 * - `withdraw` (tokens → account): the ODW's tokens are deposited back at the bank, in a journal step;
 * - `sync`: the bank's parameters, and a transaction the ODW's log still holds settled online;
 * - `pay` / `receive`: the three-stage exchange over an anonymous link (session.ts).
 */
import { join } from 'node:path';
import { toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { randomBytes, sha256 } from '../../core/crypto/hash.ts';
import { TallyError, isTallyError } from '../../core/errors.ts';
import {
  connectLink,
  createWalletFolder,
  holdLegacyAccount,
  holdNewAccount,
  listenLink,
  newAccountKey,
  newStepId,
  nodeProvider,
  openFolderOf,
  startSecureElement,
  WalletShell,
  type LinkSide,
  type Oem,
  type OpenedWallet,
  type ResumeReport,
} from '../../wallet/plugin.ts';
import type { Role } from './exchange.ts';
import { chargeCodec, depositReceiptCodec, paramsCodec, settledCodec, type Params } from './messages.ts';
import { failureCode, OPERA_LINK_PROLOGUE, OPERA_LINK_SCHEME, runOdw, type SessionOutcome } from './session.ts';
import type { OperaState } from './trusted-app.ts';
import { cbor, chargeAnswer, pendingOf, depositAnswer, odwOf, OPERA_FORMAT, OPERA_TA, paramsAnswer, peerBanksOf, provisionDevice, settleAnswer, type ChargeStep, type DepositStep, type OperaCommands, type OperaStep } from './wallet-base.ts';

export type { OperaStep } from './wallet-base.ts';
export { odwOf } from './wallet-base.ts';

/** The SE request id of one command of a journal step (each command of a step needs its own). */
function callId(stepId: string, command: string): Uint8Array {
  return sha256(utf8(`tally/opera/step/${stepId}/${command}`)).subarray(0, 16);
}

/** Both sides of the link are anonymous: no certificate is shown or asked for; the ODWs prove themselves inside. */
export const LINK_SIDE: LinkSide = { prologue: OPERA_LINK_PROLOGUE, scheme: OPERA_LINK_SCHEME };

/** What a link payment did. */
export interface TransferResult {
  /** A new payment, or an interrupted one finished from the logs. */
  plan: 'new' | 'resume';
  /** The amount that moved in this session (major units). */
  amount: string;
  tokens: number;
  /** The change the payee gave back (major units), or null when the tokens made the amount exactly. */
  change: string | null;
  /** An interrupted transaction set in order at the start (its tokens came back, or it was found paid). */
  settled: 'paid' | 'returned' | null;
  offline: string;
}

/** An open OPERA wallet. */
export class OperaWallet extends WalletShell<OperaStep, null, OperaState, OperaCommands> {
  private constructor(opened: OpenedWallet<OperaStep, null>) {
    super(opened);
  }

  protected secureElementSpec() {
    return { spec: OPERA_TA };
  }

  protected async probeSecureElement(): Promise<void> {
    await (await this.startedSe()).call('status', {});
  }

  protected runStep(step: OperaStep): Promise<unknown> {
    return step.kind === 'opera-charge' ? this.runCharge(step) : this.runDeposit(step);
  }

  /** The running secure element. */
  se() {
    return this.startedSe();
  }

  /**
   * Creates a wallet: a user at the node, an isolated SE attested by the home's OEM and registered
   * as the user's device (scheme opera), the bank's key pinned, its parameters, and the anonymous
   * credential the OEM issues after checking a TPM quote of the ODW build.
   * @throws TallyError WALLET_EXISTS, WALLET_UNSUPPORTED (no OEM enrolled), TPM_TOOL_MISSING, NODE_UNREACHABLE, NODE_REFUSED
   */
  static async create(options: { home: string; name: string; node: string; progress?: (line: string) => void }): Promise<OperaWallet> {
    await createWalletFolder<null>({ ...options, scheme: 'opera', needsOem: true }, async ({ name, node, info, paths, oem, progress, registerUser }) => {
      const account = newAccountKey(randomBytes(32));
      progress('registering the user at the node');
      const registered = await registerUser(account.signer);
      progress('provisioning the isolated secure element (the ODW)');
      const host = await startSecureElement(OPERA_TA, paths, true);
      try {
        const device = await provisionDevice(host, { node, info, oem: oem as Oem, user: account.signer, owner: registered.keyId, tpmDir: join(paths.dir, 'tpm'), progress });
        const held = await holdNewAccount(account, { slot: host });
        await host.close();
        const data = { name, scheme: 'opera', node: node.url, currency: info.currency, createdAt: Date.now(), user: { held, keyId: registered.keyId, account: registered.account, certificate: registered.certificate }, device, certificates: info.certificates };
        return { data, detail: `ODW ${device.keyId}` };
      } catch (e) {
        await host.kill();
        throw e;
      }
    });
    return OperaWallet.open(options.home, options.name);
  }

  /** Opens a wallet under its lock. */
  static async open(home: string, name: string): Promise<OperaWallet> {
    const opened = await openFolderOf(home, name, 'opera', OPERA_FORMAT, { account: holdLegacyAccount(OPERA_TA.app) });
    try {
      return new OperaWallet(opened);
    } catch (e) {
      opened.book.close();
      await opened.unlock();
      throw e;
    }
  }

  /** Finishes the steps a crash cut short. */
  resume(): Promise<ResumeReport> {
    return this.resumeSteps();
  }

  private get device(): string {
    if (this.data.device === null) throw new TallyError('WALLET_UNSUPPORTED', `wallet ${this.name} has no secure element`, { name: this.name, reason: 'no secure element' });
    return this.data.device.keyId;
  }

  /** The bank's parameters, fetched and given to the ODW (older ones it already has are kept). */
  async refreshParams(): Promise<Params> {
    const answer = await this.node.call('GET', '/v1/opera/params', { answer: paramsAnswer });
    const params = cbor(paramsCodec, answer.body.params, 'params');
    await (await this.se()).call('setParams', { params }).catch((e: unknown) => {
      if (!(isTallyError(e, 'SE_REJECTED') && e.details.reason === 'OPERA_PARAMS_STALE')) throw e;
    });
    return params;
  }

  /**
   * The other banks whose tokens the ODW takes (docs/opera.md, "Several banks"): their published
   * parameters from the bank's directory, checked here under each bank's certificate and by the
   * ODW to its root. A node that serves no directory (a standalone node, or one before the two
   * tiers) leaves the ODW with none. Answers how many it holds.
   */
  async refreshPeers(): Promise<number> {
    let answer: unknown;
    try {
      answer = (await this.node.call('GET', '/v1/interbank/peers')).body;
    } catch (e) {
      if (isTallyError(e, 'NODE_REFUSED')) answer = { peers: [] };
      else throw e;
    }
    return (await (await this.se()).call('setPeers', { peers: peerBanksOf(nodeProvider, answer), now: Date.now() })).peers;
  }

  /** What the ODW holds. */
  async status() {
    return (await this.se()).call('status', {});
  }

  /** Account → tokens: the bank charges tokens worth `amountText` into the ODW, in the fewest of its denominations. */
  async deposit(amountText: string): Promise<{ amount: string; tokens: number; offline: string }> {
    const amount = this.parseAmount(amountText);
    await this.refreshParams();
    const step: ChargeStep = { kind: 'opera-charge', id: newStepId(), amount: amount.toString() };
    await this.begin(step);
    const tokens = await this.runCharge(step);
    return { amount: this.format(amount), tokens, offline: this.format((await this.status()).balance) };
  }

  private async runCharge(step: ChargeStep): Promise<number> {
    const se = await this.se();
    if (step.charge === undefined) {
      // A retry after a crash gets the same signed request (the same nonce) from the SE's outbox.
      const { request } = await se.call('chargeRequest', { amount: BigInt(step.amount) }, { requestId: callId(step.id, 'request') });
      const answer = await this.node.signed(await this.accountSigner(), 'POST', '/v1/opera/charge', {
        answer: chargeAnswer,
        body: { device: this.device, request: toBase64url(encodeCbor(request)) },
        idempotencyKey: `opera-charge-${step.id}`,
      });
      step.charge = answer.body.charge;
      await this.update(step);
    }
    const out = await se.call('chargeTake', { charge: cbor(chargeCodec, step.charge, 'charge') }, { requestId: callId(step.id, 'take') });
    await this.finish(step, { at: Date.now(), kind: 'deposit', amount: this.format(out.amount), detail: `${out.tokens} token(s) charged by the bank` });
    return out.tokens;
  }

  /** Tokens → account: tokens worth exactly `amountText` (every token, for `all`) are deposited back at the bank. */
  async withdraw(amountText: string): Promise<{ amount: string; credited: string; tokens: number; doubleSpent: number; refused: number; presented: number; offline: string }> {
    const amount = amountText === 'all' ? null : this.parseAmount(amountText);
    await this.refreshParams();
    const step: DepositStep = { kind: 'opera-deposit', id: newStepId(), amount: amount === null ? null : amount.toString() };
    await this.begin(step);
    const out = await this.runDeposit(step);
    if (out.credited === 0n && out.presented === 0 && out.doubleSpent > 0) {
      throw new TallyError('DOUBLE_SPEND', `the bank refused ${out.doubleSpent} token(s) as deposited or refunded before (copies of tokens paid twice): nothing was credited`, { coins: out.doubleSpent });
    }
    return { amount: this.format(out.amount), credited: this.format(out.credited), tokens: out.tokens, doubleSpent: out.doubleSpent, refused: out.refused, presented: out.presented, offline: this.format((await this.status()).balance) };
  }

  private async runDeposit(step: DepositStep): Promise<{ amount: bigint; credited: bigint; tokens: number; doubleSpent: number; refused: number; presented: number }> {
    const se = await this.se();
    const { request } = await se.call('depositRequest', step.amount === null ? {} : { amount: BigInt(step.amount) }, { requestId: callId(step.id, 'request') });
    const amount = request.body.tokens.reduce((s, t) => s + t.body.value, 0n);
    if (step.receipt === undefined) {
      const answer = await this.node.signed(await this.accountSigner(), 'POST', '/v1/opera/deposit', {
        answer: depositAnswer,
        body: { device: this.device, request: toBase64url(encodeCbor(request)) },
        idempotencyKey: `opera-deposit-${step.id}`,
      });
      step.receipt = answer.body.receipt;
      await this.update(step);
    }
    const out = await se.call('depositTake', { receipt: cbor(depositReceiptCodec, step.receipt, 'receipt') }, { requestId: callId(step.id, 'take') });
    const detail = [
      `${request.body.tokens.length} token(s)`,
      ...(out.doubleSpent > 0 ? [`${out.doubleSpent} refused as spent before`] : []),
      ...(out.refused > 0 ? [`${out.refused} refused`] : []),
      ...(out.presented > 0 ? [`${out.presented} of other banks presented to them, credited once settled`] : []),
    ].join(', ');
    await this.finish(step, { at: Date.now(), kind: 'withdraw', amount: this.format(out.credited), detail });
    return { amount, credited: out.credited, tokens: request.body.tokens.length, doubleSpent: out.doubleSpent, refused: out.refused, presented: out.presented };
  }

  /**
   * Online: the bank's parameters, and a transaction the ODW's log still holds settled by the bank
   * (the ODW gives up finishing it offline; the bank's answer is final, or `pending` until the
   * partner reports too).
   */
  async sync(): Promise<{ settled: null | { outcome: string; credited: string } }> {
    await this.refreshParams();
    await this.refreshPeers();
    const se = await this.se();
    const { pending } = await se.call('status', {});
    if (pending === undefined) return { settled: null };
    const { report } = await se.call('settleReport', {});
    const answer = await this.node.signed(await this.accountSigner(), 'POST', '/v1/opera/settle', {
      answer: settleAnswer,
      body: { device: this.device, report: toBase64url(encodeCbor(report)) },
      idempotencyKey: `opera-settle-${toHex(report.body.nonce)}`,
    });
    const out = await se.call('settleTake', { settled: cbor(settledCodec, answer.body.settled, 'settled') });
    await this.note({ at: Date.now(), kind: 'settled', amount: this.format(out.credited), detail: `an interrupted ${pending.mode === 'send' ? 'payment' : 'receipt'} of ${this.shown(pending.amount)} settled online: ${out.outcome}` });
    return { settled: { outcome: out.outcome, credited: this.format(out.credited) } };
  }

  private async exchange(role: Role, link: Awaited<ReturnType<typeof connectLink>>, amount: bigint | undefined, timeoutMs: number): Promise<TransferResult> {
    const se = await this.se();
    const before = (await se.call('status', {})).balance;
    const out: SessionOutcome = await runOdw(link.link, link.peer.handshakeHash, role, odwOf(se), { amount, stepTimeoutMs: timeoutMs });
    const after = (await se.call('status', {})).balance;
    // What moved in this session, whatever the plan: a resumed transaction moves its own amount.
    const moved = role === 'payer' ? before - after : after - before;
    const result: TransferResult = { plan: out.plan, amount: this.format(moved < 0n ? -moved : moved), tokens: out.count, change: out.change === undefined ? null : this.format(out.change), settled: out.settled ?? null, offline: this.format(after) };
    const what = out.plan === 'resume' ? 'an interrupted payment finished from the logs' : `${out.count} token(s)`;
    await this.note({ at: Date.now(), kind: role === 'payer' ? 'paid' : 'received', amount: result.amount, detail: what });
    return result;
  }

  /** The payee, offline: listens, takes one payer, asks it for `amountText` and receives its tokens. */
  async receive(amountText: string, options: { port: number; host: string; timeoutMs: number; onListening?: (port: number) => void }): Promise<TransferResult> {
    const expect = this.parseAmount(amountText);
    await this.se();
    const link = await listenLink(LINK_SIDE, options);
    try {
      return await this.exchange('payee', link, expect, options.timeoutMs);
    } finally {
      link.link.close();
    }
  }

  /** The payer, offline: connects to a payee and pays the amount it asks in tokens (or finishes an interrupted payment to it); `expectText`: refuse any other amount. */
  async pay(expectText: string | null, host: string, port: number, options: { timeoutMs: number }): Promise<TransferResult> {
    const amount = expectText === null ? undefined : this.parseAmount(expectText);
    await this.se();
    const link = await connectLink(LINK_SIDE, host, port, options.timeoutMs);
    try {
      return await this.exchange('payer', link, amount, options.timeoutMs);
    } catch (e) {
      if (isTallyError(e)) await this.note({ at: Date.now(), kind: 'pay-failed', detail: `${e.message} [${failureCode(e)}]` });
      throw e;
    } finally {
      link.link.close();
    }
  }

  /** The online balance and what the ODW holds. */
  async balance() {
    const online = await this.onlineBalanceWith(() => this.accountSigner());
    const s = await this.status();
    return {
      device: this.data.device?.keyId ?? null,
      online: online.balance,
      ...(online.error === undefined ? {} : { onlineError: online.error }),
      offline: this.format(s.balance),
      tokens: s.tokens.map((t) => ({ value: this.format(t.value), count: t.count })),
      pending: s.pending === undefined ? null : pendingOf(s.pending, (v) => this.format(v)),
      depositPending: this.format(s.deposit?.amount ?? 0n),
      credential: s.credential === 1,
      pendingSteps: this.data.pending.length,
    };
  }
}
