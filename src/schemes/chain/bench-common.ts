/**
 * chain-tee's side of the common workload (`bench all`, src/sim/bench/common.ts), on a real issuer
 * node of the harness serving chain-tee, with its embedded anvil and the contracts it deployed
 * (bench-node-party.ts): a payer and a payee whose TEEs run in isolated secure elements, provisioned
 * through the node, their enclaves registered on chain; the payer's offline account funded on chain
 * for every payment at once (the bank's mint, onchainDeposit, the TEE crediting the node's
 * receipt). Each payment is one `tx_off` and its ack over TCP and the anonymous Noise link
 * (bench-payment.ts, §IV's offline transfer). After it the payee settles, timed: its
 * reconciliation (§IV "Reconciliation of off-chain and on-chain states", which "applies to both the
 * payer and the payee"): its TEE's upload of the acknowledged payment sent to the contract's
 * `reconcile` (Table II's "verification and update" of one transaction, gas read off the receipt),
 * then the node's statement of it back to the TEE (most of its time is the node waiting until its
 * embedded anvil has saved the block to disk before it signs the statement: node-common.ts
 * `durable`, 1 to 2 s). chain-tee does settle per payment in this sense:
 * a received payment is spendable before, but the chain moves the money from the payer's account to
 * the payee's only when one of them uploads it. The payer then reconciles too (untimed), so that its
 * TEE frees the payment and each payment starts from the same state. And chain-tee's profile for
 * the evaluation page.
 */
import type { CommonWorkload, SchemeProfile, TcpServer } from '../../sim/bench/plugin.ts';
import { assertConserved, fundParty, makeNodeParty, openChainNode, syncParty, type NodeParty } from './bench-node-party.ts';
import { payOnce, type Pinned } from './bench-payment.ts';
import { UPLOAD_ITEMS_MAX } from './messages.ts';
import { INCOMING_MAX, OUTGOING_MAX } from './trusted-app-state.ts';

/** What chain-tee declares of itself (the chain-tee paper). */
export const CHAIN_PROFILE: SchemeProfile = {
  transitivity: {
    hops: 'unbounded',
    until: `a received payment is spendable before it is reconciled, with no limit of hops; a TEE keeps at most ${INCOMING_MAX} received and ${OUTGOING_MAX} sent payments until it uploads them (${UPLOAD_ITEMS_MAX} an upload)`,
    cite: 'chain-tee §IV (offline transfer between TEEs, reconciliation on chain); the limits are Tally\'s (docs/chain.md, "Beyond the paper")',
  },
  messages: [
    { wire: 'tx-off', to: 'payee' },
    { wire: 'ack', to: 'payer' },
    { wire: 'payment', to: 'bank' },
  ],
  fields: {
    'payment.payer': 'payer identity',
    'payment.payee': 'payee identity',
    'payment.amount': 'amount',
    'payment.counter': 'serial',
    'payment.tGen': 'time',
    'payment.kind': 'protocol',
    'payment.enclave': 'device key',
    'payment.attestation': 'proof',
    payer: 'payer identity',
    payee: 'payee identity',
    amount: 'amount',
    counter: 'serial',
    tGen: 'time',
    kind: 'protocol',
    enclave: 'device key',
    attestation: 'proof',
    payerKey: 'device key',
    stateBalance: 'amount',
    signature: 'signature',
    enclaveCertificate: 'device key',
    payment: 'serial',
    ok: 'protocol',
  },
  link: 'Noise XX with no certificate; the payee\'s enclave binds its account to the handshake; settlement is public: the uploads on chain show payer and payee accounts and amounts to anyone reading the chain',
  brokenSe: {
    can: 'a cloned or rolled-back TEE signs two payments under one (payer, counter); both payees accept offline',
    bound: 'the contract takes the two as proof of a fork, freezes the payer and honours the second payee only up to what the payer holds on chain; loss is bounded by the account\'s on-chain deposit (the paper assumes the TEE safe, §III.B)',
    cite: 'chain-tee §III.B (threat model and assumptions), §V.A; Tally\'s fork proof in docs/chain.md ("Beyond the paper")',
  },
};

/** chain-tee's common workload. */
export const chainCommon: CommonWorkload = {
  profile: CHAIN_PROFILE,
  async open({ harness, amountMinor, payments, meter }) {
    const world = await openChainNode(harness);
    const root = await harness.tempDir('common-chain');
    // Provisioned side by side: each waits for its enclave's registration to be saved by the chain.
    const parties: NodeParty[] = await Promise.all([
      makeNodeParty(harness, world, 'payer', `${root}/payer`, { kind: 'isolated' }),
      makeNodeParty(harness, world, 'payee', `${root}/payee`, { kind: 'isolated' }),
      makeNodeParty(harness, world, 'payer (in-process)', `${root}/payer-in`, { kind: 'in-process', provider: meter.provider }),
      makeNodeParty(harness, world, 'payee (in-process)', `${root}/payee-in`, { kind: 'in-process', provider: meter.provider }),
    ]);
    const [payer, payee, payerIn, payeeIn] = parties as [NodeParty, NodeParty, NodeParty, NodeParty];
    await Promise.all([fundParty(world, payer, BigInt(payments) * amountMinor), fundParty(world, payerIn, amountMinor)]);
    const pinned: Pinned = { root: world.node.certificates.root, intermediary: world.node.certificates.intermediary };
    const pay = async (server: TcpServer, from: NodeParty, to: NodeParty, provider = harness.provider) => payOnce(server, from.se, to.se, amountMinor, pinned, provider);
    const settle = async (from: NodeParty, to: NodeParty) => {
      const started = performance.now();
      const synced = await syncParty(world, to);
      const ms = performance.now() - started;
      if (synced.payments !== 1) throw new Error(`the payee uploaded ${synced.payments} payments, not the one it received`);
      await syncParty(world, from);
      return { ms, gas: synced.gasUsed };
    };
    return {
      currency: world.node.currency.code,
      carries: 'one tx_off (signed by the account and enclave keys) and its ack',
      elementDirs: [`${root}/payer`, `${root}/payee`],
      async prepare() {},
      pay: (server) => pay(server, payer, payee),
      async settle() {
        // Timed, not undefined: a payee's reconciliation of what it received is the step that moves the money on chain (see above).
        const { ms, gas } = await settle(payer, payee);
        return { ms, gas, what: "the payee's reconciliation: its TEE's upload of the payment to the contract (reconcile), the node's statement back (POST /v1/chain/statements, signed once the embedded anvil has saved the block)" };
      },
      async metered(server) {
        const counted = await meter.measure(() => pay(server, payerIn, payeeIn, meter.provider));
        await settle(payerIn, payeeIn);
        return counted;
      },
      verify: () => assertConserved(world, parties),
      async close() {
        for (const party of parties) await party.se.close();
        await world.node.stop();
      },
    };
  },
};
