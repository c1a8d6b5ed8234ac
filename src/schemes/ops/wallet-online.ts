/** The online steps of an OPS wallet. */
import { equalBytes, fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { randomBytes, sha256 } from '../../core/crypto/hash.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import {
  isNodeRefusal,
  newStepId,
  startSecureElement,
  revocationsAnswer,
  type HistoryEvent,
  type InboxEntry,
  type ResumeReport,
} from '../../wallet/plugin.ts';
import { interbankClaimAnswer, opsClaimsAnswer, opsDepositAnswer, opsReleaseAnswer, opsRetireAnswer, opsSyncAnswer, type InterbankClaimState } from './wallet-answers.ts';
import {
  decodePayment,
  depositConfirmationCodec,
  syncAckCodec,
  syncReportBodyWire,
  withdrawConfirmationCodec,
  withdrawConfirmationWire,
  type WithdrawConfirmation,
} from './messages.ts';
import { OpsWalletBase, OPS_TA, STAGED_DEVICE, provisionDevice, CLAIM_BATCH_MAX, CURABLE_REFUSALS, type BalanceReport, type OpsSecureElement, type PendingStep, seStatusReport, type SeStatusReport } from './wallet-base.ts';

/**
 * An OPS wallet's online steps: deposit (Figure 5) and withdraw (Figure 6), claim (Figure 9), sync,
 * the online balance, and the recovery of a secure element that refuses to run.
 */
export abstract class OpsWalletOnline extends OpsWalletBase {
  /** Collect (the payee's part, in wallet.ts): a sync tries again the payments that waited for it. */
  abstract collect(): Promise<{ collected: InboxEntry[]; refused: InboxEntry[]; waiting: InboxEntry[]; offline: string }>;

  /** Two tiers (in wallet.ts): the other banks' certificates and lists from the wallet's bank, into the wallet and its TA. */
  abstract refreshPeers(): Promise<{ peers: number; crls: number; rootCrlVersion?: number } | null>;

  /** refreshPeers at the end of a sync: what it took, or why not (a sync does not fail for it). */
  private async syncPeers(): Promise<{ peers?: { peers: number; crls: number; rootCrlVersion?: number }; peersError?: string }> {
    try {
      const taken = await this.refreshPeers();
      return taken === null ? {} : { peers: taken };
    } catch (e) {
      if (!isTallyError(e)) throw e;
      return { peersError: `${e.message} [${isTallyError(e, 'SE_REJECTED') ? e.details.reason : e.code}]` };
    }
  }

