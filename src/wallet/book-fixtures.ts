/** A scheme format and folders for the book's tests and their crash child. */
import { hexOf, legacyWallet, sentEntry, testSteps } from './store/test-fixtures.ts';
import type { WalletFormat } from './folder.ts';
import type { JournalStep } from './wallet-data.ts';

/** The test scheme's steps, as a scheme's format reads them. */
export type TestStep = JournalStep & Record<string, unknown>;

/** The format of the test scheme (`purse`): its steps are the store fixtures'; it keeps no slot. */
export const TEST_FORMAT: WalletFormat<TestStep, never> = {
  step(raw) {
    try {
      testSteps.decode(raw, 'step');
      return raw;
    } catch {
      return null;
    }
  },
  slot: () => null,
};

/** The pay step number n, and the sent entry and history line that finish it. */
export function payStepOf(n: number): { step: TestStep; entry: ReturnType<typeof sentEntry>; line: { at: number; kind: string; detail: string } } {
  return { step: { kind: 'pay', id: hexOf(n + 1, 16), amount: '100', receiver: 'QUJD' }, entry: sentEntry(n), line: { at: Date.now(), kind: 'pay', detail: `step ${n}` } };
}

export { legacyWallet };
