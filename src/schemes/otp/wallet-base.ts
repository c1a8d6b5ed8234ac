/**
 * An OTP wallet's common part: its trusted app, its journal steps and how they are read, the node's
 * answers, and the provisioning of its secure element (Init, the OEM's attestation, the device's
 * registration, CertInit, the bank's parameters).
 */
import { fromBase64url, fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { decodeCbor } from '../../core/cbor.ts';
import { array, boolean, optional, type Codec } from '../../core/codec.ts';
import type { Signer } from '../../core/crypto/suite.ts';
import { base64urlText } from '../../core/fields.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { keyId } from '../../pki/key-id.ts';
import { amount as amountText, deviceAnswer, looseRecord, measureTrustedApp, SOFTWARE_SE_MODEL, startSecureElement, type NodeClient, type NodeInfo, type Oem, type TrustedAppSpec, type WalletFormat } from '../../wallet/plugin.ts';
import { COINS_PER_MESSAGE_MAX, paramsCodec } from './messages.ts';
import { otpTrustedApp, type OtpState } from './trusted-app.ts';
import { OTP_TA_BUILD } from './wallet-build.ts';

/** The trusted app's commands. */
export type OtpCommands = typeof otpTrustedApp.commands;
/** The OTP trusted app, where the isolated SE process finds it. */
export const OTP_TA: TrustedAppSpec<OtpState, OtpCommands> = { app: otpTrustedApp, location: { module: new URL('./trusted-app.ts', import.meta.url).href, export: 'otpTrustedApp' } };
/** How many exchange keys `sync` keeps the TA stocked with. */
export const EXCHANGE_KEYS_TARGET = 64;

/** A blind withdrawal (online account → coins), until the TA has the coins. */
export interface WithdrawalStep {
  kind: 'otp-withdrawal';
  id: string;
  /** Class ids (hex), one per coin. */
  classIds: string[];
  /** The blinded coins the TA drew (base64url), once it drew them. */
  blinded?: string[];
  /** The bank's blind signatures (base64url), once it answered. */
  signatures?: string[];
}

/** A deposit of coins (coins → online account), until the TA has the bank's receipt. */
export interface DepositStep {
  kind: 'otp-deposit';
  id: string;
  classIds: string[];
  /** The bank's receipt (base64url CBOR), once it answered. */
  receipt?: string;
}

export type OtpStep = WithdrawalStep | DepositStep;

const hexList = (raw: unknown): raw is string[] => Array.isArray(raw) && raw.length <= COINS_PER_MESSAGE_MAX && raw.every((x) => typeof x === 'string' && /^[0-9a-f]{32}$/.test(x));
const b64List = (raw: unknown): raw is string[] => Array.isArray(raw) && raw.length <= COINS_PER_MESSAGE_MAX && raw.every((x) => typeof x === 'string' && /^[A-Za-z0-9_-]*$/.test(x));

/** How an OTP wallet reads its steps (it keeps no slot of its own). */
export const OTP_FORMAT: WalletFormat<OtpStep, null> = {
  step(raw) {
    if (!hexList(raw['classIds'])) return null;
    if (raw.kind === 'otp-withdrawal') {
      const blinded = raw['blinded'];
      const signatures = raw['signatures'];
      if ((blinded !== undefined && !b64List(blinded)) || (signatures !== undefined && !b64List(signatures))) return null;
      return { kind: 'otp-withdrawal', id: raw.id, classIds: raw['classIds'], ...(blinded === undefined ? {} : { blinded }), ...(signatures === undefined ? {} : { signatures }) };
    }
    if (raw.kind === 'otp-deposit') {
      const receipt = raw['receipt'];
      if (receipt !== undefined && typeof receipt !== 'string') return null;
      return { kind: 'otp-deposit', id: raw.id, classIds: raw['classIds'], ...(receipt === undefined ? {} : { receipt }) };
    }
    return null;
  },
  slot: () => null,
};

const blob = base64urlText({ max: 512 * 1024 });
/** The node's answers. */
export const paramsAnswer = looseRecord({ params: blob });
export const withdrawalAnswer = looseRecord({ amount: amountText, signatures: array(blob, { min: 1, max: COINS_PER_MESSAGE_MAX }) });
export const keysAnswer = looseRecord({ keys: array(blob, { max: 256 }), time: blob });
export const depositAnswer = looseRecord({ credited: amountText, receipt: blob });
export const inFlightAnswer = looseRecord({ refunded: amountText, settled: blob });
/** `GET /v1/interbank/peers`: the other banks, their certificates and their signed publications (the TA checks both). */
export const peersAnswer = looseRecord({
  peers: array(looseRecord({ certificate: blob, revoked: boolean, publications: looseRecord({ otp: optional(blob) }) }), { max: 256 }),
});

/** Decodes a base64url CBOR field of an answer. */
export function cbor<T>(codec: Codec<T>, text: string, what: string): T {
  return codec.decode(decodeCbor(fromBase64url(text), { maxBytes: 512 * 1024 }), what);
}

/** Init, the OEM's attestation, the device's registration at the node (scheme otp), CertInit. */
export async function provisionDevice(
  host: Awaited<ReturnType<typeof startSecureElement<OtpState, OtpCommands>>>,
  options: { node: NodeClient; info: NodeInfo; oem: Oem; user: Signer; owner: string; progress: (line: string) => void },
): Promise<{ keyId: string; certificate: string }> {
  const { node, info, oem, user } = options;
  const init = await host.call('init', { root: fromBase64url(info.certificates.root), owner: fromHex(options.owner) });
  const attestation = attestDevice(oem.signer, { sePublicKey: init.publicKey, model: SOFTWARE_SE_MODEL, taMeasurement: await measureTrustedApp(OTP_TA_BUILD) });
  options.progress('registering the device (OEM attestation and proof of possession)');
  const answer = await node.signed(user, 'POST', '/v1/devices', {
    answer: deviceAnswer,
    body: { publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) }, scheme: 'otp', oem: oem.keyId, attestation: toBase64url(encodeAttestation(attestation)), proof: toBase64url(init.proof) },
    idempotencyKey: `device-${toHex(keyId(init.publicKey))}`,
  });
  await host.call('certInit', { intermediary: fromBase64url(info.certificates.intermediary), issuerNode: fromBase64url(info.certificates.issuerNode), now: Date.now() });
  const params = await node.call('GET', '/v1/otp/params', { answer: paramsAnswer });
  await host.call('setParams', { params: cbor(paramsCodec, params.body.params, 'params') });
  return { keyId: answer.body.keyId, certificate: answer.body.certificate };
}