  /**
   * Retires a secure element that refuses to run (ROLLBACK_DETECTED, or its sealed state damaged)
   * and starts a new one, registered at the node as a new device of the same user. Nothing of the
   * old one is deleted: its folder and counter move to `retired/`, and the value the node knows it
   * holds stays on its record at the node (this creates no money: the new device starts empty).
   * Steps and received payments bound to the old device are ended or set aside and written to the
   * history. A recovery cut short is finished by running it again.
   * @throws TallyError WALLET_UNSUPPORTED (no SE, or an SE that runs), NODE_*, SE_*
   */
  async recoverDevice(progress?: (line: string) => void): Promise<{ retired: string; device: string; folder: string; setAside: { steps: number; payments: number }; escrow: string; releaseAt: string }> {
    const old = this.requireDevice();
    // The account key is opened while the old secure element's key slot is where it was (a recovery cut
    // short after the move finds it among the retired ones).
    const user = await this.accountSigner();
    const at: { node?: { status: string; escrow: string; releaseAt: string } } = {};
    const { fresh: device, folder } = await this.replaceSecureElement(old.keyId, STAGED_DEVICE, async ({ paths, oem, info }) => {
      progress?.('provisioning a new isolated secure element');
      const host = await startSecureElement(OPS_TA, paths, true);
      try {
        return await provisionDevice(host, { node: this.node, info, oem, user, owner: this.data.user.keyId, progress });
      } finally {
        await host.close();
      }
    }, {
      // The node retires the old device before its folder is set aside: revoked, and what it can vouch the
      // device held kept in escrow for the device's payments that surface; the rest comes to the online
      // account after the hold (see sync).
      beforeMove: async () => {
        progress?.(`retiring the old device ${old.keyId} at the node`);
        at.node = (await this.node.signed(user, 'POST', `/v1/ops/devices/${old.keyId}/retire`, {
          answer: opsRetireAnswer,
          body: { reason: 'its secure element refuses to run (tally wallet recover)' },
          idempotencyKey: `retire-${old.keyId}`,
        })).body;
      },
    });
    const retirement = at.node;
    if (retirement === undefined) throw new TallyError('ASSERTION_FAILED', 'the device was not retired at the node', {});
    // One transaction: the steps bound to the old device ended (each with its history line), the payments
    // to it set aside, the new device and the retired one written, and the line saying so.
    let steps = 0;
    const put: PendingStep[] = [];
    const drop: string[] = [];
    const lines: HistoryEvent[] = [];
    for (const step of this.data.pending) {
      if (step.kind === 'withdraw' && step.confirmation !== undefined) put.push({ ...step, device: step.device ?? old.keyId }); // signed by the old TA: the node may still credit it
      else if (step.kind === 'deposit' && step.confirmation === undefined) continue; // nothing moved yet: it runs for the new device
      else {
        steps++;
        drop.push(step.id);
        lines.push({ at: Date.now(), kind: `${step.kind}-retired`, ...('amount' in step ? { amount: this.format(BigInt(step.amount)) } : {}), detail: `cut short on the retired secure element ${old.keyId}${'confirmation' in step && step.confirmation !== undefined ? `; confirmation ${step.confirmation}` : ''}` });
      }
    }
    const setAside: InboxEntry[] = this.acceptedInbox().map((entry) => ({ ...entry, state: 'retired', reason: `paid to the retired secure element ${old.keyId}; the payment is kept here` }));
    const payments = setAside.length;
    const fromDevice = old.keyId;
    const { escrow, releaseAt } = retirement;
    lines.push({
      at: Date.now(),
      kind: 'device-retired',
      amount: escrow,
      detail: `secure element ${fromDevice} retired (kept in ${folder}); new secure element ${device.keyId}; the node holds ${escrow} ${this.currency.code}, what it knows the old one held, for its payments that surface, and gives the rest back from ${releaseAt} (at a sync)`,
    });
    // The account key, sealed again by the new secure element, is written with it.
    const account = await this.accountHeldBy(await this.startedSe());
    this.commit({ put, drop, inbox: setAside, device, user: account, retired: [{ device: fromDevice, at: Date.now(), folder, releaseAt: retirement.releaseAt, released: false }], history: lines });
    await this.recoveryDone();
    return { retired: fromDevice, device: device.keyId, folder, setAside: { steps, payments }, escrow, releaseAt };
  }

  // ---------------------------------------------------------------- online <-> offline

  /**
   * Figure 5: the node moves `amount` from the online account to the offline float and signs
   * `[T.vk, x, i]`; the TA applies it.
   * @throws TallyError WALLET_UNSUPPORTED, HOLDING_LIMIT (as SE_REJECTED, checked before the node
   *   is asked), NODE_*, SE_*
   */
  async deposit(amountText: string): Promise<{ amount: string; offline: string }> {
    const amount = this.parseAmount(amountText);
    const se = await this.se();
    await this.finishCounterSteps('deposit');
    const status = await se.call('status', {});
    if (status.balance + amount > status.holdingLimit) {
      throw new TallyError('SE_REJECTED', `the offline balance would be ${this.shown(status.balance + amount)}, over the holding limit of ${this.shown(status.holdingLimit)}`, { command: 'deposit', reason: 'HOLDING_LIMIT' });
    }
    const step: PendingStep = { kind: 'deposit', id: newStepId(), amount: amount.toString() };
    await this.begin(step);
    const balance = await this.runDeposit(step);
    return { amount: this.format(amount), offline: this.format(balance) };
  }

