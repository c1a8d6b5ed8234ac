/**
 * chain-tee's side of the common workload (`bench all`, src/sim/bench/common.ts): its profile for
 * the evaluation page. The payment itself is not yet run in the common workload (its timed
 * enclave operations are in `bench chain`, Figure 3).
 */
import type { CommonWorkload, SchemeProfile } from '../../sim/bench/plugin.ts';
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

/** chain-tee's side: the profile only, for now. */
export const chainCommon: CommonWorkload = { profile: CHAIN_PROFILE };
