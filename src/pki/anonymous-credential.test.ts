import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { equalBytes, utf8 } from '../core/bytes.ts';
import {
  checkCredential,
  credentialKeys,
  CREDENTIAL_BYTES,
  CREDENTIAL_PROOF_BYTES,
  CREDENTIAL_PUBLIC_KEY_BYTES,
  issueCredential,
  proveCredential,
  verifyCredentialProof,
  type CredentialClaims,
} from './anonymous-credential.ts';

const claims: CredentialClaims = { label: 'tally/opera/odw/v1', reference: new Uint8Array(32).fill(0x5a) };
const seed = (n: number) => new Uint8Array(32).fill(n);
const holder = new Uint8Array(32).fill(0x11);
const holder2 = new Uint8Array(32).fill(0x22);

describe('anonymous credentials (BBS)', async () => {
  const maker = await credentialKeys(seed(1));
  const otherMaker = await credentialKeys(seed(2));
  const credential = await issueCredential(maker, claims, holder);
  const bind = utf8('handshake hash of meeting 1');

  it('has the sizes the codecs bound', () => {
    assert.equal(maker.publicKey.length, CREDENTIAL_PUBLIC_KEY_BYTES);
    assert.equal(credential.length, CREDENTIAL_BYTES);
  });

  it('a device checks what its maker issued, and nothing else passes', async () => {
    assert.equal(await checkCredential(maker.publicKey, claims, holder, credential), true);
    assert.equal(await checkCredential(otherMaker.publicKey, claims, holder, credential), false);
    assert.equal(await checkCredential(maker.publicKey, { ...claims, reference: new Uint8Array(32) }, holder, credential), false);
    const flipped = credential.slice();
    flipped[70] = (flipped[70] ?? 0) ^ 1;
    assert.equal(await checkCredential(maker.publicKey, claims, holder, flipped), false);
    assert.equal(await checkCredential(maker.publicKey, claims, holder, credential.subarray(1)), false);
    assert.equal(await checkCredential(maker.publicKey, claims, holder2, credential), false, 'another device\'s secret');
  });

  it('a proof verifies for its meeting, its maker and its claims only', async () => {
    const proof = await proveCredential({ publicKey: maker.publicKey, credential, claims, holder, bind });
    assert.equal(proof.length, CREDENTIAL_PROOF_BYTES);
    assert.equal(await verifyCredentialProof({ publicKey: maker.publicKey, proof, claims, bind }), true);
    // A proof replayed into another meeting, shown under another maker, or for another build.
    assert.equal(await verifyCredentialProof({ publicKey: maker.publicKey, proof, claims, bind: utf8('handshake hash of meeting 2') }), false);
    assert.equal(await verifyCredentialProof({ publicKey: otherMaker.publicKey, proof, claims, bind }), false);
    assert.equal(await verifyCredentialProof({ publicKey: maker.publicKey, proof, claims: { ...claims, reference: new Uint8Array(32).fill(0x5b) }, bind }), false);
    assert.equal(await verifyCredentialProof({ publicKey: maker.publicKey, proof, claims: { ...claims, label: 'tally/otp/odw/v1' }, bind }), false);
    // Altered, cut, grown or empty proofs.
    for (const at of [0, 100, 200, CREDENTIAL_PROOF_BYTES - 1]) {
      const altered = proof.slice();
      altered[at] = (altered[at] ?? 0) ^ 0x01;
      assert.equal(await verifyCredentialProof({ publicKey: maker.publicKey, proof: altered, claims, bind }), false, `byte ${at} altered`);
    }
    assert.equal(await verifyCredentialProof({ publicKey: maker.publicKey, proof: proof.subarray(0, CREDENTIAL_PROOF_BYTES - 1), claims, bind }), false);
    assert.equal(await verifyCredentialProof({ publicKey: maker.publicKey, proof: new Uint8Array([...proof, 0]), claims, bind }), false);
    assert.equal(await verifyCredentialProof({ publicKey: maker.publicKey, proof: new Uint8Array(CREDENTIAL_PROOF_BYTES), claims, bind }), false);
  });

  it('a device without a credential cannot make a proof that verifies: a credential of another maker, or a made-up one', async () => {
    const foreign = await issueCredential(otherMaker, claims, holder);
    const proof = await proveCredential({ publicKey: otherMaker.publicKey, credential: foreign, claims, holder, bind });
    assert.equal(await verifyCredentialProof({ publicKey: maker.publicKey, proof, claims, bind }), false);
    const madeUp = await proveCredential({ publicKey: maker.publicKey, credential: new Uint8Array(CREDENTIAL_BYTES).fill(3), claims, holder, bind }).catch(() => null);
    if (madeUp !== null) assert.equal(await verifyCredentialProof({ publicKey: maker.publicKey, proof: madeUp, claims, bind }), false);
  });

  it('two proofs of one credential share no byte pattern: neither points nor scalars repeat, for the same meeting too', async () => {
    // Unlinkability: each proof re-randomises the signature. Every 32-byte window of one proof is
    // looked for in the other; any common window (a fixed point or scalar carried over) would link them.
    const proofs = [await proveCredential({ publicKey: maker.publicKey, credential, claims, holder, bind }), await proveCredential({ publicKey: maker.publicKey, credential, claims, holder, bind })];
    const [a, b] = proofs as [Uint8Array, Uint8Array];
    assert.equal(equalBytes(a, b), false);
    const windows = new Set<string>();
    for (let i = 0; i + 16 <= a.length; i++) windows.add(Buffer.from(a.subarray(i, i + 16)).toString('hex'));
    for (let i = 0; i + 16 <= b.length; i++) assert.equal(windows.has(Buffer.from(b.subarray(i, i + 16)).toString('hex')), false, `16 bytes at ${i} repeat`);
    // Neither contains the credential itself.
    const sig = Buffer.from(credential.subarray(0, 48)).toString('hex');
    assert.equal(Buffer.from(a).toString('hex').includes(sig) || Buffer.from(b).toString('hex').includes(sig), false);
  });

  it('a proof from one device cannot be told from a proof by another device of the same maker: both verify alike, and neither matches its issuance', async () => {
    const second = await issueCredential(maker, claims, holder2);
    assert.equal(equalBytes(second, credential), false, 'two issuances differ');
    const p1 = await proveCredential({ publicKey: maker.publicKey, credential, claims, holder, bind });
    const p2 = await proveCredential({ publicKey: maker.publicKey, credential: second, claims, holder: holder2, bind });
    for (const p of [p1, p2]) assert.equal(await verifyCredentialProof({ publicKey: maker.publicKey, proof: p, claims, bind }), true);
    // The verifier's whole view is (maker key, claims, bind, proof): no field of the proof is tied
    // to an issuance. The first G1 point of each proof (Abar) is a fresh random multiple.
    assert.equal(equalBytes(p1.subarray(0, 48), credential.subarray(0, 48)), false);
    assert.equal(equalBytes(p2.subarray(0, 48), second.subarray(0, 48)), false);
  });

  it('refuses malformed claims before any computation', async () => {
    await assert.rejects(issueCredential(maker, { ...claims, reference: new Uint8Array(31) }, holder), RangeError);
    await assert.rejects(issueCredential(maker, { ...claims, label: '' }, holder), RangeError);
    await assert.rejects(issueCredential(maker, { ...claims, label: 'x'.repeat(65) }, holder), RangeError);
    await assert.rejects(issueCredential(maker, claims, holder.subarray(1)), RangeError);
  });
});
