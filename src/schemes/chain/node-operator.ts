/**
 * The bank's side of chain-tee on the node: `POST /v1/chain/operator/mint` mints the token to an
 * on-chain address against the bank's reserve (or its issuance, standalone), into `float:chain`
 * (on the embedded dev chain the recipient is also given gas), and the chain's part of the audit:
 * what this bank minted on chain equals its records and its `float:chain`, the token's supply
 * equals every bank's mints and what every holder holds, and the contract holds exactly what the
 * offline accounts hold on chain.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { randomUUID } from 'node:crypto';
import type { Address } from 'viem';
import { isTallyError } from '../../core/errors.ts';
import { amountText, errorBody, formatMinor, idempotent, ISSUANCE_ACCOUNT, json, parseAmount, refusal, requireOperator, requireUser, RESERVE_ACCOUNT, transfer, validBody, type IssuerEnv, type IssuerServices, type SchemeAudit } from '../../issuer/plugin.ts';
import { offlineAccountsAbi, tallyTokenAbi } from './contracts.generated.ts';
import { addressText, answer, bytesOf, CHAIN_FLOAT_ACCOUNT, chainOf, durable } from './node-common.ts';

/** The ledger transfer that answers for a mint on chain (reserve or issuance into `float:chain`). */
export const CHAIN_MINT_KIND = 'chain-mint';

const mintBody = z.strictObject({ to: addressText, amount: amountText });

const mintRoute = createRoute({
  method: 'post',
  path: '/operator/mint',
  description: "Mints the central bank's token to an on-chain address (operator token); on the embedded dev chain the address also gets gas.",
  request: { body: json(mintBody) },
  responses: {
    200: answer('Minted', z.object({ to: z.string(), amount: z.string(), currency: z.string(), transaction: z.string(), gas: z.boolean() })),
    400: { description: 'A bad address or amount', ...errorBody },
  },
});

const gasBody = z.strictObject({ address: addressText });

const gasRoute = createRoute({
  method: 'post',
  path: '/gas',
  description: "The embedded dev chain's faucet: gives a registered user's on-chain account ETH for gas (refused on any other chain: there the holder pays its own gas).",
  request: { body: json(gasBody) },
  responses: { 200: answer('Funded', z.object({ address: z.string(), wei: z.string() })), 403: { description: 'Not the embedded dev chain', ...errorBody } },
});

/** Adds `POST /gas` (a signed user's request; the dev chain only). */
export function registerGas(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(gasRoute);
  app.post(gasRoute.path, async (c) => {
    requireUser(c.get('caller'));
    const body = validBody(c, gasBody);
    const { chain } = chainOf(services);
    const wei = await chain.fundGas(body.address as Address);
    return c.json({ address: body.address, wei: wei.toString() }, 200);
  });
}

/** Adds `POST /operator/mint`. */
export function registerOperator(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(mintRoute);
  app.post(mintRoute.path, async (c) => {
    requireOperator(c.get('caller'));
    const body = validBody(c, mintBody);
    const amount = parseAmount(services, body.amount);
    const { chain, deployment } = chainOf(services);
    const to = body.to as Address;
    return idempotent(services, c, 'chain/mint', 'operator', async (tx) => {
      // The tokens are central-bank money put on chain by this bank: below a central bank they come
      // out of its reserve there (no further than it holds), standalone out of its issuance. The
      // ledger move and the record commit together, after the chain took the mint.
      const intermediary = services.identity.role === 'intermediary';
      const moved = await transfer(tx, { idempotencyKey: `chain-mint:${randomUUID()}`, debit: intermediary ? RESERVE_ACCOUNT : ISSUANCE_ACCOUNT, credit: CHAIN_FLOAT_ACCOUNT, amount: amount.minor, kind: CHAIN_MINT_KIND });
      if (!moved.ok && moved.code === 'INSUFFICIENT_FUNDS' && intermediary) {
        return refusal(moved.code, `the reserve at the central bank not yet put into customers' hands (${RESERVE_ACCOUNT}) is short of ${body.amount} ${services.currency.code}: ask the central bank to issue more into this intermediary's reserve, then sync it`);
      }
      if (!moved.ok) return refusal(moved.code, moved.message);
      const receipt = await chain.write({ address: deployment.token, abi: tallyTokenAbi, functionName: 'mint', args: [to, amount.minor] });
      // Recorded only once the mint is in the embedded chain's state file (else the records would
      // count a mint a killed anvil lost, and the audit's supply would fall short of them).
      await durable(chain, await chain.publicClient.getBlock({ blockNumber: receipt.blockNumber }));
      await tx.query('INSERT INTO chain_mints (chain_id, tx, recipient, amount, minted_at) VALUES ($1, $2, $3, $4, $5)', [
        deployment.chainId,
        bytesOf(receipt.transactionHash),
        bytesOf(to),
        amount.minor.toString(),
        new Date(services.now()).toISOString(),
      ]);
      let gas = false;
      if (chain.embedded) {
        await chain.fundGas(to);
        gas = true;
      }
      return { status: 200, body: { to: body.to, amount: amount.toString(), currency: services.currency.code, transaction: receipt.transactionHash, gas } };
    });
  });
}

