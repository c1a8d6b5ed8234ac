/** The online steps of a DOT-M wallet. */
import { fromBase64url, fromHex, toHex } from '../../core/bytes.ts';
import { decodeCbor } from '../../core/cbor.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import { isNodeRefusal, newStepId, startSecureElement, type HistoryEvent } from '../../wallet/plugin.ts';
import { dotmEventsAnswer, dotmIssueAnswer, dotmUnlockAnswer, interbankPeersAnswer, type DotmEventsAnswer } from './wallet-answers.ts';
import { PEERS_MAX } from './trusted-app-state.ts';
import { decodeBlock } from './messages.ts';
import { eventAckCodec, unlockTicketCodec } from './online.ts';
import { chunks, DotmWalletBase, DOTM_TA, ISSUE_BLOCKS_MAX, provisionDotm, STAGED_KEYS, wrongPassword, type DotmBalance, type DotmWithdrawal, type IssueStep } from './wallet-base.ts';

/**
 * A DOT-M wallet's online steps: account synchronization (§3.3.2), redemption, online data updating
 * (§3.3.4), the balances, unlocking a locked wallet, and the recovery of a secure element that
 * refuses to run.
 */
export abstract class DotmWalletOnline extends DotmWalletBase {
  /**
   * Opens a wallet locked after too many wrong payment passwords: the account key opens under
   * `password` (the locked SE cannot check it; the key file's own scrypt guards it), the node
   * answers an unlock ticket for the SE's next unlock number, signed with the issuer node's key, and
   * the SE takes it once and resets its count of wrong passwords.
   * @throws TallyError PASSWORD_WRONG (the key file does not open), NODE_* (FORBIDDEN for a revoked wallet), SE_REJECTED (NOT_LOCKED, TICKET_INVALID)
   */
  async unlockWallet(password: string): Promise<{ unlocks: number; triesLeft: number }> {
    if (this.account === null) await this.openAccountKey(password);
    const se = await this.se();
    const { unlocks } = await se.call('status', {});
    const next = unlocks + 1;
    const wallet = this.keys.wallet;
    const answer = await this.node.signed(this.user, 'POST', `/v1/dotm/wallets/${wallet}/unlock`, { answer: dotmUnlockAnswer, body: { unlock: next }, idempotencyKey: `unlock-${wallet}-${next}` });
    const ticket = unlockTicketCodec.decode(decodeCbor(fromBase64url(answer.body.ticket)), 'ticket');
    const out = await se.call('unlock', { ticket });
    await this.note({ at: Date.now(), kind: 'unlocked', detail: `unlocked with ticket ${next} from the node; ${out.triesLeft} password tries` });
    return out;
  }

  /**
   * Retires a secure element that refuses to run (ROLLBACK_DETECTED, or its sealed state damaged)
   * and starts a new one with new usk and wsk, certified for the same account, with the payment
   * password `password`. The old one moves to `retired/` (nothing is deleted); the blocks the node
   * issued to it stay on its record at the node, and the new one starts empty: no money is created.
   * Block issues already answered by the node are ended and kept in the history with their blocks.
   * A recovery cut short is finished by running it again.
   * @throws TallyError WALLET_UNSUPPORTED (an SE that runs), NODE_*, SE_*
   */
  async recoverDevice(password: string, progress?: (line: string) => void): Promise<{ retired: string; device: string; folder: string; setAside: { steps: number; payments: number } }> {
    const old = this.keys;
    const { fresh, folder } = await this.replaceSecureElement(old.wallet, STAGED_KEYS, async ({ paths, oem, info }) => {
      progress?.('making new usk and wsk in a new isolated secure element');
      const host = await startSecureElement(DOTM_TA, paths, true, old.suite ?? 'ed25519');
      try {
        return await provisionDotm(host, { node: this.node, info, oem, account: this.user, owner: this.data.user.keyId, password, progress });
      } finally {
        await host.close();
      }
    }, {
      // The broken SE cannot check pwd: the account key file opens under it or the recovery stops here.
      beforeProvision: async () => {
        if (this.account === null) await this.openAccountKey(password);
      },
    });
    // One transaction: the answered issues ended (each with its history line), the new keys and device, the retired one.
    let steps = 0;
    const drop: string[] = [];
    const lines: HistoryEvent[] = [];
    for (const step of this.data.pending) {
      // An issue the node has not answered runs for the new wallet key; answered ones name the old one.
      if (step.blocks === undefined) continue;
      steps++;
      drop.push(step.id);
      lines.push({ at: Date.now(), kind: `${step.kind}-retired`, amount: this.format(BigInt(step.amount)), detail: `cut short on the retired secure element ${old.wallet}; blocks ${step.blocks.join(',')}` });
    }
    lines.push({ at: Date.now(), kind: 'device-retired', detail: `secure element ${old.wallet} retired (kept in ${folder}); new secure element ${fresh.wallet}, user key ${fresh.user}; the blocks the node issued to the old one stay on its record at the node` });
    this.commit({
      drop,
      slot: { ...fresh, ...(old.suite === undefined ? {} : { suite: old.suite }) },
      device: { keyId: fresh.wallet, certificate: fresh.wcert },
      retired: [{ device: old.wallet, at: Date.now(), folder }],
      history: lines,
    });
    await this.recoveryDone();
    return { retired: old.wallet, device: fresh.wallet, folder, setAside: { steps, payments: 0 } };
  }

