/**
 * An OPS wallet's common part: its types (the journal's steps, what balance reports), the trusted
 * app it runs, the base class that holds the user key and the secure element, and the provisioning
 * of a secure element (OEM attestation, device registration at the node, CertInit).
 */
import { fromBase64url, fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import type { Signer } from '../../core/crypto/suite.ts';
import { TallyError } from '../../core/errors.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { record, uint, type Infer } from '../../core/codec.ts';
import { base64urlText, decimalText, keyIdHex } from '../../core/fields.ts';
import { keyId } from '../../pki/key-id.ts';
import {
  measureTrustedApp,
  SOFTWARE_SE_MODEL,
  startSecureElement,
  WalletShell,
  deviceAnswer,
  type NodeClient,
  type NodeInfo,
  type Oem,
  type TrustedAppSpec,
  type OpenedWallet,
  type PassphraseSource,
  type WalletFormat,
} from '../../wallet/plugin.ts';
import type { ResumeReport } from '../../wallet/plugin.ts';
import { opsTrustedApp } from './trusted-app.ts';
import { OPS_TA_BUILD } from './wallet-build.ts';
import type { OpsState } from './trusted-app-state.ts';

/** Whom a request token pays, as the payer is shown it. */
export interface PayeeInfo {
  /** Key id of the payee's user certificate (the key that signed the request). */
  keyId: string;
  /** The display name the certificate carries, if any. */
  name?: string;
  /** Key id of the receiver certificate the payment names: the payee's device, or the user itself. */
  receiver: string;
  receiverRole: 'device' | 'user';
}

/**
 * Refusals of a received payment that time, a sync or room cures: the payment stays accepted and is
 * tried again (at the next collect or claim, and after every sync), never marked refused.
 * CERT_NOT_YET_VALID: the sender was certified after this TA's trusted time (a sync advances it);
 * LOG_FULL: a sync prunes the payment log; HOLDING_LIMIT: spending or withdrawing makes room;
 * INSUFFICIENT_FUNDS: the node's float is short now.
 */
export const CURABLE_REFUSALS: ReadonlySet<string> = new Set(['CERT_NOT_YET_VALID', 'LOG_FULL', 'HOLDING_LIMIT', 'INSUFFICIENT_FUNDS']);

/** Payments sent to the node in one claim request (a payment to a client is about 1.1 KiB of the 64 KiB body). */
export const CLAIM_BATCH_MAX = 32;
/** The OPS trusted app's commands. */
export type OpsCommands = typeof opsTrustedApp.commands;
/** The OPS trusted app, where the isolated SE process finds it. */
export const OPS_TA: TrustedAppSpec<OpsState, OpsCommands> = { app: opsTrustedApp, location: { module: new URL('./trusted-app.ts', import.meta.url).href, export: 'opsTrustedApp' } };
/** The wallet's secure element. */
export type OpsSecureElement = Awaited<ReturnType<typeof startSecureElement<OpsState, OpsCommands>>>;

/** The device a recovery staged (`recovering/device.json`), read back when a recovery cut short runs again. */
export const STAGED_DEVICE = record({ keyId: keyIdHex, certificate: base64urlText({ max: 256 * 1024 }) });

/** A step of an OPS wallet's journal. */
export type PendingStep =
  | { kind: 'deposit'; id: string; amount: string; confirmation?: string }
  | { kind: 'withdraw'; id: string; amount: string; confirmation?: string; /** The device that signed it, when not the wallet's current one. */ device?: string }
  | { kind: 'pay'; id: string; amount: string; receiver: string; memo?: string; request?: string }
  | { kind: 'collect'; id: string; digest: string };

/** An OPS wallet folder as opened (it keeps no slot of its own). */
export type OpsOpened = OpenedWallet<PendingStep, never>;

/** The string fields `names` of a step read from the file (each present, or absent when optional), or null. */
function fields<R extends string, O extends string>(raw: Record<string, unknown>, required: readonly R[], optional: readonly O[]): ({ [K in R]: string } & { [K in O]?: string }) | null {
  const out: Record<string, string> = {};
  for (const name of required) {
    const value = raw[name];
    if (typeof value !== 'string') return null;
    out[name] = value;
  }
  for (const name of optional) {
    const value = raw[name];
    if (value === undefined) continue;
    if (typeof value !== 'string') return null;
    out[name] = value;
  }
  return out as { [K in R]: string } & { [K in O]?: string };
}

/** How an OPS wallet reads its journal from its store (and from an earlier version's wallet.json). */
export const OPS_FORMAT: WalletFormat<PendingStep, never> = {
  step(raw) {
    const id = raw.id;
    switch (raw.kind) {
      case 'deposit': {
        const f = fields(raw, ['amount'], ['confirmation']);
        return f === null ? null : { kind: 'deposit', id, ...f };
      }
      case 'withdraw': {
        const f = fields(raw, ['amount'], ['confirmation', 'device']);
        return f === null ? null : { kind: 'withdraw', id, ...f };
      }
      case 'pay': {
        const f = fields(raw, ['amount', 'receiver'], ['memo', 'request']);
        return f === null ? null : { kind: 'pay', id, ...f };
      }
      case 'collect': {
        const f = fields(raw, ['digest'], []);
        return f === null ? null : { kind: 'collect', id, ...f };
      }
      default:
        return null;
    }
  },
  slot: () => null,
};

/** Options of Wallet.create. */
export interface CreateOptions {
  home: string;
  name: string;
  node: string;
  secureElement: boolean;
  /** Where the passphrase of a wallet without a secure element comes from (default: TALLY_WALLET_PASSPHRASE or a prompt). */
  passphrase?: PassphraseSource | undefined;
  /** Progress lines for long steps. */
  progress?: (line: string) => void;
}

/** What the secure element's `status` said at the end of the last session that ran it (minor units as decimal text), kept for `balance`. */
export const seStatusReport = record({
  balance: decimalText({ digits: 20 }),
  holdingLimit: decimalText({ digits: 20 }),
  offlinePaymentsMax: uint({ max: 2 ** 32 }),
  unsyncedPayments: uint({ max: 2 ** 32 }),
});
export type SeStatusReport = Infer<typeof seStatusReport>;

/** What Wallet.balance reports (decimal strings). */
export interface BalanceReport {
  online: string | null;
  onlineError?: string;
  offline: string | null;
  /**
   * When the offline figures are what the secure element reported at the end of its last session
   * (ISO time), not asked now: its state changes only while it runs, and a start removes the record.
   */
  offlineAsOf?: string;
  /** Accepted payments not yet collected or claimed. */
  incoming: string;
  holdingLimit?: string;
  offlinePaymentsLeft?: number;
  pendingSteps: number;
}

/** What every OPS wallet has: its user key, its secure element, and the checks its steps share. */
export abstract class OpsWalletBase extends WalletShell<PendingStep, never, OpsState, OpsCommands> {
  protected constructor(opened: OpsOpened) {
    super(opened);
  }

  protected secureElementSpec() {
    return { spec: OPS_TA };
  }

  protected async probeSecureElement(): Promise<void> {
    await (await this.se()).call('status', {});
  }

  /** True when the wallet has a secure element (it collects; without one it claims). */
  get hasSecureElement(): boolean {
    return this.data.device !== null;
  }

  /** The certificate payers pay to: the TA's for a wallet with an SE, the user's otherwise. */
  get receiverCertificate(): Uint8Array {
    return fromBase64url(this.data.device?.certificate ?? this.data.user.certificate);
  }

  /**
   * Finishes the steps a crash or a lost connection cut short. Steps that need the node stay
   * pending while it is unreachable (or answers 5xx); a step the node or the SE refused is ended,
   * written to the history as refused, and reported in `ended`.
   */
  resume(): Promise<ResumeReport> {
    return this.resumeSteps();
  }

  /** The running SE (started on first use). @throws TallyError WALLET_UNSUPPORTED without one */
  async se(): Promise<OpsSecureElement> {
    if (this.data.device === null) {
      throw new TallyError('WALLET_UNSUPPORTED', `wallet ${this.name} has no secure element`, { name: this.name, reason: 'no secure element' });
    }
    return this.startedSe();
  }

  /**
   * Refuses, before any step is recorded, an amount the secure element does not hold; the TA
   * refuses it too, but cannot word the amounts in the currency.
   * @throws TallyError SE_REJECTED (INSUFFICIENT_FUNDS)
   */
  protected async checkBalance(amount: bigint, command: 'pay' | 'withdraw'): Promise<void> {
    const { balance } = await (await this.se()).call('status', {});
    if (balance < amount) {
      throw new TallyError('SE_REJECTED', `the offline balance ${this.shown(balance)} is below the ${this.shown(amount)} to ${command}`, { command, reason: 'INSUFFICIENT_FUNDS' });
    }
  }


  protected requireDevice(): { keyId: string; certificate: string } {
    if (this.data.device === null) {
      throw new TallyError('WALLET_UNSUPPORTED', `wallet ${this.name} has no secure element: it can receive and claim, not deposit, withdraw or pay offline`, { name: this.name, reason: 'no secure element' });
    }
    return this.data.device;
  }
}

/** Runs init on a fresh SE, has the OEM attest it, registers it at the node as the owner's device, runs CertInit. */
export async function provisionDevice(
  host: OpsSecureElement,
  options: { node: NodeClient; info: NodeInfo; oem: Oem; user: Signer; owner: string; progress?: ((line: string) => void) | undefined },
): Promise<{ keyId: string; certificate: string }> {
  const { node, info, oem, user } = options;
  const init = await host.call('init', { root: fromBase64url(info.certificates.root), owner: fromHex(options.owner) });
  const attestation = attestDevice(oem.signer, { sePublicKey: init.publicKey, model: SOFTWARE_SE_MODEL, taMeasurement: await measureTrustedApp(OPS_TA_BUILD) });
  options.progress?.('registering the device (OEM attestation and proof of possession)');
  const answer = await node.signed(user, 'POST', '/v1/devices', { answer: deviceAnswer,
    body: {
      publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) },
      scheme: 'ops',
      oem: oem.keyId,
      attestation: toBase64url(encodeAttestation(attestation)),
      proof: toBase64url(init.proof),
    },
    idempotencyKey: `device-${toHex(keyId(init.publicKey))}`,
  });
  await host.call('certInit', {
    certificate: fromBase64url(answer.body.certificate),
    intermediary: fromBase64url(info.certificates.intermediary),
    issuerNode: fromBase64url(info.certificates.issuerNode),
  });
  return { keyId: answer.body.keyId, certificate: answer.body.certificate };
}
