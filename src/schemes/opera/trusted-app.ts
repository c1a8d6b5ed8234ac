/**
 * The OPERA trusted app: the ODW of paper §3.2 (its TPCU and ORM, Figure 3) as a pure state machine
 * run by the secure element. Provisioning and what it holds are here; charging and depositing
 * tokens and settling online are in trusted-app-bank.ts, Stage 1 in trusted-app-mount.ts, Stages 2
 * and 3 in trusted-app-chain.ts.
 *
 * Provisioning: `init` pins the root certificate and signs the registration proof of the device
 * key; `certInit` checks the issuer node's certificate to that root and pins its key as the bank's
 * (it signs tokens); `setParams` takes the bank's signed parameters; `credentialRequest` and
 * `credentialInstall` take the anonymous credential of a genuine ODW from its maker, who checked a
 * TPM quote of the ODW's build first.
 */
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { equalBytes } from '../../core/bytes.ts';
import { array, bigint, bytes, oneOf, optional, record, uint, type Codec } from '../../core/codec.ts';
import { publicKeyCodec } from '../../core/crypto/suite.ts';
import { timestampMs } from '../../core/fields.ts';
import { checkCredential, CREDENTIAL_HOLDER_BYTES, CREDENTIAL_PUBLIC_KEY_BYTES, credentialBinding, credentialBoxKeys, openCredential } from '../../pki/anonymous-credential.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { signRegistrationProof } from '../../pki/registration.ts';
import { accept, command, defineTrustedApp, guarded, guardedAsync, refuse, reject, type TrustedEnv } from '../../secure-element/trusted-app.ts';
import { MODES, ODW_CREDENTIAL_LABEL, OPERA_SCHEME, PARAMS_TAG, checkSigned, paramsBodyCodec, paramsCodec, snCodec } from './messages.ts';
import { bankCommands } from './trusted-app-bank.ts';
import { chainCommands } from './trusted-app-chain.ts';
import { deviceKey, ownSerial, total } from './trusted-app-common.ts';
import { mountCommands } from './trusted-app-mount.ts';
import { initialState, OPERA_LOGS, operaStateCodec, PEERS_MAX, type OperaState, type PeerBank } from './trusted-app-state.ts';

export { TA_KEY_LABEL } from './trusted-app-common.ts';
export type { OperaState } from './trusted-app-state.ts';

const certificate = bytes({ max: 4096 });
const amount = bigint({ min: 0n, max: AMOUNT_MINOR_MAX });
const count = uint({ max: 1_000_000 });

/** What `status` answers. */
export const statusCodec = record({
  device: publicKeyCodec,
  sn: snCodec,
  balance: amount,
  tokens: array(record({ value: amount, count }), { max: 64 }),
  credential: uint({ max: 1 }),
  paramsAt: optional(timestampMs),
  /** The transaction the log holds. */
  pending: optional(record({ mode: oneOf(MODES), amount, count, done: count, released: uint({ max: 1 }), accepted: uint({ max: 1 }), settling: uint({ max: 1 }), change: optional(record({ amount, count, done: count })) })),
  chargePending: uint({ max: 1 }),
  /** A deposit sent to the bank and not yet receipted. */
  deposit: optional(record({ amount, tokens: count })),
});

function status(state: OperaState, env: TrustedEnv) {
  const byValue = new Map<bigint, number>();
  for (const t of state.repository) byValue.set(t.body.value, (byValue.get(t.body.value) ?? 0) + 1);
  const log = state.log;
  return {
    device: deviceKey(env).publicKey,
    sn: ownSerial(env),
    balance: total(state.repository),
    tokens: [...byValue].sort((a, b) => (a[0] > b[0] ? -1 : 1)).map(([value, n]) => ({ value, count: n })),
    credential: state.credential === undefined ? 0 : 1,
    ...(state.params === undefined ? {} : { paramsAt: state.params.at }),
    ...(log === undefined ? {} : { pending: { mode: log.mode, amount: log.amount, count: log.count, done: log.done, released: log.released, accepted: log.accepted, settling: log.settling, ...(log.change === undefined ? {} : { change: { amount: log.change.amount, count: log.change.count, done: log.change.done } }) } }),
    chargePending: state.charge === undefined ? 0 : 1,
    ...(state.deposit === undefined ? {} : { deposit: { amount: total(state.deposit.tokens), tokens: state.deposit.tokens.length } }),
  };
}

