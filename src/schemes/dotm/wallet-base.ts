/**
 * A DOT-M wallet's common part: its types and limits, the trusted app it runs, its provisioning
 * (§3.3.1), and the base class holding the account key (sealed under pwd) and the secure element.
 */
import { fromBase64url, fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { signerFromSecret, SUITE_NAMES, type PublicKey, type Signer, type SuiteName } from '../../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { record, text } from '../../core/codec.ts';
import { base64urlText } from '../../core/fields.ts';
import { keyId } from '../../pki/key-id.ts';
import {
  measureTrustedApp,
  nodeProvider,
  openKey,
  sealKey,
  SOFTWARE_SE_MODEL,
  startSecureElement,
  WalletShell,
  type NodeClient,
  type NodeInfo,
  type Oem,
  type AccountMigration,
  type OpenedWallet,
  type TrustedAppSpec,
  type WalletFormat,
} from '../../wallet/plugin.ts';
import { dotmWalletAnswer } from './wallet-answers.ts';
import { walletEventWire, type WalletEvent } from './online.ts';
import { dotmTrustedApp } from './trusted-app.ts';
import { DOTM_TA_BUILD } from './wallet-build.ts';
import type { DotmState } from './trusted-app-state.ts';

/** Most events in one upload, and the most base64url characters of events in one request body. */
export const UPLOAD_EVENTS_MAX = 16;
export const UPLOAD_CHARS_MAX = 48 * 1024;
/** Most blocks one deposit asks for. */
export const ISSUE_BLOCKS_MAX = 20;

/** The DOT-M trusted app's commands. */
export type DotmCommands = typeof dotmTrustedApp.commands;
/** The DOT-M trusted app, where the isolated SE process finds it. */
export const DOTM_TA: TrustedAppSpec<DotmState, DotmCommands> = { app: dotmTrustedApp, location: { module: new URL('./trusted-app.ts', import.meta.url).href, export: 'dotmTrustedApp' } };
/** The wallet's DOT-M secure element. */
export type DotmSecureElement = Awaited<ReturnType<typeof startSecureElement<DotmState, DotmCommands>>>;

/** The keys a recovery staged (`recovering/device.json`), read back when a recovery cut short runs again. */
export const STAGED_KEYS = record({
  wallet: text({ min: 1, max: 256 }),
  user: text({ min: 1, max: 256 }),
  ucert: base64urlText({ max: 256 * 1024 }),
  wcert: base64urlText({ max: 256 * 1024 }),
});

/** A step of a DOT-M wallet's journal: a block issue (§3.3.2), until the SE has loaded the blocks. */
export interface IssueStep {
  kind: 'issue';
  id: string;
  amount: string;
  count: number;
  /** The blocks the node issued (base64url), once it answered. */
  blocks?: string[];
}

/** What a DOT-M wallet keeps besides the shell's fields: its SE's keys, the user key (ucert) and the wallet key (wcert). */
export interface DotmSlot {
  user: string;
  ucert: string;
  wallet: string;
  wcert: string;
  suite?: SuiteName;
}

/** A DOT-M wallet folder as opened. */
export type DotmOpened = OpenedWallet<IssueStep, DotmSlot>;

/** How a DOT-M wallet reads its journal and keys from its store (and from an earlier version's wallet.json). */
export const DOTM_FORMAT: WalletFormat<IssueStep, DotmSlot> = {
  step(raw) {
    // An earlier version named the issue step after the scheme.
    if (raw.kind !== 'issue' && raw.kind !== 'dotm-issue') return null;
    const { amount, count, blocks } = raw;
    if (typeof amount !== 'string' || typeof count !== 'number' || !Number.isInteger(count)) return null;
    if (blocks !== undefined && !(Array.isArray(blocks) && blocks.every((b): b is string => typeof b === 'string'))) return null;
    return { kind: 'issue', id: raw.id, amount, count, ...(blocks === undefined ? {} : { blocks }) };
  },
  slot(raw) {
    if (raw === null || typeof raw !== 'object') return null;
    const { user, ucert, wallet, wcert, suite } = { user: undefined, ucert: undefined, wallet: undefined, wcert: undefined, suite: undefined, ...raw } as { [key: string]: unknown };
    if (typeof user !== 'string' || typeof ucert !== 'string' || typeof wallet !== 'string' || typeof wcert !== 'string') return null;
    const known = SUITE_NAMES.find((s) => s === suite);
    if (suite !== undefined && known === undefined) return null;
    return { user, ucert, wallet, wcert, ...(known === undefined ? {} : { suite: known }) };
  },
};

/** Options of DotmWallet.create. */
export interface CreateDotmOptions {
  home: string;
  name: string;
  node: string;
  /** The payment password pwd (§3.3.1 step 5). */
  password: string;
  progress?: (line: string) => void;
}

/** One block copy as `balance` lists it. */
export interface BlockLine {
  serial: string;
  value: string;
  remaining: string;
  /** Offline transactions in its record list. */
  count: number;
  /** Part of an open payment offer. */
  held: boolean;
}

/** What DotmWallet.balance reports. */
export interface DotmBalance {
  online: string | null;
  onlineError?: string;
  offline: string;
  blocks: BlockLine[];
  unsyncedEvents: number;
  passwordTriesLeft: number;
  pendingSteps: number;
}

/** What DotmWallet.withdraw reports. */
export interface DotmWithdrawal {
  amount: string;
  online: string | null;
  /** The node took the redemption and credited the account. */
  credited: boolean;
  /**
   * credited; claimed (copies of other banks' blocks presented to the banks that issued them, see
   * `claims`; the account is credited once each is settled); refused by the node (see `refusal`);
   * unreachable (credited when the node takes the event at a later sync); pending (the node had no
   * answer for it yet).
   */
  outcome: 'credited' | 'claimed' | 'refused' | 'unreachable' | 'pending';
  refusal?: { code: string; message: string };
  /** The interbank claims presented for copies of other banks' blocks (read at GET /v1/interbank/claims/{id}). */
  claims?: string[];
}

/** What a finished transaction over the link reports. */
export interface DotmTransfer {
  tsn: string;
  amount: string;
  /** `completed`, or `rolled-back` for a payee whose step 9 did not come. */
  status: 'completed' | 'rolled-back';
  blocks: number;
  records: number;
  error?: string;
}


/** Runs init on a fresh DOT-M SE, has the OEM attest wpk, has the node certify usk and wsk for the account, sets pwd. */
export async function provisionDotm(
  host: DotmSecureElement,
  options: { node: NodeClient; info: NodeInfo; oem: Oem; account: Signer; owner: string; password: string; progress?: ((line: string) => void) | undefined },
): Promise<{ wallet: string; user: string; ucert: string; wcert: string }> {
  const { node, info, oem } = options;
  const init = await host.call('init', {
    root: fromBase64url(info.certificates.root),
    intermediary: fromBase64url(info.certificates.intermediary),
    issuerNode: fromBase64url(info.certificates.issuerNode),
    account: fromHex(options.owner),
  });
  const attestation = attestDevice(oem.signer, { sePublicKey: init.walletKey, model: SOFTWARE_SE_MODEL, taMeasurement: await measureTrustedApp(DOTM_TA_BUILD) });
  options.progress?.('certifying the user and wallet keys (OEM attestation, proofs of possession)');
  const key = (k: PublicKey) => ({ suite: k.suite, key: toBase64url(k.key) });
  const answer = await node.signed(options.account, 'POST', '/v1/dotm/wallets', { answer: dotmWalletAnswer,
    body: {
      userKey: key(init.userKey),
      userProof: toBase64url(init.userProof),
      walletKey: key(init.walletKey),
      walletProof: toBase64url(init.walletProof),
      oem: oem.keyId,
      attestation: toBase64url(encodeAttestation(attestation)),
    },
    idempotencyKey: `dotm-wallet-${toHex(keyId(init.walletKey))}`,
  });
  await host.call('certify', { ucert: fromBase64url(answer.body.ucert), wcert: fromBase64url(answer.body.wcert) });
  await host.call('setPassword', { password: options.password });
  return answer.body;
}

/** What every DOT-M wallet has: its account key (sealed under pwd), its secure element and its keys. */
export abstract class DotmWalletBase extends WalletShell<IssueStep, DotmSlot, DotmState, DotmCommands> {
  /** The account key, once unlockAccount opened it. */
  protected account: Signer | null = null;

  protected constructor(opened: DotmOpened) {
    super(opened);
  }

  protected secureElementSpec() {
    return { spec: DOTM_TA, suite: this.keys.suite ?? 'ed25519' };
  }

  protected async probeSecureElement(): Promise<void> {
    await (await this.se()).call('status', {});
  }

  /** The account key (signs calls to the node, binds links). @throws TallyError PASSWORD_MISSING before unlockAccount */
  get user(): Signer {
    if (this.account === null) throw this.sealedError();
    return this.account;
  }

  protected sealedError(): TallyError<'PASSWORD_MISSING'> {
    return new TallyError('PASSWORD_MISSING', `the account key of wallet ${this.name} is sealed under the payment password: give the password (at the prompt, or TALLY_PASSWORD)`, {});
  }

  /** True once the account key is open. */
  get unlocked(): boolean {
    return this.account !== null;
  }

  /**
   * Opens the account key: the SE checks pwd first (a wrong one counts a try; a locked wallet stays
   * locked), then the key file opens under it.
   * @throws TallyError SE_REJECTED (WRONG_PASSWORD, PASSWORD_LOCKED), PASSWORD_WRONG when pwd is right
   *   but the key file was sealed under another password, STATE_CORRUPT, KEY_INVALID
   */
  async unlockAccount(password: string): Promise<void> {
    if (this.account !== null) return;
    const checked = await (await this.se()).call('checkPassword', { password });
    if (!checked.right) throw wrongPassword(checked.triesLeft, 'unlock');
    await this.openAccountKey(password);
  }

  /**
   * Opens the account key file under `password` without asking the SE (for a recovery, when the SE
   * refuses to run and cannot check pwd: the key file's own scrypt is then the only guard).
   */
  protected async openAccountKey(password: string): Promise<void> {
    const { sealed } = this.data.user;
    // A key kept in the clear by an earlier version was sealed when its wallet.json moved into the store (sealLegacyAccount).
    if (sealed === undefined) throw new TallyError('STATE_CORRUPT', `wallet ${this.name}: the sealed account key is missing`, { reason: 'user' });
    this.account = await openSealedAccount(this.name, this.data.user.keyId, sealed, password);
  }

  protected get keys(): DotmSlot {
    const keys = this.data.slot;
    if (keys === undefined) throw new TallyError('STATE_CORRUPT', `wallet ${this.name} has no DOT-M keys`, { reason: 'dotm' });
    return keys;
  }

  /**
   * The SE's refusal of an amount, worded with the amounts in the currency (the TA knows only minor
   * units and its currency code); the code and details stay the SE's. Other errors pass unchanged.
   */
  protected async worded(e: unknown, amount: bigint, expect: bigint | undefined): Promise<unknown> {
    if (!isTallyError(e, 'SE_REJECTED')) return e;
    const shown = (minor: bigint) => `${this.format(minor)} ${this.currency.code}`;
    const { reason } = e.details;
    if (reason === 'AMOUNT_MISMATCH' && expect !== undefined) return new TallyError('SE_REJECTED', `the payee asks for ${shown(amount)}, not the ${shown(expect)} expected`, e.details);
    if (reason !== 'INSUFFICIENT_FUNDS' && reason !== 'LIMIT_REACHED') return e;
    const { balance } = await (await this.se()).call('status', {});
    const message =
      reason === 'INSUFFICIENT_FUNDS'
        ? `the wallet holds ${shown(balance)}, less than the ${shown(amount)} asked for`
        : `the wallet holds ${shown(balance)}, but one offline payment cannot use all of it for ${shown(amount)} (too many blocks or records, or blocks that must go online first): pay less, or withdraw and deposit again`;
    return new TallyError('SE_REJECTED', message, e.details);
  }

  /** The running SE (started on first use). */
  se(): Promise<DotmSecureElement> {
    return this.startedSe();
  }

}

/** Opens a sealed account key file under `password` and checks that it is the account's key. @throws TallyError PASSWORD_WRONG, KEY_INVALID */
async function openSealedAccount(name: string, account: string, sealed: string, password: string): Promise<Signer> {
  let signer: Signer;
  try {
    signer = (await openKey(fromBase64url(sealed), password, nodeProvider, `the account key of wallet ${name}`)).signer;
  } catch (e) {
    if (!isTallyError(e, 'AEAD_FAILED')) throw e;
    throw new TallyError('PASSWORD_WRONG', `the payment password does not open the account key of wallet ${name} (it was sealed under another password); nothing was changed`, {});
  }
  checkAccountKey(name, account, signer);
  return signer;
}

function checkAccountKey(name: string, account: string, signer: Signer): void {
  if (toHex(keyId(signer.publicKey)) !== account) {
    throw new TallyError('KEY_INVALID', `wallet ${name}: the account key does not match the account ${account}`, { suite: signer.publicKey.suite, reason: 'account key mismatch' });
  }
}

/**
 * The migration of a wallet.json of an earlier version that kept the account key in the clear: the
 * SE checks `password` (a wrong one counts a try, and nothing is migrated), then the key is sealed
 * under it, so that it enters the store (and the backup of the old file) sealed only.
 * @throws TallyError PASSWORD_MISSING without a password; SE_REJECTED (WRONG_PASSWORD, PASSWORD_LOCKED); KEY_INVALID
 */
export function sealLegacyAccount(password: string | undefined): AccountMigration {
  return async ({ name, user, slot, paths }) => {
    const { secret, ...rest } = user;
    if (secret === undefined) return { user };
    if (password === undefined) {
      throw new TallyError('PASSWORD_MISSING', `wallet ${name} was written by an earlier version with its account key in the clear: give the payment password (at the prompt, or TALLY_PASSWORD) so that it is sealed as the wallet moves into wallet.db; nothing was changed`, {});
    }
    const signer = signerFromSecret(nodeProvider.suites.ed25519, fromHex(secret));
    checkAccountKey(name, user.keyId, signer);
    const keys = DOTM_FORMAT.slot(slot);
    const host = await startSecureElement(DOTM_TA, paths, false, keys?.suite ?? 'ed25519');
    try {
      const checked = await host.call('checkPassword', { password });
      if (!checked.right) throw wrongPassword(checked.triesLeft, 'unlock');
    } finally {
      await host.close();
    }
    const sealed = toBase64url(await sealKey({ suite: nodeProvider.suites.ed25519, secretKey: fromHex(secret) }, password));
    return {
      user: { ...rest, sealed },
      history: [{ at: Date.now(), kind: 'account-sealed', detail: 'the account key, kept in the clear by an earlier version, is now sealed under the payment password' }],
    };
  };
}

/** The SE's answer to a wrong pwd: the tries left, or the lock it just closed. */
export function wrongPassword(triesLeft: number, command: string): TallyError<'SE_REJECTED'> {
  const what = triesLeft === 0 ? 'the wallet is now locked' : `${triesLeft} ${triesLeft === 1 ? 'try' : 'tries'} left before the wallet locks`;
  return new TallyError('SE_REJECTED', `wrong payment password; ${what}; nothing was changed`, { command, reason: triesLeft === 0 ? 'PASSWORD_LOCKED' : 'WRONG_PASSWORD' });
}

/** Splits the events into uploads that fit a request body. */
export function chunks(events: readonly WalletEvent[]): string[][] {
  const out: string[][] = [];
  let current: string[] = [];
  let chars = 0;
  for (const event of events) {
    const text = toBase64url(encodeCbor(walletEventWire(event)));
    if (current.length > 0 && (current.length === UPLOAD_EVENTS_MAX || chars + text.length > UPLOAD_CHARS_MAX)) {
      out.push(current);
      current = [];
      chars = 0;
    }
    current.push(text);
    chars += text.length;
  }
  if (current.length > 0) out.push(current);
  return out;
}
