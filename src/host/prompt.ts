/**
 * A prompt that does not echo what is typed (passwords, passphrases): the prompt goes to stderr,
 * the answer is read from a terminal on standard input.
 */
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { TallyError } from '../core/errors.ts';

/** Longest answer read from a prompt. */
export const PROMPT_CHARS_MAX = 128;

/** Asks `prompt` on stderr and reads one line from the terminal without echoing it. @throws TallyError PASSWORD_MISSING for an answer over PROMPT_CHARS_MAX */
export function askHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    process.stderr.write(prompt);
    const silent = new Writable({ write: (_chunk, _encoding, done) => done() });
    const rl = createInterface({ input: process.stdin, output: silent, terminal: true });
    rl.question('', (answer) => {
      rl.close();
      process.stderr.write('\n');
      if (answer.length > PROMPT_CHARS_MAX) reject(new TallyError('PASSWORD_MISSING', `the answer is longer than ${PROMPT_CHARS_MAX} characters`, {}));
      else resolve(answer);
    });
  });
}
