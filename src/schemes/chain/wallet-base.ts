/**
 * A chain-tee wallet's common part: its trusted app, its one journal step (an on-chain deposit,
 * until the TEE credited it), the node's answers, the chain as the node names it, the wallet's own
 * on-chain account, and the provisioning of its secure element (Init, the OEM's attestation, the
 * device's registration, CertInit, the enclave on chain, the chain's parameters, Algorithm 2's
 * account).
 */
import type { Address, Hex } from 'viem';
import { fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor } from '../../core/cbor.ts';
import { array, boolean, text, uint, type Codec } from '../../core/codec.ts';
import { hkdf } from '../../core/crypto/hash.ts';
import type { Signer } from '../../core/crypto/suite.ts';
import { base64urlText } from '../../core/fields.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { keyId } from '../../pki/key-id.ts';
import { amount as amountText, deviceAnswer, looseRecord, measureTrustedApp, nodeProvider, SOFTWARE_SE_MODEL, startSecureElement, type NodeClient, type NodeInfo, type Oem, type TrustedAppSpec, type WalletFormat } from '../../wallet/plugin.ts';
import { CHAIN_SCHEME, paramsCodec } from './messages.ts';
import { chainTrustedApp, type ChainState } from './trusted-app.ts';
import { CHAIN_TA_BUILD } from './wallet-build.ts';
import type { Contracts } from './wallet-chain.ts';

/** The trusted app's commands. */
export type ChainCommands = typeof chainTrustedApp.commands;
/** The chain-tee trusted app, where the isolated SE process finds it. */
export const CHAIN_TA: TrustedAppSpec<ChainState, ChainCommands> = { app: chainTrustedApp, location: { module: new URL('./trusted-app.ts', import.meta.url).href, export: 'chainTrustedApp' } };

/** An on-chain deposit into the offline account, until the TEE credited it. */
export interface DepositStep {
  kind: 'chain-deposit';
  id: string;
  /** Minor units. */
  amount: string;
  /** The on-chain account's deposit count before this one: more on chain means it landed. */
  before: string;
  /** The deposit's transaction, once mined. */
  transaction?: string;
}

export type ChainStep = DepositStep;

const digits = (raw: unknown): raw is string => typeof raw === 'string' && /^[0-9]{1,39}$/.test(raw);

/** How a chain-tee wallet reads its steps (it keeps no slot of its own). */
export const CHAIN_FORMAT: WalletFormat<ChainStep, null> = {
  step(raw) {
    if (raw.kind !== 'chain-deposit' || !digits(raw['amount']) || !digits(raw['before'])) return null;
    const transaction = raw['transaction'];
    if (transaction !== undefined && (typeof transaction !== 'string' || !/^0x[0-9a-f]{64}$/.test(transaction))) return null;
    return { kind: 'chain-deposit', id: raw.id, amount: raw['amount'], before: raw['before'], ...(transaction === undefined ? {} : { transaction }) };
  },
  slot: () => null,
};

const blob = base64urlText({ max: 512 * 1024 });
const hexAddress = text({ min: 42, max: 42, pattern: /^0x[0-9a-fA-F]{40}$/, describe: 'an address' });
/** The node's answers. */
export const paramsAnswer = looseRecord({ params: blob });
export const depositsAnswer = looseRecord({ deposits: array(looseRecord({ index: uint({ max: 2 ** 32 }), amount: amountText, receipt: blob }), { max: 64 }) });
export const statementAnswer = looseRecord({ statement: blob });
export const enclaveAnswer = looseRecord({ enclave: hexAddress });
/** What GET /v1/info says of the chain and the scheme's contracts. */
export const chainInfoAnswer = looseRecord({
  chain: looseRecord({ rpcUrl: text({ min: 1, max: 2048 }), chainId: uint({ max: 2 ** 48 }), embedded: boolean }),
  schemes: looseRecord({ chain: looseRecord({ contract: hexAddress, token: hexAddress }) }),
});

/** The chain a wallet settles on, as the node names it. */
export interface ChainInfo {
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly embedded: boolean;
  readonly contracts: Contracts;
}

/** Reads the chain and the contracts from the node. */
export async function chainInfo(node: NodeClient): Promise<ChainInfo> {
  const { body } = await node.call('GET', '/v1/info', { answer: chainInfoAnswer });
  return { rpcUrl: body.chain.rpcUrl, chainId: body.chain.chainId, embedded: body.chain.embedded, contracts: { contract: body.schemes.chain.contract as Address, token: body.schemes.chain.token as Address } };
}

/** Decodes a base64url CBOR field of an answer. */
export function cbor<T>(codec: Codec<T>, textValue: string, what: string): T {
  return codec.decode(decodeCbor(fromBase64url(textValue), { maxBytes: 512 * 1024 }), what);
}

/**
 * The wallet's own on-chain account key (it holds tokens and pays gas): derived from the user's
 * account key, which the secure element holds, so it needs no file of its own. Ed25519 signs
 * deterministically: the same label always gives the same key.
 */
export function onChainKey(user: Signer): Hex {
  const seed = hkdf({ ikm: user.sign(utf8('tally/chain/on-chain-account/v1')), info: 'tally/chain/on-chain-account', length: 48 });
  return `0x${toHex(nodeProvider.suites.secp256k1.secretKeyFromSeed(seed))}`;
}

/** Init, the OEM's attestation, the device's registration (scheme chain), CertInit, the enclave on chain, the parameters, Open. */
export async function provisionDevice(
  host: Awaited<ReturnType<typeof startSecureElement<ChainState, ChainCommands>>>,
  options: { node: NodeClient; info: NodeInfo; oem: Oem; user: Signer; owner: string; progress: (line: string) => void },
): Promise<{ keyId: string; certificate: string; account: string; enclave: string }> {
  const { node, info, oem, user } = options;
  const init = await host.call('init', { root: fromBase64url(info.certificates.root), owner: fromHex(options.owner) });
  const attestation = attestDevice(oem.signer, { sePublicKey: init.publicKey, model: SOFTWARE_SE_MODEL, taMeasurement: await measureTrustedApp(CHAIN_TA_BUILD) });
  options.progress('registering the device (OEM attestation and proof of possession)');
  const device = await node.signed(user, 'POST', '/v1/devices', {
    answer: deviceAnswer,
    body: { publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) }, scheme: CHAIN_SCHEME, oem: oem.keyId, attestation: toBase64url(encodeAttestation(attestation)), proof: toBase64url(init.proof) },
    idempotencyKey: `device-${toHex(keyId(init.publicKey))}`,
  });
  await host.call('certInit', { certificate: fromBase64url(device.body.certificate), intermediary: fromBase64url(info.certificates.intermediary), issuerNode: fromBase64url(info.certificates.issuerNode), now: Date.now() });
  options.progress('registering the enclave key on chain');
  const enclave = await node.signed(user, 'POST', '/v1/chain/enclaves', { answer: enclaveAnswer, body: { device: device.body.keyId }, idempotencyKey: `chain-enclave-${device.body.keyId}` });
  const params = await node.call('GET', '/v1/chain/params', { answer: paramsAnswer });
  await host.call('setParams', { params: cbor(paramsCodec, params.body.params, 'params') });
  const opened = await host.call('open', {});
  return { keyId: device.body.keyId, certificate: device.body.certificate, account: `0x${toHex(opened.account)}`, enclave: enclave.body.enclave };
}
