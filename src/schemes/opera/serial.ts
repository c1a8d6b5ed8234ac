/** An ODW's serial number (SN, Table 1): derived from its device key, so a partner checks one against the other. Pure. */
import { sha256 } from '../../core/crypto/hash.ts';
import type { PublicKey } from '../../core/crypto/suite.ts';

/** The first 16 bytes of SHA-256 over the device public key's bytes. */
export function odwSerial(device: PublicKey): Uint8Array {
  return sha256(device.key).slice(0, 16);
}
