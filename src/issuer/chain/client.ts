/**
 * viem clients for an Ethereum JSON-RPC endpoint: the chain id read from the endpoint itself, a
 * public client for reads and receipts, and wallet clients that sign locally with an account the
 * node holds. Every request is bounded in time and retries.
 */
import { createPublicClient, createWalletClient, defineChain, http, type Account, type Chain, type PublicClient, type Transport, type WalletClient } from 'viem';
import { TallyError } from '../../core/errors.ts';
import { unreachableReason } from './chain-error.ts';

/** Longest wait for one JSON-RPC answer. */
export const CHAIN_REQUEST_TIMEOUT_MS = 10_000;
/** Retries of a JSON-RPC request that got no answer (viem backs off between them). */
export const CHAIN_REQUEST_RETRIES = 2;
/** Longest wait for the first answer at start, when the endpoint is checked. */
export const CHAIN_PROBE_TIMEOUT_MS = 5_000;
/** How often receipts and blocks are polled on the embedded chain, which mines each transaction at once. */
export const EMBEDDED_POLL_MS = 100;
/** How often receipts and blocks are polled on another endpoint. */
export const EXTERNAL_POLL_MS = 1_000;

/** Reads with a public client; sends from one account with a wallet client on the same endpoint. */
export interface ChainClients {
  readonly publicClient: PublicClient<Transport, Chain>;
  readonly walletClient: WalletClient<Transport, Chain, Account>;
}

/**
 * The endpoint as it may be shown (GET /v1/info, errors, logs): without user and password, and
 * without the query string, where providers tend to put access keys.
 * @throws TypeError for text that is not a URL
 */
export function publicRpcUrl(rpcUrl: string): string {
  const url = new URL(rpcUrl);
  url.username = '';
  url.password = '';
  url.search = '';
  url.hash = '';
  return url.toString().replace(/\/$/, '');
}

/**
 * Checks the text of an endpoint: an http(s) URL.
 * @throws TallyError CHAIN_UNREACHABLE naming what is wrong with it
 */
export function checkRpcUrl(rpcUrl: string): URL {
  let url: URL;
  try {
    url = new URL(rpcUrl);
  } catch {
    throw new TallyError('CHAIN_UNREACHABLE', `the Ethereum JSON-RPC endpoint ${JSON.stringify(rpcUrl)} is not a URL: give one like http://127.0.0.1:8545`, { url: rpcUrl, reason: 'not a URL' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TallyError('CHAIN_UNREACHABLE', `the Ethereum JSON-RPC endpoint ${publicRpcUrl(rpcUrl)} uses ${url.protocol}; the node speaks JSON-RPC over http: or https:`, { url: publicRpcUrl(rpcUrl), reason: 'not http' });
  }
  return url;
}

/**
 * The chain id the endpoint answers (eth_chainId), asked once without retries.
 * @throws TallyError CHAIN_UNREACHABLE, in one line, when the endpoint does not answer JSON-RPC
 */
export async function readChainId(rpcUrl: string, timeoutMs = CHAIN_PROBE_TIMEOUT_MS): Promise<number> {
  checkRpcUrl(rpcUrl);
  const shown = publicRpcUrl(rpcUrl);
  const probe = createPublicClient({ transport: http(rpcUrl, { retryCount: 0, timeout: timeoutMs }) });
  try {
    return await probe.getChainId();
  } catch (e) {
    const reason = unreachableReason(e);
    throw new TallyError('CHAIN_UNREACHABLE', `cannot reach the Ethereum JSON-RPC endpoint ${shown} (${reason}): is the node running, and is the URL right?`, { url: shown, reason }, { cause: e });
  }
}

/** A viem chain for an endpoint whose id is known (viem wants one to sign for). */
export function chainFor(chainId: number, rpcUrl: string, embedded: boolean): Chain {
  return defineChain({
    id: chainId,
    name: embedded ? 'Tally embedded anvil' : `chain ${chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
}

/** The transport of every client of an endpoint: bounded requests and retries. */
export function transportFor(rpcUrl: string): Transport {
  return http(rpcUrl, { timeout: CHAIN_REQUEST_TIMEOUT_MS, retryCount: CHAIN_REQUEST_RETRIES });
}

/** A public client for `chain` at `rpcUrl`. */
export function publicClientFor(rpcUrl: string, chain: Chain, pollingIntervalMs: number): PublicClient<Transport, Chain> {
  return createPublicClient({ chain, transport: transportFor(rpcUrl), pollingInterval: pollingIntervalMs });
}

/** A wallet client signing locally as `account`, for `chain` at `rpcUrl`. */
export function walletClientFor(rpcUrl: string, chain: Chain, account: Account, pollingIntervalMs: number): WalletClient<Transport, Chain, Account> {
  return createWalletClient({ account, chain, transport: transportFor(rpcUrl), pollingInterval: pollingIntervalMs });
}
