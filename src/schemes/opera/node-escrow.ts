/**
 * Escrow attribution on the node (escrow.ts): a deposited token's tags are kept sealed with it, and
 * opened only when its serial comes back. Each later copy is kept as evidence; when both the first
 * and this copy carry tags, the node opens the two chains at the hop where they part. The device
 * that signed both branches paid the token twice (a cloned ODW, whose state was copied with its
 * tokens): it is named in a `paid-twice` finding and its certificate revoked, so the bank refuses
 * its charges, deposits and reports. Payees are not told: an OPERA payment shows no certificate.
 */
import { toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { array } from '../../core/codec.ts';
import { isTallyError } from '../../core/errors.ts';
import { keyId } from '../../pki/key-id.ts';
import { sealedTagCodec, type SealedTag } from '../../pki/escrow-tags.ts';
import type { IssuerServices, TransactionHandle } from '../../issuer/plugin.ts';
import { operaEscrow } from './escrow.ts';
import { recordFinding } from './node-findings.ts';
import { operaEscrowKey } from './node-keys.ts';
import { TOKEN_TAGS_MAX } from './token.ts';

const tagsCodec = array(sealedTagCodec, { min: 1, max: TOKEN_TAGS_MAX });

/** The stored form of a token's tags: null when it carries none. */
export function encodeTags(tags: readonly SealedTag[]): Uint8Array | null {
  return tags.length === 0 ? null : encodeCbor(tags);
}

/** The device the tags named for paying `serial` twice, at `hop`. */
export interface PaidTwice {
  readonly hop: number;
  readonly device: string;
  /** The revocation list version that revoked it; null when it is not a device of this node. */
  readonly revocationVersion: number | null;
}

/**
 * Keeps a later copy of a spent serial and, when the first deposited copy and this one both carry
 * tags that part, names and revokes the device that signed both branches. Answers what it named, or
 * null: the same chain twice, a chain that is a prefix of the other, a first copy refunded or
 * without tags, tags that name two devices, or tags that do not open and check (the evidence stays).
 */
export async function attributeDoubleSpend(
  tx: TransactionHandle,
  services: IssuerServices,
  copy: { serial: Uint8Array; device: string; tags: readonly SealedTag[] },
  /** On a node with shard databases: the first deposited copy's stored tags, read on its shard, where the evidence was kept. */
  sharded?: { readonly firstTags: Uint8Array | null | undefined } | undefined,
): Promise<PaidTwice | null> {
  const at = new Date(services.now()).toISOString();
  const tags = encodeTags(copy.tags);
  let stored: Uint8Array | null | undefined;
  if (sharded === undefined) {
    await tx.query('INSERT INTO opera_double_spends (serial, device_key_id, tags, at) VALUES ($1, $2, $3, $4)', [copy.serial, copy.device, tags, at]);
    const { rows } = await tx.query<{ tags: Uint8Array | null }>("SELECT tags FROM opera_tokens WHERE serial = $1 AND state = 'deposited'", [copy.serial]);
    stored = rows[0]?.tags;
  } else stored = sharded.firstTags;
  if (stored === undefined || stored === null || tags === null) return null;
  const first = tagsCodec.decode(decodeCbor(new Uint8Array(stored)), 'opera_tokens.tags');
  let named: ReturnType<typeof operaEscrow.attribute>;
  try {
    // Opened here only: the serial came back, so one of its holders paid it twice.
    named = operaEscrow.attribute(services.provider, operaEscrowKey(services).privateKey, copy.serial, first, copy.tags);
  } catch (e) {
    if (isTallyError(e)) return null;
    throw e;
  }
  if (named === null) return null;
  const device = toHex(keyId(named.device));
  // A third copy names the same device again: one finding, one revocation.
  const known = await tx.query<{ revocation_version: bigint | null }>("SELECT revocation_version FROM opera_findings WHERE kind = 'paid-twice' AND serial = $1 AND device_key_id = $2", [copy.serial, device]);
  const held = known.rows[0];
  const revocationVersion = held !== undefined ? (held.revocation_version === null ? null : Number(held.revocation_version)) : await recordFinding(tx, services, { kind: 'paid-twice', serial: copy.serial, device, hop: named.hop });
  return { hop: named.hop, device, revocationVersion };
}
