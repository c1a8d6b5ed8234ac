/**
 * The chain-tee trusted app: the paper's `prog_enclave` (Algorithms 2–4), a pure state machine run
 * by the secure element. It holds one offline account: the key pair, the off-chain balance, the
 * payments not yet settled on chain. What it learns of the chain comes signed by the issuer node.
 *
 * Provisioning here (`init` pins the root and proves the enclave key for registration; `certInit`
 * pins the node's key and the enclave's certificate; `setParams` the chain's parameters; `open` is
 * Algorithm 2's account); the offline transfer in trusted-app-pay.ts; the chain in trusted-app-chain.ts.
 */
import { equalBytes } from '../../core/bytes.ts';
import { array, bigint, bytes, oneOf, optional, record, uint, type Codec } from '../../core/codec.ts';
import { ethereumAddress } from '../../core/crypto/ethereum.ts';
import { publicKeyCodec } from '../../core/crypto/suite.ts';
import { timestampMs } from '../../core/fields.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { signRegistrationProof } from '../../pki/registration.ts';
import { accept, command, defineTrustedApp, guarded, refuse, reject, type TrustedEnv } from '../../secure-element/trusted-app.ts';
import { BANKS_MAX, bindingCodec, bindingBodyCodec, BINDING_TAG, CERTIFICATE_BYTES_MAX, CHAIN_SCHEME, checkSigned, paramsBodyCodec, paramsCodec, PARAMS_TAG, REVOKED_MAX, SESSION_HASH_BYTES, signed, txOffCodec } from './messages.ts';
import { chainCommands } from './trusted-app-chain.ts';
import { accountKey, enclaveAddress, enclaveKey } from './trusted-app-common.ts';
import { payCommands } from './trusted-app-pay.ts';
import { ACCOUNT_SEED_BYTES, chainStateCodec, initialState, OUTGOING_MAX, pendingOf, TA_STATUSES, type ChainState } from './trusted-app-state.ts';
import { ADDRESS_BYTES, PAYMENT_KIND, UINT128_MAX, UINT64_MAX } from './typed-data.ts';

export { ENCLAVE_KEY_LABEL } from './trusted-app-common.ts';
export type { ChainState } from './trusted-app-state.ts';

const certificate = bytes({ max: CERTIFICATE_BYTES_MAX });
const address = bytes({ length: ADDRESS_BYTES });
const uint128 = bigint({ min: 0n, max: UINT128_MAX });
const count = uint({ max: 1_000_000 });

/** What `status` answers. */
export const statusCodec = record({
  enclave: address,
  account: optional(address),
  status: oneOf(TA_STATUSES),
  balance: uint128,
  /** Held for payments sent and not yet acknowledged. */
  pending: uint128,
  debt: uint128,
  counter: bigint({ min: 0n, max: UINT64_MAX }),
  deposits: count,
  outgoing: count,
  incoming: count,
  clock: timestampMs,
});

function status(state: ChainState, env: TrustedEnv) {
  return {
    enclave: enclaveAddress(env),
    ...(state.account === undefined ? {} : { account: state.account.address }),
    status: state.status,
    balance: state.balance,
    pending: pendingOf(state),
    debt: state.debt,
    counter: state.counter,
    deposits: state.deposits,
    outgoing: state.outgoing.length,
    incoming: state.incoming.length,
    clock: state.clock,
  };
}