/** The OPERA trusted app. */
export const operaTrustedApp = defineTrustedApp({
  name: 'opera',
  state: operaStateCodec as Codec<OperaState>,
  logs: OPERA_LOGS,
  init: initialState,
  commands: {
    /** Pins the root and answers the device key with its registration proof for `owner`. */
    init: command({
      input: record({ root: certificate, owner: bytes({ length: 32 }) }),
      output: record({ publicKey: publicKeyCodec, proof: bytes({ min: 32, max: 256 }) }),
      run(state: OperaState, input, env) {
        if (state.bank !== undefined) return reject('ALREADY_CERTIFIED', 'this ODW is provisioned; Init runs once');
        return guarded(() => {
          const root = decodeCertificate(input.root);
          if (root.body.role !== 'root') refuse('ROOT_INVALID', `the pinned certificate must be a root, got a ${root.body.role}`);
          const signer = deviceKey(env);
          const proof = signRegistrationProof(signer, { owner: input.owner, scheme: OPERA_SCHEME });
          return accept({ ...state, root: input.root, owner: input.owner }, { publicKey: signer.publicKey, proof });
        });
      },
    }),

    /** Checks the issuer node's certificate to the pinned root and pins its key as the bank's. */
    certInit: command({
      input: record({ intermediary: certificate, issuerNode: certificate, now: timestampMs }),
      output: record({ bank: publicKeyCodec }),
      run(state: OperaState, input, env) {
        if (state.root === undefined) return reject('NOT_INITIALISED', 'run Init first');
        if (state.bank !== undefined) return reject('ALREADY_CERTIFIED', "the bank's key is already pinned");
        const root = state.root;
        return guarded(() => {
          const server = verifyChain({ provider: env.provider, chain: [decodeCertificate(input.issuerNode), decodeCertificate(input.intermediary)], trustAnchors: [decodeCertificate(root)], now: input.now, leafRoles: ['issuer-node'] });
          return accept({ ...state, bank: server.subject }, { bank: server.subject });
        });
      },
    }),

    /** Takes the bank's signed parameters, if not older than those held. */
    setParams: command({
      input: record({ params: paramsCodec }),
      output: record({ makers: uint({ max: 64 }), at: timestampMs }),
      run(state: OperaState, input, env) {
        if (state.bank === undefined) return reject('NOT_CERTIFIED', 'run Init and CertInit first');
        const bank = state.bank;
        return guarded(() => {
          const params = checkSigned(env.provider, bank, paramsBodyCodec, PARAMS_TAG, input.params);
          if (state.params !== undefined && params.at < state.params.at) refuse('OPERA_PARAMS_STALE', 'these parameters are older than those the ODW holds');
          if (state.params !== undefined && params.currency !== state.params.currency) refuse('CURRENCY_MISMATCH', `the ODW holds ${state.params.currency}, the parameters are in ${params.currency}`);
          return accept({ ...state, params }, { makers: params.makers.length, at: params.at });
        });
      },
    }),

    /**
     * Takes the other banks whose tokens this ODW accepts (docs/opera.md, "Several banks"), in
     * place of those it held: for each, the bank's intermediary certificate, its issuer node's
     * certificate and its signed parameters, as the bank published them. Each issuer node must
     * chain to the pinned root through that intermediary, the parameters must carry its signature
     * and the bank's currency; its key and makers are then kept. Neither the wallet app nor its own
     * bank can slip in a key the root did not certify through some intermediary.
     */
    setPeers: command({
      input: record({ peers: array(record({ intermediary: certificate, issuerNode: certificate, params: paramsCodec }), { max: PEERS_MAX }), now: timestampMs }),
      output: record({ peers: uint({ max: PEERS_MAX }) }),
      run(state: OperaState, input, env) {
        if (state.root === undefined || state.bank === undefined || state.params === undefined) return reject('NOT_CERTIFIED', 'run Init, CertInit and SetParams first');
        const root = decodeCertificate(state.root);
        const own = state.bank;
        const currency = state.params.currency;
        return guarded(() => {
          const peers: PeerBank[] = [];
          for (const peer of input.peers) {
            const chain = verifyChain({ provider: env.provider, chain: [decodeCertificate(peer.issuerNode), decodeCertificate(peer.intermediary)], trustAnchors: [root], now: input.now, leafRoles: ['issuer-node'] });
            if (chain.subject.suite === own.suite && equalBytes(chain.subject.key, own.key)) refuse('OPERA_PEER_INVALID', "a peer bank's key is this ODW's own bank's");
            if (peers.some((p) => p.bank.suite === chain.subject.suite && equalBytes(p.bank.key, chain.subject.key))) refuse('OPERA_PEER_INVALID', 'the same bank is given twice');
            const params = checkSigned(env.provider, chain.subject, paramsBodyCodec, PARAMS_TAG, peer.params);
            if (params.currency !== currency) refuse('CURRENCY_MISMATCH', `the ODW holds ${currency}, a peer bank's parameters are in ${params.currency}`);
            peers.push({ bank: chain.subject, makers: params.makers });
          }
          return accept({ ...state, peers }, { peers: peers.length });
        });
      },
    }),

    /**
     * Starts asking a maker for the anonymous credential: draws the holder's secret and a one-time
     * key, and answers what the TPM quote must carry as its qualifying data.
     */
    credentialRequest: command({
      input: record({ makerNonce: bytes({ min: 16, max: 64 }) }),
      output: record({ holder: bytes({ length: CREDENTIAL_HOLDER_BYTES }), boxKey: bytes({ length: 32 }), binding: bytes({ length: 32 }) }),
      run(state: OperaState, input, env) {
        if (state.credential !== undefined) return reject('OPERA_CREDENTIAL_HELD', 'this ODW already holds its credential');
        const holder = env.random(CREDENTIAL_HOLDER_BYTES);
        const box = credentialBoxKeys(env.random(32));
        return accept({ ...state, credentialRequest: { holder, boxPrivate: box.privateKey } }, { holder, boxKey: box.publicKey, binding: credentialBinding(input.makerNonce, holder, box.publicKey) });
      },
    }),

    /** Takes the credential the maker sealed to this ODW, once it checks it over this ODW's holder secret. */
    credentialInstall: command({
      input: record({ maker: bytes({ length: CREDENTIAL_PUBLIC_KEY_BYTES }), reference: bytes({ length: 32 }), sealed: bytes({ max: 256 }) }),
      output: record({ installed: uint({ max: 1 }) }),
      run(state: OperaState, input) {
        const request = state.credentialRequest;
        if (request === undefined) return reject('OPERA_NO_CREDENTIAL_REQUEST', 'no credential was asked for');
        return guardedAsync(async () => {
          const credential = openCredential(request.boxPrivate, input.sealed);
          const claims = { label: ODW_CREDENTIAL_LABEL, reference: input.reference };
          if (!(await checkCredential(input.maker, claims, request.holder, credential))) refuse('OPERA_CREDENTIAL_INVALID', "the credential is not the maker's signature over this ODW's request");
          const { credentialRequest: _done, ...rest } = state;
          return accept({ ...rest, credential: { maker: input.maker, reference: input.reference, holder: request.holder, credential } }, { installed: 1 });
        });
      },
    }),

    /** What the ODW holds. */
    status: command({
      input: record({}),
      output: statusCodec,
      readOnly: true,
      run: (state: OperaState, _input, env) => accept(state, status(state, env)),
    }),

    ...bankCommands,
    ...mountCommands,
    ...chainCommands,
  },
});
