/**
 * Fixtures for the chain-tee trusted app's tests (not exported): the issuer node played here with
 * its key under a test hierarchy (it signs the chain's parameters, deposit receipts and statements),
 * and wallets: chainTrustedApp in an in-process secure element kept in memory, provisioned, with an
 * offline account opened.
 */
import assert from 'node:assert/strict';
import { fromHex } from '../../core/bytes.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import type { PublicKey } from '../../core/crypto/suite.ts';
import { encodeCertificate, issueCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { certify, hierarchy, NOW, signer, T0 } from '../../pki/test-fixtures.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { InProcessHost } from '../../secure-element/host.ts';
import { MemoryCounter, MemoryStorage } from '../../secure-element/memory-fixtures.ts';
import {
  depositBodyCodec,
  DEPOSIT_TAG,
  paramsBodyCodec,
  PARAMS_TAG,
  signed,
  statementBodyCodec,
  STATEMENT_TAG,
  type AccountStatus,
  type DepositReceipt,
  type Params,
  type PaymentState,
  type Statement,
} from './messages.ts';
import { chainTrustedApp, type ChainState } from './trusted-app.ts';

export { NOW };
const DAY = 86_400_000;

/** The test hierarchy; the issuer node's key signs the chain receipts. */
export const pki = hierarchy('ed25519', 'chain-ta');
export const bankSigner = signer('chain-ta/issuer-node');
export const issuerNodeCert = encodeCertificate(certify({ issuer: pki.intermediary, issuerRole: 'intermediary', role: 'issuer-node', subject: bankSigner }));
/** The chain and contract the fixtures' parameters name. */
export const CHAIN_ID = 31337n;
export const CONTRACT = fromHex('5fbdb2315678afecb367f032d93f642f64180aa3');
export const TOKEN = fromHex('e7f1725e7734ce288f8367e1bb143e90bb3f0512');
export const DRIFT_S = 300;
export const SETTLE_WINDOW_S = 7 * 24 * 3600;

/** The chain's parameters, signed by the node at block `block` (time `at`, revoked enclaves and other banks' certificates as given). */
export function paramsFor(options: { block?: bigint; at?: number; revoked?: Uint8Array[]; chainId?: bigint; contract?: Uint8Array; banks?: Uint8Array[] } = {}): Params {
  return signed(paramsBodyCodec, bankSigner, PARAMS_TAG, {
    chainId: options.chainId ?? CHAIN_ID,
    contract: options.contract ?? CONTRACT,
    token: TOKEN,
    currency: 'EUR',
    settleWindowS: SETTLE_WINDOW_S,
    driftS: DRIFT_S,
    revoked: options.revoked ?? [],
    block: options.block ?? 1n,
    at: options.at ?? NOW,
    ...(options.banks === undefined ? {} : { banks: options.banks }),
  });
}

type Commands = typeof chainTrustedApp.commands;
/** A chain-tee secure element in memory. */
export type ChainSe = InProcessHost<ChainState, Commands>;

/** A provisioned wallet with an open account. */
export interface Wallet {
  readonly name: string;
  se: ChainSe;
  readonly account: Uint8Array;
  readonly enclave: Uint8Array;
  /** The enclave key's device certificate. */
  readonly certificate: Uint8Array;
  /** A second device with a copy of this one's storage and counter (a cloned wallet folder). */
  clone(name: string): Promise<Wallet>;
}

function running(name: string, options: { app: typeof chainTrustedApp; storage: MemoryStorage; counter: MemoryCounter; provider: typeof nodeProvider }, se: ChainSe, account: Uint8Array, enclave: Uint8Array, certificate: Uint8Array): Wallet {
  return {
    name,
    se,
    account,
    enclave,
    certificate,
    async clone(cloneName) {
      const copy = { ...options, storage: options.storage.clone(), counter: options.counter.clone() };
      return running(cloneName, copy, await InProcessHost.open(copy), account, enclave, certificate);
    },
  };
}

/** The device certificate the node would issue for an enclave key (issuer: the test intermediary). */
export function deviceCertificate(publicKey: PublicKey, window?: { notAfter?: number }): Uint8Array {
  return encodeCertificate(
    issueCertificate({ issuer: pki.intermediary, issuerRole: 'intermediary', role: 'device', subject: publicKey, notBefore: T0, notAfter: window?.notAfter ?? T0 + 365 * DAY, extensions: {}, serial: randomBytes(16) }),
  );
}

/** Provisions a wallet: Init, the device certificate, CertInit, the chain's parameters, Open. */
export async function makeWallet(name: string, params: Params = paramsFor()): Promise<Wallet> {
  const options = { app: chainTrustedApp, storage: new MemoryStorage(), counter: new MemoryCounter(), provider: nodeProvider };
  const se: ChainSe = await InProcessHost.provision(options);
  const { publicKey } = await se.call('init', { root: encodeCertificate(pki.rootCert), owner: keyId(signer(`chain-ta/owner/${name}`).publicKey) });
  const certificate = deviceCertificate(publicKey);
  const pinned = await se.call('certInit', { certificate, intermediary: encodeCertificate(pki.intermediaryCert), issuerNode: issuerNodeCert, now: NOW });
  assert.deepEqual(pinned.bank, bankSigner.publicKey);
  await se.call('setParams', { params });
  const opened = await se.call('open', {});
  return running(name, options, se, opened.account, opened.enclave, certificate);
}

/** The node's receipt of deposit `index` of `amount` into `account`. */
export function depositReceipt(account: Uint8Array, index: number, amount: bigint, options: { at?: number; chainId?: bigint } = {}): DepositReceipt {
  return signed(depositBodyCodec, bankSigner, DEPOSIT_TAG, { chainId: options.chainId ?? CHAIN_ID, contract: CONTRACT, account, index, amount, txHash: randomBytes(32), block: 2n, at: options.at ?? NOW });
}

/** Credits `amount` by an on-chain deposit (the next index). */
export async function fund(wallet: Wallet, amount: bigint): Promise<void> {
  const { deposits } = await wallet.se.call('status', {});
  await wallet.se.call('deposit', { receipt: depositReceipt(wallet.account, deposits, amount) });
}

/** The node's statement of an account after a reconciliation. */
export function statement(account: Uint8Array, payments: readonly { payment: Uint8Array; state: PaymentState; missing?: bigint }[], options: { status?: AccountStatus; block?: bigint; balance?: bigint } = {}): Statement {
  return signed(statementBodyCodec, bankSigner, STATEMENT_TAG, {
    chainId: CHAIN_ID,
    contract: CONTRACT,
    account,
    status: options.status ?? 'open',
    balance: options.balance ?? 0n,
    payments: payments.map((p) => ({ payment: p.payment, state: p.state, missing: p.missing ?? 0n })),
    block: options.block ?? 10n,
    at: NOW,
  });
}