  /**
   * Deposits and withdraws share the counter i (the TA and the node each take the next one), so a
   * new one starts only after the earlier ones are finished or ended.
   * @throws TallyError SE_REJECTED (reason DEPOSIT_PENDING) while one still waits, saying why
   */
  protected async finishCounterSteps(command: 'deposit' | 'withdraw'): Promise<void> {
    const counted = () => this.data.pending.find((s) => s.kind === 'deposit' || s.kind === 'withdraw');
    if (counted() === undefined) return;
    const resumed = await this.resume();
    const left = counted();
    if (left !== undefined) {
      const why = resumed.waiting.find((w) => w.kind === left.kind)?.why ?? 'it could not be finished';
      throw new TallyError('SE_REJECTED', `an earlier ${left.kind} is not finished yet (${why}); try again once it can be`, { command, reason: 'DEPOSIT_PENDING' });
    }
  }

  protected async runDeposit(step: Extract<PendingStep, { kind: 'deposit' }>): Promise<bigint> {
    const device = this.requireDevice();
    if (step.confirmation === undefined) {
      let answer;
      try {
        answer = await this.node.signed(await this.accountSigner(), 'POST', '/v1/ops/deposits', { answer: opsDepositAnswer,
          body: { device: device.keyId, amount: this.format(BigInt(step.amount)) },
          idempotencyKey: `deposit-${step.id}`,
        });
      } catch (e) {
        // The node said no: nothing moved, and the same request would be refused again.
        if (isNodeRefusal(e)) await this.finish(step, { at: Date.now(), kind: 'deposit-refused', amount: this.format(BigInt(step.amount)), detail: `refused by the node: ${e.message}` });
        throw e;
      }
      step.confirmation = answer.body.confirmation;
      await this.update(step);
    }
    const confirmation = depositConfirmationCodec.decode(decodeCbor(fromBase64url(step.confirmation)), 'confirmation');
    const se = await this.se();
    let out;
    try {
      out = await se.call('deposit', { confirmation }, { requestId: fromHex(step.id) });
    } catch (e) {
      if (isTallyError(e, 'SE_REJECTED')) {
        // The node moved the amount to the float for this device (deposit i); the TA will not take it.
        // The node keeps it on this device's record; the confirmation is kept here in the history.
        await this.finish(step, { at: Date.now(), kind: 'deposit-refused', amount: this.format(BigInt(step.amount)), detail: `the node confirmed deposit i=${confirmation.i} but the secure element refused it: ${e.message}; confirmation ${step.confirmation}` });
      }
      throw e;
    }
    await this.finish(step, { at: Date.now(), kind: 'deposit', amount: this.format(BigInt(step.amount)), detail: `confirmation i=${confirmation.i}` });
    return out.balance;
  }

  /**
   * Figure 6: the TA signs `[x, i]` and lowers its balance; the node checks it and credits the
   * online account from the float.
   */
  async withdraw(amountText: string): Promise<{ amount: string; online: string | null }> {
    const amount = this.parseAmount(amountText);
    this.requireDevice();
    await this.finishCounterSteps('withdraw');
    await this.checkBalance(amount, 'withdraw');
    const step: PendingStep = { kind: 'withdraw', id: newStepId(), amount: amount.toString() };
    await this.begin(step);
    await this.runWithdraw(step);
    return { amount: this.format(amount), online: (await this.onlineBalance()).balance };
  }

