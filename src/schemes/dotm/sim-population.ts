/**
 * DOT-M in `tally sim`: the population and its online life. Each holder is an account holder with a
 * DOT-M trusted app on an in-process secure element, registered as a wallet registers (§3.3.1:
 * `init`, `POST /v1/dotm/wallets` with the OEM's attestation, `certify`, `setPassword`), issued
 * blocks out of its account (§3.3.2: `POST /v1/dotm/issue`, `load`), uploading its signed events
 * and taking the node's ack and revocation list (§3.3.4), redeeming copies online. The books kept
 * here (redemptions and refunds the node has not settled yet, what it kept, what honest holders
 * lost) are what the invariants (sim-invariants.ts) weigh against the node's audit.
 */
import { fromBase64url, fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import type { Signer } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { simCommitted, type SimAttack, type SimElement, type SimNode, type SimSnapshot, type SimWorld } from '../../sim/sim/plugin.ts';
import { decodeBlock, type TransactionMessage } from './messages.ts';
import { eventAckCodec, walletEventWire, type WalletEvent } from './online.ts';
import { dotmTrustedApp } from './trusted-app.ts';

/** The DOT-M trusted app's commands. */
export type Commands = typeof dotmTrustedApp.commands;
/** A DOT-M secure element of the simulation. */
export type Element = SimElement<Commands>;

/** Every simulated wallet's payment password (pwd, §3.3.1 step 5). */
export const SIM_PASSWORD = 'sim wallet pwd';
/** Events in one upload (the node takes up to 16, EVENTS_UPLOAD_MAX). */
const UPLOAD_EVENTS_MAX = 16;

/** An account holder with a DOT-M wallet. */
export interface Holder {
  readonly index: number;
  readonly user: Signer;
  readonly account: string;
  /** Key id of wpk (hex): the wallet as the node names it. */
  readonly wallet: string;
  /** Key id of upk (hex): the user a finding names. */
  readonly userKeyId: string;
  readonly ucert: Uint8Array;
  readonly wcert: Uint8Array;
  el: Element;
  /** The balance the simulation expects the trusted app to hold. */
  balance: bigint;
  readonly attacker: boolean;
  online: boolean;
  /** A copy of the wallet made earlier, which an attacker may later bring back (state and counter). */
  past: { storage: SimSnapshot; whole: Element } | null;
  /** Named by a finding: the node revoked its certificates. */
  revoked: boolean;
  /** The last σ this holder's trusted app paid and its payee completed: what an extracted key pays again. */
  lastPaid: TransactionMessage | null;
  /** The events of its last upload, as sent: what a replay to the node sends again. */
  lastUpload: string[];
}

/** A clone or a rolled-back copy of an attacker's wallet, paying on its own. */
export interface Extra {
  readonly el: Element;
  readonly holder: Holder;
  readonly attack: SimAttack;
  left: number;
}

/** A payment an attack made (a clone's, a rolled-back wallet's, or signed with extracted keys), and whether a payee completed it. */
export interface AttackPayment {
  readonly attack: SimAttack;
  readonly amount: bigint;
  received: boolean;
  refused: boolean;
}

/** What the simulation knows the node owes or kept, minor units. */
export interface Books {
  /** Redemptions given up by a trusted app, by tsn (hex), until the node answers them. */
  readonly redemptions: Map<string, { holder: Holder; amount: bigint }>;
  /** Situations 3 and 5 (§3.3.5): the payer deducted, the payee rolled back; by tsn, until the node refunds. */
  readonly refunds: Map<string, { holder: Holder; amount: bigint }>;
  /**
   * What settlement refused to pay out (redemptions refused, refunds withheld: the copy's path was
   * over-spent by a double spend): the float may still hold it, or it was the duplicate's value.
   */
  forfeited: bigint;
  /** What honest holders gave up and were not credited (a double-spent copy redeemed second). */
  lost: bigint;
  /** Completed payments, by tsn: a second completion under one tsn is a payment credited twice. */
  readonly completed: Set<string>;
  readonly attackPayments: AttackPayment[];
  /** Serials (hex) an attack has touched so far, for the attacks' bounds. */
  readonly touched: Set<string>;
  /** Attacks that duplicated value (clones, rolled-back wallets, extracted keys). */
  duplicating: number;
}

/** What every part of the DOT-M simulation shares. */
export interface DotmSim {
  readonly world: SimWorld;
  readonly node: SimNode;
  readonly holders: Holder[];
  readonly extras: Extra[];
  readonly books: Books;
  /** Minor units of a decimal amount as the node writes it. */
  minor(text: string): bigint;
  /** A committing call that may crash at a commit point; the host reopens and the same request runs again, or, with `cut`, the call's caller gives up. */
  committed<T>(el: Element, run: (requestId: Uint8Array) => Promise<T>, cut?: (() => Error) | undefined): Promise<T>;
  /** Uploads a holder's events and takes the ack (unless the answer is lost); `el`, an attacker's extra copy, uploads its own under the holder's name. */
  sync(h: Holder, interrupted: boolean, el?: Element): Promise<void>;
  /** The findings the node made since the last look, each judged. */
  pollFindings(): Promise<void>;
}

/** The trusted app's refusal code, or null for any other error. */
export function refusal(e: unknown): string | null {
  if (isTallyError(e, 'SE_REJECTED')) return String(e.details.reason);
  return null;
}

/** The error code of a node answer. */
export function errorCode(body: unknown): string {
  const error = (body as { error?: { code?: string } } | null)?.error;
  return error?.code ?? 'UNKNOWN';
}

/** The base64url CBOR of events, as the upload body carries them. */
export function eventsWire(events: readonly WalletEvent[]): string[] {
  return events.map((e) => toBase64url(encodeCbor(walletEventWire(e))));
}

interface UploadAnswer {
  ack: string;
  crl: string;
  results: Array<{ seq: number; status: string; code?: string; credited?: string; refund?: string }>;
  findings: Array<{ kind: string; culprit: string }>;
}

/** Opens the population: `devices` holders registered, certified, with a password and `minted` in their accounts. */
export async function population(world: SimWorld, node: SimNode, measurement: Uint8Array, minted: bigint): Promise<Holder[]> {
  const { params } = world;
  const oem = await node.enrolOem('dotm', measurement);
  const certs = { root: encodeCertificate(node.certificates.root), intermediary: encodeCertificate(node.certificates.intermediary), issuerNode: encodeCertificate(node.certificates.issuerNode) };
  const attackers = Math.round(params.devices * params.attackers);
  const holders: Holder[] = [];
  for (let index = 0; index < params.devices; index++) {
    const user = await node.registerUser();
    const el: Element = await world.element(dotmTrustedApp);
    const init = await el.se.call('init', { ...certs, account: fromHex(user.keyId) });
    const attestation = attestDevice(oem.signer, { sePublicKey: init.walletKey, model: 'Sim SE', taMeasurement: measurement });
    const answer = await node.request(user.signer, 'POST', '/v1/dotm/wallets', {
      userKey: { suite: init.userKey.suite, key: toBase64url(init.userKey.key) },
      userProof: toBase64url(init.userProof),
      walletKey: { suite: init.walletKey.suite, key: toBase64url(init.walletKey.key) },
      walletProof: toBase64url(init.walletProof),
      oem: oem.keyId,
      attestation: toBase64url(encodeAttestation(attestation)),
    });
    if (answer.status !== 201) throw new Error(`registering wallet ${index}: ${answer.status} ${JSON.stringify(answer.body)}`);
    const registered = answer.body as { wallet: string; user: string; ucert: string; wcert: string };
    const ucert = fromBase64url(registered.ucert);
    const wcert = fromBase64url(registered.wcert);
    await el.se.call('certify', { ucert, wcert });
    await el.se.call('setPassword', { password: SIM_PASSWORD });
    await node.mint(user.account, minted);
    holders.push({ index, user: user.signer, account: user.account, wallet: registered.wallet, userKeyId: registered.user, ucert, wcert, el, balance: 0n, attacker: index < attackers, online: true, past: null, revoked: false, lastPaid: null, lastUpload: [] });
  }
  return holders;
}

/** The shared part of a run: the books, committed calls, sync and the findings. */
export function openDotmSim(world: SimWorld, node: SimNode, holders: Holder[]): DotmSim {
  const { clock, recorder } = world;
  const decimals = (node.amount(1n).split('.')[1] ?? '').length;
  const books: Books = { redemptions: new Map(), refunds: new Map(), forfeited: 0n, lost: 0n, completed: new Set(), touched: new Set(), attackPayments: [], duplicating: 0 };
  const extras: Extra[] = [];
  let findingsSeen = 0;

  const minor = (text: string): bigint => {
    const [whole = '0', fraction = ''] = text.split('.');
    return BigInt(whole) * 10n ** BigInt(decimals) + BigInt(fraction.padEnd(decimals, '0') || '0');
  };

  const self: DotmSim = {
    world,
    node,
    holders,
    extras,
    books,
    minor,
    // Inside a transaction, a quarter of the crashes end it: the wallet rebooted and recovers (§3.3.5).
    committed: (el, run, cut) => simCommitted(world, el, run, cut === undefined ? null : { share: 0.25, error: cut }),

    async sync(h, interrupted, el = h.el) {
      const { events } = await el.se.call('events', {});
      let answer: UploadAnswer | null = null;
      for (let at = 0; at === 0 || at < events.length; at += UPLOAD_EVENTS_MAX) {
        const chunk = events.slice(at, at + UPLOAD_EVENTS_MAX);
        const wire = eventsWire(chunk);
        const reply = await node.request(h.user, 'POST', '/v1/dotm/events', { wallet: h.wallet, events: wire });
        if (reply.status !== 200) world.violated('settlement', `the node refused the upload of wallet ${h.index}'s own events: ${reply.status} ${JSON.stringify(reply.body)}`);
        answer = reply.body as UploadAnswer;
        if (chunk.length > 0 && el === h.el) h.lastUpload = wire;
        settle(h, chunk, answer);
      }
      recorder.count('syncs');
      if (answer !== null && answer.findings.length > 0) await self.pollFindings();
      if (interrupted || answer === null) {
        // The answer never reaches the device: it uploads the same events again next time.
        recorder.count('faults.sync-interrupted');
        return;
      }
      const ack = eventAckCodec.decode(decodeCbor(fromBase64url(answer.ack)));
      const crl = fromBase64url(answer.crl);
      try {
        await self.committed(el, (requestId) => el.se.call('ack', { ack, crl }, { requestId }));
      } catch (e) {
        const code = refusal(e);
        // An attacker's copy that uploaded a later log first leaves the node ahead of the wallet.
        if (code === null || !h.attacker) throw e;
        recorder.count(`refused.ack.${code}`);
      }
    },

    async pollFindings() {
      const answer = await node.request('operator', 'GET', '/v1/dotm/fraud');
      const findings = (answer.body as { findings: Array<{ kind: string; culprit: string }> }).findings;
      for (const f of findings.slice(findingsSeen)) judge(f.culprit, f.kind);
      findingsSeen = findings.length;
    },
  };

  /** The node's result for each uploaded event: redemptions credited (or not), refunds made (or withheld). */
  function settle(h: Holder, events: readonly WalletEvent[], answer: UploadAnswer): void {
    for (const result of answer.results) {
      const event = events.find((e) => e.body.seq === result.seq);
      if (event === undefined || result.status === 'duplicate') continue;
      const tsn = toHex(event.body.tsn);
      if (result.status === 'refused') recorder.count(`refused.event.${result.code ?? 'UNKNOWN'}`);
      if (result.status === 'refused' && !h.attacker && (result.code !== 'DOUBLE_SPEND' || books.duplicating === 0)) {
        world.violated('settlement', `the node refused honest wallet ${h.index}'s ${event.body.kind} event ${result.seq}: ${result.code ?? ''}`);
      }
      const redemption = books.redemptions.get(tsn);
      if (redemption !== undefined && event.body.kind === 'redeemed') {
        books.redemptions.delete(tsn);
        const credited = result.credited === undefined ? 0n : minor(result.credited);
        if (credited > redemption.amount) world.violated('credited-once', `wallet ${h.index}'s redemption of ${redemption.amount} was credited ${credited}`);
        recorder.count('redemptions');
        if (credited < redemption.amount) {
          recorder.count('redemptions.refused');
          forfeit(redemption.holder, redemption.amount - credited, 'redemption refused');
        }
      }
      const refund = books.refunds.get(tsn);
      if (refund !== undefined && result.refund !== undefined) {
        books.refunds.delete(tsn);
        recorder.count(`refunds.${result.refund}`);
        if (result.refund === 'withheld') forfeit(refund.holder, refund.amount, 'refund withheld');
      }
    }
  }

  /** Settlement refused to pay `amount` out to `h`: only a double spend explains it; an honest holder lost it. */
  function forfeit(h: Holder, amount: bigint, what: string): void {
    if (books.duplicating === 0) world.violated('settlement', `${what} for wallet ${h.index} (${amount}) with no double spend made`);
    books.forfeited += amount;
    if (!h.attacker) {
      books.lost += amount;
      recorder.loss(books.lost);
    }
  }

  /** A finding: it must name an attacker, and it detects that attacker's pending attacks. */
  function judge(culprit: string, kind: string): void {
    const h = holders.find((x) => x.userKeyId === culprit);
    if (h === undefined || !h.attacker) world.violated('attribution', `the node made a ${kind} finding against ${culprit}, which is no attacker`);
    recorder.count(`findings.${kind}`);
    h.revoked = true;
    for (const attack of recorder.attacks) {
      if (attack.device !== h.wallet || attack.outcome !== 'pending') continue;
      attack.outcome = 'detected';
      attack.attributed = true;
      attack.detectedAt = clock.now();
    }
  }

  return self;
}

/** §3.3.2: the node issues `amount` in `blocks` blocks out of the account, the trusted app loads them. */
export async function issue(sim: DotmSim, h: Holder, amount: bigint, blocks: number): Promise<void> {
  const answer = await sim.node.request(h.user, 'POST', '/v1/dotm/issue', { wallet: h.wallet, amount: sim.node.amount(amount), blocks });
  if (answer.status !== 201) {
    sim.world.recorder.count(`refused.issue.${errorCode(answer.body)}`);
    return;
  }
  const issued = (answer.body as { blocks: string[] }).blocks.map((b) => decodeBlock(fromBase64url(b)));
  await sim.committed(h.el, (requestId) => h.el.se.call('load', { blocks: issued, now: sim.world.clock.now() }, { requestId }));
  h.balance += amount;
  sim.world.recorder.count('issues');
}

/** Gives `amount` up in the trusted app (largest copies first) for the node to credit at the next sync. */
export async function redeem(sim: DotmSim, h: Holder, amount: bigint): Promise<boolean> {
  try {
    const out = await sim.committed(h.el, (requestId) => h.el.se.call('redeem', { amount, password: SIM_PASSWORD, now: sim.world.clock.now() }, { requestId }));
    if (out.kind !== 'redeemed' || out.tsn === undefined) sim.world.violated('se-balance', `wallet ${h.index} refused its own password`);
    h.balance -= amount;
    sim.books.redemptions.set(toHex(out.tsn), { holder: h, amount });
    return true;
  } catch (e) {
    const code = refusal(e);
    if (code === null) throw e;
    sim.world.recorder.count(`refused.redeem.${code}`);
    return false;
  }
}
