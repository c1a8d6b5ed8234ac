import assert from 'node:assert/strict';
import { test } from 'node:test';
import { utf8 } from '../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { nobleProvider } from '../core/crypto/noble.ts';
import { PUBLICATION_BODY_BYTES_MAX, PUBLICATION_BYTES_MAX, decodePublication, signPublication, verifyPublication } from './publication.ts';
import { hierarchy } from './test-fixtures.ts';

const bankA = hierarchy('ed25519', 'bank a');
const bankB = hierarchy('ed25519', 'bank b');
const body = utf8('the keys of bank a');

test('a publication signed by an intermediary verifies under its certificate and says what it carries', () => {
  const record = signPublication(bankA.intermediary, { scheme: 'otp', version: 7, body });
  const got = verifyPublication(nobleProvider, record, bankA.intermediaryCert);
  assert.equal(got.scheme, 'otp');
  assert.equal(got.version, 7);
  assert.deepEqual(got.body, body);
  assert.ok(record.length < PUBLICATION_BYTES_MAX);
});

test("another bank's certificate, a changed body, scheme or version, or a forged signature are refused", () => {
  const record = signPublication(bankA.intermediary, { scheme: 'otp', version: 7, body });
  assert.throws(() => verifyPublication(nobleProvider, record, bankB.intermediaryCert), { code: 'SIGNATURE_INVALID' });
  const wire = decodeCbor(record) as { body: Record<string, unknown>; signature: Uint8Array };
  for (const change of [{ body: utf8('the keys of mallory') }, { scheme: 'opera' }, { version: 8 }]) {
    const altered = encodeCbor({ body: { ...wire.body, ...change }, signature: wire.signature });
    assert.throws(() => verifyPublication(nobleProvider, altered, bankA.intermediaryCert), { code: 'SIGNATURE_INVALID' }, JSON.stringify(Object.keys(change)));
  }
  // B signs a record naming A as its issuer: the issuer is A's key, the signature is not.
  const posing = signPublication(bankB.intermediary, { scheme: 'otp', version: 9, body });
  const posingWire = decodeCbor(posing) as { body: Record<string, unknown>; signature: Uint8Array };
  const renamed = encodeCbor({ body: { ...posingWire.body, issuer: (wire.body['issuer'] as Uint8Array) }, signature: posingWire.signature });
  assert.throws(() => verifyPublication(nobleProvider, renamed, bankA.intermediaryCert), { code: 'SIGNATURE_INVALID' });
});

test('malformed and oversized publications are refused before any signature is checked', () => {
  assert.throws(() => decodePublication(new Uint8Array([0xff, 0x00])), { code: 'DECODE_FAILED' });
  assert.throws(() => decodePublication(encodeCbor({ body: { scheme: 'otp' }, signature: new Uint8Array(64) })), { code: 'DECODE_FAILED' });
  assert.throws(() => decodePublication(new Uint8Array(PUBLICATION_BYTES_MAX + 1)), { code: 'TOO_LARGE' });
  assert.throws(() => signPublication(bankA.intermediary, { scheme: 'otp', version: 1, body: new Uint8Array(PUBLICATION_BODY_BYTES_MAX + 1) }), { code: 'TOO_LARGE' });
  assert.throws(() => signPublication(bankA.intermediary, { scheme: 'Not A Scheme', version: 1, body }), { code: 'DECODE_FAILED' });
  assert.throws(() => signPublication(bankA.intermediary, { scheme: 'otp', version: 1, body: new Uint8Array(0) }), { code: 'DECODE_FAILED' });
});