  protected async runWithdraw(step: Extract<PendingStep, { kind: 'withdraw' }>): Promise<void> {
    const device = this.requireDevice();
    if (step.confirmation === undefined) {
      const se = await this.se();
      let out;
      try {
        out = await se.call('withdraw', { amount: BigInt(step.amount) }, { requestId: fromHex(step.id) });
      } catch (e) {
        if (isTallyError(e, 'SE_REJECTED')) await this.finish(step, { at: Date.now(), kind: 'withdraw-refused', amount: this.format(BigInt(step.amount)), detail: e.message });
        throw e;
      }
      step.confirmation = toBase64url(encodeCbor(withdrawConfirmationWire(out)));
      await this.update(step);
    }
    // The current TA signs it again with its counters; one signed by a retired SE goes as it was.
    let confirmation: WithdrawConfirmation;
    try {
      confirmation =
        step.device === undefined || step.device === device.keyId
          ? await this.currentWithdrawConfirmation(step.confirmation)
          : withdrawConfirmationCodec.decode(decodeCbor(fromBase64url(step.confirmation)), 'confirmation');
    } catch (e) {
      // A stored confirmation that no longer decodes can never be sent: the step ends here.
      if (isTallyError(e, 'DECODE_FAILED') || isTallyError(e, 'CBOR_MALFORMED')) {
        await this.finish(step, { at: Date.now(), kind: 'withdraw-refused', amount: this.format(BigInt(step.amount)), detail: `the stored withdraw confirmation does not decode (${e.message}); confirmation ${step.confirmation}` });
      }
      throw e;
    }
    try {
      await this.node.signed(await this.accountSigner(), 'POST', '/v1/ops/withdrawals', {
        body: { device: step.device ?? device.keyId, confirmation: toBase64url(encodeCbor(withdrawConfirmationWire(confirmation))) },
        idempotencyKey: `withdraw-${step.id}-${confirmation.j}-${confirmation.collectSeq}`,
      });
    } catch (e) {
      // An earlier try reached the node and its answer was lost: the withdrawal is credited already.
      const credited = isTallyError(e, 'NODE_REFUSED') && e.details.details?.['reason'] === 'already-credited';
      if (!credited && isNodeRefusal(e)) {
        // The TA gave the amount up and the node will not credit it: the step can never complete.
        await this.finish(step, { at: Date.now(), kind: 'withdraw-refused', amount: this.format(BigInt(step.amount)), detail: `the secure element gave it up but the node refused to credit it: ${e.message}; confirmation ${step.confirmation}` });
      } else if (isTallyError(e, 'NODE_UNREACHABLE')) {
        throw new TallyError('NODE_UNREACHABLE', `the secure element gave up ${this.format(BigInt(step.amount))} ${this.currency.code} for the withdraw, but ${e.message.replace(/^cannot/, 'the wallet cannot')}; the wallet credits it when the node answers (any command that reaches the node finishes it)`, e.details, { cause: e });
      }
      if (!credited) throw e;
    }
    await this.finish(step, { at: Date.now(), kind: 'withdraw', amount: this.format(BigInt(step.amount)) });
  }

  /**
   * The withdraw confirmation to send now: signed again by the TA with its current counters, so that
   * payments made while the withdrawal waited for the node are below them (the node refuses a
   * confirmation whose counters are below a payment it holds from the device, as a restored state's).
   * Falls back to the stored one when the TA no longer keeps that withdrawal.
   */
  private async currentWithdrawConfirmation(stored: string): Promise<WithdrawConfirmation> {
    const original = withdrawConfirmationCodec.decode(decodeCbor(fromBase64url(stored)), 'confirmation');
    try {
      const again = await (await this.se()).call('withdrawAgain', { i: original.i });
      // The TA signs again only the withdrawal it made under that number; a stored one that says otherwise goes as it is.
      return again.amount === original.amount ? again : original;
    } catch (e) {
      if (isTallyError(e, 'SE_REJECTED') && e.details.reason === 'WITHDRAW_UNKNOWN') return original;
      throw e;
    }
  }

