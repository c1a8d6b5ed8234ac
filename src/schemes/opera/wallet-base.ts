/**
 * An OPERA wallet's common part: its trusted app (the ODW), its journal steps and how they are read,
 * the node's answers, and the provisioning of its secure element (Init, the OEM's attestation, the
 * device's registration, CertInit, the bank's parameters, the anonymous credential).
 */
import { fromBase64url, fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { decodeCbor } from '../../core/cbor.ts';
import type { Codec, Infer } from '../../core/codec.ts';
import type { CryptoProvider, Signer } from '../../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { verifyPublication } from '../../pki/publication.ts';
import { base64urlText } from '../../core/fields.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import type { SecureElement } from '../../secure-element/secure-element.ts';
import { keyId } from '../../pki/key-id.ts';
import {
  amount as amountText,
  deviceAnswer,
  looseRecord,
  measureTrustedApp,
  obtainDeviceCredential,
  SOFTWARE_SE_MODEL,
  type NodeClient,
  type NodeInfo,
  type Oem,
  type TrustedAppSpec,
  type WalletFormat,
} from '../../wallet/plugin.ts';
import type { Offer, Role } from './exchange.ts';
import { ODW_CREDENTIAL_LABEL, OPERA_SCHEME, paramsCodec, publicationBodyCodec, type Params } from './messages.ts';
import type { Odw } from './session.ts';
import { operaTrustedApp, type OperaState, type statusCodec } from './trusted-app.ts';
import { PEERS_MAX } from './trusted-app-state.ts';
import { OPERA_TA_BUILD } from './wallet-build.ts';

/** The trusted app's commands. */
export type OperaCommands = typeof operaTrustedApp.commands;
/** The ODW trusted app, where the isolated SE process finds it. */
export const OPERA_TA: TrustedAppSpec<OperaState, OperaCommands> = { app: operaTrustedApp, location: { module: new URL('./trusted-app.ts', import.meta.url).href, export: 'operaTrustedApp' } };

/** Tokens charged from the account (account → ODW), until the ODW took them. */
export interface ChargeStep {
  kind: 'opera-charge';
  id: string;
  /** The amount, minor units (decimal text). */
  amount: string;
  /** The bank's answer (base64url CBOR), once it answered. */
  charge?: string;
}

/** Tokens deposited back (ODW → account), until the ODW took the bank's receipt. */
export interface DepositStep {
  kind: 'opera-deposit';
  id: string;
  /** The amount, minor units (decimal text), or null for every token held. */
  amount: string | null;
  receipt?: string;
}

export type OperaStep = ChargeStep | DepositStep;

const minor = (raw: unknown): raw is string => typeof raw === 'string' && /^[0-9]{1,19}$/.test(raw);
const b64 = (raw: unknown): raw is string | undefined => raw === undefined || (typeof raw === 'string' && /^[A-Za-z0-9_-]*$/.test(raw));

/** How an OPERA wallet reads its steps (it keeps no slot of its own). */
export const OPERA_FORMAT: WalletFormat<OperaStep, null> = {
  step(raw) {
    if (raw.kind === 'opera-charge') {
      const charge = raw['charge'];
      if (!minor(raw['amount']) || !b64(charge)) return null;
      return { kind: 'opera-charge', id: raw.id, amount: raw['amount'], ...(charge === undefined ? {} : { charge }) };
    }
    if (raw.kind === 'opera-deposit') {
      const receipt = raw['receipt'];
      const amount = raw['amount'];
      if (!(amount === null || minor(amount)) || !b64(receipt)) return null;
      return { kind: 'opera-deposit', id: raw.id, amount, ...(receipt === undefined ? {} : { receipt }) };
    }
    return null;
  },
  slot: () => null,
};

const blob = base64urlText({ max: 1024 * 1024 });
/** The node's answers. */
export const paramsAnswer = looseRecord({ params: blob });
export const chargeAnswer = looseRecord({ amount: amountText, charge: blob });
export const depositAnswer = looseRecord({ credited: amountText, receipt: blob });
export const settleAnswer = looseRecord({ credited: amountText, settled: blob });

/** Decodes a base64url CBOR field of an answer. */
export function cbor<T>(codec: Codec<T>, text: string, what: string): T {
  return codec.decode(decodeCbor(fromBase64url(text), { maxBytes: 1024 * 1024 }), what);
}

/** What provisioning needs of the ODW's secure element, whichever host runs it. */
type Host = Pick<SecureElement<OperaCommands>, 'call'>;

/**
 * Init, the OEM's attestation, the device's registration at the node (scheme opera), CertInit, the
 * bank's parameters, and the anonymous credential: the device's TPM quotes the ODW build's
 * measurement, the OEM checks the quote and issues the credential sealed to the ODW.
 */
export async function provisionDevice(
  host: Host,
  options: { node: NodeClient; info: NodeInfo; oem: Oem; user: Signer; owner: string; tpmDir: string; progress: (line: string) => void },
): Promise<{ keyId: string; certificate: string }> {
  const { node, info, oem, user } = options;
  const init = await host.call('init', { root: fromBase64url(info.certificates.root), owner: fromHex(options.owner) });
  const measurement = await measureTrustedApp(OPERA_TA_BUILD);
  const attestation = attestDevice(oem.signer, { sePublicKey: init.publicKey, model: SOFTWARE_SE_MODEL, taMeasurement: measurement });
  options.progress('registering the device (OEM attestation and proof of possession)');
  const answer = await node.signed(user, 'POST', '/v1/devices', {
    answer: deviceAnswer,
    body: { publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) }, scheme: OPERA_SCHEME, oem: oem.keyId, attestation: toBase64url(encodeAttestation(attestation)), proof: toBase64url(init.proof) },
    idempotencyKey: `device-${toHex(keyId(init.publicKey))}`,
  });
  await host.call('certInit', { intermediary: fromBase64url(info.certificates.intermediary), issuerNode: fromBase64url(info.certificates.issuerNode), now: Date.now() });
  const params = await node.call('GET', '/v1/opera/params', { answer: paramsAnswer });
  await host.call('setParams', { params: cbor(paramsCodec, params.body.params, 'params') });
  options.progress("the device's TPM quotes the ODW build; the OEM checks it and issues the anonymous credential");
  await obtainDeviceCredential({
    dir: options.tpmDir,
    oem,
    measurement,
    label: ODW_CREDENTIAL_LABEL,
    request: (makerNonce) => host.call('credentialRequest', { makerNonce }),
    install: (issued) => host.call('credentialInstall', issued).then(() => undefined),
  });
  return { keyId: answer.body.keyId, certificate: answer.body.certificate };
}

