/**
 * OPERA in `tally sim`: a population of account holders, each with an ODW (the OPERA trusted app on
 * an in-process secure element, credentialed by a maker the bank lists), charged with tokens online,
 * paying each other offline by the paper's three-stage exchange (Stage 1's anonymous mount, Stage 2's
 * tokens under PTK_A, Stage 3's release) over an in-memory network that drops, duplicates and delays
 * messages, resuming a cut exchange from the two logs when the same ODWs meet again (§4.1) or settling
 * it online, and depositing tokens back. Secure elements crash at commit points, exchanges are cut at
 * every stage, the node restarts. Attackers clone their ODW (state and counter copied) and spend the
 * same tokens twice, roll it back, replay, alter and relay messages, and deposit forged tokens. After each
 * step: the audit balances and float:opera equals the tokens still issued; Σ what the ODWs hold −
 * float:opera (value created offline) is never below zero, never above what the transactions a
 * payee may hold twice and the attacks' bounds allow, and zero when no log is pending and no attack
 * duplicated an ODW; no deposit or replay is credited twice; no forged token or message is taken; a
 * finding that revokes names an attacker. At the end every double spend was detected at deposit.
 */
import { fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import type { Infer } from '../../core/codec.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import type { Signer } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { credentialKeys, issueCredential, sealCredential } from '../../pki/anonymous-credential.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { expectedPcrValue } from '../../pki/tpm-quote.ts';
import { simCarry, simCommitted, simRelayed, type SimAttack, type SimElement, type SimNode, type SimPlugin, type SimSnapshot, type SimWorld } from '../../sim/sim/plugin.ts';
import { chargeCodec, DEPOSIT_REQUEST_TAG, depositReceiptCodec, depositRequestBodyCodec, NONCE_BYTES, ODW_CREDENTIAL_LABEL, OPERA_SCHEME, paramsCodec, settledCodec, signed, type DepositRequest } from './messages.ts';
import { OPERA_FLOAT_ACCOUNT, operaNodePart } from './node.ts';
import { signToken } from './token.ts';
import { operaTrustedApp, TA_KEY_LABEL, type statusCodec } from './trusted-app.ts';

type Commands = typeof operaTrustedApp.commands;
type Element = SimElement<Commands>;
type Status = Infer<typeof statusCodec>;

/** The ODW build the simulated OEM attests, the node allows and the maker vouches for. */
const SIM_MEASUREMENT = sha256(utf8('tally opera odw, sim build'));
/** What each holder's account is minted at the start, minor units. */
const MINTED_MINOR = 200_000n;
/** A charge: between these, minor units. */
const CHARGE_MIN = 500n;
const CHARGE_MAX = 3_000n;
/** The largest amount a payee asks, minor units. */
const PAYMENT_MAX = 500n;
/** The largest denomination a charge asks two of, for change. */
const CHANGE_DENOMINATION_MAX = 50n;
/** How long a wallet waits for the partner's next message (session.ts's default). */
const STEP_TIMEOUT_MS = 30_000;
/** The share of SE crashes in an exchange after which the wallet gives up (the paper's resets, §5.1); the others reopen and retry. */
const RESET_CUTS = 0.25;
/** How many payments a clone or a rolled-back ODW attempts. */
const ATTACK_PAYMENTS_MAX = 3;
/** Steps a run may take per payment before it is stuck (a liveness check). */
const STEPS_PER_PAYMENT_MAX = 60;

/** An account holder with an ODW. */
interface Holder {
  readonly index: number;
  readonly user: Signer;
  readonly account: string;
  readonly device: string;
  el: Element;
  readonly attacker: boolean;
  online: boolean;
  revoked: boolean;
  /** The partner of the transaction its log may hold (the last exchange that left one). */
  partner: Party | null;
  /** A copy made earlier, which an attacker may later bring back (state and counter). */
  past: { storage: SimSnapshot; whole: Element } | null;
}

/** One side of an exchange: a holder's own ODW, or an attack's extra device (a clone or a rolled-back copy). */
interface Party {
  readonly holder: Holder;
  readonly el: Element;
  /** The attack an extra device belongs to, or null for the holder's own ODW. */
  readonly attack: SimAttack | null;
  partner: Party | null;
  /** Stage 1 refused to set its log in order with the partner: it waits for the bank. */
  atBank: boolean;
}

/** A relayer between a payer and its payee, handing their messages to ODW `to` as well. */
interface Relay {
  readonly relayer: Holder;
  readonly to: Party;
}

/** The cut of an exchange: the link broke or a wallet gave up, at `stage`. */
class Cut extends Error {
  constructor(readonly stage: string) {
    super(`exchange cut at ${stage}`);
  }
}

function refusal(e: unknown): string | null {
  if (isTallyError(e, 'SE_REJECTED')) return String(e.details.reason);
  return null;
}

function errorCode(body: unknown): string {
  const error = (body as { error?: { code?: string } } | null)?.error;
  return error?.code ?? 'UNKNOWN';
}

/**
 * The tokens a holder's wallet asks for in a charge: two of each small denomination (so that it can
 * give change), the rest in the fewest tokens (the ODW's own choice when it asks none).
 */
function chargeMix(amount: bigint, denominations: readonly bigint[]): Array<{ value: bigint; count: number }> {
  const counts = new Map<bigint, number>();
  let rest = amount;
  for (const value of [...denominations].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (value > CHANGE_DENOMINATION_MAX || 2n * value > rest) break;
    counts.set(value, 2);
    rest -= 2n * value;
  }
  for (const value of [...denominations].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0))) {
    const n = rest / value;
    if (n === 0n) continue;
    counts.set(value, (counts.get(value) ?? 0) + Number(n));
    rest -= n * value;
  }
  if (rest !== 0n) throw new RangeError(`${amount} cannot be made of the denominations ${denominations.join(', ')}`);
  return [...counts].map(([value, count]) => ({ value, count }));
}

