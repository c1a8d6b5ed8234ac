/**
 * DOT-M in `tally sim`: the invariants checked after every step (or every K steps) and at the end.
 *
 * Conservation: the node's audit balances, nothing sits in settlement, issued = online +
 * float:dotm; every wallet holds what the simulation expects; and the value created offline,
 * Σ every trusted app's balance (clones and rolled-back copies included) + redemptions and refunds
 * the node has not settled yet − float:dotm, is zero until an attack duplicates value, never above
 * the attacks' bounds, and never below minus what settlement refused to pay out because of a
 * double spend (a redemption refused, a refund withheld: no value vanishes any other way).
 * What honest holders lost (a double-spent copy redeemed after the other branch) is never above
 * those bounds either. The other invariants (credited once, no forgery, attribution) are checked
 * where the step meets them (sim-exchange.ts, sim-attacks.ts, sim-population.ts); the end's
 * (every double spend detected and attributed) in `doubleSpendsDetected`.
 */
import { DOTM_FLOAT_ACCOUNT } from './node.ts';
import type { DotmSim } from './sim-population.ts';

/** Registers the conservation invariant; `lastPayment` is what the test-only sabotage makes the books forget. */
export function registerInvariants(sim: DotmSim, lastPayment: () => bigint): void {
  const { world, node, holders, extras, books } = sim;
  world.invariant('conservation', async () => {
    const audit = await node.audit();
    const float = audit.floats.get(DOTM_FLOAT_ACCOUNT) ?? 0n;
    if (!audit.balanced) return "the node's audit does not balance";
    if (audit.settlement !== 0n) return `${audit.settlement} sits in settlement between steps`;
    if (audit.issued !== audit.online + float) return `issued ${audit.issued} ≠ online ${audit.online} + float ${float}`;
    let held = 0n;
    for (const h of holders) {
      const status = await h.el.se.call('status', {});
      if (status.balance !== h.balance) return `wallet ${h.index} holds ${status.balance}, the simulation expected ${h.balance}`;
      if (status.offer !== undefined || status.receiving !== undefined) return `wallet ${h.index} left a transaction open between steps`;
      held += status.balance;
    }
    for (const x of extras) held += (await x.el.se.call('status', {})).balance;
    // A test-only sabotage: the books forget the last payment a payee received.
    if (world.params.sabotage === 'forget-payment') held -= lastPayment();
    let owed = 0n;
    for (const r of books.redemptions.values()) owed += r.amount;
    for (const r of books.refunds.values()) owed += r.amount;
    const created = held + owed - float;
    if (created + books.forfeited < 0n) return `value destroyed offline: wallets ${held} + owed by the node ${owed} + refused by settlement ${books.forfeited} < float ${float}`;
    if (books.duplicating === 0 && created !== 0n) return `value created offline (${created}) with no attack made`;
    const bound = world.recorder.attacks.reduce((sum, a) => sum + a.bound, 0n);
    if (created > bound) return `value created offline (${created}) above the attacks' bound (${bound})`;
    if (books.lost > bound) return `honest holders lost ${books.lost}, above the attacks' bound (${bound})`;
    return null;
  });
}

/**
 * At the end, once every holder uploaded and redeemed everything: an attack that duplicated value
 * and had a payment completed must have been detected at settlement, naming the attacker; the
 * others were refused offline or did no harm.
 */
export function doubleSpendsDetected(sim: DotmSim): void {
  const { world, books } = sim;
  // For the report: what attacks paid twice that payees took, against what honest holders lost.
  const spentTwice = books.attackPayments.filter((p) => p.received).reduce((sum, p) => sum + p.amount, 0n);
  world.recorder.count('minor.spent-twice', Number(spentTwice));
  world.recorder.count('minor.honest-lost', Number(books.lost));
  for (const a of world.recorder.attacks) {
    if (a.kind !== 'clone' && a.kind !== 'rollback' && a.kind !== 'extracted-key' && a.kind !== 'forge-event') continue;
    if (a.outcome === 'detected') continue;
    const own = books.attackPayments.filter((p) => p.attack === a);
    if (own.some((p) => p.received)) world.violated('double-spend-detected', `a ${a.kind} of wallet ${a.device} spent value a payee took, and settlement did not detect it`);
    a.outcome = own.some((p) => p.refused) ? 'refused-offline' : 'harmless';
  }
}
