/** The wallet store: what a wallet keeps, in one SQLite file, a step per transaction. */
export { WalletStore, STORE_FILE, STORE_SCHEMA_VERSION, SETTLED_INBOX_STATES, type StoreTx, type StoreInit, type StoreOptions, type StoreCounts, type Synchronous } from './store.ts';
export { openWalletStore, readLegacyWallet, STORE_FILES, type OpenOptions, type SlotMigration } from './open.ts';
export {
  walletFileCodec,
  inboxEntryCodec,
  sentEntryCodec,
  pendingStepCodec,
  historyEventCodec,
  retiredCodec,
  headerCodec,
  certificatesCodec,
  type InboxEntry,
  type SentEntry,
  type PendingStep,
  type RetiredEntry,
  type HistoryEvent,
  type StoreHeader,
  type StoreCertificates,
  type LegacyWallet,
} from './records.ts';