/** The OPERA simulation. */
export const operaSim: SimPlugin = {
  scheme: 'opera',
  async run(world: SimWorld) {
    const { params, random, clock, recorder } = world;
    const node: SimNode = await world.openNode(operaNodePart);
    const oem = await node.enrolOem(OPERA_SCHEME, SIM_MEASUREMENT);
    // The maker vouches for genuine ODWs of the build (in the paper a DAA issuer after a TPM quote; the
    // quote is not simulated, the credential and every proof over it are real BBS).
    const maker = await credentialKeys(random.bytes(32));
    const reference = expectedPcrValue([SIM_MEASUREMENT]);
    const listed = await node.request('operator', 'POST', '/v1/opera/makers', { publicKey: toBase64url(maker.publicKey), reference: toHex(reference) });
    if (listed.status !== 200 && listed.status !== 201) throw new Error(`listing the maker: ${listed.status} ${JSON.stringify(listed.body)}`);
    const paramsAnswer = await node.request('operator', 'GET', '/v1/opera/params');
    const bankParams = paramsCodec.decode(decodeCbor(fromBase64url((paramsAnswer.body as { params: string }).params)), 'params');
    const root = encodeCertificate(node.certificates.root);
    const intermediary = encodeCertificate(node.certificates.intermediary);
    const issuerNode = encodeCertificate(node.certificates.issuerNode);
    const attackersWanted = Math.round(params.devices * params.attackers);

    const holders: Holder[] = [];
    for (let index = 0; index < params.devices; index++) {
      const user = await node.registerUser();
      const el = await world.element(operaTrustedApp);
      const init = await el.se.call('init', { root, owner: fromHex(user.keyId) });
      const { keyId: device } = await node.registerDevice(user.signer, oem, { scheme: OPERA_SCHEME, publicKey: init.publicKey, proof: init.proof, model: 'Sim ODW', measurement: SIM_MEASUREMENT });
      await el.se.call('certInit', { intermediary, issuerNode, now: clock.now() });
      await el.se.call('setParams', { params: bankParams });
      const request = await el.se.call('credentialRequest', { makerNonce: random.bytes(32) });
      const credential = await issueCredential(maker, { label: ODW_CREDENTIAL_LABEL, reference }, request.holder);
      await el.se.call('credentialInstall', { maker: maker.publicKey, reference, sealed: sealCredential(request.boxKey, credential, random.bytes(32)) });
      await node.mint(user.account, MINTED_MINOR);
      holders.push({ index, user: user.signer, account: user.account, device, el, attacker: index < attackersWanted, online: true, revoked: false, partner: null, past: null });
    }
    const own = new Map<Holder, Party>(holders.map((h) => [h, { holder: h, el: h.el, attack: null, partner: null, atBank: false }]));
    const partyOf = (h: Holder): Party => own.get(h) as Party;

    const net = world.network<Uint8Array>();
    /** Clones and rolled-back copies in use, with the attack each belongs to. */
    const extras: Array<{ party: Party; left: number }> = [];
    /** Attacks whose payments a payee took (their copies must be found at deposit). */
    const spentAttacks = new Set<SimAttack>();
    /** Messages of earlier exchanges, for the replay attack. */
    const captured: Array<{ offer: { ephemeral: Uint8Array; maker: number; proof: Uint8Array }; box: Uint8Array | null }> = [];
    /** Deposit requests the node credited, for the replay attack. */
    const deposited: DepositRequest[] = [];
    let duplicatingAttacks = 0;
    let paymentsMade = 0;
    let lastPayment = 0n;
    let lost = 0n;
    /** What the node or an ODW was asked to do: a step that asked nothing is not checked again. */
    let actions = 0;

    /** A committing SE call, which may crash at a commit point; the host reopens, and the same request runs again (or, in an exchange, the wallet gives up: a cut). */
    const committed = <T>(el: Element, run: (requestId: Uint8Array) => Promise<T>, stage: string | null = null): Promise<T> =>
      simCommitted(world, el, run, stage === null ? null : { share: RESET_CUTS, error: () => new Cut(stage) });

    /** One message between two ODWs: dropped or late past the wallet's timeout cuts the exchange; a duplicate is delivered again after it. */
    function carry(box: Uint8Array, stage: string): { duplicated: boolean } {
      const { arrived, duplicated } = simCarry(world, net, box, box.length, STEP_TIMEOUT_MS);
      if (!arrived) throw new Cut(stage);
      return { duplicated };
    }

    /** A message delivered a second time (a duplicate, or replayed): the ODW must refuse it and change nothing. */
    async function mustRefuse(party: Party, run: () => Promise<unknown>, what: string): Promise<void> {
      const before = JSON.stringify(await party.el.se.call('status', {}), (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
      try {
        await run();
      } catch (e) {
        const code = refusal(e);
        if (code === null) throw e;
        recorder.count(`refused.replayed.${code}`);
        const after = JSON.stringify(await party.el.se.call('status', {}), (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
        if (after !== before) world.violated('no-forgery', `device ${party.holder.device} changed state on refusing ${what}`);
        return;
      }
      world.violated('no-forgery', `device ${party.holder.device} took ${what}`);
    }

    /**
     * A relayer hands ODW `to` a message of an exchange between two others: `to` mounted as a payee
     * on a link of its own, so the payer's Stage 1 offer (its proof bound to the other link's
     * handshake hash, OPERA §4.2's nonces) and a chain message (sealed under the other mount's OTK
     * chain) are refused, with `to` unchanged. The exchange goes on with the party it was meant for.
     */
    async function relayTo(relay: Relay, payee: Party, what: 'offer' | 'box', run: () => Promise<unknown>): Promise<void> {
      const { to } = relay;
      const snapshot = async () => JSON.stringify(await status(to.el), (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
      const before = await snapshot();
      let refused: string | null = null;
      try {
        await run();
      } catch (e) {
        refused = refusal(e);
        if (refused === null) throw e;
      }
      if (refused !== null && (await snapshot()) !== before) world.violated('no-forgery', `device ${to.holder.device} changed state on refusing a relayed ${what}`);
      const variant = `${what}-to-${to.holder === relay.relayer ? 'relayer' : 'other'}`;
      simRelayed(world, { relayer: relay.relayer.device, variant, meant: payee.holder.device, refusal: refused, credited: refused === null ? to.holder.device : null });
    }

    async function status(el: Element): Promise<Status> {
      return el.se.call('status', {});
    }

    /** What an ODW holds towards float:opera: its repository, a deposit under way, the tokens it is paying (a payer's, or a payee's change not yet given). */
    function holding(s: Status): { held: bigint; slack: bigint } {
      const p = s.pending;
      let held = s.balance + (s.deposit?.amount ?? 0n);
      let slack = 0n;
      if (p !== undefined && p.mode === 'send') {
        held += p.amount + (p.change?.amount ?? 0n);
        // Once PTK_A is out the payee may hold these tokens too, until the payer's log ends.
        if (p.released === 1) slack += p.amount + (p.change?.amount ?? 0n);
      }
      if (p !== undefined && p.mode === 'receive' && p.accepted === 0) held += p.change?.amount ?? 0n;
      return { held, slack };
    }

    /**
     * The three-stage exchange between two parties (session.ts's order, each message over the
     * network): the payee asks `amount`; a log either holds is resumed or set in order in Stage 1.
     * `tamper`: the attack of the payer's wallet app, which alters the payer's first token message (Msg 2-3) on its way.
     * `relay`: a relayer handing the payer's Stage 1 offer, then its first token message, to another ODW too. Answers how it ended.
     */
    async function exchange(payer: Party, payee: Party, amount: bigint, tamper: SimAttack | null = null, relay: Relay | null = null): Promise<string> {
      let [before, beforePayee] = [await status(payer.el), await status(payee.el)];
      const hh = random.bytes(32);
      actions++;
      recorder.count('exchanges');
      let plan = 'new';
      let began = false;
      /** A new transaction begun (its tokens left the payer's repository) is a payment made, however it ends. */
      const madePayment = () => {
        if (!began || plan !== 'new') return;
        began = false;
        paymentsMade++;
        lastPayment = amount;
        recorder.count('payments');
      };
      try {
        const a = (await committed(payer.el, (requestId) => payer.el.se.call('mount', { handshakeHash: hh, role: 'payer' }, { requestId }), 'stage-1')).offer;
        const b = (await committed(payee.el, (requestId) => payee.el.se.call('mount', { handshakeHash: hh, role: 'payee', expect: amount }, { requestId }), 'stage-1')).offer;
        captured.push({ offer: a, box: null });
        if (relay !== null) {
          const { to } = relay;
          // The third ODW's own link: a mount it was not asked to make is refused like any, and then nothing is relayed.
          const mounted = await to.el.se.call('mount', { handshakeHash: random.bytes(32), role: 'payee', expect: amount }).then(() => true, (e: unknown) => {
            if (refusal(e) === null) throw e;
            return false;
          });
          if (mounted) await relayTo(relay, payee, 'offer', () => to.el.se.call('meet', { offer: a }));
          else relay = null;
        }
        const dupA = carry(encodeCbor(a), 'stage-1');
        const dupB = carry(encodeCbor(b), 'stage-1');
        const helloA = (await committed(payer.el, (requestId) => payer.el.se.call('meet', { offer: b }, { requestId }), 'stage-1')).hello;
        if (dupB.duplicated) await mustRefuse(payer, () => payer.el.se.call('meet', { offer: b }), 'a duplicated offer');
        const helloB = (await committed(payee.el, (requestId) => payee.el.se.call('meet', { offer: a }, { requestId }), 'stage-1')).hello;
        if (dupA.duplicated) await mustRefuse(payee, () => payee.el.se.call('meet', { offer: a }), 'a duplicated offer');
        const dupHelloA = carry(helloA, 'stage-1');
        const dupHelloB = carry(helloB, 'stage-1');
        const greetA = await committed(payer.el, (requestId) => payer.el.se.call('greet', { hello: helloB }, { requestId }), 'stage-1');
        if (dupHelloB.duplicated) await mustRefuse(payer, () => payer.el.se.call('greet', { hello: helloB }), 'a duplicated hello');
        const greetB = await committed(payee.el, (requestId) => payee.el.se.call('greet', { hello: helloA }, { requestId }), 'stage-1');
        if (dupHelloA.duplicated) await mustRefuse(payee, () => payee.el.se.call('greet', { hello: helloA }), 'a duplicated hello');
        if (greetA.settled !== undefined) recorder.count(`exchanges.set-in-order.${greetA.settled}`);
        if (greetA.plan !== greetB.plan) {
          recorder.count('exchanges.plans-differ');
          throw new Cut('stage-1');
        }
        plan = greetA.plan;
        // Stage 1 may have ended an old transaction (its tokens back with their owner): the payment is measured from here.
        [before, beforePayee] = [await status(payer.el), await status(payee.el)];
        const first = await committed(payer.el, (requestId) => payer.el.se.call('begin', plan === 'new' ? { amount } : {}, { requestId }), 'stage-2');
        began = true;
        if (plan !== 'new') recorder.count('exchanges.resumed');
        let box: Uint8Array = first.box;
        let to: Party = payee;
        let sent = 0;
        for (let turns = 0; turns < 4 * 256; turns++) {
          const stage = (await status(payer.el)).pending?.released === 1 ? 'stage-3' : 'stage-2';
          if (tamper !== null && tamper.outcome === 'pending' && to === payee && sent >= 2) {
            // One byte of the sealed token (or of its seal) changed: the payee's OTK chain must refuse it.
            const altered = box.slice();
            const at = random.below(altered.length);
            altered[at] = (altered[at] as number) ^ (1 + random.below(255));
            await mustRefuse(payee, () => payee.el.se.call('step', { box: altered }), 'an altered chain message');
            tamper.outcome = 'refused-offline';
          }
          if (relay !== null && to === payee && sent === 0) {
            const third = relay.to;
            await relayTo(relay, payee, 'box', () => third.el.se.call('step', { box }));
          }
          const { duplicated } = carry(box, stage);
          sent++;
          const receiver = to;
          const out = await committed(receiver.el, (requestId) => receiver.el.se.call('step', { box }, { requestId }), stage);
          if (duplicated) await mustRefuse(receiver, () => receiver.el.se.call('step', { box }), 'a duplicated chain message');
          if (captured.length > 0 && random.chance(0.1)) (captured[captured.length - 1] as { box: Uint8Array | null }).box = box;
          if (out.refused !== undefined) {
            // The payee's tokens cannot make the change: nothing moved, no payment was made.
            recorder.count('exchanges.no-change');
            began = false;
            return 'no-change';
          }
          if (out.ending !== undefined && receiver === payee) {
            madePayment();
            break;
          }
          if (out.box === undefined) break;
          box = out.box;
          to = receiver === payer ? payee : payer;
        }
      } catch (e) {
        madePayment();
        if (e instanceof Cut) {
          recorder.count(`faults.cut.${e.stage}`);
          await settleLinks(payer, payee);
          return 'cut';
        }
        const code = refusal(e);
        if (code === null) throw e;
        recorder.count(`refused.exchange.${code}`);
        await settleLinks(payer, payee);
        // Logs that Stage 1 cannot set in order wait for the bank: their holders settle online, not mount again.
        if (code === 'OPERA_PENDING') for (const side of [payer, payee]) if ((await status(side.el)).pending !== undefined) side.atBank = true;
        return 'refused';
      }
      madePayment();
      await settleLinks(payer, payee);
      const [after, afterPayee] = [await status(payer.el), await status(payee.el)];
      if (after.pending !== undefined || afterPayee.pending !== undefined) world.violated('exchange', `an exchange ended with a log still pending (payer ${payer.holder.device}, payee ${payee.holder.device})`);
      if (plan === 'new' && began) {
        // A payment finished in one session moved exactly its amount, change included.
        if (before.balance - after.balance !== amount || afterPayee.balance - beforePayee.balance !== amount) {
          world.violated('conservation', `a payment of ${amount} moved ${before.balance - after.balance} from device ${payer.holder.device} and ${afterPayee.balance - beforePayee.balance} to device ${payee.holder.device}`);
        }
      }
      recorder.count('payments.credited');
      if (payer.attack !== null) spentAttacks.add(payer.attack);
      return 'paid';
    }

    /** After an exchange: each side whose log still holds a transaction remembers its partner, to resume with it. */
    async function settleLinks(payer: Party, payee: Party): Promise<void> {
      for (const [side, other] of [[payer, payee], [payee, payer]] as const) {
        const s = await status(side.el);
        if (s.pending !== undefined) side.partner = other;
        // A payee that took an attack's tokens, in this session or before: they are spent copies.
        if (side === payee && payer.attack !== null && s.pending?.accepted === 1) spentAttacks.add(payer.attack);
      }
    }

    async function charge(h: Holder, amount: bigint): Promise<void> {
      actions++;
      const { request } = await committed(h.el, (requestId) => h.el.se.call('chargeRequest', { amount, tokens: chargeMix(amount, bankParams.body.denominations) }, { requestId }));
      const answer = await node.request(h.user, 'POST', '/v1/opera/charge', { device: h.device, request: toBase64url(encodeCbor(request)) }, { idempotencyKey: `sim-charge-${toHex(request.body.nonce)}` });
      if (answer.status !== 200) {
        recorder.count(`refused.node.charge.${errorCode(answer.body)}`);
        return;
      }
      const out = await committed(h.el, (requestId) => h.el.se.call('chargeTake', { charge: chargeCodec.decode(decodeCbor(fromBase64url((answer.body as { charge: string }).charge)), 'charge') }, { requestId }));
      if (out.amount !== amount) world.violated('conservation', `device ${h.device} asked a charge of ${amount} and took ${out.amount}`);
      recorder.count('charges');
    }

    /** Deposits (up to a request's worth of) the tokens an ODW holds; an honest holder's tokens refused as spent are its loss. */
    async function deposit(party: Party): Promise<void> {
      const h = party.holder;
      const s = await status(party.el);
      if (s.balance === 0n && s.deposit === undefined) return;
      if (s.deposit !== undefined) return;
      actions++;
      const { request } = await committed(party.el, (requestId) => party.el.se.call('depositRequest', {}, { requestId }));
      const answer = await node.request(h.user, 'POST', '/v1/opera/deposit', { device: h.device, request: toBase64url(encodeCbor(request)) }, { idempotencyKey: `sim-deposit-${toHex(request.body.nonce)}` });
      if (answer.status !== 200) {
        recorder.count(`refused.node.deposit.${errorCode(answer.body)}`);
        if (party.attack === null && !h.attacker) world.violated('deposit', `the node refused an honest deposit of device ${h.device}: ${answer.status} ${JSON.stringify(answer.body)}`);
        return;
      }
      const receipt = depositReceiptCodec.decode(decodeCbor(fromBase64url((answer.body as { receipt: string }).receipt)), 'receipt');
      const out = await committed(party.el, (requestId) => party.el.se.call('depositTake', { receipt }, { requestId }));
      recorder.count('deposits');
      deposited.push(request);
      const value = new Map(request.body.tokens.map((t) => [toHex(t.body.serial), t.body.value]));
      for (const t of receipt.body.tokens) {
        if (t.outcome === 'refused') world.violated('no-forgery', `the node refused a token device ${h.device} held from genuine ODWs`);
        if (t.outcome !== 'double-spend') continue;
        recorder.count('deposits.double-spend');
        // The copy deposited second is worth nothing: an honest holder's loss (the bank credits each serial once).
        if (party.attack === null && !h.attacker) lost += value.get(toHex(t.serial)) ?? 0n;
      }
      recorder.loss(lost);
      if (out.doubleSpent > 0) await pollFindings();
    }

    /** Settles online the transaction an ODW's log holds (the node's settlement routes). */
    async function settle(party: Party): Promise<void> {
      const h = party.holder;
      const s = await status(party.el);
      if (s.pending === undefined) return;
      actions++;
      const { report } = await committed(party.el, (requestId) => party.el.se.call('settleReport', {}, { requestId }));
      const answer = await node.request(h.user, 'POST', '/v1/opera/settle', { device: h.device, report: toBase64url(encodeCbor(report)) }, { idempotencyKey: `sim-settle-${toHex(report.body.nonce)}` });
      if (answer.status !== 200) {
        recorder.count(`refused.node.settle.${errorCode(answer.body)}`);
        if (party.attack === null && !h.attacker) world.violated('settlement', `the node refused an honest settlement report of device ${h.device}: ${answer.status} ${JSON.stringify(answer.body)}`);
        return;
      }
      const settled = settledCodec.decode(decodeCbor(fromBase64url((answer.body as { settled: string }).settled)), 'settled');
      const out = await committed(party.el, (requestId) => party.el.se.call('settleTake', { settled }, { requestId }));
      recorder.count(`settled.${out.outcome}`);
      if (out.outcome === 'paid' && s.pending.mode === 'receive') recorder.count('payments.credited');
      await pollFindings();
    }

    /** The findings the node recorded since the last look, each judged. */
    let findingsSeen = 0;
    async function pollFindings(): Promise<void> {
      const answer = await node.request('operator', 'GET', '/v1/opera/operator/findings');
      const findings = (answer.body as { findings: Array<{ kind: string; device: string; first: string | null }> }).findings.slice().reverse();
      for (const f of findings.slice(findingsSeen)) judge(f);
      findingsSeen = findings.length;
    }

    /**
     * A finding: one that revokes (a token paid twice, named by its escrow tags; a denied release)
     * must name an attacker, whose pending attacks it detects and attributes. A double spend found
     * at deposit names the two depositors, who may be honest payees of a clone: it detects, and
     * names the attacker only when one of them is its device.
     */
    function judge(f: { kind: string; device: string; first: string | null }): void {
      recorder.count(`findings.${f.kind}`);
      const named = holders.find((h) => h.device === f.device);
      if (f.kind === 'paid-twice' || f.kind === 'release-denied') {
        if (named === undefined || !named.attacker) world.violated('attribution', `the node revoked ${f.device} for ${f.kind}, which is no attacker`);
        named.revoked = true;
        for (const a of recorder.attacks) {
          if (a.device !== f.device || (a.outcome !== 'pending' && a.attributed)) continue;
          if (a.outcome === 'pending') {
            a.outcome = 'detected';
            a.detectedAt = clock.now();
          }
          if (a.outcome === 'detected') a.attributed = true;
        }
        return;
      }
      if (f.kind !== 'double-spend') return;
      for (const a of recorder.attacks) {
        if (a.outcome !== 'pending' || !spentAttacks.has(a)) continue;
        if (a.device !== f.device && a.device !== f.first) continue;
        a.outcome = 'detected';
        a.detectedAt = clock.now();
      }
    }

    /** The most a payee asks of a payer holding `balance` (at least 1: a payer holding nothing is refused in Stage 2). */
    function spendable(balance: bigint): bigint {
      return balance < 1n ? 1n : balance < PAYMENT_MAX ? balance : PAYMENT_MAX;
    }

    /** The next exchange of a party: with the partner its log waits for, or a new payment to someone free. */
    async function pay(p: Party): Promise<void> {
      const s = await status(p.el);
      if (s.pending !== undefined) {
        if (s.pending.settling === 1 || p.atBank || p.partner === null) return;
        const partner = p.partner;
        const [payer, payee] = s.pending.mode === 'send' ? [p, partner] : [partner, p];
        // The payee asks an amount too: if Stage 1 ends the old transaction instead of resuming it, a new payment follows.
        await exchange(payer, payee, random.bigint(1n, spendable((await status(payer.el)).balance)));
        return;
      }
      p.atBank = false;
      if (s.balance === 0n) return;
      const free = [];
      for (const h of holders) if (h !== p.holder && (await status(h.el)).pending === undefined) free.push(partyOf(h));
      if (free.length === 0) return;
      const to = random.pick(free);
      await exchange(p, to, random.bigint(1n, spendable(s.balance)));
    }

    async function attack(h: Holder): Promise<void> {
      actions++;
      const kind = random.pick(['clone', 'rollback', 'replay', 'alter', 'forge', 'relay'] as const);
      if (kind === 'relay') {
        // Between two honest holders whose logs are free: the payer pays the payee it chose, and the relayer hands its messages to a third ODW too.
        const free: Holder[] = [];
        for (const x of holders) if (x !== h && (await status(x.el)).pending === undefined) free.push(x);
        const payers: Holder[] = [];
        for (const x of free) if (!x.attacker && (await status(x.el)).balance > 0n) payers.push(x);
        if (payers.length === 0) return;
        const payer = random.pick(payers);
        const payees = free.filter((x) => x !== payer);
        if (payees.length === 0) return;
        const payee = random.pick(payees);
        const others = free.filter((x) => x !== payer && x !== payee);
        const to = others.length === 0 || random.chance(0.5) ? h : random.pick(others);
        if ((await status(to.el)).pending !== undefined) return;
        await exchange(partyOf(payer), partyOf(payee), random.bigint(1n, spendable((await status(payer.el)).balance)), null, { relayer: h, to: partyOf(to) });
      } else if (kind === 'clone') {
        const el = await h.el.clone();
        const s = await status(el);
        const a = recorder.attack('clone', h.device, holding(s).held);
        duplicatingAttacks++;
        recorder.count('attacks.clone');
        extras.push({ party: { holder: h, el, attack: a, partner: null, atBank: false }, left: 1 + random.below(ATTACK_PAYMENTS_MAX) });
      } else if (kind === 'rollback') {
        if (h.past === null) {
          h.past = { storage: h.el.snapshot(), whole: await h.el.clone() };
          return;
        }
        const { storage, whole } = h.past;
        h.past = null;
        // The old sealed state alone, under the device's counter: the host must refuse it.
        const current = h.el.snapshot();
        const before = await status(h.el);
        const refused = await h.el.restore(storage);
        recorder.count('attacks.rollback-storage');
        const storageAttack = recorder.attack('rollback-storage', h.device, 0n);
        if (refused === 'ROLLBACK_DETECTED') storageAttack.outcome = 'refused-offline';
        else if (refused === null) storageAttack.outcome = 'harmless';
        else world.violated('rollback-refused', `an old state put back on device ${h.device} was met with ${refused}, not ROLLBACK_DETECTED`);
        const back = await h.el.restore(current);
        if (back !== null) world.violated('rollback-refused', `putting back device ${h.device}'s own current state failed: ${back}`);
        if (refused === null && (await status(h.el)).balance !== before.balance) world.violated('rollback-refused', `device ${h.device} changed across a rollback`);
        // The whole old device (state and counter) pays again while the current one goes on.
        const a = recorder.attack('rollback', h.device, holding(await status(whole)).held);
        duplicatingAttacks++;
        recorder.count('attacks.rollback');
        extras.push({ party: { holder: h, el: whole, attack: a, partner: null, atBank: false }, left: 1 + random.below(ATTACK_PAYMENTS_MAX) });
      } else if (kind === 'replay') {
        recorder.count('attacks.replay');
        // A Stage 1 offer from an earlier exchange, replayed on a new link: its proof is bound to the old handshake.
        const old = captured.length === 0 ? null : random.pick(captured);
        const victims = holders.filter((x) => x !== h);
        if (old !== null && victims.length > 0) {
          const victim = partyOf(random.pick(victims));
          await victim.el.se.call('mount', { handshakeHash: random.bytes(32), role: 'payee', expect: 1n });
          await mustRefuse(victim, () => victim.el.se.call('meet', { offer: old.offer }), 'a replayed Stage 1 offer');
          if (old.box !== null) await mustRefuse(victim, () => victim.el.se.call('step', { box: old.box as Uint8Array }), 'a replayed chain message');
          recorder.attack('replay', h.device, 0n).outcome = 'refused-offline';
        }
        // A deposit the node already credited, sent again under a new idempotency key: credited once.
        const again = deposited.length === 0 ? null : random.pick(deposited);
        if (again !== null) {
          const online = (await node.audit()).online;
          await node.request(h.user, 'POST', '/v1/opera/deposit', { device: h.device, request: toBase64url(encodeCbor(again)) });
          if ((await node.audit()).online !== online) world.violated('credited-once', `a deposit replayed by ${h.device} was credited again`);
          recorder.attack('replay', h.device, 0n).outcome = 'refused-offline';
        }
      } else if (kind === 'alter') {
        const victims = holders.filter((x) => x !== h && x.el !== h.el);
        const s = await status(h.el);
        if (victims.length === 0 || s.pending !== undefined || s.balance === 0n) return;
        const to = random.pick(victims);
        if ((await status(to.el)).pending !== undefined) return;
        recorder.count('attacks.alter');
        const a = recorder.attack('alter', h.device, 0n);
        await exchange(partyOf(h), partyOf(to), random.bigint(1n, spendable(s.balance)), a);
        // Cut before the first token went out: nothing was altered.
        if (a.outcome === 'pending') a.outcome = 'harmless';
      } else {
        // The ODW's key taken out of the device: a deposit of a token whose value was raised after the
        // bank signed it, and of a token the attacker signed itself. The bank checks its own signature.
        if (h.revoked) return;
        recorder.count('attacks.forge');
        recorder.attack('forge', h.device, 0n).outcome = 'refused-offline';
        const key = h.el.extractKey(TA_KEY_LABEL);
        const copy = await h.el.clone();
        const s = await status(copy);
        const forged = [signToken(key, { serial: random.bytes(16), value: 1n + random.bigint(0n, 999n), currency: bankParams.body.currency, issued: clock.now() })];
        if (s.balance > 0n && s.deposit === undefined) {
          const real = (await copy.se.call('depositRequest', {})).request.body.tokens[0];
          if (real !== undefined) forged.push({ ...real, body: { ...real.body, value: real.body.value + 1n + random.bigint(0n, 99n) } });
        }
        await copy.close();
        const request = signed(depositRequestBodyCodec, key, DEPOSIT_REQUEST_TAG, { nonce: random.bytes(NONCE_BYTES), tokens: forged });
        const online = (await node.audit()).online;
        const answer = await node.request(h.user, 'POST', '/v1/opera/deposit', { device: h.device, request: toBase64url(encodeCbor(request)) });
        if (answer.status === 200) {
          const receipt = depositReceiptCodec.decode(decodeCbor(fromBase64url((answer.body as { receipt: string }).receipt)), 'receipt');
          if (receipt.body.tokens.some((t) => t.outcome !== 'refused')) world.violated('no-forgery', `the node took a forged token deposited by ${h.device}`);
        } else recorder.count(`refused.node.forged.${errorCode(answer.body)}`);
        if ((await node.audit()).online !== online) world.violated('no-forgery', `a forged deposit by ${h.device} was credited`);
      }
    }

    world.invariant('conservation', async () => {
      const audit = await node.audit();
      const float = audit.floats.get(OPERA_FLOAT_ACCOUNT) ?? 0n;
      if (!audit.balanced) return "the node's audit does not balance";
      if (audit.settlement !== 0n) return `${audit.settlement} sits in settlement between steps`;
      if (audit.issued !== audit.online + float) return `issued ${audit.issued} ≠ online ${audit.online} + float ${float}`;
      const exposure = ((await node.request('operator', 'GET', '/v1/audit')).body as { exposure: Array<{ scheme: string; difference: string; balanced: boolean }> }).exposure.find((e) => e.scheme === OPERA_SCHEME);
      if (exposure === undefined || !exposure.balanced || exposure.difference !== '0.00') return `float:opera is not the tokens still issued: ${JSON.stringify(exposure)}`;
      let held = 0n;
      let slack = 0n;
      let pending = 0;
      for (const p of [...holders.map(partyOf), ...extras.map((x) => x.party)]) {
        const s = await status(p.el);
        const one = holding(s);
        held += one.held;
        slack += one.slack;
        if (s.pending !== undefined) pending++;
      }
      if (params.sabotage === 'forget-payment' && paymentsMade > 0) held -= lastPayment;
      const created = held - float;
      if (created < 0n) return `value destroyed offline: ODWs hold ${held} < float ${float}`;
      if (duplicatingAttacks === 0 && created > slack) return `value created offline (${created}) with no attack made, beyond the ${slack} payees may hold of released transactions`;
      if (duplicatingAttacks === 0 && pending === 0 && created !== 0n) return `value created offline (${created}) with no attack and no log pending`;
      const bound = recorder.attacks.reduce((sum, a) => sum + a.bound, 0n);
      if (created > bound + slack) return `value created offline (${created}) above the attacks' bound (${bound}) and the released transactions (${slack})`;
      if (lost > bound) return `honest holders lost ${lost} to double spends, above the attacks' bound ${bound}`;
      return null;
    });

    // The run: random steps until the payments are made.
    let steps = 0;
    while (paymentsMade < params.payments) {
      if (++steps > STEPS_PER_PAYMENT_MAX * params.payments) world.violated('progress', `${paymentsMade} of ${params.payments} payments after ${steps} steps: the population is stuck`);
      clock.advance(1 + random.below(10_000));
      const asked = actions;
      const roll = random.below(100);
      const h = random.pick(holders);
      if (random.chance(0.02)) h.online = !h.online;
      if (roll < 55) {
        await pay(partyOf(h));
      } else if (roll < 70) {
        if (h.online && !h.revoked) await settle(partyOf(h));
      } else if (roll < 85) {
        if (h.online && !h.revoked) {
          const s = await status(h.el);
          if (s.balance < CHARGE_MIN && s.pending === undefined) await charge(h, random.bigint(CHARGE_MIN, CHARGE_MAX));
          else if (s.balance > 3n * CHARGE_MAX) await deposit(partyOf(h));
        }
      } else if (roll < 92) {
        if (attackersWanted > 0) await attack(holders[random.below(attackersWanted)] as Holder);
      } else {
        const x = extras.find((e) => e.left > 0);
        if (x !== undefined) {
          x.left--;
          await pay(x.party);
        }
      }
      if (random.chance(params.faults / 50)) {
        recorder.count('faults.node-restart');
        await node.restart();
        actions++;
      }
      if (actions !== asked) await world.step();
    }

    // The end: every pair whose logs wait meets again or settles online, every holder deposits every
    // token; the clones try to cash out too. Every double spend a payee took must then be found.
    for (let round = 0; round < 3; round++) {
      for (const p of [...holders.map(partyOf), ...extras.map((x) => x.party)]) {
        if ((await status(p.el)).pending !== undefined && !p.holder.revoked) await settle(p);
      }
    }
    for (const h of holders) {
      const s = await status(h.el);
      if (s.pending === undefined || h.revoked) continue;
      // A payer that released PTK_A waits for its payee's report (`pending`): a revoked payee never sends one.
      if (partyOf(h).partner?.holder.revoked === true) {
        recorder.count('settled.waiting-for-revoked');
        continue;
      }
      world.violated('settlement', `device ${h.device} still holds a transaction after settling online three times`);
    }
    for (const p of [...holders.map(partyOf), ...extras.map((x) => x.party)]) {
      if (p.holder.revoked) continue;
      for (let k = 0; k < 64 && (await status(p.el)).balance > 0n; k++) {
        const before = (await status(p.el)).balance;
        await deposit(p);
        if ((await status(p.el)).balance === before) break;
      }
    }
    await pollFindings();
    await world.step(true);
    for (const a of recorder.attacks) {
      if (a.kind !== 'clone' && a.kind !== 'rollback') continue;
      if (a.outcome === 'detected') continue;
      if (spentAttacks.has(a)) world.violated('double-spend-detected', `a ${a.kind} of device ${a.device} paid tokens a payee took, and no deposit found the double spend`);
      a.outcome = 'harmless';
    }
  },
};
