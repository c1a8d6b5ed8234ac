/**
 * The OTP trusted app: the paper's player (§2.7), a pure state machine run by the secure element.
 * It implements each meta-instruction once (the base level); the programs it runs are data the bank
 * certifies (program.ts). Its sandbox holds the coins; a coin leaves it only sealed to one payee's
 * exchange key, after its program ran, and is forgotten only on that payee's ACK.
 *
 * Provisioning: `init` pins the root certificate and signs the registration proof of the device key;
 * `certInit` checks the issuer node's certificate to that root and pins its key as the bank's;
 * `setParams` takes the bank's signed parameters; in two tiers `setPeers` takes the other banks'
 * publications, checked to the root. Payment and bank commands are in their own files.
 */
import { equalBytes, toHex } from '../../core/bytes.ts';
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { array, bigint, bytes, optional, record, text, uint, type Codec } from '../../core/codec.ts';
import { publicKeyCodec } from '../../core/crypto/suite.ts';
import { timestampMs } from '../../core/fields.ts';
import { isTallyError } from '../../core/errors.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { signRegistrationProof } from '../../pki/registration.ts';
import { accept, command, defineTrustedApp, reject } from '../../secure-element/trusted-app.ts';
import { CLASS_ID_BYTES, programDigest } from './coin.ts';
import { checkProgram } from './program.ts';
import { checkSigned, CLASSES_MAX, OTP_SCHEME, paramsBodyCodec, paramsCodec, PARAMS_TAG } from './messages.ts';
import { decodeOtpPublication, publishedEntries } from './publication.ts';
import { keyId } from '../../pki/key-id.ts';
import { PUBLICATION_BYTES_MAX, verifyPublication } from '../../pki/publication.ts';
import { bankCommands } from './trusted-app-bank.ts';
import { deviceKey, guarded, provisioned, refuse, Refused, valueOf } from './trusted-app-common.ts';
import { payCommands } from './trusted-app-pay.ts';
import { initialState, KEYS_HELD_MAX, otpStateCodec, PEERS_MAX, type OtpState, type PeerBank } from './trusted-app-state.ts';

export { TA_KEY_LABEL } from './trusted-app-common.ts';
export type { OtpState } from './trusted-app-state.ts';

const certificate = bytes({ max: 4096 });
const amount = bigint({ min: 0n, max: AMOUNT_MINOR_MAX });
const count = uint({ max: 1_000_000 });

/** What `status` answers: the held value by class, what waits in flight, the keys, the clock. */
export const statusCodec = record({
  device: publicKeyCodec,
  balance: amount,
  classes: array(record({ classId: bytes({ length: CLASS_ID_BYTES }), denomination: amount, count }), { max: 256 }),
  inFlight: record({ count, amount }),
  keys: record({ fresh: count, offered: count }),
  time: optional(timestampMs),
  paramsAt: optional(timestampMs),
  withdrawalPending: uint({ max: 1 }),
  depositPending: uint({ max: 1 }),
  /** A deposit sent to the bank and not yet receipted: its request id and what it holds. */
  deposit: optional(record({ requestId: bytes({ length: 16 }), amount, coins: count })),
});

function status(state: OtpState, env: Parameters<typeof deviceKey>[0]) {
  const byClass = new Map<string, { classId: Uint8Array; denomination: bigint; count: number }>();
  let balance = 0n;
  for (const held of state.coins) {
    const id = toHex(held.coin.classId);
    const value = valueOf(state, held.coin.classId);
    balance += value;
    const slot = byClass.get(id) ?? { classId: held.coin.classId, denomination: value, count: 0 };
    slot.count += 1;
    byClass.set(id, slot);
  }
  const classes = [...byClass.values()].sort((a, b) => (a.denomination < b.denomination ? 1 : a.denomination > b.denomination ? -1 : 0));
  const offered = state.keys.filter((k) => k.offered === 1).length;
  return {
    device: deviceKey(env).publicKey,
    balance,
    classes,
    inFlight: { count: state.inFlight.length, amount: state.inFlight.reduce((s, f) => s + valueOf(state, f.classId), 0n) },
    keys: { fresh: state.keys.length - offered, offered },
    ...(state.time === undefined ? {} : { time: state.time }),
    ...(state.params === undefined ? {} : { paramsAt: state.params.at }),
    withdrawalPending: state.withdrawal === undefined ? 0 : 1,
    depositPending: state.deposit === undefined ? 0 : 1,
    ...(state.deposit === undefined ? {} : { deposit: { requestId: state.deposit.requestId, amount: state.deposit.boxes.reduce((s, b) => s + valueOf(state, b.classId), 0n), coins: state.deposit.boxes.length } }),
  };
}

