/**
 * The invariants of chain-tee's simulation, and the judge of what the chain proves.
 *
 * Conservation, on chain: the node's audit balances (what the bank minted = its records = its
 * float; the token's supply = what every address holds; the contract holds its accounts' total).
 * Offline: what the TEEs hold towards the contract, Σ over every TA (copies included) of its
 * balance less its debt, + its payments held for an ack that no TEE credited, + its pay-outs the
 * chain has not paid, + deposits the chain took that the TEE has not credited, less the contract's
 * total, is the value created offline: exactly 0 while no attack copied a TA or forged a payer,
 * never below 0, never above the attacks' bounds.
 *
 * Credited once: no payment is credited by two TEEs, nor applied (or paid out) twice on chain.
 * Attribution (docs/chain.md "Forks are evidence"): every ForkProved names an attacker's account,
 * whose copying attacks it detects and attributes; the chain freezes it.
 */
import { parseEventLogs } from 'viem';
import { toHex } from '../../core/bytes.ts';
import type { SimAttack } from '../../sim/sim/plugin.ts';
import { offlineAccountsAbi } from './contracts.generated.ts';
import { CHAIN_SCHEME } from './messages.ts';
import { allParties, hashOf, status, type ChainSim, type Party } from './sim-context.ts';
import { PAYMENT_KIND } from './typed-data.ts';

/** What a TA holds towards the contract (see the file's comment). */
export async function holding(sim: ChainSim, party: Party): Promise<bigint> {
  const s = await status(party.el);
  let held = s.balance - s.debt;
  if (party.attack === null) held += party.holder.uncredited.amount;
  if (s.account === undefined || s.outgoing === 0) return held;
  const upload = await party.el.se.call('onchainUpdate', {});
  const own = upload.items.filter((i) => toHex(i.txOff.payment.payer) === toHex(upload.account));
  // The sim keeps every TA below one upload's worth of items (sim-context.ts, ITEMS_BEFORE_SYNC), so the upload lists all it holds.
  if (own.length !== s.outgoing) sim.world.violated('books', `device ${party.holder.device} lists ${own.length} of its ${s.outgoing} payments in its upload`);
  for (const { txOff, ack } of own) {
    const hash = hashOf(txOff);
    if (txOff.payment.kind === PAYMENT_KIND.payment) {
      // Held for its ack: nobody has it unless a payee's TEE credited it (its ack lost on the way).
      if (ack === undefined && !sim.credited.has(hash)) held += txOff.payment.amount;
    } else if (!sim.paidOut.has(hash)) held += txOff.payment.amount;
  }
  return held;
}

/** Reads the contract's events since the last look: forks judged, applications and pay-outs booked, each at most once. */
export async function readChain(sim: ChainSim): Promise<void> {
  const { world } = sim;
  const reader = sim.chain.reader;
  const toBlock = await reader.getBlockNumber({ cacheTime: 0 });
  if (toBlock < sim.eventsFrom) return;
  const logs = await reader.getLogs({ address: sim.contracts.contract, fromBlock: sim.eventsFrom, toBlock });
  sim.eventsFrom = toBlock + 1n;
  for (const e of parseEventLogs({ abi: offlineAccountsAbi, logs })) {
    if (e.eventName === 'Applied') {
      if (sim.applied.has(e.args.payment)) world.violated('credited-once', `payment ${e.args.payment} was applied twice on chain`);
      sim.applied.add(e.args.payment);
      world.recorder.count('chain.applied');
    } else if (e.eventName === 'Withdrawn' || e.eventName === 'Closed') {
      const hash = e.args.payment.slice(2);
      if (sim.paidOut.has(hash)) world.violated('credited-once', `pay-out ${e.args.payment} was paid twice on chain`);
      sim.paidOut.add(hash);
      world.recorder.count(`chain.${e.eventName.toLowerCase()}`);
    } else if (e.eventName === 'ForkProved') judgeFork(sim, e.args.payer);
    else if (e.eventName === 'Bound') judgeBinding(sim, e.args.account, e.args.enclave);
    else if (e.eventName === 'Frozen') world.recorder.count(`chain.frozen.${e.args.reason}`);
    else if (e.eventName === 'Voided' || e.eventName === 'Failed' || e.eventName === 'Duplicate') world.recorder.count(`chain.${e.eventName.toLowerCase()}`);
    // Voided: a payment that reached no payee within the settlement window, given back to its payer.
    if (e.eventName === 'Voided') world.recorder.count('payments.stranded');
  }
}

