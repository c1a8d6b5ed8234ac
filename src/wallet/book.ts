/**
 * A wallet's book: its store (wallet.db) and the small things an open wallet holds in memory (the
 * header, the account, the device, the scheme's slot, the revocation list, the unfinished steps and
 * the retired secure elements). A step writes through `commit` only the rows it touches, its state
 * change and its history lines in one transaction; the lists that grow with the wallet's age
 * (received and sent payments, history) stay on disk and are read through indexes.
 */
import type { SeReport } from './store/records.ts';
import { WalletStore, type StoreTx } from './store/store.ts';
import type { HistoryEvent, InboxEntry, JournalStep, RetiredDevice, SentEntry, WalletAccount, WalletData, WalletDevice, WalletState } from './wallet-data.ts';
import type { HistoryRead } from './wallet-common.ts';

/** What one commit writes: all of it is on disk when `commit` returns, or none of it. */
export interface Changes<Step extends JournalStep, Slot> {
  /** Steps written down, new or changed (the journal line before and during a step). */
  readonly put?: readonly Step[] | undefined;
  /** Ids of the steps finished or ended. */
  readonly drop?: readonly string[] | undefined;
  /** Received payments added or changed (by digest). */
  readonly inbox?: readonly InboxEntry[] | undefined;
  /** Sent payments added or changed (by digest). */
  readonly sent?: readonly SentEntry[] | undefined;
  /** Digests of sent payments the node reported settled (moved out by the next prune). */
  readonly settled?: readonly string[] | undefined;
  readonly user?: WalletAccount | undefined;
  readonly device?: WalletDevice | null | undefined;
  readonly slot?: Slot | undefined;
  /** Retired secure elements added or changed (by device). */
  readonly retired?: readonly RetiredDevice[] | undefined;
  readonly crl?: string | undefined;
  /** The other intermediaries, verified (base64url of their encoded set). */
  readonly peers?: string | undefined;
  /** The history lines of what changed. */
  readonly history?: readonly HistoryEvent[] | undefined;
}

/** What the store keeps in its `slot`: the account, the device and the scheme's own record. */
export interface ShellSlot<Slot> {
  user: WalletAccount;
  device: WalletDevice | null;
  scheme?: Slot;
}

/** Most entries of each list `snapshot()` returns (the newest). */
export const SNAPSHOT_ENTRIES_MAX = 10_000;

/** A wallet's store and what it holds in memory. */
export class WalletBook<Step extends JournalStep, Slot> {
  private current: WalletState<Step, Slot>;

  constructor(
    private readonly store: WalletStore,
    state: WalletState<Step, Slot>,
  ) {
    this.current = state;
  }

  /** The small things, as they are on disk (read-only: change them through `commit`). */
  get state(): Readonly<WalletState<Step, Slot>> {
    return this.current;
  }

  /** The store file. */
  get path(): string {
    return this.store.path;
  }

  /** Writes `changes` as one transaction, then takes them in memory. */
  commit(changes: Changes<Step, Slot>): void {
    const s = this.current;
    const next: WalletState<Step, Slot> = {
      ...s,
      ...(changes.user === undefined ? {} : { user: changes.user }),
      ...(changes.device === undefined ? {} : { device: changes.device }),
      ...(changes.slot === undefined ? {} : { slot: changes.slot }),
      ...(changes.crl === undefined ? {} : { crl: changes.crl }),
      pending: withSteps(s.pending, changes.put ?? [], changes.drop ?? []),
      retired: withRetired(s.retired, changes.retired ?? []),
    };
    const slotChanged = changes.user !== undefined || changes.device !== undefined || changes.slot !== undefined;
    this.store.step((tx: StoreTx) => {
      for (const id of changes.drop ?? []) tx.removePending(id);
      for (const step of changes.put ?? []) if (!(changes.drop ?? []).includes(step.id)) tx.putPending(step);
      for (const entry of changes.inbox ?? []) tx.putInbox(entry);
      for (const entry of changes.sent ?? []) tx.putSent(entry);
      if (changes.settled !== undefined && changes.settled.length > 0) tx.settleSent(changes.settled);
      for (const entry of changes.retired ?? []) tx.putRetired(entry);
      if (changes.crl !== undefined) tx.setCrl(changes.crl);
      if (changes.peers !== undefined) tx.setPeers(changes.peers);
      if (slotChanged) tx.setSlot(shellSlot(next));
      for (const event of changes.history ?? []) tx.history(event);
    });
    this.current = next;
  }