  /**
   * Claim (Figure 9): sends every accepted payment to the node (in batches), which credits the online
   * account. In two tiers, a payment from another bank's device is presented to that bank through the
   * central bank: it stays accepted, waiting, with the claim's id, and each later claim reads where
   * that claim stands (`GET /v1/interbank/claims/{id}`): credited once settled, refused with the payer's
   * bank's code and reason.
   */
  async claim(): Promise<{ claimed: InboxEntry[]; presented: Array<InboxEntry & { claimState: InterbankClaimState }>; refused: InboxEntry[]; online: string | null }> {
    if (this.hasSecureElement) {
      throw new TallyError('WALLET_UNSUPPORTED', `wallet ${this.name} has a secure element: payments to it are collected (\`tally collect ${this.name}\`), not claimed`, { name: this.name, reason: 'collect instead' });
    }
    const claimed: InboxEntry[] = [];
    const refused: InboxEntry[] = [];
    const presented: Array<InboxEntry & { claimState: InterbankClaimState }> = [];
    const sortOutcome = (entry: InboxEntry, claimState: InterbankClaimState) => {
      if (entry.state === 'claimed') claimed.push(entry);
      else if (entry.state === 'refused') refused.push(entry);
      else presented.push({ ...entry, claimState });
    };
    const accepted = this.acceptedInbox();
    const waiting = accepted.filter((e) => e.claim === undefined);
    const signer = await this.accountSigner();
    for (let at = 0; at < waiting.length; at += CLAIM_BATCH_MAX) {
      const batch = waiting.slice(at, at + CLAIM_BATCH_MAX);
      // The key names the batch's payments: a re-sent batch (after a lost answer) is the same request.
      const answer = await this.node.signed(signer, 'POST', '/v1/ops/claims/batch', { answer: opsClaimsAnswer,
        body: { payments: batch.map((e) => e.payment) },
        idempotencyKey: `claims-${toBase64url(sha256(utf8(batch.map((e) => e.digest).join(','))))}`,
      });
      // The batch's outcome is written in one transaction: each payment's new state with its history line.
      const changed: InboxEntry[] = [];
      const lines: HistoryEvent[] = [];
      for (const [i, entry] of batch.entries()) {
        const result = answer.body.results[i];
        if (result?.status === 'credited') {
          // What the node says it credited, not what this wallet's store says the payment was.
          const credited = typeof result.amount === 'string' ? result.amount : this.format(BigInt(entry.amount));
          const claimedEntry: InboxEntry = { ...entry, state: 'claimed', credited };
          changed.push(claimedEntry);
          claimed.push(claimedEntry);
          lines.push({ at: Date.now(), kind: 'claim', amount: credited, detail: `credited by the node; from ${entry.sender} (index ${entry.index})` });
        } else if (result?.status === 'presented') {
          const next = this.claimStateApplied({ ...entry, claim: result.claim.claimId }, result.claim, lines);
          changed.push(next);
          sortOutcome(next, result.claim);
        } else if (result !== undefined && CURABLE_REFUSALS.has(result.code)) {
          // The node cannot pay it now (its float is short): it stays accepted for a later claim.
          const later: InboxEntry = { ...entry, waiting: `${result.message} [${result.code}]` };
          changed.push(later);
          lines.push({ at: Date.now(), kind: 'claim-waiting', amount: this.format(BigInt(entry.amount)), detail: later.waiting ?? '' });
        } else {
          const reason = result === undefined ? 'the node gave no result for it' : `${result.message} [${result.code}]`;
          const refusedEntry: InboxEntry = { ...entry, state: 'refused', reason };
          changed.push(refusedEntry);
          refused.push(refusedEntry);
          lines.push({ at: Date.now(), kind: 'claim-refused', amount: this.format(BigInt(entry.amount)), detail: reason });
        }
      }
      this.commit({ inbox: changed, history: lines });
    }
    // Claims presented to other banks earlier: where each stands now.
    for (const entry of accepted.filter((e) => e.claim !== undefined)) {
      const state = (await this.node.signed(signer, 'GET', `/v1/interbank/claims/${entry.claim}`, { answer: interbankClaimAnswer })).body;
      const lines: HistoryEvent[] = [];
      const next = this.claimStateApplied(entry, state, lines);
      this.commit({ inbox: [next], history: lines });
      sortOutcome(next, state);
    }
    // Claimed and refused payments are settled: out of the lists a step reads.
    this.settle([]);
    return { claimed, presented, refused, online: (await this.onlineBalance()).balance };
  }

