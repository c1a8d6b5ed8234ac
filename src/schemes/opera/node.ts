/**
 * OPERA on the issuer node (the central bank of the paper, whose key `SK_c` signs the tokens: here
 * the node's certified key), mounted under `/v1/opera/`: the signed parameters and the makers of
 * genuine ODWs (node-params.ts), charging tokens into an ODW (node-charge.ts), deposits
 * (node-deposit.ts), the settlement of transactions the ODWs did not finish offline (node-settle.ts,
 * node-settlement.ts) and the findings (node-findings.ts; a token paid twice named by its escrow
 * tags, node-escrow.ts), and tokens across banks (node-interbank.ts: the publication other banks'
 * wallets check tokens with, claims on tokens of other banks, and the judgement of claims on this
 * bank's own). The value of every token issued and neither deposited nor refunded sits
 * in the `float:opera` account. On a node with shard databases the tokens live on the shard of
 * their serial, with their value in that shard's `float:opera` (node-shards.ts, node-shard-deposit.ts).
 */
import type { SchemeModule } from '../../issuer/plugin.ts';
import { OPERA_SCHEME } from './messages.ts';
import { OTK_HASHES } from './otk.ts';
import { registerCharge } from './node-charge.ts';
import { OPERA_FLOAT_ACCOUNT, OPERA_NODE_DEFAULTS, type OperaNodeOptions } from './node-common.ts';
import { DEPOSIT_BODY_LIMIT, registerDeposit } from './node-deposit.ts';
import { registerFindings } from './node-findings.ts';
import { operaHoldings } from './node-holdings.ts';
import { judgeOperaInterbankClaim, operaPublication } from './node-interbank.ts';
import { loadOperaEscrowKey } from './node-keys.ts';
import { registerParams } from './node-params.ts';
import { registerSettle, SETTLE_BODY_LIMIT } from './node-settle.ts';
import { CHARGE_CROSSING_KIND, chargeReceipt, homeTokensOutstanding } from './node-shards.ts';

export { DENOMINATIONS, OPERA_FLOAT_ACCOUNT, type OperaNodeOptions } from './node-common.ts';

/**
 * The OPERA node part with other choices (the paper's SHA-1 for the one-time keys, say).
 * @throws RangeError for a hash that is not one of OTK_HASHES
 */
export function operaNodePartWith(options: Partial<OperaNodeOptions> = {}): SchemeModule {
  const chosen: OperaNodeOptions = { ...OPERA_NODE_DEFAULTS, ...options };
  if (!OTK_HASHES.includes(chosen.hash)) throw new RangeError(`hash must be one of ${OTK_HASHES.join(', ')}, got ${String(chosen.hash)}`);
  return {
    name: OPERA_SCHEME,
    migrationsDir: new URL('./migrations/', import.meta.url),
    floatAccount: OPERA_FLOAT_ACCOUNT,
    bodyLimits: [DEPOSIT_BODY_LIMIT, SETTLE_BODY_LIMIT],
    crossingReceipts: new Map([[CHARGE_CROSSING_KIND, chargeReceipt]]),
    shardingRefusal: homeTokensOutstanding,
    holdings: (q) => operaHoldings(q, OPERA_FLOAT_ACCOUNT),
    judgeInterbankClaim: judgeOperaInterbankClaim,
    publication: (services) => operaPublication(services, chosen),
    async prepare(services) {
      await loadOperaEscrowKey(services);
    },
    register(app, services) {
      registerParams(app, services, chosen);
      registerCharge(app, services);
      registerDeposit(app, services);
      registerSettle(app, services);
      registerFindings(app, services);
    },
  };
}

/** The OPERA scheme's part of the issuer node. */
export const operaNodePart: SchemeModule = operaNodePartWith();