/** The chain-tee trusted app. */
export const chainTrustedApp = defineTrustedApp({
  name: 'chain',
  state: chainStateCodec as Codec<ChainState>,
  init: initialState,
  commands: {
    /** Pins the root and answers the enclave key with its registration proof for `owner`. */
    init: command({
      input: record({ root: certificate, owner: bytes({ length: 32 }) }),
      output: record({ publicKey: publicKeyCodec, proof: bytes({ min: 32, max: 256 }) }),
      run(state: ChainState, input, env) {
        if (state.root !== undefined) return reject('ALREADY_CERTIFIED', 'this TA is provisioned; Init runs once');
        return guarded(() => {
          const root = decodeCertificate(input.root);
          if (root.body.role !== 'root') refuse('ROOT_INVALID', `the pinned certificate must be a root, got a ${root.body.role}`);
          const signer = enclaveKey(env);
          const proof = signRegistrationProof(signer, { owner: input.owner, scheme: CHAIN_SCHEME });
          return accept({ ...state, root: input.root, owner: input.owner }, { publicKey: signer.publicKey, proof });
        });
      },
    }),

    /** Checks the node's and the enclave's certificates to the pinned root; pins the node's key and keeps the enclave's certificate. */
    certInit: command({
      input: record({ certificate, intermediary: certificate, issuerNode: certificate, now: timestampMs }),
      output: record({ bank: publicKeyCodec }),
      run(state: ChainState, input, env) {
        if (state.root === undefined) return reject('NOT_INITIALISED', 'run Init first');
        if (state.bank !== undefined) return reject('ALREADY_CERTIFIED', "the node's key is already pinned");
        const root = state.root;
        return guarded(() => {
          const anchors = [decodeCertificate(root)];
          const intermediary = decodeCertificate(input.intermediary);
          const server = verifyChain({ provider: env.provider, chain: [decodeCertificate(input.issuerNode), intermediary], trustAnchors: anchors, now: input.now, leafRoles: ['issuer-node'] });
          const own = verifyChain({ provider: env.provider, chain: [decodeCertificate(input.certificate), intermediary], trustAnchors: anchors, now: input.now, leafRoles: ['device'] });
          if (own.subject.suite !== 'secp256k1' || !equalBytes(own.subject.key, enclaveKey(env).publicKey.key)) refuse('CERT_MISMATCH', "the certificate is not this enclave's");
          return accept({ ...state, bank: server.subject, intermediary: input.intermediary, certificate: input.certificate }, { bank: server.subject });
        });
      },
    }),

    /** Takes the node's signed chain parameters if they are for the same chain and not older than those held. */
    setParams: command({
      input: record({ params: paramsCodec }),
      output: record({ block: bigint({ min: 0n, max: UINT64_MAX }), revoked: count }),
      run(state: ChainState, input, env) {
        if (state.bank === undefined) return reject('NOT_CERTIFIED', 'run Init and CertInit first');
        const bank = state.bank;
        return guarded(() => {
          const params = checkSigned(env.provider, bank, paramsBodyCodec, PARAMS_TAG, input.params);
          const held = state.params;
          if (held !== undefined && (held.chainId !== params.chainId || !equalBytes(held.contract, params.contract))) refuse('CHAIN_MISMATCH', 'these parameters are for another chain or contract');
          if (held !== undefined && params.block < held.block) refuse('CHAIN_STALE', 'these parameters are older than those the TA holds');
          return accept({ ...state, params, clock: Math.max(state.clock, params.at) }, { block: params.block, revoked: params.revoked.length });
        });
      },
    }),

    /** Algorithm 2 (`init`): makes the offline account, a secp256k1 key pair whose address is Keccak-256 of the key. */
    open: command({
      input: record({}),
      output: record({ account: address, publicKey: publicKeyCodec, enclave: address }),
      run(state: ChainState, _input, env) {
        if (state.account !== undefined) return reject('CHAIN_ACCOUNT_EXISTS', 'this TA already holds an offline account');
        if (state.status !== 'open' && state.status !== 'closed') return reject('CHAIN_FROZEN', 'a frozen TA opens no account');
        const seed = env.random(ACCOUNT_SEED_BYTES);
        const key = accountKey(env, seed);
        const account = ethereumAddress(key.publicKey);
        const fresh = { ...initialState(), root: state.root, owner: state.owner, intermediary: state.intermediary, bank: state.bank, certificate: state.certificate, params: state.params, seen: state.seen, clock: state.clock, block: state.block };
        return accept({ ...fresh, account: { seed, address: account } }, { account, publicKey: key.publicKey, enclave: enclaveAddress(env) });
      },
    }),

    /** Binds the account to a payment session: the enclave's signature over the account and the session's hash, with the enclave's certificate. */
    bind: command({
      input: record({ session: bytes({ length: SESSION_HASH_BYTES }) }),
      output: record({ account: address, binding: bindingCodec, certificate }),
      readOnly: true,
      run(state: ChainState, input, env) {
        if (state.account === undefined) return reject('CHAIN_NO_ACCOUNT', 'no offline account: run Open first');
        if (state.certificate === undefined) return reject('NOT_CERTIFIED', 'run CertInit first');
        const binding = signed(bindingBodyCodec, enclaveKey(env), BINDING_TAG, { account: state.account.address, session: input.session });
        return accept(state, { account: state.account.address, binding, certificate: state.certificate });
      },
    }),

    /** The enclaves the chain revoked and the other banks' certificates, as the TA last learned them (a payer checks a payee against them too). */
    revoked: command({
      input: record({}),
      output: record({ revoked: array(address, { max: REVOKED_MAX }), banks: array(certificate, { max: BANKS_MAX }) }),
      readOnly: true,
      run: (state: ChainState) => accept(state, { revoked: state.params?.revoked ?? [], banks: state.params?.banks ?? [] }),
    }),

    /** The payments to `payee` that wait for their ack (sent again when the two meet). */
    pendingTo: command({
      input: record({ payee: address }),
      output: record({ txOffs: array(txOffCodec, { max: OUTGOING_MAX }) }),
      readOnly: true,
      run(state: ChainState, input) {
        const txOffs = state.outgoing.filter((o) => o.ack === undefined && o.txOff.payment.kind === PAYMENT_KIND.payment && equalBytes(o.txOff.payment.payee, input.payee)).map((o) => o.txOff);
        return accept(state, { txOffs });
      },
    }),

    /** What the TA holds. */
    status: command({
      input: record({}),
      output: statusCodec,
      readOnly: true,
      run: (state: ChainState, _input, env) => accept(state, status(state, env)),
    }),

    ...payCommands,
    ...chainCommands,
  },
});
