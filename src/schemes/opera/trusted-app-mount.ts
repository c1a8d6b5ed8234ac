/**
 * Stage 1, anonymous authentication and secure mount (paper §3.3.1), and the start of Stage 2.
 *
 * `mount`: the ODW draws an ephemeral X25519 key and proves, with a fresh unlinkable proof of its
 * maker's credential, that it is a genuine ODW of the reference build; the proof is bound to the
 * link's handshake hash, the ODW's role and its ephemeral key, so it is good for this mount only.
 * `meet`: it checks the partner's proof the same way, derives SEED from the two ephemeral keys
 * (otk.ts mountSeed) and seals its hello (its SN, its log's transaction, how its latest ones ended).
 * `greet`: it opens the partner's hello and sets its log in order against it (a transaction the
 * partner finished or never saw ends here; §4.1's resume is chosen when both logs hold the same
 * one), then starts the one-time-key chain at OTK_0 = Hash(SEED). `begin` (the payer): Msg 2-1.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { concatBytes, equalBytes, utf8 } from '../../core/bytes.ts';
import { encodeCbor, decodeCbor } from '../../core/cbor.ts';
import { bytes, oneOf, optional, record, uint } from '../../core/codec.ts';
import { aeadOpen, aeadSeal, sha256 } from '../../core/crypto/hash.ts';
import { proveCredential, verifyCredentialProof } from '../../pki/anonymous-credential.ts';
import { accept, command, guarded, guardedAsync, refuse } from '../../secure-element/trusted-app.ts';
import { CHAIN_BOX_MAX, FINISHED_REPORTED_MAX, HELLO_BOX_MAX, ROLES, helloCodec, offerCodec, type Hello, type Role } from './exchange.ts';
import { amountCodec, NONCE_BYTES, ODW_CREDENTIAL_LABEL, TOKENS_PER_MESSAGE_MAX, TXID_BYTES } from './messages.ts';
import { firstOtk, helloKey, mountSeed, PTK_BYTES } from './otk.ts';
import { odwSerial } from './serial.ts';
import { payable, tagged } from './escrow.ts';
import { deviceKey, ended, givenBack, knownMakers, ownSerial, pickCovering, provisioned } from './trusted-app-common.ts';
import { sendChain } from './trusted-app-chain-send.ts';
import type { Mount, OperaState, TxLog } from './trusted-app-state.ts';

const other = (role: Role): Role => (role === 'payer' ? 'payee' : 'payer');

/** What a proof of this mount is bound to: the handshake, the prover's role and its ephemeral key. */
function proofBinding(handshakeHash: Uint8Array, role: Role, ephemeral: Uint8Array): Uint8Array {
  return sha256(concatBytes(utf8(`tally/opera/mount/v1\0${role}\0`), handshakeHash, ephemeral));
}

function mountOf(state: OperaState, stage: Mount['stage']): Mount {
  const mount = state.mount;
  if (mount === undefined || mount.stage !== stage) refuse('OPERA_MOUNT_STATE', `no mount at the ${stage} stage: mount again`);
  return mount;
}

/**
 * Sets the log in order against the partner's hello; answers the state and the plan.
 * @throws Refused OPERA_PENDING when a transaction must first be resumed with its own partner or settled online
 */
function reconcile(state: OperaState, role: Role, partner: Hello): { state: OperaState; plan: 'new' | 'resume' } {
  const log = state.log;
  if (log === undefined) return { state, plan: 'new' };
  if (!equalBytes(log.partner, partner.sn)) refuse('OPERA_PENDING', 'an interrupted payment with another wallet waits: mount with that wallet again, or settle it online (sync)');
  if (partner.pending !== undefined && equalBytes(partner.pending.txid, log.txid)) {
    if (log.settling === 1 || partner.pending.settling === 1) refuse('OPERA_PENDING', 'the interrupted payment is being settled online: sync to finish it');
    if ((role === 'payer') !== (log.mode === 'send')) refuse('OPERA_PENDING', `the interrupted payment went the other way: its ${log.mode === 'send' ? 'payer' : 'payee'} must take that role to finish it`);
    return { state, plan: 'resume' };
  }
  const ending = partner.finished.find((f) => equalBytes(f.txid, log.txid))?.ending;
  if (log.mode === 'send') {
    if (ending === 'paid') {
      // Only the token key opens the tokens: a payee that says it took them before the key went out
      // is not to be believed, and they stay here until the bank settles the transaction.
      if (log.released === 0) refuse('OPERA_PENDING', 'the two logs disagree on the interrupted payment: sync to settle it online');
      // The payee ended it online (its acceptance released PTK_B there): the change is the bank's to refund.
      if (log.change !== undefined) refuse('OPERA_PENDING', 'the change of the interrupted payment waits at the bank: sync to settle it online');
      return { state: ended(state, log.txid, 'paid'), plan: 'new' };
    }
    // The payee never took the tokens and cannot any more (it gave them up, or never got this
    // transaction): without the key it was never sent, or with it refused for good, they come back.
    if (log.settling === 0 && (ending === 'returned' || (ending === undefined && log.released === 0))) {
      return { state: givenBack(state, log.txid), plan: 'new' };
    }
    refuse('OPERA_PENDING', 'the payee may hold the interrupted payment: sync to settle it online');
  }
  if (ending === 'paid' && log.accepted === 1) return { state: ended(state, log.txid, 'paid'), plan: 'new' };
  if (ending === 'paid' || (ending === 'returned' && log.accepted === 1)) refuse('OPERA_PENDING', 'the two logs disagree on the interrupted payment: sync to settle it online');
  // The payer's log no longer holds the transaction: it never releases its key for it. A payee that
  // never took the tokens never released PTK_B either: its change comes back.
  if (log.accepted === 1) return { state: ended(state, log.txid, 'paid'), plan: 'new' };
  if (log.settling === 0) return { state: givenBack(state, log.txid), plan: 'new' };
  refuse('OPERA_PENDING', 'the interrupted payment is being settled online: sync to finish it');
}

