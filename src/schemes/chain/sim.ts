/**
 * chain-tee in `tally sim`: a population of account holders, each with the chain-tee trusted app
 * (the paper's `prog_enclave`, §IV) on an in-process secure element, registered and certified by
 * the real node, its enclave registered on chain by the bank; each holder's wallet has tokens the
 * bank minted on a real anvil, deposits them into its offline account (Algorithm 3 `deposit`),
 * pays other holders offline (`tx_off` / ack, sim-offline.ts) over an in-memory network that drops,
 * duplicates and delays messages, reconciles on chain when online and withdraws (sim-online.ts).
 * Secure elements crash at commit points, uploads are interrupted after the chain took them,
 * deposits reach the chain and not the TEE, the node restarts. Attackers clone and roll back their
 * TEE and spend the same counter twice, replay tx_off and acks, forge payments, and sign payments
 * with their extracted enclave key (sim-attacks.ts). After each step the invariants of
 * sim-invariants.ts hold. At the end every TA uploads, the settlement window passes, every TA
 * uploads again (voiding what never reached a payee), attackers cash out what their TEE says they
 * hold, honest holders close their accounts, and every double spend an honest payee took must
 * have been proved on chain and attributed to the attacker's account.
 */
import { fromHex, toHex, utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import type { SimPlugin, SimWorld } from '../../sim/sim/plugin.ts';
import { CHAIN_SCHEME } from './messages.ts';
import { chainNodePart } from './node.ts';
import { attack, sabotageHonestClone } from './sim-attacks.ts';
import { allParties, errorCode, partyOf, roomy, status, type ChainSim, type Holder, type Party } from './sim-context.ts';
import { conservation, duplicating, readChain } from './sim-invariants.ts';
import { payOffline } from './sim-offline.ts';
import { close, deposit, giveParams, sync, withdraw } from './sim-online.ts';
import { chainTrustedApp } from './trusted-app.ts';

/** The TA build the simulated OEM attests and the node allows. */
const SIM_MEASUREMENT = sha256(utf8('tally chain-tee trusted app, sim build'));
/** What each wallet is minted on chain at the start, minor units. */
const MINTED_MINOR = 200_000n;
/** A deposit into the offline account: between these, minor units. */
const DEPOSIT_MIN = 1_000n;
const DEPOSIT_MAX = 5_000n;
/** The largest payment, minor units. */
const PAYMENT_MAX = 500n;
/** Steps a run may take per payment before it is stuck (a liveness check). */
const STEPS_PER_PAYMENT_MAX = 60;

const hex = (bytes: Uint8Array): `0x${string}` => `0x${toHex(bytes)}`;

async function setup(world: SimWorld): Promise<ChainSim> {
  const { params, clock, random } = world;
  const node = await world.openNode(chainNodePart);
  const chain = await world.chain();
  const oem = await node.enrolOem(CHAIN_SCHEME, SIM_MEASUREMENT);
  const info = (await node.request('operator', 'GET', '/v1/info')).body as { schemes: { chain: { chainId: number; contract: `0x${string}`; token: `0x${string}` } } };
  const contracts = { token: info.schemes.chain.token, contract: info.schemes.chain.contract };
  const root = encodeCertificate(node.certificates.root);
  const intermediary = encodeCertificate(node.certificates.intermediary);
  const issuerNode = encodeCertificate(node.certificates.issuerNode);
  const attackersWanted = Math.round(params.devices * params.attackers);
  const sim: ChainSim = {
    world,
    node,
    chain,
    contracts,
    domain: { chainId: BigInt(info.schemes.chain.chainId), contract: fromHex(contracts.contract.slice(2)) },
    forged: new Map(),
    net: world.network<Uint8Array>(),
    holders: [],
    own: new Map(),
    extras: [],
    credited: new Map(),
    spentAttacks: new Set(),
    captured: { txOffs: [], acks: [] },
    paidOut: new Set(),
    applied: new Set(),
    eventsFrom: 0n,
    duplicatingAttacks: 0,
    paymentsMade: 0,
    lastPayment: 0n,
    lost: 0n,
    actions: 0,
  };
  for (let index = 0; index < params.devices; index++) {
    const user = await node.registerUser();
    const el = await world.element(chainTrustedApp);
    const init = await el.se.call('init', { root, owner: fromHex(user.keyId) });
    const device = await node.registerDevice(user.signer, oem, { scheme: CHAIN_SCHEME, publicKey: init.publicKey, proof: init.proof, model: 'Sim SE', measurement: SIM_MEASUREMENT });
    await el.se.call('certInit', { certificate: device.certificate, intermediary, issuerNode, now: clock.now() });
    const enclave = await node.request(user.signer, 'POST', '/v1/chain/enclaves', { device: device.keyId });
    if (enclave.status !== 200) world.violated('node', `POST /v1/chain/enclaves answered ${enclave.status} ${errorCode(enclave.body)}`);
    const secret = random.bytes(32);
    const clients = chain.clients(secret);
    const eoa = clients.walletClient.account.address;
    await chain.fund(eoa);
    const minted = await node.request('operator', 'POST', '/v1/chain/operator/mint', { to: eoa, amount: node.amount(MINTED_MINOR) });
    if (minted.status !== 200) world.violated('node', `the mint answered ${minted.status} ${errorCode(minted.body)}`);
    const holder: Holder = {
      index,
      user: user.signer,
      device: device.keyId,
      certificate: device.certificate,
      el,
      attacker: index < attackersWanted,
      enclave: new Uint8Array(20),
      account: new Uint8Array(20),
      address: '0x',
      eoa,
      clients,
      online: true,
      frozen: false,
      closed: false,
      uncredited: { transactions: [], amount: 0n },
      past: null,
    };
    const party: Party = { holder, el, attack: null };
    await giveParams(sim, party);
    const opened = await el.se.call('open', {});
    const withAccount: Holder = { ...holder, enclave: opened.enclave, account: opened.account, address: hex(opened.account) };
    sim.holders.push(withAccount);
    sim.own.set(withAccount, { holder: withAccount, el, attack: null });
  }
  conservation(sim);
  for (const h of sim.holders) await deposit(sim, h, random.bigint(DEPOSIT_MIN, DEPOSIT_MAX));
  return sim;
}

/** The next payment of a party, to another holder that can take it. */
async function pay(sim: ChainSim, p: Party): Promise<void> {
  const { random } = sim.world;
  const h = p.holder;
  if (h.closed) return;
  let s = await status(p.el);
  if (!roomy(s)) {
    // The wallet reconciles first when it can; offline, the TA pays no more until it does.
    if (!h.online || h.frozen || p.attack !== null) return;
    await sync(sim, p);
    s = await status(p.el);
    if (!roomy(s)) return;
  }
  if (s.status !== 'open' || s.balance === 0n) return;
  const payee = random.pick(sim.holders.filter((x) => x !== h && !x.closed));
  if (payee.frozen || !roomy(await status(payee.el))) return;
  const max = s.balance < PAYMENT_MAX ? s.balance : PAYMENT_MAX;
  await payOffline(sim, p, partyOf(sim, payee), random.bigint(1n, max));
}

/** Online, a holder low on its offline account deposits; one high withdraws some to its wallet. */
async function keepBalance(sim: ChainSim, h: Holder): Promise<void> {
  const { random } = sim.world;
  const s = await status(h.el);
  if (s.status !== 'open') return;
  if (s.balance < DEPOSIT_MIN) await deposit(sim, h, random.bigint(DEPOSIT_MIN, DEPOSIT_MAX));
  else if (s.balance > 3n * DEPOSIT_MAX) await withdraw(sim, h, random.bigint(1n, s.balance - DEPOSIT_MAX));
}

/**
 * The end: every TA uploads; past the settlement window every TA uploads again (a payment that
 * never reached its payee is voided and given back); attackers cash out what their TEE holds (a
 * second spend of a counter a copy used, which the chain proves as a fork); honest holders close.
 */
async function end(sim: ChainSim): Promise<void> {
  const { world } = sim;
  const live = () => allParties(sim).filter((p) => !p.holder.closed);
  for (const p of live()) await sync(sim, p, false);
  const info = (await sim.node.request('operator', 'GET', '/v1/info')).body as { schemes: { chain: { settleWindowS: number; driftS: number } } };
  world.clock.advance((info.schemes.chain.settleWindowS + info.schemes.chain.driftS + 1) * 1000);
  await sim.chain.follow();
  for (const p of live()) await sync(sim, p, false);
  for (const h of sim.holders) {
    if (!h.attacker || h.frozen) continue;
    const s = await status(h.el);
    if (s.status !== 'open' || s.balance === 0n) continue;
    await withdraw(sim, h, s.balance);
    world.recorder.count('attackers.cashed-out');
  }
  for (const p of live()) await sync(sim, p, false);
  await readChain(sim);
  for (const h of sim.holders) {
    if (h.attacker || h.frozen) continue;
    if (!(await close(sim, h))) {
      const s = await status(h.el);
      // An honest holder charged back beyond its balance (a forked payer's shortfall) owes a debt and cannot close.
      // One paid by a payer forged with an extracted enclave key holds what the chain never pays: its closing waits short.
      if (sim.lost > 0n) {
        world.recorder.count('accounts.stuck');
        continue;
      }
      world.violated('settlement', `honest device ${h.device} could not close its account (${s.status}, balance ${s.balance}, ${s.outgoing} out, ${s.incoming} in)`);
    }
  }
  await world.step(true);
  for (const a of world.recorder.attacks) {
    if (!duplicating(a) || a.outcome !== 'pending') continue;
    if (sim.spentAttacks.has(a)) world.violated('double-spend-detected', `a ${a.kind} of device ${a.device} paid an honest holder and the chain proved no fork`);
    // Nothing a copy paid reached an honest payee, or no second spend followed it: it cost nobody.
    a.outcome = 'harmless';
  }
}

/** The chain-tee simulation. */
export const chainSim: SimPlugin = {
  scheme: CHAIN_SCHEME,
  async run(world: SimWorld) {
    const { params, random, clock, recorder } = world;
    const sim = await setup(world);
    if (params.sabotage === 'honest-clone') await sabotageHonestClone(sim);
    const attackersWanted = sim.holders.filter((h) => h.attacker).length;
    let steps = 0;
    while (sim.paymentsMade < params.payments) {
      if (++steps > STEPS_PER_PAYMENT_MAX * params.payments) world.violated('progress', `${sim.paymentsMade} of ${params.payments} payments after ${steps} steps: the population is stuck`);
      clock.advance(1 + random.below(10_000));
      await sim.chain.follow();
      const asked = sim.actions;
      const roll = random.below(100);
      const h = random.pick(sim.holders);
      if (random.chance(0.02)) h.online = !h.online;
      const online = h.online && !h.frozen && !h.closed;
      if (roll < 60) await pay(sim, partyOf(sim, h));
      else if (roll < 75) {
        if (online) await sync(sim, partyOf(sim, h));
      } else if (roll < 85) {
        if (online) await keepBalance(sim, h);
      } else if (roll < 92) {
        if (attackersWanted > 0) await attack(sim, sim.holders[random.below(attackersWanted)] as Holder);
      } else {
        const x = sim.extras.find((e) => e.left > 0);
        if (x !== undefined) {
          x.left--;
          await pay(sim, x.party);
        }
      }
      if (random.chance(params.faults / 50)) {
        recorder.count('faults.node-restart');
        await sim.node.restart();
        sim.actions++;
      }
      if (sim.actions !== asked) await world.step();
    }
    await end(sim);
  },
};
