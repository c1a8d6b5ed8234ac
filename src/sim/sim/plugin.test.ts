/**
 * The judge of a relayed message (simRelayed): a message a protocol check refused is `refused
 * offline`; one let through is `harmless` only when it credited nobody or the payee the payer
 * meant; money credited to the relayer or to any other party breaks the payee-bound invariant.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { simRelayed, SimViolation, type SimAttack, type SimRecorder, type SimWorld } from './plugin.ts';

/** The two parts of a world the judge uses: a recorder that keeps counters and attacks, and `violated`. */
function world(): Pick<SimWorld, 'recorder' | 'violated'> & { counters: Map<string, number> } {
  const counters = new Map<string, number>();
  const attacks: SimAttack[] = [];
  const recorder: SimRecorder = {
    count: (name, n = 1) => void counters.set(name, (counters.get(name) ?? 0) + n),
    attack: (kind, device, bound) => {
      const a: SimAttack = { kind, at: 0, device, bound, outcome: 'pending', attributed: false, detectedAt: null };
      attacks.push(a);
      return a;
    },
    attacks,
    bytes: () => {},
    loss: () => {},
  };
  return {
    counters,
    recorder,
    violated: (name, what) => {
      throw new SimViolation(name, what, 0, 0);
    },
  };
}

const relay = { relayer: 'mallory', variant: 'payment-to-relayer', meant: 'bob' } as const;
const payeeBound = (e: unknown) => e instanceof SimViolation && e.invariant === 'payee-bound';

describe('simRelayed', () => {
  test('a relayed message a protocol check refused is refused offline, its code counted', () => {
    const w = world();
    const a = simRelayed(w, { ...relay, refusal: 'PAYMENT_INVALID', credited: null });
    assert.equal(a.kind, 'relay');
    assert.equal(a.device, 'mallory');
    assert.equal(a.bound, 0n);
    assert.equal(a.outcome, 'refused-offline');
    assert.equal(w.counters.get('attacks.relay.payment-to-relayer'), 1);
    assert.equal(w.counters.get('refused.relay.PAYMENT_INVALID'), 1);
  });

  test('a relayed message let through is harmless when it credits nobody or the payee the payer meant', () => {
    const w = world();
    assert.equal(simRelayed(w, { ...relay, variant: 'request-as-meant', refusal: null, credited: null }).outcome, 'harmless');
    assert.equal(simRelayed(w, { ...relay, variant: 'payment-as-meant', refusal: null, credited: 'bob' }).outcome, 'harmless');
    assert.equal(w.recorder.attacks.length, 2);
  });

  test('money credited to the relayer, to a party the payer did not mean, or by a refused message breaks payee-bound', () => {
    assert.throws(() => simRelayed(world(), { ...relay, refusal: null, credited: 'mallory' }), (e) => payeeBound(e) && /credited the relayer mallory/.test((e as Error).message));
    assert.throws(() => simRelayed(world(), { ...relay, variant: 'payment-to-other', refusal: null, credited: 'carol' }), (e) => payeeBound(e) && /credited carol, not bob/.test((e as Error).message));
    assert.throws(() => simRelayed(world(), { ...relay, refusal: 'PAYMENT_INVALID', credited: 'bob' }), (e) => payeeBound(e) && /was refused \(PAYMENT_INVALID\) and still credited bob/.test((e as Error).message));
  });
});
