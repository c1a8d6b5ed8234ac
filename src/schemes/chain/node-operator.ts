/**
 * The central bank's side of chain-tee on the node: `POST /v1/chain/operator/mint` mints the
 * token to an on-chain address (the bank is its only minter; on the embedded dev chain the
 * recipient is also given gas), and the chain's part of the audit: the token's supply equals what
 * the bank minted and what every holder holds, and the contract holds exactly what the offline
 * accounts hold on chain.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Address } from 'viem';
import { isTallyError } from '../../core/errors.ts';
import { amountText, errorBody, formatMinor, idempotent, json, parseAmount, requireOperator, requireUser, validBody, type IssuerEnv, type IssuerServices, type SchemeAudit } from '../../issuer/plugin.ts';
import { offlineAccountsAbi, tallyTokenAbi } from './contracts.generated.ts';
import { addressText, answer, bytesOf, chainOf, durable } from './node-common.ts';

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

/** The chain's part of the audit. */
export async function chainAudit(services: IssuerServices): Promise<SchemeAudit> {
  const { chain, deployment } = chainOf(services);
  const client = chain.publicClient;
  const toBlock = await client.getBlockNumber();
  const at = { blockNumber: toBlock };
  const token = { address: deployment.token, abi: tallyTokenAbi } as const;
  const accounts = { address: deployment.contract, abi: offlineAccountsAbi } as const;
  const money = (minor: bigint) => `${formatMinor(services.currency, minor)} ${services.currency.code}`;
  try {
    const supply = await client.readContract({ ...token, functionName: 'totalSupply', ...at });
    const { rows } = await services.db.query<{ minted: string }>('SELECT COALESCE(SUM(amount), 0)::text AS minted FROM chain_mints WHERE chain_id = $1', [deployment.chainId]);
    const minted = BigInt(rows[0]?.minted ?? '0');
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
    const supplyOk = supply === minted && supply === held;
    const contractOk = inContract === total && onAccounts === total;
    return {
      balanced: supplyOk && contractOk,
      lines: [
        `chain ${deployment.chainId} at block ${toBlock}: token supply ${money(supply)} = minted by the bank ${money(minted)} = held by ${holders.size} addresses ${money(held)}${supplyOk ? '' : '  <- does not add up'}`,
        `contract holds ${money(inContract)} = its accounts' total ${money(total)} = ${named.size} offline accounts on chain ${money(onAccounts)}${contractOk ? '' : '  <- does not add up'} (deposited ${money(deposited)}, paid out ${money(withdrawn)})`,
      ],
      details: {
        chainId: deployment.chainId,
        block: toBlock.toString(),
        currency: services.currency.code,
        supply: formatMinor(services.currency, supply),
        minted: formatMinor(services.currency, minted),
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
