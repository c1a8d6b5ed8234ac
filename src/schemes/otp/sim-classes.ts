/**
 * The class keys of OTP's simulated nodes: a few 2048-bit RSA keys made once per process and handed
 * out in turn, so that each run's node does not spend seconds of CPU making its classes' keys (as
 * the node's tests share theirs). Keys the node makes for itself are no choice of the run: a seed
 * reproduces its report whichever keys the classes got.
 */
import { generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { DENOMINATIONS } from './node-classes.ts';

const generateRsa = promisify(generateKeyPair);
let pool: Promise<KeyObject[]> | null = null;
let next = 0;

/** Where a simulated node's class keys come from: one key per denomination, made once per process. */
export function classPool(): () => Promise<KeyObject> {
  return async () => {
    pool ??= Promise.all(DENOMINATIONS.map(async () => (await generateRsa('rsa', { modulusLength: 2048, publicExponent: 65537 })).privateKey));
    const keys = await pool;
    return keys[next++ % keys.length] as KeyObject;
  };
}
