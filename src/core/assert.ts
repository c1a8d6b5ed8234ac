import { TallyError } from './errors.ts';

/**
 * Asserts an invariant of the program. A failure is a bug, never bad input.
 * @throws TallyError ASSERTION_FAILED
 */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new TallyError('ASSERTION_FAILED', `assertion failed: ${message}`, {});
}

/**
 * Closes a switch over a tagged union: the compiler proves it unreachable.
 * @throws TallyError ASSERTION_FAILED when reached with a value the types did not allow
 */
export function assertUnreachable(value: never): never {
  throw new TallyError('ASSERTION_FAILED', `unreachable: ${String(value)}`, {});
}
