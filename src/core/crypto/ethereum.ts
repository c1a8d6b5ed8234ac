/** Ethereum addresses for secp256k1 keys (chain-tee settles on an Ethereum contract). */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { toHex } from '../bytes.ts';
import { TallyError } from '../errors.ts';
import { keccak256 } from './hash.ts';
import type { PublicKey } from './suite.ts';

/**
 * The 20-byte address: the last 20 bytes of Keccak-256 over the uncompressed point without its prefix.
 * @throws TallyError KEY_INVALID for a key of another suite or off the curve
 */
export function ethereumAddress(publicKey: PublicKey): Uint8Array {
  if (publicKey.suite !== 'secp256k1') {
    throw new TallyError('KEY_INVALID', `an Ethereum address needs a secp256k1 key, got ${publicKey.suite}`, {
      suite: publicKey.suite,
      reason: 'wrong suite',
    });
  }
  let uncompressed: Uint8Array;
  try {
    uncompressed = secp256k1.Point.fromBytes(publicKey.key).toBytes(false);
  } catch (e) {
    throw new TallyError('KEY_INVALID', 'secp256k1 key is not on the curve', { suite: 'secp256k1', reason: 'not on curve' }, { cause: e });
  }
  return keccak256(uncompressed.subarray(1)).slice(12);
}

/** EIP-55 mixed-case checksummed text of an address. @throws RangeError unless 20 bytes */
export function formatEthereumAddress(address: Uint8Array): string {
  if (address.length !== 20) throw new RangeError(`address: expected 20 bytes, got ${address.length}`);
  const hex = toHex(address);
  const hash = toHex(keccak256(new TextEncoder().encode(hex)));
  let out = '0x';
  for (let i = 0; i < hex.length; i++) out += parseInt(hash[i] as string, 16) >= 8 ? (hex[i] as string).toUpperCase() : hex[i];
  return out;
}

/** Recovers the signer's address from a 65-byte r ‖ s ‖ v signature over a message, as `ecrecover` does; null if invalid. */
export function recoverEthereumAddress(signature: Uint8Array, message: Uint8Array): Uint8Array | null {
  const key = recoverEthereumPublicKey(signature, message);
  return key === null ? null : ethereumAddress({ suite: 'secp256k1', key });
}

/** Recovers the signer's compressed public key from a 65-byte r ‖ s ‖ v signature over a message; null if invalid. */
export function recoverEthereumPublicKey(signature: Uint8Array, message: Uint8Array): Uint8Array | null {
  if (signature.length !== 65) return null;
  const v = signature[64] as number;
  if (v !== 27 && v !== 28) return null;
  try {
    const sig = secp256k1.Signature.fromBytes(signature.subarray(0, 64), 'compact').addRecoveryBit(v - 27);
    return sig.recoverPublicKey(keccak256(message)).toBytes(true);
  } catch {
    return null;
  }
}
