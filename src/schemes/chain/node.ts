/**
 * chain-tee on the issuer node, mounted under `/v1/chain/`. Here the intermediary is a contract:
 * the node's part is the central bank's (it deploys the token and `OfflineAccounts` on the node's
 * chain at the first start, mints, registers and revokes enclave keys) and the TEEs' reader of the
 * chain (signed parameters, deposit receipts, statements). The money is on chain, not in the
 * node's ledger: the audit checks it there.
 */
import { requireChain, type SchemeModule } from '../../issuer/plugin.ts';
import { CHAIN_SCHEME } from './messages.ts';
import { CHAIN_FLOAT_ACCOUNT, chainOf, DRIFT_S } from './node-common.ts';
import { chainPublication, registerBanks } from './node-banks.ts';
import { ensureDeployed, type DeployOptions } from './node-deploy.ts';
import { registerEnclaves } from './node-enclaves.ts';
import { catchUpMints, chainAudit, registerGas, registerOperator } from './node-operator.ts';
import { registerParams } from './node-params.ts';
import { registerReceipts } from './node-receipts.ts';

export { DRIFT_S, SETTLE_WINDOW_S } from './node-common.ts';

/** The chain-tee node part with another settlement window (tests shorten it), or joining a deployment another node made. */
export function chainNodePartWith(options: DeployOptions = {}): SchemeModule {
  return {
    name: CHAIN_SCHEME,
    migrationsDir: new URL('./migrations/', import.meta.url),
    usesChain: true,
    floatAccount: CHAIN_FLOAT_ACCOUNT,
    async prepare(services) {
      await ensureDeployed(services, { ...options, join: options.join ?? requireChain(services, CHAIN_SCHEME).joinContract });
      await catchUpMints(services);
    },
    info(services) {
      const { chain, deployment } = chainOf(services);
      return { chainId: chain.chainId, contract: deployment.contract, token: deployment.token, settleWindowS: deployment.settleWindowS, driftS: DRIFT_S };
    },
    audit: chainAudit,
    publication: chainPublication,
    register(app, services) {
      registerParams(app, services);
      registerEnclaves(app, services);
      registerReceipts(app, services);
      registerOperator(app, services);
      registerGas(app, services);
      registerBanks(app, services);
    },
  };
}

/** The chain-tee scheme's part of the issuer node. */
export const chainNodePart: SchemeModule = chainNodePartWith();
