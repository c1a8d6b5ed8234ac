/**
 * DOT-M's side of the common workload (`bench all`, src/sim/bench/common.ts): before each payment
 * (untimed) the node issues the payer one block of the amount (§3.3.2); the nine steps of §3.3.3
 * run over TCP and the Noise link bound to both users' certificates (bench-payment.ts); after it the
 * payee redeems the block and syncs (§3.3.4, timed: the settlement), and the payer syncs (untimed);
 * and DOT-M's profile for the evaluation page.
 */
import type { CommonWorkload, SchemeProfile, TcpServer } from '../../sim/bench/plugin.ts';
import { linkEnd, openTcpLinks, transact, type Pinned } from './bench-payment.ts';
import { drain, feedPayer, makeCarriers, onlineTimes, openWorld, registerParty, startInProcessElement, startIsolatedElement, type BenchParty } from './bench-setup.ts';
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

/** DOT-M's common workload. */
export const dotmCommon: CommonWorkload = {
  profile: DOTM_PROFILE,
  async open({ harness, amountMinor, meter }) {
    const world = await openWorld(harness, 'ed25519');
    const root = await harness.tempDir('common-dotm');
    const carriers = await makeCarriers(world);
    const parties: BenchParty[] = [];
    const party = async (name: string, dir: string, inProcess: boolean) => {
      const se = inProcess ? await startInProcessElement(world, dir, meter.provider) : await startIsolatedElement(world, dir);
      const made = await registerParty(world, name, se);
      parties.push(made);
      return made;
    };
    const payer = await party('P', `${root}/payer`, false);
    const payee = await party('R', `${root}/payee`, false);
    const payerIn = await party('P (in-process)', `${root}/payer-in`, true);
    const payeeIn = await party('R (in-process)', `${root}/payee-in`, true);
    const pinned: Pinned = { root: world.node.certificates.root, intermediary: world.node.certificates.intermediary };
    const times = onlineTimes();
    const payOn = async (server: TcpServer, from: BenchParty, to: BenchParty, provider = harness.provider) => {
      const links = await openTcpLinks(server, linkEnd(from), linkEnd(to), pinned, provider);
      try {
        const outcome = await transact(links, { pinned, payer: from, payee: to, v: amountMinor, provider });
        const total = links.counter?.totalBytes ?? 0;
        return { linkMs: links.handshakeMs, sessionMs: outcome.ms, handshakeBytes: links.handshakeBytes, sessionBytes: total - links.handshakeBytes };
      } finally {
        links.close();
      }
    };
    const settle = async (from: BenchParty, to: BenchParty) => {
      const got = (await to.se.call('status', {})).balance;
      if (got !== amountMinor) throw new Error(`after the payment the payee holds ${got}, not ${amountMinor}`);
      const started = performance.now();
      await drain(world, to, { redeem: true }, times);
      const ms = performance.now() - started;
      await drain(world, from, { redeem: true }, times);
      return ms;
    };
    return {
      currency: world.node.currency.code,
      carries: 'one currency block, its record signed',
      elementDirs: [`${root}/payer`, `${root}/payee`],
      async prepare() {
        await feedPayer(world, carriers, payer, [0], times, amountMinor);
      },
      pay: (server) => payOn(server, payer, payee),
      async settle() {
        return { ms: await settle(payer, payee), what: 'the payee redeems the block and syncs its events (POST /v1/dotm/events)' };
      },
      async metered(server) {
        await feedPayer(world, carriers, payerIn, [0], times, amountMinor);
        const counted = await meter.measure(() => payOn(server, payerIn, payeeIn, meter.provider));
        await settle(payerIn, payeeIn);
        return counted;
      },
      async verify() {
        await world.node.assertBalanced();
        for (const p of parties) {
          const held = (await p.se.call('status', {})).balance;
          if (held !== 0n) throw new Error(`${p.name} still holds ${held} after redeeming everything`);
        }
      },
      async close() {
        for (const p of parties) await p.se.close();
      },
    };
  },
};
