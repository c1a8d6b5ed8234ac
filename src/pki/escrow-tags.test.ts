/**
 * The escrow tag chain as a layer of its own (pki/escrow-tags.ts): a domain's limit on tags, its
 * separation from another domain, and a tag whose sealed content names a device that did not sign
 * it. OTP's and OPERA's tests run the chain through their own domains.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeCbor } from '../core/cbor.ts';
import { randomBytes } from '../core/crypto/hash.ts';
import { generateKeyPair, setupBaseS } from '../core/crypto/hpke.ts';
import { nobleEd25519, nobleProvider } from '../core/crypto/noble.ts';
import { signRecord } from '../core/crypto/record.ts';
import { signerFromSecret } from '../core/crypto/suite.ts';
import { isTallyError } from '../core/errors.ts';
import { escrowTags, type SealedTag } from './escrow-tags.ts';

const escrow = generateKeyPair();
const [alice, mallory] = [1, 2].map((n) => signerFromSecret(nobleEd25519, new Uint8Array(32).fill(n))) as [ReturnType<typeof signerFromSecret>, ReturnType<typeof signerFromSecret>];
const domain = { signTag: 'tally/test/escrow-tag/v1', infoLabel: 'tally/test/escrow/v1', serialBytes: 16, tagsMax: 3 };
const tags = escrowTags(domain);
const serial = randomBytes(16);
const pay = (chain: readonly SealedTag[], device = alice) => tags.appendTag({ serial, tags: chain, payee: randomBytes(16), device, escrowPublicKey: escrow.publicKey });

test('a domain carries at most its tagsMax tags', () => {
  const full = pay(pay(pay([])));
  assert.equal(full.length, 3);
  assert.throws(() => pay(full), RangeError);
});

test('a tag of one domain neither opens nor checks in another', () => {
  const chain = pay([]);
  const otherInfo = escrowTags({ ...domain, infoLabel: 'tally/other/escrow/v1' });
  assert.throws(() => otherInfo.openTag(nobleProvider, escrow.privateKey, serial, chain, 1), (e: unknown) => isTallyError(e, 'AEAD_FAILED'));
  const otherSign = escrowTags({ ...domain, signTag: 'tally/other/escrow-tag/v1' });
  assert.throws(() => otherSign.openTag(nobleProvider, escrow.privateKey, serial, chain, 1), (e: unknown) => isTallyError(e, 'SIGNATURE_INVALID'));
  assert.deepEqual(tags.openTag(nobleProvider, escrow.privateKey, serial, chain, 1).device.key, alice.publicKey.key);
});

test('a forged tag (naming alice, signed by mallory) is refused, and two copies with it name nobody', () => {
  const body = { serial, hop: 1, previous: new Uint8Array(32), payee: randomBytes(16), device: { suite: alice.publicKey.suite, key: alice.publicKey.key } };
  const content = { ...body, signature: signRecord(mallory, domain.signTag, body) };
  const context = setupBaseS({ recipientPublicKey: escrow.publicKey, info: encodeCbor([domain.infoLabel, serial, 1]) });
  const forged: SealedTag[] = [{ enc: context.enc, ciphertext: context.seal(encodeCbor(content)) }];
  assert.throws(() => tags.openTag(nobleProvider, escrow.privateKey, serial, forged, 1), (e: unknown) => isTallyError(e, 'SIGNATURE_INVALID'));
  assert.throws(() => tags.attribute(nobleProvider, escrow.privateKey, serial, pay([]), forged), (e: unknown) => isTallyError(e, 'SIGNATURE_INVALID'));
  assert.equal(tags.attribute(nobleProvider, escrow.privateKey, serial, pay([], alice), pay([], mallory)), null, 'two devices at the fork name nobody');
});
