/**
 * The chain receipts a TEE takes from the node, which reads the chain for it (docs/chain.md):
 * - `GET /v1/chain/deposits/{transaction}`: each `Deposited` event of a mined transaction, signed
 *   (the TEE credits a deposit only against it: coin forgery is refused);
 * - `POST /v1/chain/statements`: an account's status and balance on chain and the state of the
 *   payments its TEE asks about, signed at the latest block (the TEE frees, restores, takes back
 *   or freezes on it).
 * Neither changes anything; anyone may ask (they say what the chain says).
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { parseEventLogs, type Address, type Hex } from 'viem';
import { toBase64url } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { ApiProblem, errorBody, json, validBody, type IssuerEnv, type IssuerServices } from '../../issuer/plugin.ts';
import { offlineAccountsAbi } from './contracts.generated.ts';
import { ACCOUNT_STATUSES, depositBodyCodec, DEPOSIT_TAG, signed, statementBodyCodec, STATEMENT_PAYMENTS_MAX, STATEMENT_TAG, type PaymentState } from './messages.ts';
import { addressText, answer, bytesOf, chainOf, durable, hashText } from './node-common.ts';

/** A payment's state as the contract numbers it (0: not stored), as the TEE reads it. */
const STATES: readonly PaymentState[] = ['unknown', 'recorded', 'recorded', 'applied', 'failed', 'voided'];
const LOW_BYTE = 0xffn;

const depositRoute = createRoute({
  method: 'get',
  path: '/deposits/{transaction}',
  description: 'The deposits a mined transaction made into offline accounts, each signed by the node (base64url CBOR of a DepositReceipt).',
  request: { params: z.object({ transaction: hashText }) },
  responses: {
    200: answer('Deposits', z.object({ deposits: z.array(z.object({ account: z.string(), index: z.number().int(), amount: z.string(), receipt: z.string() })) })),
    404: { description: 'No such mined transaction, or it made no deposit', ...errorBody },
  },
});

const statementBody = z.strictObject({
  account: addressText,
  payments: z.array(z.strictObject({ payer: addressText, counter: z.string().regex(/^[0-9]{1,20}$/), payment: hashText })).max(STATEMENT_PAYMENTS_MAX),
});

const statementRoute = createRoute({
  method: 'post',
  path: '/statements',
  description: "An account's state on chain and the state of the payments named, signed by the node at the latest block (base64url CBOR of a Statement).",
  request: { body: json(statementBody) },
  responses: { 200: answer('Statement', z.object({ statement: z.string(), status: z.string(), balance: z.string() })) },
});

/** Adds the deposit and statement routes. */
export function registerReceipts(app: OpenAPIHono<IssuerEnv>, services: IssuerServices): void {
  app.openAPIRegistry.registerPath(depositRoute);
  app.get('/deposits/:transaction', async (c) => {
    const hash = c.req.param('transaction');
    if (!/^0x[0-9a-fA-F]{64}$/.test(hash)) throw new ApiProblem('BODY_INVALID', 'transaction: expected 0x and 64 hex digits');
    const { chain, deployment } = chainOf(services);
    const receipt = await chain.publicClient.getTransactionReceipt({ hash: hash as Hex }).catch(() => null);
    if (receipt === null || receipt.status !== 'success') throw new ApiProblem('NOT_FOUND', `no successful transaction ${hash} is mined on chain ${deployment.chainId}`);
    const logs = parseEventLogs({ abi: offlineAccountsAbi, logs: receipt.logs, eventName: 'Deposited' }).filter((l) => l.address.toLowerCase() === deployment.contract.toLowerCase());
    if (logs.length === 0) throw new ApiProblem('NOT_FOUND', `transaction ${hash} made no deposit into an offline account`);
    const block = await chain.publicClient.getBlock({ blockNumber: receipt.blockNumber });
    await durable(chain, block);
    const signer = services.identity.issuerNode.signer;
    const deposits = logs.map((log) => {
      const body = {
        chainId: BigInt(deployment.chainId),
        contract: bytesOf(deployment.contract),
        account: bytesOf(log.args.account),
        index: Number(log.args.index),
        amount: log.args.amount,
        txHash: bytesOf(receipt.transactionHash),
        block: receipt.blockNumber,
        at: Number(block.timestamp) * 1000,
      };
      return { account: log.args.account, index: body.index, amount: body.amount.toString(), receipt: toBase64url(encodeCbor(signed(depositBodyCodec, signer, DEPOSIT_TAG, body))) };
    });
    return c.json({ deposits }, 200);
  });

  app.openAPIRegistry.registerPath(statementRoute);
  app.post(statementRoute.path, async (c) => {
    const body = validBody(c, statementBody);
    const { chain, deployment } = chainOf(services);
    const read = { address: deployment.contract, abi: offlineAccountsAbi } as const;
    const block = await chain.publicClient.getBlock();
    await durable(chain, block);
    const at = { blockNumber: block.number };
    const account = body.account as Address;
    const [balance, , status] = await chain.publicClient.readContract({ ...read, functionName: 'accountOf', args: [account], ...at });
    // What forked payers could not pay this account (Shortfall names the payee; one read for all).
    const shortfalls = await chain.publicClient.getContractEvents({ ...read, eventName: 'Shortfall', args: { payee: account }, fromBlock: deployment.block, toBlock: block.number });
    const missingOf = new Map(shortfalls.map((s) => [`${s.args.payer?.toLowerCase()}/${s.args.counter}`, s.args.missing ?? 0n]));
    const payments = [];
    for (const asked of body.payments) {
      const counter = BigInt(asked.counter);
      const [stored, state] = await chain.publicClient.readContract({ ...read, functionName: 'paymentOf', args: [asked.payer as Address, counter], ...at });
      const sameHash = (BigInt(stored) & ~LOW_BYTE) === (BigInt(asked.payment) & ~LOW_BYTE) && state !== 0;
      const found = sameHash ? state : await chain.publicClient.readContract({ ...read, functionName: 'forkStateOf', args: [asked.payment as Hex], ...at });
      const named = STATES[found] ?? 'unknown';
      const missing = named === 'applied' ? (missingOf.get(`${asked.payer.toLowerCase()}/${counter}`) ?? 0n) : 0n;
      payments.push({ payment: bytesOf(asked.payment as Hex), state: named, missing });
    }
    const statement = signed(statementBodyCodec, services.identity.issuerNode.signer, STATEMENT_TAG, {
      chainId: BigInt(deployment.chainId),
      contract: bytesOf(deployment.contract),
      account: bytesOf(account),
      status: status === 2 ? 'frozen' : status === 3 ? 'closed' : ACCOUNT_STATUSES[0],
      balance,
      payments,
      block: block.number,
      at: Number(block.timestamp) * 1000,
    });
    return c.json({ statement: toBase64url(encodeCbor(statement)), status: statement.body.status, balance: balance.toString() }, 200);
  });
}