/** What `float:chain` holds. */
async function floatBalance(services: IssuerServices): Promise<bigint> {
  const { rows } = await services.db.query<{ balance: string }>('SELECT balance::text AS balance FROM accounts WHERE id = $1', [CHAIN_FLOAT_ACCOUNT]);
  return BigInt(rows[0]?.balance ?? '0');
}

/** Everything this bank recorded minting, on every chain its data folder settled on. */
async function recordedMints(services: IssuerServices): Promise<bigint> {
  const { rows } = await services.db.query<{ minted: string }>('SELECT COALESCE(SUM(amount), 0)::text AS minted FROM chain_mints');
  return BigInt(rows[0]?.minted ?? '0');
}

/**
 * At start: mints recorded before mints went through the ledger (a data folder older than
 * `float:chain`) are moved into it once, from the reserve (or the issuance, standalone), so that
 * `float:chain` answers for every token this bank minted. A reserve too small for it leaves the
 * difference for the audit to show (its line on `float:chain` does not add up).
 */
export async function catchUpMints(services: IssuerServices): Promise<void> {
  const missing = (await recordedMints(services)) - (await floatBalance(services));
  if (missing <= 0n) return;
  const intermediary = services.identity.role === 'intermediary';
  await services.db.transaction((tx) =>
    transfer(tx, { idempotencyKey: `chain-mint-earlier:${missing}:${randomUUID()}`, debit: intermediary ? RESERVE_ACCOUNT : ISSUANCE_ACCOUNT, credit: CHAIN_FLOAT_ACCOUNT, amount: missing, kind: CHAIN_MINT_KIND }),
  );
}

