/**
 * The devices of `bench chain`: the chain-tee trusted app in a secure element (an isolated child
 * process, as a wallet runs it, or in this process over the metering provider), provisioned as a
 * wallet provisions it (Init with the pinned root, the enclave key's device certificate, CertInit,
 * the chain's parameters); and a broken TEE, whose keys the bench holds, for the freeze.
 */
import { randomBytes } from '../../core/crypto/hash.ts';
import { ethereumAddress } from '../../core/crypto/ethereum.ts';
import { signerFromSecret, type CryptoProvider, type Signer } from '../../core/crypto/suite.ts';
import type { SecureElement } from '../../secure-element/secure-element.ts';
import type { BenchHarness } from '../../sim/bench/plugin.ts';
import type { BenchIssuer } from './bench-issuer.ts';
import type { Params } from './messages.ts';
import { chainTrustedApp } from './trusted-app.ts';

/** Where the isolated host's child process finds the chain-tee trusted app. */
export const CHAIN_APP_LOCATION = { module: new URL('./trusted-app.ts', import.meta.url).href, export: 'chainTrustedApp' };

/** A chain-tee secure element. */
export type ChainElement = SecureElement<typeof chainTrustedApp.commands>;

/** A provisioned device. */
export interface Device {
  readonly name: string;
  readonly se: ChainElement;
  /** The enclave key's address (registered on chain by the bank). */
  readonly enclave: Uint8Array;
  /** The folder of its sealed state. */
  readonly dir: string;
  /** Each provisioning command's time, ms. */
  readonly provisioning: { readonly init: number; readonly certInit: number; readonly setParams: number };
}

/** Where a device's trusted app runs. */
export type Placement = { readonly kind: 'isolated' } | { readonly kind: 'in-process'; readonly provider: CryptoProvider };

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await run();
  return { value, ms: performance.now() - start };
}

/** Starts a chain-tee secure element in `dir` and provisions it against the bench issuer. */
export async function makeDevice(harness: BenchHarness, issuer: BenchIssuer, params: Params, name: string, dir: string, placement: Placement): Promise<Device> {
  const se: ChainElement =
    placement.kind === 'isolated'
      ? await harness.startElement({ app: chainTrustedApp, location: CHAIN_APP_LOCATION, dir })
      : await harness.startInProcessElement({ app: chainTrustedApp, dir, provider: placement.provider });
  const init = await timed(() => se.call('init', { root: issuer.root, owner: randomBytes(32) }));
  const certificate = issuer.deviceCertificate(init.value.publicKey);
  const certInit = await timed(() => se.call('certInit', { certificate, intermediary: issuer.intermediary, issuerNode: issuer.issuerNode, now: Date.now() }));
  const setParams = await timed(() => se.call('setParams', { params }));
  return { name, se, enclave: ethereumAddress(init.value.publicKey), dir, provisioning: { init: init.ms, certInit: certInit.ms, setParams: setParams.ms } };
}

/** A TEE whose keys leaked: the bench signs as its enclave, so it can upload what a correct TEE never signs. */
export interface BrokenTee {
  readonly enclave: Signer;
  readonly address: Uint8Array;
  /** A fresh offline account key of this TEE. */
  account(): Signer;
}

/** A broken TEE with a fresh enclave key. */
export function makeBrokenTee(provider: CryptoProvider): BrokenTee {
  const secp = provider.suites.secp256k1;
  const enclave = signerFromSecret(secp, secp.generateSecretKey());
  return { enclave, address: ethereumAddress(enclave.publicKey), account: () => signerFromSecret(secp, secp.generateSecretKey()) };
}
