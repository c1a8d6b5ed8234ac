import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { randomBytes } from '../core/crypto/hash.ts';
import { isTallyError } from '../core/errors.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { toyPurse, type PurseState } from './apps/toy-purse.ts';
import { FileCounter } from './counter-file.ts';
import { InProcessHost, SimulatedCrash, type HostOptions } from './host.ts';
import { CRASH_POINTS, type CrashPoint } from './secure-element.ts';
import { FileStorage } from './storage-file.ts';

interface Step {
  kind: 'load' | 'spend';
  amount: bigint;
  crash: CrashPoint | null;
  retry: boolean;
}

const stepArbitrary: fc.Arbitrary<Step> = fc.record({
  kind: fc.constantFrom<'load' | 'spend'>('load', 'spend'),
  amount: fc.bigInt({ min: 1n, max: 50n }),
  crash: fc.option(fc.constantFrom(...CRASH_POINTS), { freq: 2 }),
  retry: fc.boolean(),
});

const COMMITTED_AT: ReadonlySet<CrashPoint> = new Set(['after-rename', 'after-increment']);

test('random loads and spends with crashes at random points match a model of the purse exactly', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(stepArbitrary, { minLength: 1, maxLength: 10 }), async (steps) => {
      const dir = await mkdtemp(join(tmpdir(), 'tally-se-prop-'));
      try {
        let crashAt: CrashPoint | null = null;
        const options: HostOptions<PurseState, typeof toyPurse.commands> = {
          app: toyPurse,
          storage: new FileStorage(dir),
          counter: new FileCounter(join(dir, 'toy-purse.counter')),
          provider: nodeProvider,
          onCrashPoint: (point) => {
            if (point === crashAt) throw new SimulatedCrash(point);
          },
        };
        let se = await InProcessHost.provision(options);
        // The model: what the purse must hold if every commit is all-or-nothing and retries run once.
        let balance = 0n;
        let spends = 0n;
        for (const step of steps) {
          const requestId = randomBytes(16);
          const call = () =>
            step.kind === 'load'
              ? se.call('load', { amount: step.amount }, { requestId })
              : se.call('spend', { amount: step.amount, payee: new Uint8Array(32) }, { requestId });
          const refused = step.kind === 'spend' && step.amount > balance;
          const apply = () => {
            if (step.kind === 'load') balance += step.amount;
            else {
              balance -= step.amount;
              spends += 1n;
            }
          };

          crashAt = step.crash;
          if (refused) {
            // A refusal happens before any crash point is reached, and writes nothing.
            await assert.rejects(call(), (e) => isTallyError(e, 'SE_REJECTED'));
          } else if (step.crash === null) {
            await call();
            apply();
          } else {
            await assert.rejects(call(), (e) => e instanceof SimulatedCrash && e.point === step.crash);
            crashAt = null;
            se = await InProcessHost.open(options);
            const committed = COMMITTED_AT.has(step.crash);
            if (committed) apply();
            if (step.retry) {
              const output = await call();
              if (!committed) apply();
              if (step.kind === 'spend' && 'index' in output) assert.equal(output.index, spends);
            }
          }
          crashAt = null;
          assert.deepEqual(await se.call('balance', {}), { balance, spent: spends });
        }
        await se.close();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 30 },
  );
});
