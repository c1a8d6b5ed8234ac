/**
 * What chain-tee's routes on the node share: the scheme's windows, the contracts as deployed on
 * the node's chain (read once at start), addresses between bytes and viem's text, and the OpenAPI
 * answer helper.
 */
import { z } from '@hono/zod-openapi';
import { isAddress, type Address, type Hex } from 'viem';
import { fromHex, toHex } from '../../core/bytes.ts';
import { TallyError } from '../../core/errors.ts';
import { ANVIL_STATE_INTERVAL_S, requireChain, toChainError, type ChainService, type IssuerServices } from '../../issuer/plugin.ts';
import { CHAIN_SCHEME } from './messages.ts';

/** How long a recorded payment waits before its payer may void it (seconds): payees upload within it. */
export const SETTLE_WINDOW_S = 7 * 24 * 3600;
/**
 * The ledger account that answers for the tokens this bank minted: money out of its reserve (or,
 * standalone, its issuance) and on chain, wherever it has moved there since.
 */
export const CHAIN_FLOAT_ACCOUNT = 'float:chain';

/** The clock-drift bound a payee's TEE allows `T_gen` (seconds). */
export const DRIFT_S = 300;

/** The contracts on the node's chain. */
export interface Deployment {
  readonly chainId: number;
  readonly token: Address;
  readonly contract: Address;
  /** The block they were deployed in. */
  readonly block: bigint;
  readonly settleWindowS: number;
  /** The contract's governor (`OfflineAccounts.bank`, the token's `minter`): the node that deployed it. */
  readonly bank: Address;
}

/** True when this node governs the deployment (it deployed it); false for an intermediary that joined it. */
export function governs(chain: ChainService, deployment: Deployment): boolean {
  return chain.bankAddress.toLowerCase() === deployment.bank.toLowerCase();
}

/**
 * The embedded anvil keeps its chain in a file it rewrites every ANVIL_STATE_INTERVAL_S: a block
 * younger than that may be lost if anvil is killed. A TEE acts on a receipt for good (it credits,
 * it frees what it would otherwise upload again), so the node signs one only for a block old
 * enough to be in the file: it waits out the interval after the block's second, then reads the
 * block again. anvil dumps only while it runs: one killed during the wait may have lost the block
 * (the node, started again, would read a chain without what the TEE credited); one that still
 * answers with the same block has dumped it since.
 * @throws TallyError CHAIN_UNREACHABLE when the chain no longer answers with the block
 */
export async function durable(chain: ChainService, block: { number: bigint; hash: Hex | null; timestamp: bigint }): Promise<void> {
  if (!chain.embedded) return;
  const safeMs = (Number(block.timestamp) + ANVIL_STATE_INTERVAL_S + 1) * 1000;
  const waitMs = safeMs - Date.now();
  if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(waitMs, 5_000)));
  const again = await chain.publicClient.getBlock({ blockNumber: block.number }).catch((e: unknown) => {
    throw toChainError(e, { what: `reading block ${block.number} again before signing for it`, rpcUrl: chain.publicRpcUrl });
  });
  if (again.hash !== block.hash) {
    throw new TallyError('CHAIN_UNREACHABLE', `block ${block.number} is no longer the chain's (the embedded anvil lost it): nothing is signed for it`, { url: chain.publicRpcUrl, reason: 'block lost' });
  }
}

const deployments = new WeakMap<IssuerServices, Deployment>();

/** Remembers the deployment of a started node. */
export function rememberDeployment(services: IssuerServices, deployment: Deployment): void {
  deployments.set(services, deployment);
}

/** The node's chain and its contracts. @throws Error when the node part did not prepare (a bug) */
export function chainOf(services: IssuerServices): { chain: ChainService; deployment: Deployment } {
  const deployment = deployments.get(services);
  if (deployment === undefined) throw new Error('the chain-tee node part was not prepared');
  return { chain: requireChain(services, CHAIN_SCHEME), deployment };
}

/** An address as viem writes it. */
export function hexAddress(bytes: Uint8Array): Address {
  return `0x${toHex(bytes)}`;
}

/** 32 bytes as viem writes them. */
export function hex32(bytes: Uint8Array): Hex {
  return `0x${toHex(bytes)}`;
}

/** viem's hex as bytes. */
export function bytesOf(hex: Hex): Uint8Array {
  return fromHex(hex.slice(2));
}

/** An OpenAPI answer of `schema`. */
export const answer = (description: string, schema: z.ZodType) => ({ description, content: { 'application/json': { schema } } });

/**
 * A 20-byte address in a body: 0x and 40 hex digits, in lower case or with the mixed case of its
 * EIP-55 checksum. A mixed case that does not match is a mistyped address: refused here, as the
 * chain client would refuse it later (which answered 500 or 502 before).
 */
export const addressText = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/, 'an address (0x and 40 hex digits)')
  .refine((text) => isAddress(text, { strict: true }), 'an address in lower case or with its EIP-55 checksum (the mixed case does not match)');
/** A 32-byte hash in a body. */
export const hashText = z.string().regex(/^0x[0-9a-fA-F]{64}$/, 'a 32-byte hash (0x and 64 hex digits)');
