import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { concatBytes, equalBytes } from '../core/bytes.ts';
import { encodeCbor } from '../core/cbor.ts';
import { nobleProvider } from '../core/crypto/noble.ts';
import { isTallyError, type ErrorCode } from '../core/errors.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { keyId } from './key-id.ts';
import {
  decodeRevocationList,
  encodeRevocationList,
  issueRevocationList,
  listRevokes,
  verifyRevocationList,
  RevocationStore,
  REVOCATION_LIST_BYTES_MAX,
  REVOKED_SERIALS_MAX,
  type RevocationList,
} from './revocation.ts';
import { signer, NOW } from './test-fixtures.ts';

const code = (c: ErrorCode) => (e: unknown) => isTallyError(e, c);
const provider = nobleProvider;
const bank = signer('crl/intermediary');
const otherBank = signer('crl/other', 'p256');

function serial(n: number): Uint8Array {
  const out = new Uint8Array(16);
  new DataView(out.buffer).setUint32(12, n);
  return out;
}

function list(version: number, serials: number[], issuer = bank): RevocationList {
  return issueRevocationList({ issuer, version, issuedAt: NOW + version, revoked: serials.map(serial) });
}

describe('revocation lists', () => {
  it('sorts and de-duplicates serials, and round-trips through bytes', () => {
    const l = list(3, [9, 2, 9, 5]);
    assert.deepEqual(l.body.revoked, [serial(2), serial(5), serial(9)]);
    assert.ok(equalBytes(l.body.issuer, keyId(bank.publicKey)));
    const decoded = decodeRevocationList(encodeRevocationList(l));
    assert.deepEqual(decoded, l);
    verifyRevocationList(provider, decoded, bank.publicKey);
    assert.ok(listRevokes(decoded, serial(5)));
    assert.ok(!listRevokes(decoded, serial(6)));
  });

  it('handles a full list of REVOKED_SERIALS_MAX serials', () => {
    const serials = Array.from({ length: REVOKED_SERIALS_MAX }, (_, i) => serial(i * 7));
    const full = issueRevocationList({ issuer: bank, version: 1, issuedAt: NOW, revoked: serials });
    const encoded = encodeRevocationList(full);
    assert.ok(encoded.length <= REVOCATION_LIST_BYTES_MAX);
    const decoded = decodeRevocationList(encoded);
    verifyRevocationList(provider, decoded, bank.publicKey);
    assert.ok(listRevokes(decoded, serial(7 * 99_999)));
    assert.ok(!listRevokes(decoded, serial(7 * 99_999 + 1)));
    assert.throws(() => issueRevocationList({ issuer: bank, version: 2, issuedAt: NOW, revoked: [...serials, serial(1)] }), code('CRL_INVALID'));
  });

  it('refuses malformed bytes with CRL_INVALID and oversized ones with TOO_LARGE', () => {
    const encoded = encodeRevocationList(list(1, [1, 2]));
    assert.throws(() => decodeRevocationList(concatBytes(encoded, new Uint8Array([0]))), code('CRL_INVALID'));
    assert.throws(() => decodeRevocationList(encoded.subarray(1)), code('CRL_INVALID'));
    assert.throws(() => decodeRevocationList(new Uint8Array(REVOCATION_LIST_BYTES_MAX + 1)), code('TOO_LARGE'));
    const l = list(1, [1, 2]);
    const wire = { version: l.body.version, issuer: l.body.issuer, issuedAt: l.body.issuedAt, revoked: l.body.revoked };
    const unsorted = encodeCbor({ body: { ...wire, revoked: [serial(2), serial(1)] }, signature: l.signature });
    assert.throws(() => decodeRevocationList(unsorted), code('CRL_INVALID'));
    const repeated = encodeCbor({ body: { ...wire, revoked: [serial(1), serial(1)] }, signature: l.signature });
    assert.throws(() => decodeRevocationList(repeated), code('CRL_INVALID'));
    const extra = encodeCbor({ body: { ...wire, reason: 'x' }, signature: l.signature });
    assert.throws(() => decodeRevocationList(extra), code('CRL_INVALID'));
  });

  it('refuses a list under the wrong key, a flipped signature or a changed body', () => {
    const l = list(1, [1]);
    assert.throws(() => verifyRevocationList(provider, l, otherBank.publicKey), code('CRL_INVALID'));
    const flipped = l.signature.slice();
    flipped[0] = (flipped[0] as number) ^ 1;
    assert.throws(() => verifyRevocationList(provider, { body: l.body, signature: flipped }, bank.publicKey), code('CRL_INVALID'));
    const shorter = { body: { ...l.body, revoked: [] }, signature: l.signature };
    assert.throws(() => verifyRevocationList(provider, shorter, bank.publicKey), code('CRL_INVALID'));
  });
});