export const mountCommands = {
  /** Stage 1: an ephemeral key and an anonymous proof of being a genuine ODW, bound to this link. */
  mount: command({
    input: record({ handshakeHash: bytes({ min: 32, max: 64 }), role: oneOf(ROLES), expect: optional(amountCodec) }),
    output: record({ offer: offerCodec }),
    run(state: OperaState, input, env) {
      return guardedAsync(async () => {
        const { params } = provisioned(state);
        const held = state.credential;
        if (held === undefined) refuse('OPERA_NO_CREDENTIAL', 'this ODW holds no credential from its maker');
        const maker = params.makers.findIndex((m) => equalBytes(m.publicKey, held.maker) && equalBytes(m.reference, held.reference));
        if (maker < 0) refuse('OPERA_NO_CREDENTIAL', "the bank does not list this ODW's maker and build");
        const ephemeralPrivate = env.random(32);
        const ephemeralPublic = x25519.getPublicKey(ephemeralPrivate);
        const proof = await proveCredential({
          publicKey: held.maker,
          credential: held.credential,
          claims: { label: ODW_CREDENTIAL_LABEL, reference: held.reference },
          holder: held.holder,
          bind: proofBinding(input.handshakeHash, input.role, ephemeralPublic),
        });
        const mount: Mount = { role: input.role, stage: 'offered', handshakeHash: input.handshakeHash, ephemeralPrivate, ephemeralPublic, index: 0, ...(input.expect === undefined ? {} : { expect: input.expect }) };
        return accept({ ...state, mount }, { offer: { ephemeral: ephemeralPublic, maker, proof } });
      });
    },
  }),

  /** Stage 1: checks the partner's proof, derives SEED and seals this ODW's hello. */
  meet: command({
    input: record({ offer: offerCodec }),
    output: record({ hello: bytes({ max: HELLO_BOX_MAX }) }),
    run(state: OperaState, input, env) {
      return guardedAsync(async () => {
        const mount = mountOf(state, 'offered');
        const { params } = provisioned(state);
        // The offer names its maker by its place in the partner's bank's list. A partner of the
        // same bank is checked under that maker alone; one of another bank lists its makers in
        // another order, so every maker this ODW knows (its bank's and the other banks') is tried.
        const named = params.makers[input.offer.maker];
        const candidates = (state.peers ?? []).length === 0 ? (named === undefined ? [] : [named]) : [...(named === undefined ? [] : [named]), ...knownMakers(state).filter((m) => m !== named)];
        if (candidates.length === 0) refuse('OPERA_MOUNT_REFUSED', 'the partner names a maker the bank does not list');
        let valid = false;
        for (const maker of candidates) {
          valid = await verifyCredentialProof({
            publicKey: maker.publicKey,
            proof: input.offer.proof,
            claims: { label: ODW_CREDENTIAL_LABEL, reference: maker.reference },
            bind: proofBinding(mount.handshakeHash, other(mount.role), input.offer.ephemeral),
          });
          if (valid) break;
        }
        if (!valid) refuse('OPERA_MOUNT_REFUSED', 'the partner did not prove it is a genuine ODW on this link');
        if (equalBytes(input.offer.ephemeral, mount.ephemeralPublic)) refuse('OPERA_MOUNT_REFUSED', "the partner's key is this ODW's own");
        const shared = x25519.getSharedSecret(mount.ephemeralPrivate, input.offer.ephemeral);
        const [payerKey, payeeKey] = mount.role === 'payer' ? [mount.ephemeralPublic, input.offer.ephemeral] : [input.offer.ephemeral, mount.ephemeralPublic];
        const seed = mountSeed(shared, mount.handshakeHash, payerKey, payeeKey);
        const log = state.log;
        const hello: Hello = {
          sn: ownSerial(env),
          device: deviceKey(env).publicKey,
          ...(log === undefined ? {} : { pending: { txid: log.txid, mode: log.mode, settling: log.settling } }),
          finished: state.finished.slice(0, FINISHED_REPORTED_MAX),
        };
        const box = aeadSeal(helloKey(seed, mount.role), encodeCbor(helloCodec.decode(hello, 'hello')), utf8('tally/opera/hello/v1'));
        const met: Mount = { ...mount, stage: 'met', seed };
        return accept({ ...state, mount: met }, { hello: box });
      });
    },
  }),

  /** Stage 1: opens the partner's hello, sets the log in order against it, starts the OTK chain. */
  greet: command({
    input: record({ hello: bytes({ max: HELLO_BOX_MAX }) }),
    output: record({ plan: oneOf(['new', 'resume'] as const), settled: optional(oneOf(['paid', 'returned'] as const)) }),
    run(state: OperaState, input, env) {
      return guarded(() => {
        const mount = mountOf(state, 'met');
        const { params } = provisioned(state);
        const seed = mount.seed as Uint8Array;
        const hello = helloCodec.decode(decodeCbor(aeadOpen(helloKey(seed, other(mount.role)), input.hello, utf8('tally/opera/hello/v1'))), 'hello');
        if (!equalBytes(hello.sn, odwSerial(hello.device))) refuse('OPERA_MOUNT_REFUSED', "the partner's SN is not its device key's");
        if (equalBytes(hello.sn, ownSerial(env))) refuse('OPERA_MOUNT_REFUSED', 'an ODW cannot pay itself');
        const before = state.log;
        const { state: next, plan } = reconcile(state, mount.role, hello);
        const settled = before !== undefined && next.log === undefined ? next.finished[0]?.ending : undefined;
        const started: Mount = { ...mount, stage: 'greeted', partner: { sn: hello.sn, device: hello.device }, plan, otk: firstOtk(params.hash, seed), index: 0 };
        return accept({ ...next, mount: started }, { plan, ...(settled === undefined ? {} : { settled }) });
      });
    },
  }),

  /** Stage 2, Msg 2-1 (the payer): a new transaction of `amount`, or the resumed one. */
  begin: command({
    input: record({ amount: optional(amountCodec) }),
    output: record({ box: bytes({ max: CHAIN_BOX_MAX }), count: uint({ max: TOKENS_PER_MESSAGE_MAX }) }),
    run(state: OperaState, input, env) {
      return guarded(() => {
        const mount = mountOf(state, 'greeted');
        if (mount.role !== 'payer') refuse('OPERA_MOUNT_STATE', 'only the payer begins Stage 2');
        const partner = mount.partner as NonNullable<Mount['partner']>;
        const nonce = env.random(NONCE_BYTES);
        if (mount.plan === 'resume') {
          const log = state.log as TxLog;
          return sendChain({ ...state, mount: { ...mount, stage: 'chain', nonce } }, { msg: '2-1r', txid: log.txid, nonce, sent: log.done, released: log.released }, log.count);
        }
        if (input.amount === undefined || input.amount <= 0n) refuse('OPERA_AMOUNT_INVALID', 'a payment needs a positive amount');
        // Tokens worth the amount, or (when they cannot make it exactly) a little more and change back.
        // A token whose escrow chain is full waits for its deposit; each token paid gets this payment's tag.
        const { picked, left, change } = pickCovering(state.repository.filter(payable), input.amount, TOKENS_PER_MESSAGE_MAX);
        const outgoing = tagged(picked, { payee: partner.sn, device: deviceKey(env), escrowKey: provisioned(state).params.escrowKey, random: env.random });
        const leg = change === 0n ? {} : { change: { amount: change, count: 0, done: 0 } };
        const log: TxLog = { txid: env.random(TXID_BYTES), mode: 'send', partner: partner.sn, partnerKey: partner.device, amount: input.amount, count: picked.length, done: 0, flag: 0, ptk: env.random(PTK_BYTES), released: 0, accepted: 0, settling: 0, ...leg };
        const next: OperaState = { ...state, repository: [...left, ...state.repository.filter((t) => !payable(t))], outgoing, log, mount: { ...mount, stage: 'chain', nonce } };
        return sendChain(next, { msg: '2-1', txid: log.txid, amount: log.amount, count: log.count, nonce, ...(change === 0n ? {} : { change }) }, log.count);
      });
    },
  }),
};