  /**
   * A payment presented to another bank, as its interbank claim now stands: claimed (credited) once
   * settled, refused with the payer's bank's code, else still accepted and waiting (a history line
   * only when something changed).
   */
  private claimStateApplied(entry: InboxEntry, claim: InterbankClaimState, lines: HistoryEvent[]): InboxEntry {
    const amount = this.format(BigInt(entry.amount));
    if (claim.status === 'settled') {
      const { waiting: _waiting, ...rest } = entry;
      lines.push({ at: Date.now(), kind: 'claim', amount: claim.amount, detail: `credited once bank ${claim.payerBank} settled claim ${claim.claimId}; from ${entry.sender} (index ${entry.index})` });
      return { ...rest, state: 'claimed', credited: claim.amount };
    }
    if (claim.status === 'refused') {
      const reason = `refused by bank ${claim.payerBank}: ${claim.reason ?? 'no reason given'} [${claim.code ?? 'CLAIM_REFUSED'}]`;
      lines.push({ at: Date.now(), kind: 'claim-refused', amount, detail: reason });
      const { waiting: _waiting, ...rest } = entry;
      return { ...rest, state: 'refused', reason };
    }
    const waiting = `presented to bank ${claim.payerBank} as claim ${claim.claimId} (${claim.status}); credited once it is settled`;
    if (entry.waiting !== waiting) lines.push({ at: Date.now(), kind: 'claim-presented', amount, detail: `from ${entry.sender} (index ${entry.index}): ${waiting}` });
    return { ...entry, waiting };
  }

  /**
   * Sync: with an SE, its signed report of payments made and collected since the last sync goes to
   * the node, which reconciles it and answers a signed ack and the revocation list; without one,
   * only the revocation list is fetched.
   */
  async sync(): Promise<{
    crlVersion: number;
    fraud: { device: string; kind: string }[];
    paidCleared?: number;
    collectedCleared?: number;
    /** Accepted payments that waited for this sync, collected again. */
    retried?: { collected: number; refused: number; waiting: number };
    ended?: ResumeReport['ended'];
    /** Two tiers: the collects from other banks' devices this sync reported, each presented to its bank (or refused). */
    foreign?: Array<{ sender: string; index: string; amount: string; claim?: InterbankClaimState | undefined; code?: string | undefined; message?: string | undefined }>;
    /** Two tiers: the other banks taken from the wallet's bank (their certificates and lists), or why not. */
    peers?: { peers: number; crls: number; rootCrlVersion?: number };
    peersError?: string;
  }> {
    const device = this.data.device;
    if (device === null) {
      const answer = await this.node.call('GET', '/v1/revocations', { answer: revocationsAnswer });
      await this.keepCrl(answer.body.list, { history: [{ at: Date.now(), kind: 'sync', detail: `revocation list v${answer.body.version}` }] });
      return { crlVersion: answer.body.version, fraud: [], ...(await this.syncPeers()) };
    }
    const { ended } = await this.resume();
    await this.releaseRetired();
    const se = await this.se();
    const report = await se.call('report', {});
    // Two tiers: the payments collected from other banks' devices go whole with the report, so that the bank presents them.
    const ownBank = keyId(this.intermediary.body.subject);
    const payments = report.body.collected.flatMap((e) => {
      const entry = this.inboxByDigest(toHex(e.digest));
      if (entry === undefined) return [];
      return equalBytes(decodeCertificate(decodePayment(fromBase64url(entry.payment)).sender).body.issuer, ownBank) ? [] : [entry.payment];
    });
    const answer = await this.node.signed(await this.accountSigner(), 'POST', '/v1/ops/sync', { answer: opsSyncAnswer,
      body: { device: device.keyId, report: toBase64url(encodeCbor({ body: syncReportBodyWire(report.body), signature: report.signature })), ...(payments.length === 0 ? {} : { payments }) },
      idempotencyKey: `sync-${toHex(randomBytes(16))}`,
    });
    const ack = syncAckCodec.decode(decodeCbor(fromBase64url(answer.body.ack)), 'ack');
    const applied = await se.call('syncAck', { ack, crl: fromBase64url(answer.body.crl) });
    // The payments the node acknowledged are settled: marked with the sync's line, then moved out of the working lists.
    const settled = report.body.paid.filter((e) => e.index <= ack.body.paidUpTo).map((e) => toHex(e.digest));
    await this.keepCrl(answer.body.crl, { history: [{ at: Date.now(), kind: 'sync', detail: `report of ${report.body.paid.length} payments and ${report.body.collected.length} collects; revocation list v${answer.body.crlVersion}` }] });
    this.settle(settled);
    // The ack moved the TA's trusted time and pruned its log: payments that waited for that go in now.
    let retried: { collected: number; refused: number; waiting: number } | undefined;
    if (this.acceptedInbox().some((e) => e.waiting !== undefined)) {
      const again = await this.collect();
      retried = { collected: again.collected.length, refused: again.refused.length, waiting: again.waiting.length };
    }
    const foreign = answer.body.foreign ?? [];
    return {
      crlVersion: answer.body.crlVersion,
      fraud: answer.body.fraud,
      paidCleared: applied.paidCleared,
      collectedCleared: applied.collectedCleared,
      ...(retried === undefined ? {} : { retried }),
      ...(ended.length === 0 ? {} : { ended }),
      ...(foreign.length === 0 ? {} : { foreign }),
      ...(await this.syncPeers()),
    };
  }

