/**
 * Where a secure element host keeps its master secret and sealed states. The file implementation
 * lives in storage-file.ts; this interface keeps the host logic free of I/O details.
 */

/** Persistent storage of one secure element. Writes of state are two-phase: temp, then replace. */
export interface SecureStorage {
  /** Where it is, for messages ("/path/to/se"). */
  readonly location: string;
  /** The master secret, or null when the device was never provisioned. */
  readMaster(): Promise<Uint8Array | null>;
  /** Stores a new master secret. @throws TallyError SE_ALREADY_PROVISIONED if one exists */
  createMaster(secret: Uint8Array): Promise<void>;
  /** The sealed state of an app, or null when there is none. */
  readState(app: string): Promise<Uint8Array | null>;
  /** Writes the next sealed state beside the current one, durably (fsync). */
  writeTemp(app: string, sealed: Uint8Array): Promise<void>;
  /** Atomically puts the written temp state in place of the current one, durably. */
  replace(app: string): Promise<void>;
  /** Removes a temp state left by a crash before `replace`. */
  discardTemp(app: string): Promise<void>;
  /**
   * The records file of one generation of an app (its logs and outbox, appended per commit), or null.
   * The three records methods go together; a storage without them keeps each generation's records
   * as one more sealed blob, rewritten whole on every append (the host does that for it).
   */
  readRecords?(app: string, generation: bigint): Promise<Uint8Array | null>;
  /** Writes `data` at byte `offset` of a generation's records file (created if need be), drops what follows, and makes it durable. */
  writeRecords?(app: string, generation: bigint, offset: number, data: Uint8Array): Promise<void>;
  /** Removes the records files of every generation of `app` but `keep`. */
  removeRecords?(app: string, keep: bigint): Promise<void>;
  /** Releases what the storage keeps open between commits (a file handle); it opens again on the next write. */
  close?(): Promise<void>;
}