/** The chain's part of the audit. */
export async function chainAudit(services: IssuerServices): Promise<SchemeAudit> {
  const { chain, deployment } = chainOf(services);
  const client = chain.publicClient;
  // Not viem's cached block number (kept for a polling interval): mints recorded since would be counted against an older supply.
  const toBlock = await client.getBlockNumber({ cacheTime: 0 });
  const at = { blockNumber: toBlock };
  const token = { address: deployment.token, abi: tallyTokenAbi } as const;
  const accounts = { address: deployment.contract, abi: offlineAccountsAbi } as const;
  const money = (minor: bigint) => `${formatMinor(services.currency, minor)} ${services.currency.code}`;
  try {
    const supply = await client.readContract({ ...token, functionName: 'totalSupply', ...at });
    const { rows } = await services.db.query<{ minted: string }>('SELECT COALESCE(SUM(amount), 0)::text AS minted FROM chain_mints WHERE chain_id = $1', [deployment.chainId]);
    const minted = BigInt(rows[0]?.minted ?? '0');
    const float = await floatBalance(services);
    const mintedEverywhere = await recordedMints(services);
    // Every mint on the deployment names its minter: this bank's answer for what it recorded; all
    // of them (every bank's, each against its own reserve) make the supply.
    const mints = await client.getContractEvents({ ...token, eventName: 'Minted', fromBlock: deployment.block, toBlock });
    let mintedAll = 0n;
    let mintedHere = 0n;
    const minters = new Set<string>();
    for (const m of mints) {
      const value = m.args.value ?? 0n;
      mintedAll += value;
      if (m.args.by !== undefined) minters.add(m.args.by.toLowerCase());
      if (m.args.by?.toLowerCase() === chain.bankAddress.toLowerCase()) mintedHere += value;
    }
    // Every address the token ever moved to, and every offline account the contract ever named.
    const transfers = await client.getContractEvents({ ...token, eventName: 'Transfer', fromBlock: deployment.block, toBlock });
    const holders = new Set<Address>(transfers.flatMap((t) => [t.args.to, t.args.from]).filter((a): a is Address => a !== undefined && BigInt(a) !== 0n));
    let held = 0n;
    for (const holder of holders) held += await client.readContract({ ...token, functionName: 'balanceOf', args: [holder], ...at });
    const events = await client.getContractEvents({ ...accounts, fromBlock: deployment.block, toBlock });
    const named = new Set<Address>();
    for (const e of events) {
      const args = e.args as Partial<Record<'account' | 'payer' | 'payee', Address>>;
      for (const a of [args.account, args.payer, args.payee]) if (a !== undefined) named.add(a);
    }
    let onAccounts = 0n;
    for (const a of named) onAccounts += (await client.readContract({ ...accounts, functionName: 'accountOf', args: [a], ...at }))[0];
    const inContract = await client.readContract({ ...token, functionName: 'balanceOf', args: [deployment.contract], ...at });
    const [total, deposited, withdrawn] = await client.readContract({ ...accounts, functionName: 'totals', ...at });
    const supplyOk = supply === mintedAll && supply === held;
    const mintsOk = mintedHere === minted && mintedEverywhere === float;
    const contractOk = inContract === total && onAccounts === total;
    return {
      balanced: supplyOk && mintsOk && contractOk,
      lines: [
        `chain ${deployment.chainId} at block ${toBlock}: minted by this bank on chain ${money(mintedHere)} = its records ${money(minted)} = ${CHAIN_FLOAT_ACCOUNT} ${money(float)}${mintsOk ? '' : '  <- does not add up'}`,
        `token supply ${money(supply)} = minted by ${minters.size} banks ${money(mintedAll)} = held by ${holders.size} addresses ${money(held)}${supplyOk ? '' : '  <- does not add up'}`,
        `contract holds ${money(inContract)} = its accounts' total ${money(total)} = ${named.size} offline accounts on chain ${money(onAccounts)}${contractOk ? '' : '  <- does not add up'} (deposited ${money(deposited)}, paid out ${money(withdrawn)})`,
      ],
      details: {
        chainId: deployment.chainId,
        block: toBlock.toString(),
        currency: services.currency.code,
        supply: formatMinor(services.currency, supply),
        minted: formatMinor(services.currency, minted),
        mintedHere: formatMinor(services.currency, mintedHere),
        mintedAll: formatMinor(services.currency, mintedAll),
        // Who minted, and who this bank is on chain: a 'minted by this bank' that does not add up says whose mints these are.
        bank: chain.bankAddress.toLowerCase(),
        minters: [...minters].sort(),
        float: formatMinor(services.currency, float),
        held: formatMinor(services.currency, held),
        holders: holders.size,
        contract: formatMinor(services.currency, inContract),
        accountsTotal: formatMinor(services.currency, total),
        accounts: named.size,
        onAccounts: formatMinor(services.currency, onAccounts),
        deposited: formatMinor(services.currency, deposited),
        withdrawn: formatMinor(services.currency, withdrawn),
      },
    };
  } catch (e) {
    if (!isTallyError(e) && !(e instanceof Error)) throw e;
    return { balanced: false, lines: [`the chain could not be read: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`], details: { error: 'unreadable' } };
  }
}