describe('RevocationStore', () => {
  it('answers isRevoked per issuer and serial', () => {
    const store = new RevocationStore({ provider });
    assert.equal(store.accept(list(1, [1, 2]), bank.publicKey), 'accepted');
    assert.equal(store.accept(list(1, [2], otherBank), otherBank.publicKey), 'accepted');
    const bankId = keyId(bank.publicKey);
    const otherId = keyId(otherBank.publicKey);
    assert.ok(store.isRevoked(bankId, serial(1)));
    assert.ok(!store.isRevoked(otherId, serial(1)));
    assert.ok(store.isRevoked(otherId, serial(2)));
    assert.ok(!store.isRevoked(bankId, serial(3)));
    assert.equal(store.versionOf(bankId), 1);
    assert.equal(store.lists().length, 2);
  });

  it('moves forward, refuses rollback, and keeps its state after a refusal', () => {
    const store = new RevocationStore({ provider });
    const bankId = keyId(bank.publicKey);
    store.accept(list(1, [1]), bank.publicKey);
    assert.equal(store.accept(list(5, [1, 2]), bank.publicKey), 'accepted');
    assert.throws(() => store.accept(list(4, []), bank.publicKey), (e: unknown) => {
      assert.ok(isTallyError(e, 'CRL_ROLLBACK'));
      assert.deepEqual(e.details, { have: '5', got: '4' });
      return true;
    });
    assert.equal(store.versionOf(bankId), 5);
    assert.ok(store.isRevoked(bankId, serial(2)));
  });

  it('treats the same version as idempotent only with the same content', () => {
    const store = new RevocationStore({ provider });
    const p256Bank = signer('crl/p256-bank', 'p256');
    const first = list(2, [1, 2], p256Bank);
    store.accept(first, p256Bank.publicKey);
    // node:crypto's ECDSA draws a fresh nonce: same key, same content, other signature bytes.
    const again = list(2, [2, 1], signer('crl/p256-bank', 'p256', nodeProvider));
    assert.ok(!equalBytes(again.signature, first.signature));
    assert.equal(store.accept(again, p256Bank.publicKey), 'unchanged');
    assert.throws(() => store.accept(list(2, [1], p256Bank), p256Bank.publicKey), code('CRL_INVALID'));
    assert.ok(store.isRevoked(keyId(p256Bank.publicKey), serial(2)));
  });

  it('refuses a bad signature without changing anything', () => {
    const store = new RevocationStore({ provider });
    store.accept(list(1, [1]), bank.publicKey);
    const next = list(2, [1, 2]);
    const bad = { body: next.body, signature: next.signature.map((b, i) => (i === 0 ? b ^ 1 : b)) };
    assert.throws(() => store.accept(bad, bank.publicKey), code('CRL_INVALID'));
    assert.equal(store.versionOf(keyId(bank.publicKey)), 1);
    assert.ok(!store.isRevoked(keyId(bank.publicKey), serial(2)));
  });

  it('keeps lists of at most issuersMax issuers', () => {
    const store = new RevocationStore({ provider, issuersMax: 1 });
    store.accept(list(1, [1]), bank.publicKey);
    assert.throws(() => store.accept(list(1, [1], otherBank), otherBank.publicKey), code('CRL_INVALID'));
    assert.equal(store.accept(list(2, [1]), bank.publicKey), 'accepted');
  });
});
