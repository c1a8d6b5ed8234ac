/**
 * OPS in `tally sim`: a population of account holders, each with an OPS trusted app on an
 * in-process secure element, and payees without one who claim online; they deposit, pay each other
 * offline over an in-memory network, collect, claim and sync with the real node, while secure
 * elements crash at commit points, messages are dropped, duplicated and delayed, syncs are cut
 * before the ack and the node restarts. Attackers clone their secure element (OPS §2.2: a corrupted
 * client copies its TA), roll it back to an old state, replay payments to payees and to the node,
 * forge payments, and relay honest devices' requests and payments to parties they were not meant
 * for (OPS Figure 7: the payee's signed request, P.receiver). After each step: the audit balances;
 * Σ TA balances + payments not yet credited − float:ops (value created offline) is never below
 * zero, is zero until an attack duplicates a TA, and never above what the attacks' holding limits
 * bound; every payment is credited at most once, and only to the receiver the payer's TA bound it
 * to; a fraud case names only an attacker. At the end every double spend was refused offline or
 * detected at settlement and attributed to the attacker's device.
 */
import { equalBytes, fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import type { Signer } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { CRASH_POINTS } from '../../secure-element/secure-element.ts';
import { simRelayed, type SimAttack, type SimElement, type SimNode, type SimPlugin, type SimSnapshot, type SimWorld } from '../../sim/sim/plugin.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { depositConfirmationCodec, encodePayment, paymentDigest, paymentSigned, PAYMENT_TAG, syncAckCodec, type Payment } from './messages.ts';
import { OPS_FLOAT_ACCOUNT, opsNodePart } from './node.ts';
import { checkMeantPayee, REQUEST_NONCE_BYTES, signRequest, verifyRequest } from './request.ts';
import { opsTrustedApp, TA_KEY_LABEL } from './trusted-app.ts';

type Commands = typeof opsTrustedApp.commands;
type Element = SimElement<Commands>;

/** The TA build the simulated OEM attests and the node allows. */
const SIM_MEASUREMENT = sha256(utf8('tally ops trusted app, sim build'));
/** What each holder's account is minted at the start, in holding limits. */
const MINTED_LIMITS = 20n;
/** One payee without a TA for this many holders. */
const HOLDERS_PER_PLAIN = 5;
/** The largest payment, as a share of the holding limit (1/n). */
const PAYMENT_SHARE = 10n;
/** How many payments a clone or a rolled-back TA attempts. */
const ATTACK_PAYMENTS_MAX = 3;

/** An account holder with an OPS device. */
interface Holder {
  readonly index: number;
  readonly user: Signer;
  /** The user's key id (hex) and certificate: what signs and names the holder's payment requests. */
  readonly userKeyId: string;
  readonly userCertificate: Uint8Array;
  readonly account: string;
  readonly device: string;
  readonly certificate: Uint8Array;
  el: Element;
  /** The balance the simulation expects the TA to hold. */
  balance: bigint;
  readonly attacker: boolean;
  online: boolean;
  /** A copy of the TA made earlier, which an attacker may later bring back (state and counter). */
  past: { storage: SimSnapshot; whole: Element } | null;
  /** Found by the node: its certificate is revoked. */
  revoked: boolean;
}

/** A payee without a TA: claims online what it is paid. */
interface Plain {
  readonly user: Signer;
  readonly keyId: string;
  readonly certificate: Uint8Array;
}

/** A payment made by a TA, until some payee is credited with it. */
interface Made {
  readonly payment: Payment;
  readonly bytes: Uint8Array;
  readonly from: Holder;
  readonly to: { holder: Holder } | { plain: Plain };
  /** The extra secure element that made it (a clone), if not the holder's own. */
  readonly by: Element | null;
  credited: boolean;
  /** The attack it belongs to, for the double-spend check at the end. */
  readonly attack: SimAttack | null;
  refused: string | null;
}

/** The payment in a message, and where it goes. */
interface Message {
  readonly made: Made;
  /** A replayed copy or a forged payment: what the attacker sends instead. */
  readonly forged?: Payment | undefined;
}

function isCrash(e: unknown): boolean {
  return e instanceof Error && e.name === 'SimulatedCrash';
}

function refusal(e: unknown): string | null {
  if (isTallyError(e, 'SE_REJECTED')) return String(e.details.reason);
  return null;
}

function errorCode(body: unknown): string {
  const error = (body as { error?: { code?: string } } | null)?.error;
  return error?.code ?? 'UNKNOWN';
}

/** The OPS simulation. */
export const opsSim: SimPlugin = {
  scheme: 'ops',
  async run(world: SimWorld) {
    const { params, random, clock, recorder } = world;
    const node: SimNode = await world.openNode(opsNodePart);
    const limit = node.deviceLimits.holdingLimitMinor;
    const oem = await node.enrolOem('ops', SIM_MEASUREMENT);
    const root = encodeCertificate(node.certificates.root);
    const intermediary = encodeCertificate(node.certificates.intermediary);
    const issuerNode = encodeCertificate(node.certificates.issuerNode);
    const attackersWanted = Math.round(params.devices * params.attackers);

    // The population: holders with a TA (the first `attackersWanted` attack), payees without one.
    const holders: Holder[] = [];
    for (let index = 0; index < params.devices; index++) {
      const user = await node.registerUser();
      const el = await world.element(opsTrustedApp);
      const init = await el.se.call('init', { root, owner: fromHex(user.keyId) });
      const { keyId: device, certificate } = await node.registerDevice(user.signer, oem, { scheme: 'ops', publicKey: init.publicKey, proof: init.proof, model: 'Sim SE', measurement: SIM_MEASUREMENT });
      await el.se.call('certInit', { certificate, intermediary, issuerNode });
      await node.mint(user.account, MINTED_LIMITS * limit);
      holders.push({ index, user: user.signer, userKeyId: user.keyId, userCertificate: user.certificate, account: user.account, device, certificate, el, balance: 0n, attacker: index < attackersWanted, online: true, past: null, revoked: false });
    }
    const plains: Plain[] = [];
    for (let k = 0; k < Math.max(1, Math.ceil(params.devices / HOLDERS_PER_PLAIN)); k++) {
      const user = await node.registerUser();
      plains.push({ user: user.signer, keyId: user.keyId, certificate: user.certificate });
    }

    const made: Made[] = [];
    const credited = new Set<string>();
    /** (payee, sender, index) of every collect: what a payee's log refuses again. */
    const taken = new Set<string>();
    const net = world.network<Message>();
    /** Messages dropped on the way: the payer's wallet sends them again later. */
    const resend: Message[] = [];
    /** Clones and rolled-back copies in use, with the attack each belongs to. */
    const extras: Array<{ el: Element; holder: Holder; attack: SimAttack; left: number }> = [];
    let duplicatingAttacks = 0;
    let paymentsMade = 0;
    let lost = 0n;

    /** A committing call, which may crash at a commit point; then the host reopens and the same request runs again. */
    async function committed<T>(el: Element, run: (requestId: Uint8Array) => Promise<T>): Promise<T> {
      const requestId = random.bytes(16);
      if (random.chance(params.faults)) {
        el.crashAt(random.pick(CRASH_POINTS));
        try {
          return await run(requestId);
        } catch (e) {
          if (!isCrash(e)) {
            el.crashAt(null);
            throw e;
          }
          recorder.count('faults.se-crash');
          await el.reopen();
        }
      }
      return run(requestId);
    }

    async function deposit(h: Holder, amount: bigint): Promise<void> {
      const answer = await node.request(h.user, 'POST', '/v1/ops/deposits', { device: h.device, amount: node.amount(amount) });
      if (answer.status !== 200) {
        recorder.count(`refused.node.${errorCode(answer.body)}`);
        return;
      }
      const confirmation = depositConfirmationCodec.decode(decodeCbor(fromBase64url((answer.body as { confirmation: string }).confirmation)));
      await committed(h.el, (requestId) => h.el.se.call('deposit', { confirmation }, { requestId }));
      h.balance += amount;
      recorder.count('deposits');
    }

    async function withdraw(h: Holder, amount: bigint): Promise<void> {
      if (h.attacker) await pollFraud();
      if (h.revoked) return;
      const confirmation = await committed(h.el, (requestId) => h.el.se.call('withdraw', { amount }, { requestId }));
      h.balance -= amount;
      const answer = await node.request(h.user, 'POST', '/v1/ops/withdrawals', { device: h.device, confirmation: toBase64url(encodeCbor({ ...confirmation })) });
      if (answer.status !== 200) world.violated('conservation', `a withdrawal of ${amount} from device ${h.device} was taken from its TA and refused by the node: ${answer.status} ${JSON.stringify(answer.body)}`);
      recorder.count('withdrawals');
    }

    /** The certificate a payment to `to` names as P.receiver: a holder's device, a plain payee's user certificate. */
    function receiverOf(to: Made['to']): Uint8Array {
      return 'holder' in to ? to.holder.certificate : to.plain.certificate;
    }

    /** Who `to` is in the relay's books: a holder's device, a plain payee's user key id. */
    function partyOf(to: Made['to']): string {
      return 'holder' in to ? to.holder.device : to.plain.keyId;
    }

    /** What a payee can still take: its holding limit less its balance and what is travelling to it. */
    function room(h: Holder): bigint {
      let travelling = 0n;
      for (const m of made) if (!m.credited && m.refused === null && 'holder' in m.to && m.to.holder === h) travelling += m.payment.amount;
      return limit - h.balance - travelling;
    }

    /** The most `balance` may pay `to`: a tenth of the limit, and what a payee with a TA has room for. */
    function payable(balance: bigint, to: Made['to']): bigint {
      return [balance, limit / PAYMENT_SHARE, ...('holder' in to ? [room(to.holder)] : [])].reduce((a, b) => (a < b ? a : b));
    }

    /** A payment by `el` for `payer`: to a random payee, or to `asked.to` (the payee whose request the payer took). */
    async function pay(payer: Holder, el: Element, attack: SimAttack | null, asked: { to: Made['to']; amount: bigint } | null = null): Promise<boolean> {
      let to: Made['to'];
      let amount: bigint;
      if (asked === null) {
        const toPlain = random.chance(0.2);
        const candidates = holders.filter((h) => h !== payer && room(h) > 0n);
        if (!toPlain && candidates.length === 0) return false;
        to = toPlain ? { plain: random.pick(plains) } : { holder: random.pick(candidates) };
        const balance = el === payer.el ? payer.balance : (await el.se.call('status', {})).balance;
        const most = payable(balance, to);
        if (most < 1n) return false;
        amount = random.bigint(1n, most);
      } else {
        ({ to, amount } = asked);
      }
      const receiver = receiverOf(to);
      let payment: Payment;
      try {
        payment = await committed(el, (requestId) => el.se.call('pay', { amount, receiver }, { requestId }));
      } catch (e) {
        const code = refusal(e);
        if (code === null) throw e;
        recorder.count(`refused.pay.${code}`);
        return false;
      }
      // OPS Pay step 4: P.receiver is the receiver the payer asked for, and the TA signs it in.
      if (!equalBytes(payment.receiver, receiver)) world.violated('payee-bound', `device ${payer.device}'s TA made a payment to another receiver than the one it was asked to pay`);
      if (el === payer.el) payer.balance -= amount;
      const bytes = encodePayment(payment);
      const entry: Made = { payment, bytes, from: payer, to, by: el === payer.el ? null : el, credited: false, attack, refused: null };
      made.push(entry);
      paymentsMade++;
      recorder.count('payments');
      const faults = net.send({ made: entry }, bytes.length);
      if (faults.includes('dropped')) resend.push({ made: entry });
      return true;
    }

    /** The payee's side of one message: Collect into its TA, or Claim at the node. */
    async function deliver(message: Message): Promise<void> {
      const { made: entry } = message;
      const payment = message.forged ?? entry.payment;
      const key = toHex(paymentDigest(payment));
      if ('plain' in entry.to) {
        const answer = await node.request(entry.to.plain.user, 'POST', '/v1/ops/claims', { payment: toBase64url(encodePayment(payment)) });
        if (answer.status === 200) {
          if (message.forged !== undefined) world.violated('no-forgery', `the node credited a forged or replayed payment ${key}`);
          credit(entry, key);
          recorder.count('claims');
        } else {
          const code = errorCode(answer.body);
          recorder.count(`refused.claim.${code}`);
          if (code === 'DOUBLE_SPEND' || code === 'OFFLINE_LIMIT') await pollFraud();
          if (code === 'PAYMENT_REPLAYED' && message.forged === undefined && !entry.credited) world.violated('credited-once', `the node refused a payment no one was credited with as replayed: ${key}`);
          if (message.forged === undefined && !entry.credited && code !== 'PAYMENT_REPLAYED') {
            entry.refused = code;
            if (entry.attack !== null && code === 'CERT_REVOKED') recorder.count('attacks.refused-offline-payments');
          }
        }
        return;
      }
      const payee = entry.to.holder;
      try {
        const out = await committed(payee.el, (requestId) => payee.el.se.call('collect', { payment }, { requestId }));
        if (message.forged !== undefined) world.violated('no-forgery', `a TA collected a forged or replayed payment ${key}`);
        payee.balance += payment.amount;
        if (out.balance !== payee.balance) world.violated('se-balance', `device ${payee.device} holds ${out.balance} after a collect, expected ${payee.balance}`);
        credit(entry, key);
        taken.add(`${payee.device}|${entry.from.device}|${payment.index}`);
        recorder.count('collects');
      } catch (e) {
        const code = refusal(e);
        if (code === null) throw e;
        recorder.count(`refused.collect.${code}`);
        if (message.forged !== undefined) return;
        if (code === 'PAYMENT_REPLAYED') {
          // T.inPaymentLog holds (sender, index): a second payment under an index this payee took is a double spend refused offline.
          if (!entry.credited && !taken.has(`${payee.device}|${entry.from.device}|${payment.index}`)) world.violated('credited-once', `a TA refused a payment no one was credited with as replayed: ${key}`);
          if (!entry.credited) {
            entry.refused = code;
            if (entry.attack !== null) recorder.count('attacks.refused-offline-payments');
          }
        } else if (code === 'LOG_FULL') {
          resend.push(message);
        } else if (!entry.credited) {
          entry.refused = code;
        }
      }
    }

    function credit(entry: Made, key: string): void {
      if (credited.has(key) || entry.credited) world.violated('credited-once', `payment ${key} credited twice`);
      credited.add(key);
      entry.credited = true;
      // A payment of a duplicated TA that a payee took: value the float does not cover, lost to the bank.
      if (entry.attack !== null) {
        lost += entry.payment.amount;
        recorder.loss(lost);
      }
    }

    async function sync(h: Holder, interrupted: boolean): Promise<void> {
      const report = await h.el.se.call('report', {});
      const answer = await node.request(h.user, 'POST', '/v1/ops/sync', { device: h.device, report: toBase64url(encodeCbor({ body: { ...report.body }, signature: report.signature })) });
      if (answer.status !== 200) throw new Error(`sync of ${h.device}: ${answer.status} ${JSON.stringify(answer.body)}`);
      const body = answer.body as { ack: string; crl: string; fraud: Array<{ device: string; kind: string; new?: boolean }> };
      recorder.count('syncs');
      if (body.fraud.length > 0) await pollFraud();
      if (interrupted) {
        // The answer never reaches the device: it reports the same entries again next time.
        recorder.count('faults.sync-interrupted');
        return;
      }
      const ack = syncAckCodec.decode(decodeCbor(fromBase64url(body.ack)));
      await committed(h.el, (requestId) => h.el.se.call('syncAck', { ack, crl: fromBase64url(body.crl) }, { requestId }));
    }

    /** The fraud cases the node opened since the last look, each judged. */
    let casesSeen = 0;
    async function pollFraud(): Promise<void> {
      const answer = await node.request('operator', 'GET', '/v1/ops/fraud');
      const cases = (answer.body as { cases: Array<{ device: string; kind: string }> }).cases;
      for (const c of cases.slice(casesSeen)) judge(c.device, c.kind);
      casesSeen = cases.length;
    }

    /** A fraud case the node opened: it must name an attacker, and it detects that attacker's pending attacks. */
    function judge(device: string, kind: string): void {
      const culprit = holders.find((h) => h.device === device);
      if (culprit === undefined || !culprit.attacker) world.violated('attribution', `the node opened a ${kind} case against ${device}, which is no attacker`);
      recorder.count(`fraud.${kind}`);
      culprit.revoked = true;
      for (const attack of recorder.attacks) {
        if (attack.device !== device || attack.outcome !== 'pending') continue;
        attack.outcome = 'detected';
        attack.attributed = true;
        attack.detectedAt = clock.now();
      }
    }

    async function attack(h: Holder): Promise<void> {
      const kind = random.pick(['clone', 'rollback', 'replay', 'forge', 'extracted-key', 'relay'] as const);
      if (kind === 'relay') {
        await (random.chance(0.5) ? relayRequest(h) : relayPayment(h));
      } else if (kind === 'clone') {
        if (h.revoked) return;
        const el = await h.el.clone();
        const balance = (await el.se.call('status', {})).balance;
        const a = recorder.attack('clone', h.device, balance);
        duplicatingAttacks++;
        extras.push({ el, holder: h, attack: a, left: 1 + random.below(ATTACK_PAYMENTS_MAX) });
        recorder.count('attacks.clone');
      } else if (kind === 'rollback') {
        if (h.revoked) return;
        if (h.past === null) {
          // First the copies to come back to later: the storage alone, and the state with its counter, saved off the device.
          h.past = { storage: h.el.snapshot(), whole: await h.el.clone() };
          return;
        }
        const { storage, whole } = h.past;
        h.past = null;
        // The old storage put back under the device's counter: the host refuses to run on it.
        const current = h.el.snapshot();
        const refused = await h.el.restore(storage);
        recorder.count('attacks.rollback-storage');
        const storageAttack = recorder.attack('rollback-storage', h.device, 0n);
        if (refused === 'ROLLBACK_DETECTED') storageAttack.outcome = 'refused-offline';
        else if (refused === null) storageAttack.outcome = 'harmless';
        else world.violated('rollback-refused', `an old state put back on device ${h.device} was met with ${refused}, not ROLLBACK_DETECTED`);
        const back = await h.el.restore(current);
        if (back !== null) world.violated('rollback-refused', `putting back device ${h.device}'s own current state failed: ${back}`);
        if ((await h.el.se.call('status', {})).balance !== h.balance) world.violated('rollback-refused', `device ${h.device} changed balance across a refused rollback`);
        // The whole old device (state and counter) paying again, while the current one goes on.
        const pastBalance = (await whole.se.call('status', {})).balance;
        const a = recorder.attack('rollback', h.device, pastBalance);
        duplicatingAttacks++;
        recorder.count('attacks.rollback');
        extras.push({ el: whole, holder: h, attack: a, left: 1 + random.below(ATTACK_PAYMENTS_MAX) });
      } else if (kind === 'extracted-key') {
        // The TA's key taken out of the device: payments signed outside the TA, under an index it has
        // not used yet or is about to use, each valid offline; settlement must name the device.
        if (h.revoked) return;
        const signer = h.el.extractKey(TA_KEY_LABEL);
        const index = (await h.el.se.call('status', {})).j + 1n + BigInt(random.below(3));
        const candidates = holders.filter((x) => x !== h && room(x) > limit / PAYMENT_SHARE);
        const to = candidates.length === 0 || random.chance(0.3) ? { plain: random.pick(plains) } : { holder: random.pick(candidates) };
        const amount = random.bigint(1n, limit / PAYMENT_SHARE);
        const body = { amount, sender: h.certificate, receiver: receiverOf(to), index };
        const payment: Payment = { ...body, signature: signRecord(signer, PAYMENT_TAG, paymentSigned(body)) };
        const a = recorder.attack('extracted-key', h.device, amount);
        duplicatingAttacks++;
        recorder.count('attacks.extracted-key');
        const bytes = encodePayment(payment);
        const entry: Made = { payment, bytes, from: h, to, by: null, credited: false, attack: a, refused: null };
        made.push(entry);
        if (net.send({ made: entry }, bytes.length).includes('dropped')) resend.push({ made: entry });
      } else if (kind === 'replay') {
        const done = made.filter((m) => m.credited);
        if (done.length === 0) return;
        const old = random.pick(done);
        recorder.attack('replay', h.device, 0n).outcome = 'refused-offline';
        recorder.count('attacks.replay');
        await deliver({ made: old, forged: old.payment });
      } else {
        const done = made.filter((m) => m.payment.amount > 1n);
        if (done.length === 0) return;
        const old = random.pick(done);
        recorder.attack('forge', h.device, 0n).outcome = 'refused-offline';
        recorder.count('attacks.forge');
        await deliver({ made: old, forged: { ...old.payment, amount: old.payment.amount + 1n + random.bigint(0n, 99n) } });
      }
    }

    /**
     * A relayer between two honest devices hands an honest payer a payee's signed request (OPS
     * Figure 7's RequestPayment, request.ts): half the time the request of the payee the payer
     * means to pay (it pays, as it meant), else another payee's, which the payer's check of the
     * request's signer refuses.
     */
    async function relayRequest(h: Holder): Promise<void> {
      const payers = holders.filter((x) => x !== h && !x.attacker && x.balance > 0n);
      if (payers.length === 0) return;
      const payer = random.pick(payers);
      const payees: Array<Made['to']> = [...holders.filter((x) => x !== h && x !== payer).map((holder) => ({ holder })), ...plains.map((plain) => ({ plain }))];
      const meant = random.pick(payees);
      const others = payees.filter((t) => t !== meant);
      const from = others.length === 0 || random.chance(0.5) ? meant : random.pick(others);
      const most = payable(payer.balance, from);
      if (most < 1n) return;
      const amount = random.bigint(1n, most);
      const request = signRequest('holder' in from ? from.holder.user : from.plain.user, {
        amount,
        receiver: receiverOf(from),
        ...('holder' in from ? { payee: from.holder.userCertificate } : {}),
        nonce: random.bytes(REQUEST_NONCE_BYTES),
        created: clock.now(),
      });
      let refused: string | null = null;
      try {
        const verified = verifyRequest({ provider: world.provider, request, trustAnchors: [node.certificates.root], intermediaries: [node.certificates.intermediary], now: clock.now() });
        checkMeantPayee(verified, 'holder' in meant ? meant.holder.userKeyId : meant.plain.keyId);
      } catch (e) {
        if (!isTallyError(e, 'PAYMENT_INVALID')) throw e;
        refused = `PAYMENT_INVALID.${String(e.details.reason)}`;
      }
      if (refused === null) await pay(payer, payer.el, null, { to: from, amount });
      simRelayed(world, { relayer: h.device, variant: from === meant ? 'request-as-meant' : 'request-to-payer', meant: partyOf(meant), refusal: refused, credited: null });
    }

    /**
     * A relayer hands an honest payment on: to the payee it names (P.receiver; delivered as the
     * payer meant), to the relayer's own TA or to the node as the relayer's claim, or to another
     * holder's TA. Collect and the node's claim refuse a payment naming another receiver.
     */
    async function relayPayment(h: Holder): Promise<void> {
      const roll = random.below(4);
      // To its own payee, only a payment still on its way: one already taken is a replay, not a relay.
      const honest = made.filter((m) => m.attack === null && !('holder' in m.to && m.to.holder === h) && (roll !== 0 || (!m.credited && m.refused === null)));
      if (honest.length === 0) return;
      const entry = random.pick(honest);
      const meant = partyOf(entry.to);
      if (roll === 0) {
        await deliver({ made: entry });
        simRelayed(world, { relayer: h.device, variant: 'payment-as-meant', meant, refusal: null, credited: entry.credited ? meant : null });
        return;
      }
      if (roll === 1) {
        const answer = await node.request(h.user, 'POST', '/v1/ops/claims', { payment: toBase64url(entry.bytes) });
        simRelayed(world, { relayer: h.device, variant: 'payment-claimed-by-relayer', meant, refusal: answer.status === 200 ? null : errorCode(answer.body), credited: answer.status === 200 ? h.device : null });
        return;
      }
      const others = holders.filter((x) => x !== h && !('holder' in entry.to && entry.to.holder === x));
      const target = roll === 2 || others.length === 0 ? h : random.pick(others);
      let refused: string | null = null;
      try {
        await committed(target.el, (requestId) => target.el.se.call('collect', { payment: entry.payment }, { requestId }));
      } catch (e) {
        refused = refusal(e);
        if (refused === null) throw e;
      }
      simRelayed(world, { relayer: h.device, variant: target === h ? 'payment-to-relayer' : 'payment-to-other', meant, refusal: refused, credited: refused === null ? target.device : null });
    }

    // Invariants, after every step (or every checkEvery steps).
    world.invariant('conservation', async () => {
      const audit = await node.audit();
      if (!audit.balanced) return 'the node\'s audit does not balance';
      if (audit.settlement !== 0n) return `${audit.settlement} sits in settlement between steps`;
      if (audit.issued !== audit.online + (audit.floats.get(OPS_FLOAT_ACCOUNT) ?? 0n)) return `issued ${audit.issued} ≠ online ${audit.online} + float ${audit.floats.get(OPS_FLOAT_ACCOUNT) ?? 0n}`;
      let held = 0n;
      for (const h of holders) {
        const status = (await h.el.se.call('status', {})).balance;
        if (status !== h.balance) return `device ${h.index} holds ${status}, the simulation expected ${h.balance}`;
        held += status;
      }
      for (const x of extras) held += (await x.el.se.call('status', {})).balance;
      let travelling = 0n;
      for (const m of made) if (!m.credited) travelling += m.payment.amount;
      if (params.sabotage === 'forget-payment' && made.length > 0) travelling -= (made[made.length - 1] as Made).payment.amount;
      const created = held + travelling - (audit.floats.get(OPS_FLOAT_ACCOUNT) ?? 0n);
      if (created < 0n) return `value destroyed offline: TAs ${held} + unsettled ${travelling} < float ${audit.floats.get(OPS_FLOAT_ACCOUNT) ?? 0n}`;
      if (duplicatingAttacks === 0 && created !== 0n) return `value created offline (${created}) with no attack made`;
      const bound = recorder.attacks.reduce((sum, a) => sum + a.bound, 0n);
      if (created > bound) return `value created offline (${created}) above the attacks' bound (${bound})`;
      if (lost > created) return `attack payments credited (${lost}) above the value created offline (${created})`;
      return null;
    });

    // The run: random steps until the payments are made.
    while (paymentsMade < params.payments) {
      clock.advance(1 + random.below(10_000));
      const roll = random.below(100);
      const h = random.pick(holders);
      if (random.chance(0.02)) h.online = !h.online;
      if (roll < 50) {
        if (h.balance > 0n) await pay(h, h.el, null);
      } else if (roll < 70) {
        for (const m of net.due()) await deliver(m.payload);
        if (resend.length > 0 && random.chance(0.5)) {
          const again = resend.splice(0, resend.length);
          for (const m of again) {
            const faults = net.send(m, m.made.bytes.length);
            if (faults.includes('dropped')) resend.push(m);
          }
        }
      } else if (roll < 80) {
        if (h.online) await sync(h, random.chance(params.faults));
      } else if (roll < 90) {
        if (h.online && !h.revoked) {
          const space = room(h);
          if (h.balance < limit / 4n && space > 0n) await deposit(h, random.bigint(1n, space));
          else if (h.balance > (limit * 3n) / 4n) await withdraw(h, random.bigint(1n, h.balance / 2n));
        }
      } else if (roll < 95) {
        if (attackersWanted > 0) await attack(holders[random.below(attackersWanted)] as Holder);
      } else {
        const x = extras.find((e) => e.left > 0);
        if (x !== undefined) {
          x.left--;
          await pay(x.holder, x.el, x.attack);
        }
      }
      if (random.chance(params.faults / 50)) {
        recorder.count('faults.node-restart');
        await node.restart();
      }
      await world.step();
    }

    // The end: every message arrives, every holder goes online and syncs (twice: the second takes
    // the revocation list the first may have caused), and every double spend must be accounted for.
    for (;;) {
      const left = [...net.drain().map((m) => m.payload), ...resend.splice(0, resend.length)];
      if (left.length === 0) break;
      for (const m of left) await deliver(m);
    }
    for (let round = 0; round < 2; round++) for (const h of holders) await sync(h, false);
    await pollFraud();
    await world.step(true);
    for (const a of recorder.attacks) {
      if (a.kind !== 'clone' && a.kind !== 'rollback' && a.kind !== 'extracted-key') continue;
      const own = made.filter((m) => m.attack === a);
      // A payment only a revoked device took is never presented (the node settles nothing a
      // revoked device collected), so no one can redeem it and there is no second copy to catch:
      // only a credit to a payee in good standing must have been detected.
      const redeemable = (m: Made) => m.credited && !('holder' in m.to && m.to.holder.revoked);
      const spent = own.some(redeemable);
      if (a.outcome === 'detected') continue;
      if (spent) world.violated('double-spend-detected', `a ${a.kind} of device ${a.device} spent money that was credited, and settlement did not detect it`);
      if (own.some((m) => m.credited)) recorder.count('attacks.unredeemable');
      a.outcome = own.length === 0 ? 'harmless' : own.some((m) => m.refused !== null) ? 'refused-offline' : 'harmless';
    }
    recorder.count('payments.credited', made.filter((m) => m.credited).length);
    recorder.count('payments.stranded', made.filter((m) => !m.credited).length);
  },
};