  // ---------------------------------------------------------------- online

  /**
   * §3.3.2: the node moves `amount` from the online account into currency blocks signed by the
   * central bank (split into `count` blocks), and the SE loads them.
   * @throws TallyError AMOUNT_INVALID, NODE_*, SE_*
   */
  async deposit(amountText: string, count = 1): Promise<{ amount: string; offline: string; blocks: number }> {
    const amount = this.parseAmount(amountText);
    if (!Number.isInteger(count) || count < 1 || count > ISSUE_BLOCKS_MAX) throw new TallyError('AMOUNT_INVALID', `blocks: expected 1 to ${ISSUE_BLOCKS_MAX}, got ${count}`, { input: String(count) });
    if (BigInt(count) > amount) throw new TallyError('AMOUNT_INVALID', `cannot split ${this.format(amount)} ${this.currency.code} into ${count} blocks of at least ${this.format(1n)} ${this.currency.code}`, { input: amountText });
    const step: IssueStep = { kind: 'issue', id: newStepId(), amount: amount.toString(), count };
    await this.begin(step);
    const balance = await this.runIssue(step);
    return { amount: this.format(amount), offline: this.format(balance), blocks: count };
  }

  protected async runIssue(step: IssueStep): Promise<bigint> {
    if (step.blocks === undefined) {
      let answer;
      try {
        answer = await this.node.signed(this.user, 'POST', '/v1/dotm/issue', { answer: dotmIssueAnswer,
          body: { wallet: this.keys.wallet, amount: this.format(BigInt(step.amount)), blocks: step.count },
          idempotencyKey: `dotm-issue-${step.id}`,
        });
      } catch (e) {
        // The node said no: no block was issued, and the same request would be refused again.
        if (isNodeRefusal(e)) await this.finish(step, { at: Date.now(), kind: 'deposit-refused', amount: this.format(BigInt(step.amount)), detail: `refused by the node: ${e.message}` });
        throw e;
      }
      step.blocks = answer.body.blocks;
      await this.update(step);
    }
    const blocks = step.blocks.map((b) => decodeBlock(fromBase64url(b)));
    let out;
    try {
      out = await (await this.se()).call('load', { blocks, now: Date.now() }, { requestId: fromHex(step.id) });
    } catch (e) {
      // A full wallet can load them once it has room: the step stays. Any other refusal is final;
      // the issued blocks are kept in the history (the node holds their value in the float).
      if (isTallyError(e, 'SE_REJECTED') && e.details.reason !== 'WALLET_FULL') {
        await this.finish(step, { at: Date.now(), kind: 'deposit-refused', amount: this.format(BigInt(step.amount)), detail: `the node issued ${blocks.length} block(s) but the secure element refused them: ${e.message}; blocks ${step.blocks.join(',')}` });
      }
      throw e;
    }
    await this.finish(step, { at: Date.now(), kind: 'deposit', amount: this.format(BigInt(step.amount)), detail: `${blocks.length} currency block(s) issued by the central bank` });
    return out.balance;
  }

  /**
   * The SE checks pwd and gives copies up (largest first); the sync that follows has the node credit them online.
   * @throws TallyError (as SE_REJECTED) WRONG_PASSWORD, PASSWORD_LOCKED, INSUFFICIENT_FUNDS, WALLET_BUSY;
   *   PASSWORD_MISSING before unlockAccount; NODE_* from the sync
   */
  async withdraw(amountText: string, password: string): Promise<DotmWithdrawal> {
    const amount = this.parseAmount(amountText);
    // The sync below needs the account key: refuse before anything is given up.
    if (!this.unlocked) throw this.sealedError();
    const out = await (await this.se()).call('redeem', { amount, password, now: Date.now() }).catch(async (e: unknown) => {
      throw await this.worded(e, amount, undefined);
    });
    if (out.kind === 'wrong-password' || out.seq === undefined) throw wrongPassword(out.triesLeft, 'redeem');
    await this.note({ at: Date.now(), kind: 'withdraw', amount: this.format(amount), detail: `blocks given up (event ${out.seq}); the node credits them when it takes the event` });
    let outcome: DotmWithdrawal['outcome'] = 'unreachable';
    let refusal: { code: string; message: string } | undefined;
    let claims: string[] | undefined;
    try {
      const r = await this.sync();
      const result = r.results.find((x) => x.seq === out.seq);
      if (result?.claims !== undefined && result.claims.length > 0 && result.status === 'taken') {
        outcome = 'claimed';
        claims = [...result.claims];
        await this.note({ at: Date.now(), kind: 'withdraw-claimed', amount: this.format(amount), detail: `event ${out.seq}: copies of other banks' blocks presented to them (claims ${claims.join(', ')}); credited once settled` });
      } else if (result?.status === 'taken' || result?.status === 'duplicate') outcome = 'credited';
      else if (result?.status === 'refused') {
        outcome = 'refused';
        refusal = { code: result.code ?? 'REFUSED', message: result.message ?? 'the node refused the redemption' };
        await this.note({ at: Date.now(), kind: 'withdraw-refused', amount: this.format(amount), detail: `event ${out.seq} refused by the node: ${refusal.message} [${refusal.code}]` });
      } else outcome = 'pending';
    } catch (e) {
      if (!isTallyError(e, 'NODE_UNREACHABLE')) throw e;
    }
    return {
      amount: this.format(amount),
      online: (await this.onlineBalance()).balance,
      credited: outcome === 'credited',
      outcome,
      ...(refusal === undefined ? {} : { refusal }),
      ...(claims === undefined ? {} : { claims }),
    };
  }