  /** The other intermediaries the wallet holds, as stored (base64url), or null. */
  peers(): string | null {
    return this.store.peers();
  }

  /** What the secure element last reported of itself, or null (see WalletShell). */
  seReport(): SeReport | null {
    return this.store.seReport();
  }

  /** Records what the secure element reported of itself, or removes the record (null), in a transaction of its own. */
  recordSeReport(report: SeReport | null): void {
    this.store.step((tx) => tx.setSeReport(report));
  }

  /** Moves what the node has settled out of the lists a step reads (archived: replay checks still see it). */
  prune(): { inbox: number; sent: number } {
    return this.store.prune({ before: Date.now() + 1 });
  }

  /** The received payment from `sender` with counter `index`, archived or not (the replay check). */
  inboxBySender(sender: string, index: string): InboxEntry | undefined {
    return this.store.inboxBySender(sender, index);
  }

  /** The received payment with this digest, archived or not. */
  inboxByDigest(digest: string): InboxEntry | undefined {
    return this.store.inboxByDigest(digest);
  }

  /** Received payments not yet collected, claimed or refused, oldest first. */
  acceptedInbox(): InboxEntry[] {
    return this.store.inbox('accepted');
  }

  /** The sent payment with this digest, archived or not. */
  sentByDigest(digest: string): SentEntry | undefined {
    return this.store.sentByDigest(digest);
  }

  /** The sent payment that paid request `nonce`, archived or not. */
  sentByRequest(nonce: string): SentEntry | undefined {
    return this.store.sentByRequest(nonce);
  }

  /** The history (the last lines, up to the store's bound), oldest first, and the lines that could not be read. */
  history(): HistoryRead {
    return this.store.historyRead();
  }

  /** A copy of the wallet's data in the layout of wallet.json, with the entries not yet archived (the newest SNAPSHOT_ENTRIES_MAX of each list). */
  snapshot(): WalletData<Step, Slot> {
    const s = structuredClone(this.current);
    return { format: 1, ...s, pending: [...s.pending], retired: [...s.retired], inbox: this.store.inbox().slice(-SNAPSHOT_ENTRIES_MAX), sent: this.store.sent().slice(-SNAPSHOT_ENTRIES_MAX) };
  }

  /** Closes the store (its WAL is folded into wallet.db). */
  close(): void {
    this.store.close();
  }
}

/** The store's slot of a wallet state. */
export function shellSlot<Slot>(state: Pick<WalletState<JournalStep, Slot>, 'user' | 'device' | 'slot'>): ShellSlot<Slot> {
  return { user: state.user, device: state.device, ...(state.slot === undefined ? {} : { scheme: state.slot }) };
}

function withSteps<Step extends JournalStep>(pending: readonly Step[], put: readonly Step[], drop: readonly string[]): Step[] {
  const out = pending.map((s) => put.find((p) => p.id === s.id) ?? s);
  for (const step of put) if (!out.some((s) => s.id === step.id)) out.push(step);
  return out.filter((s) => !drop.includes(s.id));
}

function withRetired(retired: readonly RetiredDevice[], put: readonly RetiredDevice[]): RetiredDevice[] {
  const out = retired.map((r) => put.find((p) => p.device === r.device) ?? r);
  for (const entry of put) if (!out.some((r) => r.device === entry.device)) out.push(entry);
  return out;
}
