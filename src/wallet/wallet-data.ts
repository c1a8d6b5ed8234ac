/**
 * What a wallet keeps, as types: its entries (received and sent payments, steps, history lines),
 * the small things it holds in memory while it is open (`WalletState`), and the layout of the
 * wallet.json file of earlier versions (`WalletData`, also the shape `snapshot()` gives). The store
 * (`store/`) keeps them in wallet.db; see home.ts for the folder.
 */
import type { Infer } from '../core/codec.ts';
import type { accountCodec, deviceCodec, HistoryEvent as StoredEvent, InboxEntry as StoredInbox, RetiredEntry, SentEntry as StoredSent } from './store/records.ts';

/**
 * A received payment, as the payee's log keeps it. `state` `retired`: paid to a secure element this
 * wallet retired (`tally wallet recover`); kept, not collectable. `reason`: why the SE or the node
 * refused it. `waiting`: why it is still accepted after a try (the SE or the node could not take it
 * yet for a reason time, a sync or room cures); it is tried again after the next sync. `credited`:
 * what the node credited for it (decimal), as its answer to the claim said. `claim`: the interbank
 * claim the node presented for a payment from another bank's device (two tiers).
 */
export type InboxEntry = StoredInbox;

/** A payment made by this wallet's TA; `confirmed`: the payee confirmed it over a link; `request`: the nonce (hex) of the request token it paid. */
export type SentEntry = StoredSent;

/** A secure element retired by `tally wallet recover`, with the folder it was moved to, and when the node gives back what it holds for it. */
export type RetiredDevice = RetiredEntry;

/** A step written down before it starts, finished on the next open if it was cut short; each scheme adds its own fields. */
export interface JournalStep {
  /** What the step does (the scheme's word: deposit, pay, issue, ...). */
  kind: string;
  /** The SE request id and the node idempotency key of the step (32 hex digits). */
  id: string;
}

/**
 * The account key (the user key registered at the node, which signs the wallet's calls): `secret`
 * in hex, or `sealed`, a key file (base64url) sealed under a password, never the key in the clear.
 */
export type WalletAccount = Infer<typeof accountCodec>;

/** The wallet's secure element as the node certified it. */
export type WalletDevice = Infer<typeof deviceCodec>;

/** What a new wallet starts with (see createWalletFolder). */
export interface WalletInit<Slot = unknown> {
  name: string;
  /** The scheme's name, as the registry lists it. */
  scheme: string;
  node: string;
  currency: { code: string; decimals: number };
  createdAt: number;
  user: WalletAccount;
  device: WalletDevice | null;
  /** What the scheme's wallet part keeps besides these fields (its keys, its own records). */
  slot?: Slot;
  certificates: { root: string; intermediary: string; issuerNode: string };
}

/** What an open wallet holds in memory (small, whatever its age); every change is written through the store. */
export interface WalletState<Step extends JournalStep = JournalStep, Slot = unknown> extends WalletInit<Slot> {
  crl: string | null;
  /** Unfinished steps, oldest first. */
  pending: readonly Step[];
  /** Secure elements retired by `tally wallet recover`, oldest first. */
  retired: readonly RetiredDevice[];
}

/** wallet.json of earlier versions; also what `snapshot()` gives (with the entries not yet archived). */
export interface WalletData<Step extends JournalStep = JournalStep, Slot = unknown> extends WalletInit<Slot> {
  format: 1;
  crl: string | null;
  inbox: InboxEntry[];
  sent: SentEntry[];
  pending: Step[];
  retired?: RetiredDevice[];
}

/** A line of the history. */
export type HistoryEvent = StoredEvent;
