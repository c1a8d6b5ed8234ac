import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nobleProvider } from '../core/crypto/noble.ts';
import { isTallyError } from '../core/errors.ts';
import { encodeRevocationList, issueRevocationList } from './revocation.ts';
import { takeNewerRevocationList } from './revocation-update.ts';
import { signer } from './test-fixtures.ts';

const issuer = signer('revocation-update/issuer');
const other = signer('revocation-update/other');
const list = (version: number, by = issuer) => encodeRevocationList(issueRevocationList({ issuer: by, version, issuedAt: 1_000 + version, revoked: [new Uint8Array(16).fill(version)] }));
const take = (held: Uint8Array | undefined, offered: Uint8Array | undefined) => takeNewerRevocationList({ provider: nobleProvider, issuerKey: issuer.publicKey, held, offered });

describe('takeNewerRevocationList', () => {
  it('keeps the held list when none is offered, takes a newer or equal one with its version', () => {
    const [v1, v2] = [list(1), list(2)];
    assert.deepEqual(take(v1, undefined), { ok: true, crl: v1, version: undefined });
    assert.deepEqual(take(undefined, undefined), { ok: true, crl: undefined, version: undefined });
    assert.deepEqual(take(undefined, v1), { ok: true, crl: v1, version: 1 });
    assert.deepEqual(take(v1, v2), { ok: true, crl: v2, version: 2 });
    assert.deepEqual(take(v2, list(2)), { ok: true, crl: list(2), version: 2 });
  });

  it('refuses an older list (rolled back) as data, and throws for one of another issuer or malformed', () => {
    assert.deepEqual(take(list(3), list(2)), { ok: false, code: 'CRL_ROLLBACK', message: 'revocation list version 2 is older than 3, the one held' });
    assert.throws(() => take(list(1), list(5, other)), (e) => isTallyError(e, 'CRL_INVALID'));
    const forged = list(5);
    forged[forged.length - 1] = (forged[forged.length - 1] as number) ^ 1;
    assert.throws(() => take(list(1), forged), (e) => isTallyError(e, 'CRL_INVALID'));
    assert.throws(() => take(undefined, Uint8Array.of(0xa1)), (e) => isTallyError(e, 'CRL_INVALID'));
  });
});
