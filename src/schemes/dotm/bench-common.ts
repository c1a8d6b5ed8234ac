/**
 * DOT-M's side of the common workload (`bench all`, src/sim/bench/common.ts): its profile for the
 * evaluation page. The payment itself is not yet run in the common workload (its timed payments
 * are in `bench dotm`, Figure 10's grid).
 */
import type { CommonWorkload, SchemeProfile } from '../../sim/bench/plugin.ts';
import { RECORDS_PER_BLOCK_MAX } from './messages-fields.ts';
import { EVENTS_MAX } from './online.ts';

/** What DOT-M declares of itself (the DOT-M paper). */
export const DOTM_PROFILE: SchemeProfile = {
  transitivity: {
    hops: RECORDS_PER_BLOCK_MAX,
    until: `a currency block carries at most ${RECORDS_PER_BLOCK_MAX} transaction records, then it must be redeemed online; a wallet keeps at most ${EVENTS_MAX} offline events before it must sync`,
    cite: 'DOT-M §3.2.1 (a block\'s records have a maximum, no number given), §3.3.4 (online data updating); the numbers are Tally\'s (docs/dotm.md, "Limits")',
  },
  messages: [
    { wire: 'transaction-request', to: 'payer' },
    { wire: 'transaction', to: 'payee' },
    { wire: 'transaction', to: 'bank', within: 'tsd.blocks' },
  ],
  fields: {
    tsn: 'serial',
    v: 'amount',
    alpha: 'signature',
    beta: 'signature',
    gamma: 'signature',
    ucertR: 'payee identity',
    wcertR: 'device key',
    wcertP: 'device key',
    'tsd.tsn': 'serial',
    'tsd.v': 'amount',
    'tsd.nb': 'protocol',
    'tsd.nd': 'protocol',
    'tsd.blocks[].block.presentation.serial': 'serial',
    'tsd.blocks[].block.presentation.value': 'amount',
    'tsd.blocks[].block.presentation.currency': 'protocol',
    'tsd.blocks[].block.presentation.owner': 'history',
    'tsd.blocks[].block.presentation.issuer': 'protocol',
    'tsd.blocks[].block.presentation.signature': 'signature',
    'tsd.blocks[].block.records': 'history',
    'tsd.blocks[].block.remaining': 'amount',
    'tsd.blocks[].block.count': 'protocol',
    'tsd.blocks[].current.prev': 'protocol',
    'tsd.blocks[].current.amount': 'amount',
    'tsd.blocks[].current.timestamp': 'time',
    'tsd.blocks[].current.ucertP': 'payer identity',
    'tsd.blocks[].current.ucertR': 'payee identity',
    'tsd.blocks[].current.signature': 'signature',
  },
  link: 'Noise XX bound to both users\' certificates (the paper asks for a TLS-like channel, §2.3 Assumption 4); an observer sees sizes, timing and addresses',
  brokenSe: {
    can: 'a broken SE (keys extracted, §2.3 names laboratory-level attacks) or a cloned wallet pays the same value of a block to two payees; both accept offline, since value legitimately branches',
    bound: 'at redemption or sync the node finds a branch whose amounts exceed what its holder received, names that holder from its own signature, revokes its certificates and refuses the later copies (the first payee to redeem is paid); loss is bounded by the blocks the wallet held',
    cite: 'DOT-M §2.3 (threat model), §3.4.4 (double spending); Tally\'s branch check in docs/dotm.md',
  },
};

/** DOT-M's side: the profile only, for now. */
export const dotmCommon: CommonWorkload = { profile: DOTM_PROFILE };