/** A fork must name an attacker's account: its copying attacks so far are detected and attributed to it, and the chain froze it. */
function judgeFork(sim: ChainSim, payer: `0x${string}`): void {
  const { world } = sim;
  world.recorder.count('chain.forks');
  const named = sim.holders.find((h) => h.address.toLowerCase() === payer.toLowerCase());
  if (named === undefined || !named.attacker) sim.world.violated('attribution', `the chain proved a fork of ${payer}, which is no attacker's account`);
  named.frozen = true;
  for (const a of world.recorder.attacks) {
    if (a.device !== named.device || !duplicating(a) || a.outcome !== 'pending') continue;
    a.outcome = 'detected';
    a.detectedAt = world.clock.now();
    a.attributed = true;
  }
}

/**
 * An account bound to an enclave: one the sim's attacker made up with its extracted enclave key
 * (no TEE opened it) binds to that enclave while the attacker's own account is bound to it too,
 * the chain's record of an enclave key used outside its TEE. It must be an attacker's enclave; the
 * attack is detected and attributed to its device.
 */
function judgeBinding(sim: ChainSim, account: `0x${string}`, enclave: `0x${string}`): void {
  const forged = sim.forged.get(account.slice(2).toLowerCase());
  if (forged === undefined) return;
  const { world } = sim;
  const named = sim.holders.find((h) => toHex(h.enclave) === enclave.slice(2).toLowerCase());
  if (named === undefined || !named.attacker || named.device !== forged.attack.device) world.violated('attribution', `a made-up account ${account} was bound to enclave ${enclave}, which is not its attacker's`);
  world.recorder.count('chain.enclave-two-accounts');
  if (forged.attack.outcome !== 'pending') return;
  forged.attack.outcome = 'detected';
  forged.attack.detectedAt = world.clock.now();
  forged.attack.attributed = true;
}

/** The attacks that make a second TA holding the same account. */
export function duplicating(a: SimAttack): boolean {
  return a.kind === 'clone' || a.kind === 'rollback';
}

/** The attacks that may create value offline: copies of a TA, and a payer forged with an extracted enclave key. */
function creating(a: SimAttack): boolean {
  return duplicating(a) || a.kind === 'extracted-key';
}

/** Registers the conservation invariant. */
export function conservation(sim: ChainSim): void {
  const { world, node } = sim;
  world.invariant('conservation', async () => {
    const audit = await node.audit();
    if (!audit.balanced) return "the node's ledger does not balance";
    if (audit.settlement !== 0n) return `${audit.settlement} sits in settlement between steps`;
    const answer = await node.request('operator', 'GET', '/v1/audit');
    const full = answer.body as { ledgerBalanced: boolean; exposure: Array<{ scheme: string; balanced: boolean }>; schemes: Array<{ scheme: string; balanced: boolean; lines: string[] }> };
    // The ledger, and chain-tee's own parts of the audit: on a node serving other schemes too (a mixed
    // population), another scheme's exposure is that scheme's to judge.
    const onChain = full.schemes.find((s) => s.scheme === CHAIN_SCHEME);
    const exposed = full.exposure.find((e) => e.scheme === CHAIN_SCHEME);
    if (!full.ledgerBalanced || exposed?.balanced === false || onChain === undefined || !onChain.balanced) return `the node's audit of the chain does not balance: ${JSON.stringify(onChain?.lines ?? full)}`;
    await readChain(sim);
    // The supply and what every address holds are the node's audit's; what the TEEs hold is set against the contract's total.
    const [total] = await sim.chain.reader.readContract({ address: sim.contracts.contract, abi: offlineAccountsAbi, functionName: 'totals' });
    let held = 0n;
    for (const p of allParties(sim)) held += await holding(sim, p);
    if (world.params.sabotage === 'forget-payment' && sim.paymentsMade > 0) held -= sim.lastPayment;
    const created = held - total;
    if (created < 0n) return `value destroyed offline: TAs hold ${held} < the contract's ${total}`;
    const attacks = world.recorder.attacks;
    if (created !== 0n && !attacks.some(creating)) return `value created offline (${created}) with no attack that copied a TA or forged a payer`;
    const bound = attacks.reduce((sum, a) => sum + a.bound, 0n);
    if (created > bound) return `value created offline (${created}) above the attacks' bound (${bound})`;
    if (sim.lost > bound) return `honest holders lost ${sim.lost}, above the attacks' bound ${bound}`;
    return null;
  });
}

