/**
 * The wallet's plug-in module: what a scheme's wallet part implements, and the one module of
 * src/wallet it imports. It offers the wallet shell (folder, lock, journal of steps, history,
 * certificates and revocation list, the isolated secure element, recovery, the link runner), the
 * node client, the software OEM, the account-key files and a wallet's own account on a chain.
 */
export { newStepId, refusalCode, startSecureElement, WalletShell, isNodeRefusal } from './shell.ts';
export type { ResumeReport, TrustedAppSpec } from './shell.ts';
export { createWalletFolder, enrolledOem, type CreateContext, type NewWallet, type RegisteredUser } from './create.ts';
export { openFolderOf, type AccountMigration, type OpenedWallet, type WalletFormat } from './folder.ts';
export { connectLink, listenLink, type LinkSide } from './link.ts';
export type { Changes } from './book.ts';
export { holdLegacyAccount, holdNewAccount, newAccountKey, processPassphrase } from './account.ts';
export type { PassphraseSource } from './account-key.ts';
export type { HistoryEvent, InboxEntry, JournalStep, RetiredDevice, SentEntry, WalletAccount, WalletData, WalletDevice, WalletInit } from './wallet-data.ts';
export type { HistoryRead } from './wallet-common.ts';
export { NodeClient, type NodeInfo } from './node-client.ts';
export { accountAnswer, amount, ANSWER_ITEMS_MAX, blob, crl, deviceAnswer, message, revocationsAnswer, userAnswer, word } from './node-answers.ts';
export { looseRecord } from '../core/fields.ts';
export { SOFTWARE_SE_MODEL, measureTrustedApp, type FactoryBuild, type Oem } from './factory.ts';
import type { FactoryBuild } from './factory.ts';
export { resolveHome, walletDir, walletPaths, type WalletPaths } from './home.ts';
export { nodeProvider } from '../providers/node-crypto.ts';
export { openKey, sealKey } from '../issuer/identity/keystore.ts';
export type { ChainClients, ContractWrite } from './chain.ts';
import type { ChainClients } from './chain.ts';

import type * as chainModule from './chain.ts';
type ChainModule = typeof chainModule;

/**
 * Clients of `rpcUrl` sending as the account of `privateKey` (see chain.ts). The Ethereum client
 * library loads here, on first use: a wallet of a scheme without a chain never pays for it.
 */
export async function openChainClients(options: Parameters<ChainModule['openChainClients']>[0]): Promise<ChainClients> {
  return (await import('./chain.ts')).openChainClients(options);
}

/** Sends a contract call from a wallet's own account and waits until it is mined (see chain.ts; loads the client library on first use). */
export async function writeContract(...args: Parameters<ChainModule['writeContract']>): ReturnType<ChainModule['writeContract']> {
  return (await import('./chain.ts')).writeContract(...args);
}

/**
 * What a wallet of a scheme can do. A verb needs one of these; a wallet whose scheme does not
 * declare it answers WALLET_UNSUPPORTED, naming the verbs it offers instead.
 */
export type Capability =
  /** Offline payments carried as text tokens (a request token, a payment token). */
  | 'token-payments'
  /** Offline payments over a live link between the two devices. */
  | 'link-payments'
  /** Online account → offline value in the secure element. */
  | 'deposit'
  /** Offline value → online account. */
  | 'withdraw'
  /** Reports to the node and takes its answer and revocation list. */
  | 'sync'
  /** Received payments moved into the payee's secure element. */
  | 'collect'
  /** Received payments credited online by the node (a wallet without a secure element). */
  | 'claim'
  /** A secure element that refuses to run is retired and replaced. */
  | 'recover'
  /** Wallets with no secure element at all (receive and claim only). */
  | 'no-secure-element'
  /** A payment password checked by the secure element. */
  | 'payment-password'
  /** Payments that do not reveal the payer to the payee. */
  | 'anonymity'
  /** The offline account is closed (its value paid out on chain) and its keys deleted. */
  | 'close';

/** Every capability with one line on what it means (for `tally schemes`). */
export const CAPABILITIES: Readonly<Record<Capability, string>> = {
  'token-payments': 'offline payments as text tokens (a request token, a payment token)',
  'link-payments': 'offline payments over a live link between the two devices (TCP + Noise)',
  deposit: 'online account to offline value in the secure element',
  withdraw: 'offline value back to the online account',
  sync: 'reports to the node, takes its answer and revocation list',
  collect: 'received payments moved into the payee\'s secure element',
  claim: 'received payments credited online by the node (wallets without a secure element)',
  recover: 'a secure element that refuses to run is retired and replaced',
  'no-secure-element': 'wallets without a secure element (receive and claim only)',
  'payment-password': 'a payment password checked by the secure element',
  anonymity: 'payments that do not reveal the payer to the payee',
  close: 'the offline account closed, its value paid out, its keys deleted',
};

/** What a scheme's wallet part declares to the shell. */
export interface WalletPart {
  /** The trusted apps whose builds `tally operator oem` allows at a node. */
  readonly trustedApps: readonly FactoryBuild[];
}

// A device's anonymous credential from its maker, after a TPM quote of its build.
export { makerOf, obtainDeviceCredential, type CredentialRequest, type IssuedCredential } from './device-credential.ts';
export { decodePeerSet, encodePeerSet, peerSetCodec, WALLET_PEERS_MAX, type PeerSet } from './peers.ts';
