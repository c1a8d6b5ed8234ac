/**
 * Registration (DOT-M §3.3.1 steps 3–4) in the trusted app: `init` makes usk/upk and wsk/wpk in the
 * secure element with their proofs of possession; `certify` installs ucert and wcert after checking
 * they certify those keys and belong together. Pure.
 */
import { equalBytes } from '../../core/bytes.ts';
import { bytes, record, text } from '../../core/codec.ts';
import { publicKeyCodec } from '../../core/crypto/suite.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { keyId } from '../../pki/key-id.ts';
import { signRegistrationProof } from '../../pki/registration.ts';
import { accept, command, reject } from '../../secure-element/trusted-app.ts';
import { certificateBytesCodec, DOTM_SCHEME } from './messages.ts';
import { type DotmState } from './trusted-app-state.ts';
import {
  USER_PROOF_SCHEME,
  usk,
  wsk,
  type Certified,
  checksOf,
  chainOf,
  walletChainFor,
  guarded,
  keyIdInput,
} from './trusted-app-common.ts';

const initInput = record({ root: certificateBytesCodec, intermediary: certificateBytesCodec, issuerNode: certificateBytesCodec, account: keyIdInput });
const initOutput = record({ userKey: publicKeyCodec, walletKey: publicKeyCodec, userProof: bytes({ max: 128 }), walletProof: bytes({ max: 128 }) });
const certifyInput = record({ ucert: certificateBytesCodec, wcert: certificateBytesCodec });
const certifyOutput = record({ currency: text({ max: 12 }) });

/** The registration commands of the DOT-M trusted app. */
export const registrationCommands = {
  /** §3.3.1 steps 3–4: usk/upk and wsk/wpk are made in the SE; each proves possession for the account. */
  init: command({
    input: initInput,
    output: initOutput,
    run(state: DotmState, input, env) {
      if (state.ucert !== undefined) return reject('ALREADY_CERTIFIED', 'this wallet is already registered');
      return guarded(() => {
        const root = decodeCertificate(input.root);
        if (root.body.role !== 'root') return reject('ROOT_INVALID', `the pinned certificate must be a root, got a ${root.body.role}`);
        const user = usk(env);
        const wallet = wsk(env);
        // wsk's proof names the user key as owner, so the node binds wcert to ucert (§3.1.3).
        const userProof = signRegistrationProof(user, { owner: input.account, scheme: USER_PROOF_SCHEME });
        const walletProof = signRegistrationProof(wallet, { owner: keyId(user.publicKey), scheme: DOTM_SCHEME });
        const next: DotmState = { ...state, root: input.root, intermediary: input.intermediary, issuerNode: input.issuerNode, account: input.account };
        return accept(next, { userKey: user.publicKey, walletKey: wallet.publicKey, userProof, walletProof });
      });
    },
  }),

  /** Installs ucert and wcert, after checking they certify this SE's keys and belong together. */
  certify: command({
    input: certifyInput,
    output: certifyOutput,
    run(state: DotmState, input, env) {
      if (state.root === undefined || state.intermediary === undefined || state.issuerNode === undefined) return reject('NOT_INITIALISED', 'run init first');
      if (state.ucert !== undefined) return reject('ALREADY_CERTIFIED', 'ucert and wcert are already set');
      return guarded(() => {
        const ucert = decodeCertificate(input.ucert);
        const now = Math.max(state.trustedTime, ucert.body.notBefore);
        const c: Certified = {
          root: decodeCertificate(state.root as Uint8Array),
          intermediary: decodeCertificate(state.intermediary as Uint8Array),
          peers: [],
          issuerNode: decodeCertificate(state.issuerNode as Uint8Array),
          ucert: input.ucert,
          wcert: input.wcert,
        };
        const checks = checksOf(state);
        const user = chainOf(checks, c, env, input.ucert, now, 'user');
        const wallet = walletChainFor(checks, c, env, input.wcert, user, now);
        const me = usk(env).publicKey;
        const w = wsk(env).publicKey;
        if (!equalBytes(user.subject.key, me.key) || user.subject.suite !== me.suite) return reject('CERT_MISMATCH', 'ucert certifies another key than usk');
        if (!equalBytes(wallet.subject.key, w.key) || wallet.subject.suite !== w.suite) return reject('CERT_MISMATCH', 'wcert certifies another key than wsk');
        const currency = wallet.extensions.currency ?? user.extensions.currency;
        if (currency === undefined) return reject('CERT_MISMATCH', 'the certificates name no currency');
        verifyChain({ provider: env.provider, chain: [c.issuerNode, c.intermediary], trustAnchors: [c.root], now, leafRoles: ['issuer-node'] });
        return accept({ ...state, ucert: input.ucert, wcert: input.wcert, currency, trustedTime: now }, { currency });
      });
    },
  }),
};