  /**
   * §3.3.4 online data updating: the SE's signed events go to the node in order, the node's ack
   * (with the revocation list) goes back into the SE, which forgets what was taken.
   * @throws TallyError NODE_*, SE_*
   */
  async sync(): Promise<{ uploaded: number; results: DotmEventsAnswer['results']; findings: unknown[]; crlVersion: number }> {
    const se = await this.se();
    const { events } = await se.call('events', {});
    type Answer = DotmEventsAnswer;
    const results: Answer['results'] = [];
    const findings: unknown[] = [];
    let last: Answer | null = null;
    for (const chunk of chunks(events)) {
      last = (
        await this.node.signed(this.user, 'POST', '/v1/dotm/events', { answer: dotmEventsAnswer,
          body: { wallet: this.keys.wallet, events: chunk },
          idempotencyKey: `dotm-events-${this.keys.wallet.slice(0, 16)}-${newStepId()}`,
        })
      ).body;
      results.push(...last.results);
      findings.push(...last.findings);
    }
    if (last === null) {
      last = (await this.node.signed(this.user, 'POST', '/v1/dotm/events', { answer: dotmEventsAnswer, body: { wallet: this.keys.wallet, events: [] }, idempotencyKey: `dotm-events-${newStepId()}` })).body;
    }
    const ack = eventAckCodec.decode(decodeCbor(fromBase64url(last.ack)), 'ack');
    const applied = await se.call('ack', { ack, crl: fromBase64url(last.crl) });
    await this.takePeers();
    const refused = results.filter((r) => r.status === 'refused');
    await this.keepCrl(last.crl, {
      history: [{
        at: Date.now(),
        kind: 'sync',
        detail: `${events.length} event(s) uploaded, ${applied.cleared} acknowledged${refused.length === 0 ? '' : `, ${refused.length} refused (${refused.map((r) => r.code).join(', ')})`}; revocation list v${applied.crlVersion ?? '?'}`,
      }],
    });
    return { uploaded: events.length, results, findings, crlVersion: applied.crlVersion ?? 0 };
  }

  /**
   * Several operators: the other banks whose blocks this wallet takes, from its bank's list of the
   * intermediaries the central bank certified (`GET /v1/interbank/peers`), less those the root
   * revoked; the SE keeps only certificates that verify under its root. A node that knows no other
   * bank (a standalone node answers ROLE_MISMATCH) leaves the SE's list as it is.
   */
  private async takePeers(): Promise<void> {
    let answer;
    try {
      answer = await this.node.signed(this.user, 'GET', '/v1/interbank/peers', { answer: interbankPeersAnswer });
    } catch (e) {
      if (isTallyError(e) && e.code.startsWith('NODE_')) return;
      throw e;
    }
    const intermediaries = answer.body.peers.filter((p) => !p.revoked).map((p) => fromBase64url(p.certificate)).slice(0, PEERS_MAX);
    await (await this.se()).call('peers', { intermediaries, now: Date.now() });
  }

  /** Online balance from the node, or null with the reason when it is unreachable. */
  async onlineBalance(): Promise<{ balance: string | null; error?: string }> {
    if (!this.unlocked) return { balance: null, error: 'the account key is sealed; give the payment password to ask the node' };
    const user = this.user;
    return this.onlineBalanceWith(() => Promise.resolve(user));
  }

  /** Online and offline balances, and the blocks the SE holds. */
  async balance(): Promise<DotmBalance> {
    const online = await this.onlineBalance();
    const status = await (await this.se()).call('status', {});
    return {
      online: online.balance,
      ...(online.error === undefined ? {} : { onlineError: online.error }),
      offline: this.format(status.balance),
      blocks: status.blocks.map((b) => ({ serial: toHex(b.serial), value: this.format(b.value), remaining: this.format(b.remaining), count: b.count, held: b.held })),
      unsyncedEvents: status.unsyncedEvents,
      passwordTriesLeft: status.triesLeft,
      pendingSteps: this.data.pending.length,
    };
  }

}
