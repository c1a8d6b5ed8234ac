/**
 * A device's anonymous credential, obtained at provisioning from its maker (the home's OEM): the
 * device's TPM extends the trusted app's build measurement into a PCR and quotes it, with its
 * attestation key, over a nonce that binds the trusted app's credential request; the OEM checks
 * the quote (the AK's signature, the nonce, the PCR's value against the reference value of the
 * build) and only then signs the credential (pki/anonymous-credential.ts) and seals it to the
 * trusted app. The wallet process carries the messages and never holds the credential.
 *
 * The device's TPM is a private swtpm in the wallet's folder (its `tpm/` state), started for the
 * quote and stopped after it. The OEM takes the AK it created on the device as the device's, as a
 * maker does on its production line; a hardware TPM adds an EK certificate from its own maker
 * (docs/tpm-quote.md). Node-only.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { equalBytes } from '../core/bytes.ts';
import { randomBytes } from '../core/crypto/hash.ts';
import { TallyError } from '../core/errors.ts';
import { credentialBinding, credentialKeys, issueCredential, sealCredential } from '../pki/anonymous-credential.ts';
import { expectedPcrValue, verifyQuote } from '../pki/tpm-quote.ts';
import { startSwtpm, swtpmAvailable } from '../secure-element/swtpm.ts';
import { createAttestationKey, extendMeasurement, ODW_PCR, quote } from '../secure-element/tpm-quote.ts';
import type { Oem } from './factory.ts';

/** What the trusted app answers when it asks for a credential. */
export interface CredentialRequest {
  readonly holder: Uint8Array;
  readonly boxKey: Uint8Array;
  /** credentialBinding(makerNonce, holder, boxKey), as the trusted app computed it. */
  readonly binding: Uint8Array;
}

/** What the trusted app installs. */
export interface IssuedCredential {
  /** The maker's credential public key. */
  readonly maker: Uint8Array;
  /** The reference PCR value the credential names. */
  readonly reference: Uint8Array;
  /** The credential, sealed to the trusted app's one-time key. */
  readonly sealed: Uint8Array;
}

/** The OEM's credential key and the reference value of a build: what a node lists as a maker of genuine devices. */
export async function makerOf(oem: Oem, measurement: Uint8Array): Promise<{ publicKey: Uint8Array; reference: Uint8Array }> {
  return { publicKey: (await credentialKeys(oem.credentialSeed)).publicKey, reference: expectedPcrValue([measurement]) };
}

/**
 * Runs the device's side and the OEM's side of the credential's issue.
 * @throws TallyError TPM_TOOL_MISSING without swtpm, TPM_QUOTE_INVALID when the quote does not check
 */
export async function obtainDeviceCredential(options: {
  dir: string;
  oem: Oem;
  measurement: Uint8Array;
  label: string;
  request: (makerNonce: Uint8Array) => Promise<CredentialRequest>;
  install: (issued: IssuedCredential) => Promise<void>;
}): Promise<void> {
  if (!(await swtpmAvailable())) {
    throw new TallyError('TPM_TOOL_MISSING', "this device's TPM is a software TPM, and swtpm or tpm2-tools is not installed: install the Debian packages swtpm swtpm-tools tpm2-tools", { tool: 'swtpm' });
  }
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  const tpm = await startSwtpm({ stateDir: join(options.dir, 'state') });
  try {
    await extendMeasurement(tpm.tcti, ODW_PCR, options.measurement);
    const akPublicKey = await createAttestationKey(tpm.tcti, options.dir);
    // The OEM's nonce; the trusted app binds its request to it, the TPM quotes the binding.
    const makerNonce = randomBytes(32);
    const request = await options.request(makerNonce);
    const quoted = await quote(tpm.tcti, options.dir, { pcrs: [ODW_PCR], qualifyingData: request.binding });
    // The OEM's side: the binding is recomputed from what it was shown, the quote checked against the build.
    const binding = credentialBinding(makerNonce, request.holder, request.boxKey);
    if (!equalBytes(binding, request.binding)) throw new TallyError('TPM_QUOTE_INVALID', 'the credential request does not bind the OEM nonce', { field: 'nonce', reason: 'the binding is not the one the trusted app was asked for' });
    const reference = expectedPcrValue([options.measurement]);
    verifyQuote({ attest: quoted.attest, signature: quoted.signature, akPublicKey, nonce: binding, pcrs: [ODW_PCR], expectedPcrValues: [reference] });
    const maker = await credentialKeys(options.oem.credentialSeed);
    const credential = await issueCredential(maker, { label: options.label, reference }, request.holder);
    await options.install({ maker: maker.publicKey, reference, sealed: sealCredential(request.boxKey, credential, randomBytes(32)) });
  } finally {
    await tpm.stop();
  }
}
