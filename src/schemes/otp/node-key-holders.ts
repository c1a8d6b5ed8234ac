/**
 * The exchange keys' devices (otp_exchange_keys, written by node-exchange-keys.ts) as evidence about
 * a coin's escrow tags. Tag k names the exchange key the coin was paid to; only the TA holding that
 * key's private half could open the box, so only its device can sign tag k + 1. A tag k + 1 signed by
 * another device was signed for a coin that device never held: its key was taken out of its secure
 * element. Keys the bank has no record of (signed before it kept them, or another bank's) prove
 * nothing either way.
 */
import { toHex } from '../../core/bytes.ts';
import type { PublicKey } from '../../core/crypto/suite.ts';
import { keyId } from '../../pki/key-id.ts';
import type { Queryable } from '../../issuer/plugin.ts';
import type { TagContent } from './escrow.ts';

/** A tag opened and checked: what it says, and the device that signed it. */
export interface OpenedTag {
  readonly content: TagContent;
  readonly device: PublicKey;
}

/** The device each of `keyIds` (exchange key ids) was signed for, by key id in hex; unknown keys are absent. */
export async function keyHolders(q: Queryable, keyIds: readonly Uint8Array[]): Promise<Map<string, string>> {
  const holders = new Map<string, string>();
  // One lookup a key: a chain holds a few (a coin's hops), and only a claim reads them.
  for (const id of keyIds) {
    const hex = toHex(id);
    if (holders.has(hex)) continue;
    const { rows } = await q.query<{ device_key_id: string }>('SELECT device_key_id FROM otp_exchange_keys WHERE key_id = $1', [id]);
    if (rows[0] !== undefined) holders.set(hex, rows[0].device_key_id);
  }
  return holders;
}

/**
 * The first tag of a chain (opened in order, hop 1 first) signed by a device other than the one the
 * exchange key of the tag before it was signed for: its hop and device; null when there is none.
 */
export async function tagWithoutCoin(q: Queryable, opened: readonly OpenedTag[]): Promise<{ hop: number; device: PublicKey } | null> {
  const holders = await keyHolders(q, opened.slice(0, -1).map((t) => t.content.payee));
  for (let i = 1; i < opened.length; i++) {
    const holder = holders.get(toHex((opened[i - 1] as OpenedTag).content.payee));
    const tag = opened[i] as OpenedTag;
    if (holder !== undefined && holder !== toHex(keyId(tag.device))) return { hop: i + 1, device: tag.device };
  }
  return null;
}
