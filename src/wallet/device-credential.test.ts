import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { randomBytes } from '../core/crypto/hash.ts';
import { isTallyError } from '../core/errors.ts';
import { signerFromSecret } from '../core/crypto/suite.ts';
import { checkCredential, credentialBinding, credentialBoxKeys, openCredential, proveCredential, verifyCredentialProof } from '../pki/anonymous-credential.ts';
import { expectedPcrValue } from '../pki/tpm-quote.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { swtpmGate } from '../secure-element/tpm-fixtures.ts';
import { makerOf, obtainDeviceCredential, type CredentialRequest, type IssuedCredential } from './device-credential.ts';
import type { Oem } from './factory.ts';

const skip = await swtpmGate();
const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const oem: Oem = { signer: signerFromSecret(nodeProvider.suites.ed25519, new Uint8Array(32).fill(1)), keyId: 'oem', credentialSeed: new Uint8Array(32).fill(2), isEnrolledAt: () => true };
const LABEL = 'tally/test/device/v1';

/** A device's side as its trusted app plays it: a holder secret and a one-time key, the binding of the maker's nonce. */
function device() {
  const holder = randomBytes(32);
  const box = credentialBoxKeys(randomBytes(32));
  const got: IssuedCredential[] = [];
  return {
    holder,
    box,
    got,
    request: async (makerNonce: Uint8Array): Promise<CredentialRequest> => ({ holder, boxKey: box.publicKey, binding: credentialBinding(makerNonce, holder, box.publicKey) }),
    install: async (issued: IssuedCredential) => void got.push(issued),
  };
}

describe('a device credential issued after a TPM quote (swtpm)', { skip }, () => {
  it('the OEM checks the quote of the build and seals a credential only the device opens; its proofs verify under the listed maker', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tally-credential-'));
    dirs.push(dir);
    const measurement = randomBytes(32);
    const d = device();
    await obtainDeviceCredential({ dir, oem, measurement, label: LABEL, request: d.request, install: d.install });
    assert.equal(d.got.length, 1);
    const issued = d.got[0] as IssuedCredential;
    const maker = await makerOf(oem, measurement);
    assert.deepEqual([issued.maker, issued.reference], [maker.publicKey, maker.reference]);
    assert.deepEqual(issued.reference, expectedPcrValue([measurement]));
    const credential = openCredential(d.box.privateKey, issued.sealed);
    const claims = { label: LABEL, reference: issued.reference };
    assert.equal(await checkCredential(issued.maker, claims, d.holder, credential), true);
    const proof = await proveCredential({ publicKey: issued.maker, credential, claims, holder: d.holder, bind: new Uint8Array(32) });
    assert.equal(await verifyCredentialProof({ publicKey: maker.publicKey, proof, claims, bind: new Uint8Array(32) }), true);
    // The app that carried it cannot open it with another key.
    assert.throws(() => openCredential(randomBytes(32), issued.sealed), (e: unknown) => isTallyError(e, 'AEAD_FAILED'));
  });

  it('a request that does not bind the maker\'s nonce gets nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tally-credential-'));
    dirs.push(dir);
    const d = device();
    const lying = async (makerNonce: Uint8Array) => ({ ...(await d.request(makerNonce)), binding: credentialBinding(randomBytes(32), d.holder, d.box.publicKey) });
    await assert.rejects(obtainDeviceCredential({ dir, oem, measurement: randomBytes(32), label: LABEL, request: lying, install: d.install }), (e: unknown) => isTallyError(e, 'TPM_QUOTE_INVALID'));
    assert.equal(d.got.length, 0);
  });
});
