/**
 * SM3 (GB/T 32905, ISO/IEC 10118-3), through sm-crypto-v2 (not audited; it builds on @noble 1.x).
 * Apart from hash.ts so that only its users load the library.
 */
import { sm3 as smCryptoSm3 } from 'sm-crypto-v2';
import { fromHex } from '../bytes.ts';

/** SM3 of bytes. Bytes only: the library would read a string as UTF-8 text, which a caller here never means. */
export function sm3(data: Uint8Array): Uint8Array {
  if (!(data instanceof Uint8Array)) throw new TypeError('sm3: expected a Uint8Array');
  return fromHex(smCryptoSm3(data));
}
