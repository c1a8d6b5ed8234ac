/**
 * Opening a wallet folder of a scheme under its lock: its store (wallet.db), migrated first from the
 * wallet.json of an earlier version, and what the open wallet holds in memory, read by the scheme's
 * format (its journal steps and its slot).
 */
import { decodeFailure, describeValue, record, type Codec } from '../core/codec.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { nullable } from '../core/fields.ts';
import { WalletBook, shellSlot, type ShellSlot } from './book.ts';
import { lockWallet, type WalletPaths } from './home.ts';
import { openWalletStore, type SlotMigration } from './store/open.ts';
import { accountCodec, deviceCodec, pendingStepCodec, type LegacyWallet, type PendingStep } from './store/records.ts';
import type { WalletStore } from './store/store.ts';
import { readWalletData } from './wallet-common.ts';
import type { HistoryEvent, JournalStep, WalletAccount, WalletDevice, WalletState } from './wallet-data.ts';

/** How a scheme reads its part of a wallet: its journal steps and its slot. */
export interface WalletFormat<Step extends JournalStep, Slot> {
  /** The step as the scheme knows it, or null for a step it does not know. */
  step(step: JournalStep & Record<string, unknown>): Step | null;
  /** The slot as the scheme knows it, or null when it is missing or not the scheme's. */
  slot(slot: unknown): Slot | null;
}

/**
 * What the account of a wallet.json of an earlier version becomes in the store: where a scheme
 * seals a key kept in the clear (so that it never enters wallet.db in the clear), with the history
 * lines saying so. Without one, the account moves as it is.
 */
export type AccountMigration = (legacy: { name: string; user: WalletAccount; device: WalletDevice | null; slot: unknown; paths: WalletPaths }) => Promise<{ user: WalletAccount; history?: readonly HistoryEvent[] }>;

/** An open wallet folder: call `unlock` when done (after closing the book). */
export interface OpenedWallet<Step extends JournalStep, Slot> {
  readonly paths: WalletPaths;
  readonly book: WalletBook<Step, Slot>;
  readonly unlock: () => Promise<void>;
}

function unknownStep(scheme: string, where: string, raw: { kind: unknown }): TallyError<'STATE_CORRUPT'> {
  return new TallyError('STATE_CORRUPT', `${where}: a pending ${JSON.stringify(raw.kind).slice(0, 40)} step that a ${scheme} wallet does not know`, { reason: 'pending' });
}

/** The store's check of a step: the shell's (kind, id, size), then the scheme's format. */
function stepCheck<Step extends JournalStep, Slot>(format: WalletFormat<Step, Slot>, scheme: string): Codec<PendingStep> {
  return {
    expected: `a journal step of a ${scheme} wallet`,
    decode(value: unknown, path: string): PendingStep {
      const step = pendingStepCodec.decode(value, path);
      if (format.step({ ...step }) === null) return decodeFailure(path, this.expected, `a ${JSON.stringify(step.kind).slice(0, 40)} step`);
      return step;
    },
  };
}

/** The store's slot, the scheme's part read by its format. */
export function shellSlotCodec<Slot>(format: Pick<WalletFormat<JournalStep, Slot>, 'slot'>, scheme: string): Codec<ShellSlot<Slot>> {
  const shell = record({ user: accountCodec, device: nullable(deviceCodec), scheme: { expected: 'the scheme\'s record', decode: (v: unknown) => v } });
  return {
    expected: `the account, device and ${scheme} record of a wallet`,
    decode(value: unknown, path: string): ShellSlot<Slot> {
      const { user, device, scheme: raw } = shell.decode(value, path);
      if (raw === undefined) return { user, device };
      const own = format.slot(raw);
      if (own === null) return decodeFailure(`${path}.scheme`, `the data of a ${scheme} wallet`, describeValue(raw));
      return { user, device, scheme: own };
    },
  };
}

