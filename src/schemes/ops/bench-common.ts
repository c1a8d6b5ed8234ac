/**
 * OPS's side of the common workload (`bench all`, src/sim/bench/common.ts): one OPS payment of the
 * amount from a payer's TA to a payee's TA (Figure 7, §3.5), over TCP and the Noise link bound to
 * both users' certificates (bench-payment.ts); the payee settles by syncing both TAs with the node
 * (their signed reports reconciled); and OPS's profile for the evaluation page.
 */
import type { CommonWorkload, SchemeProfile, TcpServer } from '../../sim/bench/plugin.ts';
import { payOnce, walletOf, type PaymentContext, type Pinned, type Wallet } from './bench-payment.ts';
import { assertAuditBalanced, deviceClient, enrolOem, fundDevice, inProcessDeviceClient, syncDevice, type BenchDevice } from './bench-setup.ts';
import { REPORT_ENTRIES_MAX } from './messages.ts';
import { opsNodePart } from './node.ts';

/** What OPS declares of itself (the OPS paper, Christodorescu et al.). */
export const OPS_PROFILE: SchemeProfile = {
  transitivity: {
    hops: 'unbounded',
    until: 'a collected payment is spendable again offline with no limit of hops; each device must sync after as many payments as its certificate allows (50 by default), and before its certificate ends',
    cite: 'OPS §3.5 (Collect stores into T.bal), §3.6; the per-device limit is Tally\'s (docs/ops.md)',
  },
  messages: [
    { wire: 'payment-request', to: 'payer' },
    { wire: 'payment', to: 'payee' },
    { wire: 'sync-report', to: 'bank' },
  ],
  fields: {
    amount: 'amount',
    sender: 'payer identity',
    receiver: 'payee identity',
    index: 'serial',
    signature: 'signature',
    memo: 'protocol',
    'body.device': 'device key',
    'body.balance': 'amount',
    'body.i': 'protocol',
    'body.j': 'protocol',
    'body.collectSeq': 'protocol',
    'body.paid': 'history',
    'body.collected': 'history',
  },
  link: 'Noise XX: the static keys and both user certificates travel encrypted; an observer sees sizes, timing and addresses',
  brokenSe: {
    can: 'a cloned or rolled-back TA pays the same value twice (two payments under one index) and every payee accepts both offline',
    bound: 'the node finds the clone at the next sync or claim (two payments under one (sender, index), a rollback of j) and revokes the certificate; loss is bounded by the holding limit (300.00 by default) and the payments allowed between syncs',
    cite: 'OPS §2.2–2.3 (threat model, TEE rollback protection assumed); Tally\'s fraud cases in docs/ops.md',
  },
};

/** The node's limits for the workload: as many payments between syncs as a report carries, a holding limit above what the payer is funded with. */
function limitsFor(funds: bigint) {
  return <L extends { offlinePaymentsMax: number; holdingLimitMinor: bigint }>(defaults: L): L => ({
    ...defaults,
    offlinePaymentsMax: REPORT_ENTRIES_MAX,
    holdingLimitMinor: funds > defaults.holdingLimitMinor ? funds : defaults.holdingLimitMinor,
  });
}

/** OPS's common workload. */
export const opsCommon: CommonWorkload = {
  profile: OPS_PROFILE,
  async open({ harness, amountMinor, payments, meter }) {
    const funds = BigInt(payments) * amountMinor;
    const node = await harness.openNode({ schemes: [opsNodePart], deviceLimits: limitsFor(funds) });
    const root = await harness.tempDir('common-ops');
    const devices: BenchDevice[] = [];
    const oem = await enrolOem(node);
    const payer = await deviceClient(harness, node, oem, `${root}/payer`);
    devices.push(payer);
    const payee = await deviceClient(harness, node, oem, `${root}/payee`);
    devices.push(payee);
    const payerIn = await inProcessDeviceClient(harness, node, oem, `${root}/payer-in`, meter.provider);
    devices.push(payerIn);
    const payeeIn = await inProcessDeviceClient(harness, node, oem, `${root}/payee-in`, meter.provider);
    devices.push(payeeIn);
    await fundDevice(node, payer, node.amount(funds));
    await fundDevice(node, payerIn, node.amount(amountMinor));
    for (const device of devices) await syncDevice(node, device);
    const pinned: Pinned = { root: node.certificates.root, intermediary: node.certificates.intermediary, currency: node.currency.code, provider: harness.provider };
    const context = (server: TcpServer, provider = harness.provider): PaymentContext => ({ pinned: { ...pinned, provider }, server, amount: amountMinor });
    const wallets: [Wallet, Wallet] = [walletOf(payer), walletOf(payee)];
    const metered: [Wallet, Wallet] = [walletOf(payerIn), walletOf(payeeIn)];
    const settle = async (a: BenchDevice, b: BenchDevice) => {
      const started = performance.now();
      await syncDevice(node, a);
      await syncDevice(node, b);
      return performance.now() - started;
    };
    return {
      currency: node.currency.code,
      carries: 'one signed payment record',
      elementDirs: [`${root}/payer`, `${root}/payee`],
      async prepare() {},
      async pay(server) {
        const s = await payOnce('tcp', ...wallets, context(server));
        return { linkMs: s.linkMs, sessionMs: s.paymentMs, handshakeBytes: s.handshakeBytes, sessionBytes: s.paymentBytes };
      },
      async settle() {
        return { ms: await settle(payer, payee), what: 'both TAs sync: signed reports reconciled (POST /v1/ops/sync twice)' };
      },
      async metered(server) {
        const counted = await meter.measure(() => payOnce('tcp', ...metered, context(server, meter.provider)));
        await settle(payerIn, payeeIn);
        return counted;
      },
      async verify() {
        const float = await assertAuditBalanced(node);
        let held = 0n;
        for (const device of devices) held += (await device.se.call('status', {})).balance;
        if (float !== held) throw new Error(`float:ops holds ${float}, the TAs ${held}`);
      },
      async close() {
        for (const device of devices) await device.se.close();
        await node.stop();
      },
    };
  },
};