/** The OTP trusted app. */
export const otpTrustedApp = defineTrustedApp({
  name: 'otp',
  state: otpStateCodec as Codec<OtpState>,
  init: initialState,
  commands: {
    /** Pins the root and answers the device key with its registration proof for `owner`. */
    init: command({
      input: record({ root: certificate, owner: bytes({ length: 32 }) }),
      output: record({ publicKey: publicKeyCodec, proof: bytes({ min: 32, max: 256 }) }),
      run(state: OtpState, input, env) {
        if (state.bank !== undefined) return reject('ALREADY_CERTIFIED', 'this TA is provisioned; Init runs once');
        return guarded(() => {
          const root = decodeCertificate(input.root);
          if (root.body.role !== 'root') refuse('ROOT_INVALID', `the pinned certificate must be a root, got a ${root.body.role}`);
          const signer = deviceKey(env);
          const proof = signRegistrationProof(signer, { owner: input.owner, scheme: OTP_SCHEME });
          return accept({ ...state, root: input.root, owner: input.owner }, { publicKey: signer.publicKey, proof });
        });
      },
    }),

    /** Checks the issuer node's certificate to the pinned root and pins its key as the bank's. */
    certInit: command({
      input: record({ intermediary: certificate, issuerNode: certificate, now: timestampMs }),
      output: record({ bank: publicKeyCodec }),
      run(state: OtpState, input, env) {
        if (state.root === undefined) return reject('NOT_INITIALISED', 'run Init first');
        if (state.bank !== undefined) return reject('ALREADY_CERTIFIED', "the bank's key is already pinned");
        return guarded(() => {
          // The TA has no clock: the host's time only picks the certificates' window; the chain's signatures bind them to the root.
          const server = verifyChain({ provider: env.provider, chain: [decodeCertificate(input.issuerNode), decodeCertificate(input.intermediary)], trustAnchors: [decodeCertificate(state.root as Uint8Array)], now: input.now, leafRoles: ['issuer-node'] });
          return accept({ ...state, bank: server.subject }, { bank: server.subject });
        });
      },
    }),

    /** Takes the bank's signed parameters, if newer than those held; the time they carry moves the TA's clock forward. */
    setParams: command({
      input: record({ params: paramsCodec }),
      output: record({ classes: uint({ max: 256 }), at: timestampMs }),
      run(state: OtpState, input, env) {
        if (state.bank === undefined) return reject('NOT_CERTIFIED', 'run Init and CertInit first');
        const bank = state.bank;
        return guarded(() => {
          const params = checkSigned(env.provider, bank, paramsBodyCodec, PARAMS_TAG, input.params);
          if (state.params !== undefined && params.at < state.params.at) refuse('OTP_PARAMS_STALE', 'these parameters are older than those the TA holds');
          if (state.params !== undefined && params.currency !== state.params.currency) refuse('CURRENCY_MISMATCH', `the TA holds ${state.params.currency}, the parameters are in ${params.currency}`);
          // Each class's program is checked before it is taken (the bank's signature covers a list it may have got wrong).
          for (const entry of params.classes) {
            checkProgram(entry.program);
            if (!equalBytes(programDigest(entry.program), entry.coinClass.programDigest)) refuse('OTP_PROGRAM_INVALID', "a class's program is not the one its digest names");
          }
          return accept({ ...state, params, time: Math.max(state.time ?? 0, params.at) }, { classes: params.classes.length, at: params.at });
        });
      },
    }),

    /**
     * Two tiers: the other banks whose coins this TA takes and pays on, each as its intermediary
     * certificate (checked here to the pinned root) and its signed OTP publication (checked here
     * under that certificate), so that neither the TA's own bank nor the central bank can give it
     * keys of their choosing for another bank. The list replaces the one held (a bank left out, as
     * one revoked by the central bank, is forgotten); the TA's own bank is skipped. An entry that
     * does not check is left out and counted, so that one bank's bad publication cannot stop the
     * wallet taking the others'.
     */
    setPeers: command({
      input: record({ peers: array(record({ certificate, publication: bytes({ max: PUBLICATION_BYTES_MAX }) }), { max: PEERS_MAX }), now: timestampMs }),
      output: record({ peers: uint({ max: PEERS_MAX }), classes: uint({ max: PEERS_MAX * CLASSES_MAX }), refused: array(text({ max: 64 }), { max: PEERS_MAX }) }),
      run(state: OtpState, input, env) {
        const ready = provisioned(state);
        if (!ready.ok) return ready.result;
        const root = decodeCertificate(state.root as Uint8Array);
        const peers: PeerBank[] = [];
        const refused: string[] = [];
        for (const given of input.peers) {
          try {
            const certificate = decodeCertificate(given.certificate);
            // As at CertInit, the host's time only picks the certificate's window.
            verifyChain({ provider: env.provider, chain: [certificate], trustAnchors: [root], now: input.now, leafRoles: ['intermediary'] });
            const verified = verifyPublication(env.provider, given.publication, certificate);
            if (verified.scheme !== OTP_SCHEME) refuse('OTP_PEER_INVALID', `a publication is of ${verified.scheme}, not ${OTP_SCHEME}`);
            const publication = decodeOtpPublication(verified.body);
            if (publication.currency !== ready.params.currency) refuse('CURRENCY_MISMATCH', `a bank publishes ${publication.currency}, the TA holds ${ready.params.currency}`);
            if (equalBytes(publication.issuerNode.key, ready.bank.key)) continue;
            const classes = publishedEntries(publication);
            for (const entry of classes) {
              checkProgram(entry.program);
              if (entry.coinClass.currency !== ready.params.currency) refuse('CURRENCY_MISMATCH', 'a published class is in another currency');
            }
            peers.push({ bank: keyId(certificate.body.subject), issuerNode: publication.issuerNode, escrowKey: publication.escrowKey, classes });
          } catch (e) {
            if (e instanceof Refused) {
              refused.push(e.code);
              continue;
            }
            if (!isTallyError(e)) throw e;
            refused.push(e.code);
          }
        }
        return accept({ ...state, peers }, { peers: peers.length, classes: peers.reduce((n, p) => n + p.classes.length, 0), refused });
      },
    }),

    /** What the TA holds. */
    status: command({
      input: record({}),
      output: statusCodec,
      readOnly: true,
      run: (state: OtpState, _input, env) => accept(state, status(state, env)),
    }),

    ...bankCommands,
    ...payCommands,
  },
});

/** Most exchange keys a TA holds (what `tally wallet sync` tops up to, at most). */
export const EXCHANGE_KEYS_MAX = KEYS_HELD_MAX;