  /** Asks the node for what it still holds for retired devices whose hold is over; it credits the online account once. */
  private async releaseRetired(): Promise<void> {
    for (const r of this.data.retired ?? []) {
      if (r.released !== false || r.releaseAt === undefined || Date.now() < Date.parse(r.releaseAt)) continue;
      const answer = await this.node.signed(await this.accountSigner(), 'POST', `/v1/ops/devices/${r.device}/retire`, { answer: opsReleaseAnswer, body: {}, idempotencyKey: `release-${r.device}` });
      if (answer.body.status !== 'released') continue;
      const amount = answer.body.refund?.amount ?? '0.00';
      await this.note({ at: Date.now(), kind: 'retired-released', amount, detail: `the node credited ${amount} ${this.currency.code} it held for the retired secure element ${r.device}` }, { retired: [{ ...r, released: true }] });
    }
  }

  /** Online balance from the node, or null with the reason when it is unreachable. */
  async onlineBalance(): Promise<{ balance: string | null; error?: string }> {
    return this.onlineBalanceWith(() => this.accountSigner());
  }

  /** What `balance` keeps of the SE's status at the end of a session (see WalletShell.recordedReport). */
  protected override async reportOfSecureElement(host: OpsSecureElement): Promise<SeStatusReport> {
    const s = await host.call('status', {});
    return { balance: s.balance.toString(), holdingLimit: s.holdingLimit.toString(), offlinePaymentsMax: s.offlinePaymentsMax, unsyncedPayments: s.unsyncedPayments };
  }

  /**
   * Online (from the node, when it takes a connection) and offline balances. The offline figures
   * are what the SE reported at the end of its last session when nothing has run it since (no SE
   * is started for them), else the SE is asked.
   */
  async balance(): Promise<BalanceReport> {
    // The node's answer and the secure element's start overlap. A refusal from the node still wins,
    // as when the node was asked first: the secure element's error is thrown only if the node's
    // answer came.
    const asked = this.onlineBalance();
    asked.catch(() => undefined);
    let status: { balance: bigint; holdingLimit: bigint; offlinePaymentsMax: number; unsyncedPayments: number } | null = null;
    let asOf: number | undefined;
    const recorded = this.data.device === null ? null : await this.recordedReport(seStatusReport);
    if (recorded !== null) {
      const r = recorded.report;
      status = { balance: BigInt(r.balance), holdingLimit: BigInt(r.holdingLimit), offlinePaymentsMax: r.offlinePaymentsMax, unsyncedPayments: r.unsyncedPayments };
      asOf = recorded.at;
    } else {
      try {
        if (this.data.device !== null) status = await (await this.se()).call('status', {});
      } catch (e) {
        await asked;
        throw e;
      }
    }
    const online = await asked;
    const incoming = this.acceptedInbox().reduce((sum, e) => sum + BigInt(e.amount), 0n);
    const report: BalanceReport = { online: online.balance, ...(online.error === undefined ? {} : { onlineError: online.error }), offline: null, incoming: this.format(incoming), pendingSteps: this.data.pending.length };
    if (status !== null) {
      report.offline = this.format(status.balance);
      report.holdingLimit = this.format(status.holdingLimit);
      report.offlinePaymentsLeft = Math.max(0, status.offlinePaymentsMax - status.unsyncedPayments);
      if (asOf !== undefined) report.offlineAsOf = new Date(asOf).toISOString();
    }
    return report;
  }


}
