/**
 * An OTP wallet: an account at the node and a secure element whose trusted app holds coins.
 * - `deposit` (online account → coins): a blind withdrawal at the bank in a journal step, so a crash
 *   after the bank signed finishes with its idempotent answer;
 * - `withdraw` (coins → online account): a deposit of exact coins at the bank, in a journal step;
 * - `sync`: the bank's parameters, the in-flight report and its settlement, exchange keys topped up;
 * - `pay` / `receive`: the anonymous link payment (session.ts, wallet-link.ts).
 */
import { fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { randomBytes, sha256 } from '../../core/crypto/hash.ts';
import { TallyError, isTallyError } from '../../core/errors.ts';
import {
  connectLink,
  createWalletFolder,
  holdLegacyAccount,
  holdNewAccount,
  isNodeRefusal,
  listenLink,
  NodeClient,
  newAccountKey,
  newStepId,
  openFolderOf,
  resolveHome,
  startSecureElement,
  WalletShell,
  type LinkSide,
  type Oem,
  type OpenedWallet,
  type ResumeReport,
} from '../../wallet/plugin.ts';
import { pickExact, withdrawalMix } from './denominations.ts';
import { exchangeKeyCodec } from './exchange-key.ts';
import { COINS_PER_MESSAGE_MAX, depositReceiptCodec, paramsCodec, settledCodec, timeCodec, type ClassEntry, type Params } from './messages.ts';
import { failureCode, OTP_LINK_PROLOGUE, OTP_LINK_SCHEME, runPayee, runPayer, type SessionOutcome } from './session.ts';
import type { OtpState } from './trusted-app.ts';
import { PEERS_MAX } from './trusted-app-state.ts';
import { cbor, depositAnswer, peersAnswer, EXCHANGE_KEYS_TARGET, inFlightAnswer, keysAnswer, OTP_FORMAT, OTP_TA, paramsAnswer, provisionDevice, withdrawalAnswer, type DepositStep, type OtpCommands, type OtpStep, type WithdrawalStep } from './wallet-base.ts';
import { payeeRole, payerRole } from './wallet-link.ts';

export type { OtpStep } from './wallet-base.ts';

/** The SE request id of one command of a journal step (each command of a step needs its own). */
function callId(stepId: string, command: string): Uint8Array {
  return sha256(utf8(`tally/otp/step/${stepId}/${command}`)).subarray(0, 16);
}

/** Both sides of the link are anonymous: no certificate is shown or asked for. */
const LINK_SIDE: LinkSide = { prologue: OTP_LINK_PROLOGUE, scheme: OTP_LINK_SCHEME };

/** What a link payment did. */
export interface TransferResult {
  amount: string;
  coins: number;
  change: number;
  /** Coins of an earlier, cut session acknowledged in this one. */
  resentAcknowledged: number;
  offline: string;
}

/** What a deposit or withdrawal did, shown in major units. */
export interface MoveResult {
  amount: string;
  coins: number;
  offline: string;
}

/** An open OTP wallet. */
export class OtpWallet extends WalletShell<OtpStep, null, OtpState, OtpCommands> {
  private constructor(opened: OpenedWallet<OtpStep, null>) {
    super(opened);
  }

  protected secureElementSpec() {
    return { spec: OTP_TA };
  }

  protected async probeSecureElement(): Promise<void> {
    await (await this.startedSe()).call('status', {});
  }

  protected runStep(step: OtpStep): Promise<unknown> {
    return step.kind === 'otp-withdrawal' ? this.runWithdrawal(step) : this.runDeposit(step);
  }

  /** The running secure element. */
  se() {
    return this.startedSe();
  }

  /**
   * Creates a wallet: a user at the node, an isolated SE attested by the home's OEM and registered
   * as the user's device (scheme otp), the bank's key pinned through the certificate chain, and
   * the bank's parameters.
   * @throws TallyError WALLET_EXISTS, WALLET_UNSUPPORTED (no OEM enrolled), NODE_UNREACHABLE, NODE_REFUSED
   */
  static async create(options: { home: string; name: string; node: string; progress?: (line: string) => void }): Promise<OtpWallet> {
    await createWalletFolder<null>({ ...options, scheme: 'otp', needsOem: true }, async ({ name, node, info, paths, oem, progress, registerUser }) => {
      const account = newAccountKey(randomBytes(32));
      progress('registering the user at the node');
      const registered = await registerUser(account.signer);
      progress('provisioning the isolated secure element');
      const host = await startSecureElement(OTP_TA, paths, true);
      try {
        const device = await provisionDevice(host, { node, info, oem: oem as Oem, user: account.signer, owner: registered.keyId, progress });
        const held = await holdNewAccount(account, { slot: host });
        await host.close();
        const data = { name, scheme: 'otp', node: node.url, currency: info.currency, createdAt: Date.now(), user: { held, keyId: registered.keyId, account: registered.account, certificate: registered.certificate }, device, certificates: info.certificates };
        return { data, detail: `secure element ${device.keyId}` };
      } catch (e) {
        await host.kill();
        throw e;
      }
    });
    return OtpWallet.open(options.home, options.name);
  }

  /** Opens a wallet under its lock. */
  static async open(home: string, name: string): Promise<OtpWallet> {
    const opened = await openFolderOf(home, name, 'otp', OTP_FORMAT, { account: holdLegacyAccount(OTP_TA.app) });
    try {
      return new OtpWallet(opened);
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

  /** The bank's parameters, fetched and given to the TA (older ones it already has are kept). */
  async refreshParams(): Promise<Params> {
    const answer = await this.node.call('GET', '/v1/otp/params', { answer: paramsAnswer });
    const params = cbor(paramsCodec, answer.body.params, 'params');
    await (await this.se()).call('setParams', { params }).catch((e: unknown) => {
      if (!(isTallyError(e, 'SE_REJECTED') && e.details.reason === 'OTP_PARAMS_STALE')) throw e;
    });
    await this.refreshPeers();
    return params;
  }

  /**
   * Two tiers: the other banks' OTP publications, as this wallet's bank relays them from the central
   * bank, given to the TA, which checks each bank's certificate to its pinned root and the
   * publication under it. A bank the central bank revoked is left out (the TA then forgets it). A
   * node of one bank alone has no peers.
   */
  private async refreshPeers(): Promise<void> {
    let answer;
    try {
      answer = await this.node.call('GET', '/v1/interbank/peers', { answer: peersAnswer });
    } catch (e) {
      if (isTallyError(e, 'NODE_REFUSED') && e.details.code === 'ROLE_MISMATCH') return;
      throw e;
    }
    const peers = answer.body.peers.flatMap((p) => {
      const record = p.publications.otp;
      return p.revoked || record === undefined ? [] : [{ certificate: fromBase64url(p.certificate), publication: fromBase64url(record) }];
    });
    await (await this.se()).call('setPeers', { peers: peers.slice(0, PEERS_MAX), now: Date.now() });
  }

  /** The newest class of each denomination: what a withdrawal asks for. */
  private static newest(params: Params): Map<bigint, ClassEntry> {
    const out = new Map<bigint, ClassEntry>();
    for (const entry of params.body.classes) {
      const d = BigInt(entry.coinClass.denomination);
      const seen = out.get(d);
      if (seen === undefined || seen.until < entry.until) out.set(d, entry);
    }
    return out;
  }

  /** What the TA holds. */
  async status() {
    return (await this.se()).call('status', {});
  }

  /** Online account → coins: the bank signs fresh coins blindly for `amountText`, in a sensible mix. */
  async deposit(amountText: string): Promise<MoveResult> {
    const amount = this.parseAmount(amountText);
    const params = await this.refreshParams();
    const classes = OtpWallet.newest(params);
    const mix = withdrawalMix(amount, [...classes.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    const classIds = [...mix].flatMap(([d, n]) => Array.from({ length: n }, () => toHex((classes.get(d) as ClassEntry).coinClass.classId)));
    if (classIds.length > COINS_PER_MESSAGE_MAX) throw new TallyError('TOO_LARGE', `${this.shown(amount)} takes ${classIds.length} coins; one deposit moves at most ${COINS_PER_MESSAGE_MAX}: deposit it in parts`, { what: 'coins', size: classIds.length, max: COINS_PER_MESSAGE_MAX });
    const step: WithdrawalStep = { kind: 'otp-withdrawal', id: newStepId(), classIds };
    await this.begin(step);
    const coins = await this.runWithdrawal(step);
    return { amount: this.format(amount), coins, offline: this.format((await this.status()).balance) };
  }

  private async runWithdrawal(step: WithdrawalStep): Promise<number> {
    const se = await this.se();
    const requestId = fromHex(step.id);
    if (step.signatures === undefined) {
      const { blinded } = await se.call('prepareWithdrawal', { requestId, classIds: step.classIds.map(fromHex) });
      try {
        const answer = await this.node.signed(await this.accountSigner(), 'POST', '/v1/otp/withdrawals', {
          answer: withdrawalAnswer,
          body: { device: this.device, items: blinded.map((b, i) => ({ classId: toBase64url(fromHex(step.classIds[i] as string)), blinded: toBase64url(b) })) },
          idempotencyKey: `otp-withdrawal-${step.id}`,
        });
        step.signatures = answer.body.signatures;
      } catch (e) {
        if (isNodeRefusal(e)) {
          // Nothing was debited: the TA forgets the blinded coins of a withdrawal that cannot be finished.
          await se.call('abandonWithdrawal', { requestId });
          await this.finish(step, { at: Date.now(), kind: 'deposit-refused', detail: e.message });
        }
        throw e;
      }
      await this.update(step);
    }
    // A retry after a kill that landed is answered from the SE's outbox, under the step's id for this command.
    const out = await se.call('finishWithdrawal', { requestId, signatures: step.signatures.map(fromBase64url) }, { requestId: callId(step.id, 'finish') });
    await this.finish(step, { at: Date.now(), kind: 'deposit', amount: this.format(out.amount), detail: `${out.coins} coin(s) signed blindly by the bank` });
    return out.coins;
  }

  /** Coins → online account: exact coins for `amountText` are deposited at the bank. */
  async withdraw(amountText: string): Promise<MoveResult & { credited: string; doubleSpent: number; refused: number; presented: number }> {
    const amount = this.parseAmount(amountText);
    await this.refreshParams();
    await this.depositLeftInTa();
    const status = await this.status();
    const held = new Map(status.classes.map((c) => [c.denomination, c.count]));
    const picked = pickExact(held, amount);
    if (picked === null) throw new TallyError('SE_REJECTED', `the coins held (${this.shown(status.balance)}) cannot make exactly ${this.shown(amount)}`, { command: 'withdraw', reason: 'INSUFFICIENT_FUNDS' });
    const classIds = [...picked].flatMap(([d, n]) => {
      const cls = status.classes.filter((c) => c.denomination === d);
      const out: string[] = [];
      let left = n;
      for (const c of cls) {
        const take = Math.min(left, c.count);
        for (let i = 0; i < take; i++) out.push(toHex(c.classId));
        left -= take;
      }
      return out;
    });
    if (classIds.length > COINS_PER_MESSAGE_MAX) throw new TallyError('TOO_LARGE', `that takes ${classIds.length} coins; one withdrawal moves at most ${COINS_PER_MESSAGE_MAX}`, { what: 'coins', size: classIds.length, max: COINS_PER_MESSAGE_MAX });
    const step: DepositStep = { kind: 'otp-deposit', id: newStepId(), classIds };
    await this.begin(step);
    const out = await this.runDeposit(step);
    if (out.credited === this.format(0n) && out.presented === 0 && out.doubleSpent > 0) {
      throw new TallyError('DOUBLE_SPEND', `the bank refused ${out.doubleSpent} coin(s) as deposited before (copies of coins paid twice): nothing was credited`, { coins: out.doubleSpent });
    }
    return { amount: this.format(amount), coins: classIds.length, offline: this.format((await this.status()).balance), ...out };
  }

  /**
   * Sends again a deposit the TA still holds unreceipted (its step ended on a refusal, or was lost):
   * the same boxes under the same request id, so the bank credits them once.
   */
  private async depositLeftInTa(): Promise<{ credited: string; doubleSpent: number; refused: number; presented: number } | null> {
    const { deposit } = await this.status();
    if (deposit === undefined) return null;
    const step: DepositStep = { kind: 'otp-deposit', id: toHex(deposit.requestId), classIds: [] };
    return this.runDeposit(step, false);
  }

  private async runDeposit(step: DepositStep, journaled = true): Promise<{ credited: string; doubleSpent: number; refused: number; presented: number }> {
    const se = await this.se();
    const requestId = fromHex(step.id);
    if (step.receipt === undefined) {
      const { sealed } = await se.call('prepareDeposit', { requestId, classIds: step.classIds.map(fromHex) });
      const answer = await this.node.signed(await this.accountSigner(), 'POST', '/v1/otp/deposits', {
        answer: depositAnswer,
        body: { device: this.device, coins: sealed.map((s) => toBase64url(encodeCbor(s))) },
        idempotencyKey: `otp-deposit-${step.id}`,
      });
      step.receipt = answer.body.receipt;
      if (journaled) await this.update(step);
    }
    const out = await se.call('finishDeposit', { requestId, receipt: cbor(depositReceiptCodec, step.receipt, 'receipt') }, { requestId: callId(step.id, 'finish') });
    const detail = [
      `${out.coins} coin(s)`,
      ...(out.doubleSpent > 0 ? [`${out.doubleSpent} refused as spent before`] : []),
      ...(out.refused > 0 ? [`${out.refused} refused`] : []),
      ...(out.presented > 0 ? [`${out.presented} of other banks presented to them, credited once they accept`] : []),
    ].join(', ');
    const event = { at: Date.now(), kind: 'withdraw', amount: this.format(out.credited), detail };
    if (journaled) await this.finish(step, event);
    else await this.note(event);
    return { credited: this.format(out.credited), doubleSpent: out.doubleSpent, refused: out.refused, presented: out.presented };
  }

  /** Online: the bank's parameters, the coins in flight settled, exchange keys topped up to the target. */
  async sync(): Promise<{ keys: number; refunded: string; settled: number; taken: number; lost: string; inFlight: number; time: number }> {
    await this.refreshParams();
    await this.depositLeftInTa();
    const se = await this.se();
    const signer = await this.accountSigner();
    let refunded = 0n;
    let settled = 0;
    let taken = 0;
    let lost = 0n;
    const before = await se.call('status', {});
    // One report at a time, each naming coins the ones before did not, until every coin was named once.
    for (let named = 0; named < before.inFlight.count; ) {
      const report = await se.call('inFlightReport', {});
      if (report.body.coins.length === 0) break;
      named += report.body.coins.length;
      const answer = await this.node.signed(signer, 'POST', '/v1/otp/in-flight', { answer: inFlightAnswer, body: { device: this.device, report: toBase64url(encodeCbor(report)) }, idempotencyKey: `otp-in-flight-${toHex(report.body.nonce)}` });
      const answered = cbor(settledCodec, answer.body.settled, 'settled');
      const out = await se.call('settle', { settled: answered });
      refunded += out.refunded;
      settled += answered.body.coins.length;
      taken += out.taken;
      lost += out.lost;
    }
    if (refunded > 0n) await this.note({ at: Date.now(), kind: 'refund', amount: this.format(refunded), detail: 'coins cut in flight, refunded after their claim window' });
    if (lost > 0n) await this.note({ at: Date.now(), kind: 'loss', amount: this.format(lost), detail: 'coins cut in flight that had been paid twice before they reached this wallet: another branch holds the claim' });
    const wanted = Math.max(0, EXCHANGE_KEYS_TARGET - before.keys.fresh);
    const request = await se.call('keyRequest', { count: wanted });
    const answer = await this.node.signed(signer, 'POST', '/v1/otp/exchange-keys', { answer: keysAnswer, body: { device: this.device, request: toBase64url(encodeCbor(request)) }, idempotencyKey: `otp-keys-${toHex(request.body.nonce)}` });
    const signedKeys = await se.call('takeKeys', { keys: answer.body.keys.map((k) => cbor(exchangeKeyCodec, k, 'exchange key')), time: cbor(timeCodec, answer.body.time, 'time') });
    const after = await se.call('status', {});
    return { keys: signedKeys.keys, refunded: this.format(refunded), settled, taken, lost: this.format(lost), inFlight: after.inFlight.count, time: signedKeys.time };
  }

  /**
   * The payee, offline: listens, takes one payer, asks it for `amountText` and receives its coins
   * (giving change when asked), anonymous on both sides.
   */
  async receive(amountText: string, options: { port: number; host: string; timeoutMs: number; onListening?: (port: number) => void }): Promise<TransferResult> {
    const amount = this.parseAmount(amountText);
    const se = await this.se();
    const { link } = await listenLink(LINK_SIDE, options);
    try {
      const out = await runPayee(link, amount, payeeRole(se), { stepTimeoutMs: options.timeoutMs });
      const result = this.transferResult(out, (await se.call('status', {})).balance);
      await this.note({ at: Date.now(), kind: 'received', amount: result.amount, detail: `${out.coins} coin(s)${out.change > 0 ? `, ${out.change} given back as change` : ''}` });
      return result;
    } finally {
      link.close();
    }
  }

  /** The payer, offline: connects to a payee and pays what it asks in coins, with change back when needed; `expectText`: refuse any other amount. */
  async pay(host: string, port: number, expectText: string | null, options: { timeoutMs: number }): Promise<TransferResult> {
    const expect = expectText === null ? null : this.parseAmount(expectText);
    const se = await this.se();
    const { link } = await connectLink(LINK_SIDE, host, port, options.timeoutMs);
    try {
      const out = await runPayer(link, expect, payerRole(se, () => undefined), { stepTimeoutMs: options.timeoutMs });
      const result = this.transferResult(out, (await se.call('status', {})).balance);
      await this.note({ at: Date.now(), kind: 'paid', amount: result.amount, detail: `${out.coins} coin(s)${out.change > 0 ? `, ${out.change} back as change` : ''}` });
      return result;
    } catch (e) {
      if (isTallyError(e)) await this.note({ at: Date.now(), kind: 'pay-failed', detail: `${e.message} [${failureCode(e)}]` });
      throw e;
    } finally {
      link.close();
    }
  }

  private transferResult(out: SessionOutcome, balance: bigint): TransferResult {
    return { amount: this.format(out.amount), coins: out.coins, change: out.change, resentAcknowledged: out.resentAcknowledged, offline: this.format(balance) };
  }

  /** The online balance and what the TA holds. */
  async balance() {
    const online = await this.onlineBalanceWith(() => this.accountSigner());
    const s = await this.status();
    return {
      device: this.data.device?.keyId ?? null,
      online: online.balance,
      ...(online.error === undefined ? {} : { onlineError: online.error }),
      offline: this.format(s.balance),
      coins: s.classes.map((c) => ({ denomination: this.format(c.denomination), count: c.count })),
      inFlight: { count: s.inFlight.count, amount: this.format(s.inFlight.amount) },
      /** Coins sent to the bank and not yet receipted (sent again at the next withdraw or sync). */
      depositPending: this.format(s.deposit?.amount ?? 0n),
      exchangeKeys: s.keys.fresh,
      trustedTime: s.time === undefined ? null : new Date(s.time).toISOString(),
      pendingSteps: this.data.pending.length,
    };
  }
}

/** The account holder (user key id) and node of the OTP wallet `name` of the home (`--home`, else the environment's), for the operator's verbs. */
export async function holderOf(home: string | undefined, env: Readonly<Record<string, string | undefined>>, name: string): Promise<{ keyId: string; node: string }> {
  const wallet = await OtpWallet.open(resolveHome(home, env), name);
  try {
    const data = wallet.snapshot();
    return { keyId: data.user.keyId, node: data.node };
  } finally {
    await wallet.close();
  }
}

/** An operator's call to the node's OTP routes. */
export async function operatorCall(url: string, token: string, method: 'GET' | 'POST', path: string, body?: Record<string, unknown>): Promise<unknown> {
  const node = new NodeClient(url);
  const answer = await node.operator(token, method, path, body === undefined ? {} : { body, idempotencyKey: `otp-operator-${toHex(randomBytes(12))}` });
  return answer.body;
}

