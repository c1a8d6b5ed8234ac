/**
 * What the chain-tee trusted app's commands share: its two keys (the enclave key, the paper's
 * `msk`, and the account key `sk` of Algorithm 2), the chain domain it signs under, the TA's clock,
 * and the checks every command starts with.
 */
import { equalBytes, toHex } from '../../core/bytes.ts';
import { ethereumAddress } from '../../core/crypto/ethereum.ts';
import type { Signer } from '../../core/crypto/suite.ts';
import { refuse, type TrustedEnv } from '../../secure-element/trusted-app.ts';
import type { ParamsBody } from './messages.ts';
import type { ChainState } from './trusted-app-state.ts';
import type { Domain } from './typed-data.ts';

/** The label of the enclave key under the SE's master secret: registration, `σ_att`, uploads. */
export const ENCLAVE_KEY_LABEL = 'chain/enclave';

/** The enclave key (secp256k1, so the contract can `ecrecover` what it signs). */
export function enclaveKey(env: TrustedEnv): Signer {
  return env.signer(ENCLAVE_KEY_LABEL, 'secp256k1');
}

/** The enclave key's address (the paper's `mpk`, as the contract knows it). */
export function enclaveAddress(env: TrustedEnv): Uint8Array {
  return ethereumAddress(enclaveKey(env).publicKey);
}

/** The account key of the account opened under `seed`. */
export function accountKey(env: TrustedEnv, seed: Uint8Array): Signer {
  return env.signer(`chain/account/${toHex(seed)}`, 'secp256k1');
}

/** What a command that signs needs: the node's key, the chain's parameters, the certificate, the account. */
export interface Ready {
  readonly params: ParamsBody;
  readonly domain: Domain;
  readonly certificate: Uint8Array;
  readonly account: { readonly seed: Uint8Array; readonly address: Uint8Array };
}

/** The TA's parameters and account, or a refusal when it has none yet. */
export function ready(state: ChainState): Ready {
  if (state.bank === undefined || state.certificate === undefined) refuse('NOT_CERTIFIED', 'the TA has no certificate: register the device and run CertInit first');
  if (state.params === undefined) refuse('NOT_CERTIFIED', "the TA has no chain parameters yet: sync first");
  if (state.account === undefined) refuse('CHAIN_NO_ACCOUNT', state.status === 'closed' ? 'the offline account is closed and its keys deleted' : 'no offline account: run Open first');
  return { params: state.params, domain: domainOf(state.params), certificate: state.certificate, account: state.account };
}

/** The EIP-712 domain of the chain's parameters. */
export function domainOf(params: Pick<ParamsBody, 'chainId' | 'contract'>): Domain {
  return { chainId: params.chainId, contract: params.contract };
}

/** Refuses unless the account is open (frozen, closing and closed accounts sign no new payment). */
export function requireOpen(state: ChainState): void {
  if (state.status === 'frozen') refuse('CHAIN_FROZEN', 'the chain froze this account: it makes and takes no payment');
  if (state.status !== 'open') refuse('CHAIN_CLOSED', `the account is ${state.status}`);
}

/**
 * Refuses a payee the contract would refuse as a fault of this TEE (and freeze the account for):
 * the zero address, or the contract itself.
 */
export function requirePayee(r: Ready, payee: Uint8Array): void {
  if (payee.every((b) => b === 0)) refuse('CHAIN_PAYEE_INVALID', 'the zero address cannot be paid');
  if (equalBytes(payee, r.params.contract)) refuse('CHAIN_PAYEE_INVALID', 'the contract itself cannot be paid');
}

/** The TA's time, Unix ms: the host's, never before the latest chain time it was given. */
export function timeOf(state: ChainState, hostNow: number): number {
  return Math.max(state.clock, hostNow);
}
