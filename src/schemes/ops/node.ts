/**
 * OPS on the issuer node, mounted under `/v1/ops/`: deposit (Figure 5, node-deposit.ts), withdraw
 * (Figure 6, node-withdraw.ts), claim (Figure 9, node-claims.ts; at volume node-claims-bulk.ts), the sync that reconciles each
 * device's flow (node-sync.ts, node-settlement.ts) and retirement (node-retire.ts). Value out on
 * devices sits in the `float:ops` account: deposits move it there from the holder's account,
 * withdrawals, claims and released escrows move it back out; payments between devices leave it
 * where it is. In two tiers, a claim on a payment from another bank's device goes to that bank
 * through the central bank, and this bank judges the claims of others on its own devices
 * (node-claims.ts).
 */
import { currentRevocationList, refusal, type IssuerServices, type SchemeModule } from '../../issuer/plugin.ts';
import { OPS_SCHEME } from './messages.ts';
import { judgeOpsInterbankClaim, registerClaims } from './node-claims.ts';
import { CLAIMS_BULK_BODY_BYTES_MAX, registerClaimsBulk, settleBulkPart } from './node-claims-bulk.ts';
import { CLAIMS_BULK_PART_KIND, claimsPartBody } from './node-claims-shards.ts';
import { OPS_FLOAT_ACCOUNT } from './node-common.ts';
import { registerDeposit } from './node-deposit.ts';
import { registerRetire, settleOpsRemainder } from './node-retire.ts';
import { registerSync, SYNC_BODY_BYTES_MAX } from './node-sync.ts';
import { registerWithdraw } from './node-withdraw.ts';
import { opsHoldings } from './node-settlement.ts';

export { OPS_FLOAT_ACCOUNT } from './node-common.ts';
export { CLAIMS_BATCH_PAYMENTS_MAX } from './node-claims.ts';
export { CLAIMS_BULK_BODY_BYTES_MAX, CLAIMS_BULK_PAYMENTS_MAX } from './node-claims-bulk.ts';
export { RETIREMENT_HOLD_MS } from './node-retire.ts';
export { SYNC_REPORT_BYTES_MAX } from './node-sync.ts';

/**
 * What OPS publishes to the other banks (two tiers): this bank's own signed list of revoked users
 * and devices, so that their wallets and payees' trusted apps refuse its revoked devices offline
 * (a clone its settlement caught, a device its owner retired). The list is signed by this bank's
 * intermediary key already: a reader checks it under this bank's certificate, whoever carried it.
 */
export async function opsPublication(services: IssuerServices): Promise<Uint8Array | undefined> {
  return (await currentRevocationList(services.db)).encoded;
}

/** The OPS scheme's part of the issuer node. */
export const opsNodePart: SchemeModule = {
  name: OPS_SCHEME,
  migrationsDir: new URL('./migrations/', import.meta.url),
  floatAccount: OPS_FLOAT_ACCOUNT,
  holdings: (q) => opsHoldings(q, OPS_FLOAT_ACCOUNT),
  settleRemainder: settleOpsRemainder,
  judgeInterbankClaim: judgeOpsInterbankClaim,
  publication: opsPublication,
  bodyLimits: [
    { method: 'POST', path: '/sync', bytesMax: SYNC_BODY_BYTES_MAX },
    { method: 'POST', path: '/claims/bulk', bytesMax: CLAIMS_BULK_BODY_BYTES_MAX },
  ],

  // A node with a settlement intake (--nats) settles bulk claims in shards: each part here.
  settleHandlers: (services) =>
    new Map([
      [
        CLAIMS_BULK_PART_KIND,
        async (work) => {
          // A part no route of this version would publish is answered refused (and acknowledged), never retried.
          const body = claimsPartBody.safeParse(work.body);
          if (!body.success || body.data.items.length !== body.data.payments.length) return refusal('BODY_INVALID', `a bulk claim's part is malformed: ${body.success ? 'items and payments differ in length' : body.error.message.slice(0, 200)}`);
          return settleBulkPart(services, { id: work.id, requestHash: work.requestHash, ...body.data });
        },
      ],
    ]),

  register(app, services) {
    registerDeposit(app, services);
    registerWithdraw(app, services);
    registerClaims(app, services);
    registerClaimsBulk(app, services);
    registerSync(app, services);
    registerRetire(app, services);
  },
};
