/** Builds a monotonic counter from its serialisable description. */
import { assertUnreachable } from '../core/assert.ts';
import type { MonotonicCounter } from './counter.ts';
import { FileCounter } from './counter-file.ts';
import { TpmCounter } from './counter-tpm.ts';
import type { CounterSpec } from './host-protocol.ts';

/** The counter a spec names. */
export function makeCounter(spec: CounterSpec): MonotonicCounter {
  switch (spec.kind) {
    case 'file':
      return new FileCounter(spec.path);
    case 'tpm':
      return new TpmCounter({ tcti: spec.tcti, nvIndex: spec.nvIndex });
    default:
      return assertUnreachable(spec);
  }
}