/** The ODW as the session drives it: its trusted app's commands. */
export function odwOf(se: Pick<SecureElement<OperaCommands>, 'call'>): Odw {
  return {
    mount: async (handshakeHash: Uint8Array, role: Role, expect: bigint | undefined): Promise<Offer> => (await se.call('mount', { handshakeHash, role, ...(expect === undefined ? {} : { expect }) })).offer,
    meet: async (offer) => (await se.call('meet', { offer })).hello,
    greet: (hello) => se.call('greet', { hello }),
    begin: (amount) => se.call('begin', amount === undefined ? {} : { amount }),
    step: (box) => se.call('step', { box }),
  };
}

/** The transaction an ODW's log holds, as the wallet shows it (amounts formatted by `format`). */
export function pendingOf(p: NonNullable<Infer<typeof statusCodec>['pending']>, format: (v: bigint) => string) {
  const change = p.change === undefined ? null : { amount: format(p.change.amount), tokens: p.change.count, done: p.change.done };
  return { mode: p.mode, amount: format(p.amount), tokens: p.count, done: p.done, released: p.released === 1, accepted: p.accepted === 1, settling: p.settling === 1, change };
}

/** What an ODW's `setPeers` takes of one other bank. */
export interface PeerBankInput {
  readonly intermediary: Uint8Array;
  readonly issuerNode: Uint8Array;
  readonly params: Params;
}

/**
 * The other banks whose OPERA tokens the ODW is to take, from the answer of `GET
 * /v1/interbank/peers` at the wallet's own bank: each bank not revoked that published OPERA
 * parameters, its publication checked under its intermediary certificate (the ODW checks that
 * certificate to its pinned root, and the parameters under the issuer node's key, itself). A
 * publication that does not check, or is not OPERA's, is passed over.
 */
export function peerBanksOf(provider: CryptoProvider, answer: unknown): PeerBankInput[] {
  const peers = (answer as { peers?: unknown }).peers;
  if (!Array.isArray(peers)) throw new TallyError('DECODE_FAILED', 'the list of peer banks is not an array', { path: 'peers', expected: 'an array', got: typeof peers });
  const out: PeerBankInput[] = [];
  for (const peer of peers.slice(0, PEERS_MAX * 4) as Array<{ certificate?: unknown; revoked?: unknown; publications?: Record<string, unknown> }>) {
    const record = peer.publications?.[OPERA_SCHEME];
    if (peer.revoked !== false || typeof peer.certificate !== 'string' || typeof record !== 'string') continue;
    try {
      const certificate = fromBase64url(peer.certificate);
      const published = verifyPublication(provider, fromBase64url(record), decodeCertificate(certificate));
      if (published.scheme !== OPERA_SCHEME) continue;
      const body = publicationBodyCodec.decode(decodeCbor(published.body), 'publication');
      out.push({ intermediary: certificate, issuerNode: body.issuerNode, params: body.params });
    } catch (e) {
      if (isTallyError(e)) continue;
      throw e;
    }
  }
  return out.slice(0, PEERS_MAX);
}