/** The migration of a wallet.json of `scheme`: the scheme's format reads its steps and slot; `account` may seal the key. */
function migration<Step extends JournalStep, Slot>(paths: WalletPaths, scheme: string, format: WalletFormat<Step, Slot>, account: AccountMigration | undefined): SlotMigration {
  return async (data: LegacyWallet) => {
    if (data.scheme !== scheme) throw new TallyError('WALLET_UNSUPPORTED', `wallet ${data.name} is a ${data.scheme} wallet`, { name: data.name, reason: 'scheme' });
    for (const raw of data.pending) if (format.step({ ...raw }) === null) throw unknownStep(scheme, `wallet file ${paths.legacy}`, raw);
    const slot = data.slot === undefined ? undefined : format.slot(data.slot);
    if (slot === null) throw new TallyError('STATE_CORRUPT', `wallet file ${paths.legacy}: the ${scheme} data is not in the expected format`, { reason: 'slot' });
    if (data.user.secret === undefined && data.user.sealed === undefined) throw new TallyError('STATE_CORRUPT', `wallet file ${paths.legacy}: the user key is missing`, { reason: 'user' });
    const moved = account === undefined ? { user: data.user } : await account({ name: data.name, user: data.user, device: data.device, slot: data.slot, paths });
    return { slot: shellSlot({ user: moved.user, device: data.device, ...(slot === undefined ? {} : { slot }) }), user: moved.user, history: moved.history };
  };
}

/** What an open wallet holds in memory, read from its store. */
function stateOf<Step extends JournalStep, Slot>(store: WalletStore, scheme: string, format: WalletFormat<Step, Slot>): WalletState<Step, Slot> {
  const header = store.header();
  if (header.scheme !== scheme) throw new TallyError('WALLET_UNSUPPORTED', `wallet ${header.name} is a ${header.scheme} wallet`, { name: header.name, reason: 'scheme' });
  const slot = store.slot(shellSlotCodec(format, scheme));
  const pending = store.pending().map((raw) => {
    const step = format.step({ ...raw });
    if (step === null) throw unknownStep(scheme, `wallet store ${store.path}`, raw);
    return step;
  });
  return {
    ...header,
    user: slot.user,
    device: slot.device,
    ...(slot.scheme === undefined ? {} : { slot: slot.scheme }),
    certificates: store.certificates(),
    crl: store.crl(),
    pending,
    retired: store.retired(),
  };
}

/**
 * Opens a wallet folder of `scheme` under its lock, migrating the wallet.json of an earlier version
 * first (its backup kept beside it, see store/open.ts).
 * @throws TallyError WALLET_NOT_FOUND, WALLET_UNSUPPORTED (another scheme), WALLET_BUSY, STATE_CORRUPT (a damaged file, a step or slot the scheme does not know), what `account` throws
 */
export async function openFolderOf<Step extends JournalStep, Slot>(
  home: string,
  name: string,
  scheme: string,
  format: WalletFormat<Step, Slot>,
  options: { account?: AccountMigration | undefined } = {},
): Promise<OpenedWallet<Step, Slot>> {
  const read = await readWalletData(home, name);
  if (read === null) throw new TallyError('WALLET_NOT_FOUND', `no wallet named ${name} in ${home}: create it with \`tally wallet create ${name} --scheme ${scheme}\``, { name });
  if (read.data.scheme !== scheme) throw new TallyError('WALLET_UNSUPPORTED', `wallet ${name} is a ${read.data.scheme} wallet`, { name, reason: 'scheme' });
  const { paths } = read;
  const unlock = await lockWallet(paths, name);
  let store: WalletStore | null = null;
  try {
    store = await openWalletStore(paths.dir, { steps: stepCheck(format, scheme), migrate: migration(paths, scheme, format, options.account) });
    return { paths, book: new WalletBook(store, stateOf(store, scheme, format)), unlock };
  } catch (e) {
    store?.close();
    await unlock();
    if (isTallyError(e, 'WALLET_NOT_FOUND')) throw new TallyError('WALLET_NOT_FOUND', `no wallet named ${name} in ${home}`, { name }, { cause: e });
    throw e;
  }
}
