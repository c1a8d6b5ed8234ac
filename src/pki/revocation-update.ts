/**
 * Taking a newer revocation list into a trusted app: what a sync brings is kept when its issuer
 * signed it and it is not older than the list held (a device never goes back to a list that
 * revokes less). Pure; shared by every trusted app that keeps a list.
 */
import type { CryptoProvider, PublicKey } from '../core/crypto/suite.ts';
import { decodeRevocationList, verifyRevocationList } from './revocation.ts';

/** The list to keep after an offer: the held one when none was offered, else the offered one; or a refusal. */
export type RevocationUpdate =
  | { readonly ok: true; readonly crl: Uint8Array | undefined; readonly version: number | undefined }
  | { readonly ok: false; readonly code: 'CRL_ROLLBACK'; readonly message: string };

/**
 * Decides which revocation list a trusted app keeps: `offered` (encoded), when given, must be
 * signed by `issuerKey` and have a version at least the `held` one's. `version` is the offered
 * list's version when it is taken, undefined when nothing was offered.
 * @throws TallyError CRL_INVALID or TOO_LARGE for an offered list that does not decode or verify
 */
export function takeNewerRevocationList(options: {
  provider: CryptoProvider;
  issuerKey: PublicKey;
  held: Uint8Array | undefined;
  offered: Uint8Array | undefined;
}): RevocationUpdate {
  const { held, offered } = options;
  if (offered === undefined) return { ok: true, crl: held, version: undefined };
  const list = decodeRevocationList(offered);
  verifyRevocationList(options.provider, list, options.issuerKey);
  if (held !== undefined) {
    const heldVersion = decodeRevocationList(held).body.version;
    if (list.body.version < heldVersion) return { ok: false, code: 'CRL_ROLLBACK', message: `revocation list version ${list.body.version} is older than ${heldVersion}, the one held` };
  }
  return { ok: true, crl: offered, version: list.body.version };
}
