/**
 * The payment password pwd (DOT-M §3.3.1 step 5, §3.3.3 preparation 2): asked at a prompt that
 * does not echo when standard input is a terminal, read from TALLY_PASSWORD otherwise (scripts,
 * tests). The secure element checks it; this file only collects it.
 */
import { TallyError } from '../core/errors.ts';
import { askHidden as ask } from '../host/prompt.ts';

/**
 * Reads the password: from a prompt on a terminal (twice when `confirm`), else from TALLY_PASSWORD.
 * @throws TallyError PASSWORD_MISSING when neither is available; PASSWORD_MISMATCH when the two entries differ
 */
export async function readPassword(env: Readonly<Record<string, string | undefined>>, prompt: string, options: { confirm?: boolean } = {}): Promise<string> {
  if (!process.stdin.isTTY) {
    const fromEnv = env['TALLY_PASSWORD'];
    if (fromEnv === undefined || fromEnv === '') {
      throw new TallyError('PASSWORD_MISSING', 'the payment password is needed: standard input is not a terminal, so set TALLY_PASSWORD', {});
    }
    return fromEnv;
  }
  const first = await ask(prompt);
  if (options.confirm === true) {
    const again = await ask('Again: ');
    if (again !== first) throw new TallyError('PASSWORD_MISMATCH', 'the two passwords differ; nothing was changed', {});
  }
  return first;
}
