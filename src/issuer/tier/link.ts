/**
 * An intermediary's link to its central bank. Enrolment: the request with its proof of
 * possession, and its status. Then, at each sync: the central bank's list of revoked
 * intermediaries and its directory of the others; the claims between banks (interbank-sync.ts);
 * the movements of its reserve since the last one it recorded, each recorded once in its own books
 * (`cb:issuance` mirrors the whole reserve, `cb:reserve` what no customer holds yet); the credits of
 * its customers' settled claims; and a report of its books, which the central bank sets beside the reserve it holds. Every call
 * to the central bank is signed with the intermediary key; every recording is idempotent (keyed by
 * the central bank's movement id), so a sync cut short anywhere is finished by the next one.
 */
import { fromBase64url, toBase64url, toHex } from '../../core/bytes.ts';
import { Amount, type Currency } from '../../core/amount.ts';
import type { CryptoProvider, Signer } from '../../core/crypto/suite.ts';
import { TallyError } from '../../core/errors.ts';
import { decodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { decodeRevocationList, listRevokes, verifyRevocationList, type RevocationList } from '../../pki/revocation.ts';
import { signRequest } from '../client/request-auth.ts';
import { bigintColumn, type Database } from '../db/database.ts';
import type { NodeIdentity } from '../identity/node-identity.ts';
import { audit } from '../ledger/audit.ts';
import { transfer } from '../ledger/transfer.ts';
import { signEnrolment } from './enrolment-record.ts';
import { formatMinor } from '../http/json.ts';
import type { PositionReport } from './position.ts';
import type { IssuerServices } from '../http/context.ts';
import type { SchemeModule } from '../http/scheme-module.ts';
import { publishSchemes } from './publications.ts';
import { creditSettled, exchangeClaims, syncDirectory, type InterbankContext, type InterbankReport } from './interbank-sync.ts';

/** How long one call to the central bank may take. */
export const CENTRAL_BANK_CALL_TIMEOUT_MS = 15_000;
/** The transfer kinds of reserve movements recorded at the intermediary. */
export const RESERVE_IN_KIND = 'reserve-in';
export const RESERVE_OUT_KIND = 'reserve-out';
/** Most pages of movements one sync reads; the next sync goes on from there. */
export const MOVEMENT_PAGES_PER_SYNC = 20;
/** Most movements a page may hold (the central bank answers at most 500). */
const MOVEMENTS_PAGE_MAX = 500;
/** Longest transfer kind of a movement, as the central bank names it. */
const MOVEMENT_KIND_CHARS_MAX = 64;
/** The accounts of the mirror (see context.ts). */
const ISSUANCE = 'cb:issuance';
const RESERVE = 'cb:reserve';

/** The answer of a central bank's /v1/info that enrolment needs. */
export interface CentralBankInfo {
  readonly currency: Currency;
  readonly role: string;
  readonly rootCertificate: Certificate;
  /** The root's key id, hex. */
  readonly rootKeyId: string;
}

/** A call to the central bank; `signer` signs it as the intermediary. */
async function call(base: string, method: 'GET' | 'POST', path: string, options: { body?: unknown; signer?: { signer: Signer; keyId: string }; idempotencyKey?: string; now?: number } = {}): Promise<unknown> {
  const body = options.body === undefined ? '' : JSON.stringify(options.body);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== '') headers['content-type'] = 'application/json';
  if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
  if (options.signer !== undefined) Object.assign(headers, signRequest({ ...options.signer, method, path, body, timestamp: options.now ?? Date.now() }));
  const url = new URL(path, base).toString();
  let res: Response;
  try {
    res = await fetch(url, { method, headers, ...(body === '' ? {} : { body }), signal: AbortSignal.timeout(CENTRAL_BANK_CALL_TIMEOUT_MS) });
  } catch (e) {
    const why = e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e);
    throw new TallyError('NODE_UNREACHABLE', `cannot reach the central bank at ${base} (${why}); is it running? (tally cb start)`, { url: base }, { cause: e });
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? null : JSON.parse(text);
  } catch {
    throw new TallyError('NODE_REFUSED', `the central bank at ${base} answered ${res.status} with something that is not JSON`, { status: res.status, code: 'DECODE_FAILED' });
  }
  if (!res.ok) {
    const problem = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    const code = typeof problem?.code === 'string' ? problem.code : `HTTP_${res.status}`;
    throw new TallyError('NODE_REFUSED', `the central bank refused: ${typeof problem?.message === 'string' ? problem.message : text.slice(0, 200)} [${code}]`, { status: res.status, code });
  }
  return parsed;
}

function field<T>(value: unknown, name: string, check: (v: unknown) => v is T): T {
  if (!check(value)) throw new TallyError('DECODE_FAILED', `the central bank's answer has no valid ${name}`, { path: name, expected: 'a value', got: typeof value });
  return value;
}
/** The bytes of a base64url field of the central bank's answer. @throws TallyError DECODE_FAILED */
function bytesField(value: unknown, name: string): Uint8Array {
  const text = field(value, name, isString);
  try {
    return fromBase64url(text);
  } catch {
    throw new TallyError('DECODE_FAILED', `the central bank's answer has no valid ${name}`, { path: name, expected: 'base64url', got: text.slice(0, 40) });
  }
}
const isString = (v: unknown): v is string => typeof v === 'string';
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function positiveAmount(text: string, currency: Currency): boolean {
  try {
    return Amount.parse(text, currency).minor > 0n;
  } catch {
    return false;
  }
}

/**
 * The central bank's currency and root, from its /v1/info.
 * @throws TallyError ROLE_MISMATCH when the node there is not a central bank
 */
export async function centralBankInfo(base: string): Promise<CentralBankInfo> {
  const info = field(await call(base, 'GET', '/v1/info'), 'info', isRecord);
  const role = field(info['role'], 'role', isString);
  if (role !== 'central-bank') throw new TallyError('ROLE_MISMATCH', `the node at ${base} is ${role === 'intermediary' ? 'an intermediary' : 'a standalone node'}, not a central bank`, { role });
  const currency = field(info['currency'], 'currency', isRecord);
  const certificates = field(info['certificates'], 'certificates', isRecord);
  const rootCertificate = decodeCertificate(bytesField(certificates['root'], 'certificates.root'));
  return {
    currency: { code: field(currency['code'], 'currency.code', isString), decimals: field(currency['decimals'], 'currency.decimals', isNumber) },
    role,
    rootCertificate,
    rootKeyId: toHex(keyId(rootCertificate.body.subject)),
  };
}

/** An enrolment's status at the central bank. */
export interface EnrolmentStatus {
  readonly keyId: string;
  readonly name: string;
  readonly status: 'pending' | 'approved' | 'refused' | 'revoked';
  readonly certificate?: Uint8Array | undefined;
  readonly reason?: string | undefined;
}

function enrolmentStatus(answer: unknown): EnrolmentStatus {
  const a = field(answer, 'enrolment', isRecord);
  const status = field(a['status'], 'status', (v): v is EnrolmentStatus['status'] => v === 'pending' || v === 'approved' || v === 'refused' || v === 'revoked');
  const certificate = a['certificate'];
  const reason = a['reason'];
  return {
    keyId: field(a['keyId'], 'keyId', isString),
    name: field(a['name'], 'name', isString),
    status,
    ...(certificate === undefined ? {} : { certificate: bytesField(certificate, 'certificate') }),
    ...(typeof reason === 'string' ? { reason } : {}),
  };
}

/** Sends the enrolment request (again, harmlessly, if it was sent before); answers its status. */
export async function submitEnrolment(base: string, request: { name: string; currency: string; rootKeyId: string; intermediary: Signer; keyId: string }): Promise<EnrolmentStatus> {
  const { publicKey } = request.intermediary;
  const proof = signEnrolment(request.intermediary, { name: request.name, currency: request.currency, rootKeyId: request.rootKeyId, subject: publicKey });
  const body = { name: request.name, publicKey: { suite: publicKey.suite, key: toBase64url(publicKey.key) }, proof: toBase64url(proof) };
  return enrolmentStatus(await call(base, 'POST', '/v1/cb/enrolments', { body, idempotencyKey: `enrol-${request.keyId.slice(0, 32)}` }));
}

/** An enrolment's status. */
export async function enrolmentAt(base: string, keyIdHex: string): Promise<EnrolmentStatus> {
  return enrolmentStatus(await call(base, 'GET', `/v1/cb/enrolments/${keyIdHex}`));
}

/** What one sync did. */
export interface SyncReport {
  /** Movements of the reserve recorded by this sync. */
  readonly recorded: number;
  /** The last movement recorded. */
  readonly cursor: number;
  /** The whole reserve, as mirrored here. */
  readonly reserve: bigint;
  /** Of which no customer holds yet. */
  readonly unallocated: bigint;
  /** The central bank's list of revoked intermediaries, as held now. */
  readonly rootListVersion: number | null;
  /** True when that list names this intermediary. */
  readonly revoked: boolean;
  /** The claims between banks this sync moved on. */
  readonly claims: InterbankReport;
}

interface Movement {
  id: number;
  amount: string;
  direction: 'in' | 'out';
  kind: string;
}

/** The intermediary's link: sync pulls, records and reports; one sync runs at a time. */
export class CentralBankLink {
  readonly #db: Database;
  readonly #identity: NodeIdentity;
  readonly #provider: CryptoProvider;
  readonly #currency: Currency;
  readonly #now: () => number;
  readonly #base: string;
  readonly #keyId: string;
  readonly #interbank: InterbankContext;
  #services: IssuerServices | undefined;
  #running: Promise<SyncReport> | null = null;

  constructor(options: { db: Database; identity: NodeIdentity; provider: CryptoProvider; currency: Currency; now: () => number; schemes?: readonly SchemeModule[] | undefined }) {
    if (options.identity.centralBank === undefined) throw new TallyError('ROLE_MISMATCH', 'only an intermediary enrolled at a central bank has a link to it', { role: options.identity.role });
    this.#db = options.db;
    this.#identity = options.identity;
    this.#provider = options.provider;
    this.#currency = options.currency;
    this.#now = options.now;
    this.#base = options.identity.centralBank;
    this.#keyId = toHex(keyId(options.identity.intermediary.certificate.body.subject));
    this.#interbank = {
      db: options.db,
      identity: options.identity,
      provider: options.provider,
      currency: options.currency,
      now: options.now,
      schemes: options.schemes ?? [],
      services: () => this.#services,
      call: (method, path, o = {}) => call(this.#base, method, path, { ...o, signer: this.#signed(), now: this.#now() }),
    };
  }

  /** The node's services, which the schemes' judges of claims on this bank take; set once the node is open. */
  attach(services: IssuerServices): void {
    this.#services = services;
  }

  /** The central bank's base URL. */
  get centralBank(): string {
    return this.#base;
  }

  /**
   * Syncs now; a sync already under way is joined rather than doubled. With `fresh`, one under way
   * is waited for and another run after it, so that what the caller just recorded (a claim) is in it.
   */
  sync(options: { fresh?: boolean } = {}): Promise<SyncReport> {
    const running = this.#running;
    if (options.fresh === true && running !== null) return running.then(() => this.sync(options), () => this.sync(options));
    this.#running ??= this.#sync().finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  #signed(): { signer: Signer; keyId: string } {
    return { signer: this.#identity.intermediary.signer, keyId: this.#keyId };
  }

  async #sync(): Promise<SyncReport> {
    // The other intermediaries first, so that claims between customers of a bank enrolled since are
    // judged; then the claims, so that a decision posted now moves the reserves before the
    // movements are pulled.
    const list = await this.#syncRootList();
    await syncDirectory(this.#interbank, list.list);
    // A revoked bank publishes nothing more (the central bank would refuse it).
    if (!list.revoked) await publishSchemes(this.#interbank);
    const exchanged = await exchangeClaims(this.#interbank);
    let recorded = 0;
    // A central bank that always has more (or a very long history) is read over several syncs.
    for (let pages = 0; pages < MOVEMENT_PAGES_PER_SYNC; pages++) {
      const cursor = await this.#cursor();
      const page = field(await call(this.#base, 'GET', `/v1/cb/movements?after=${cursor}`, { signer: this.#signed(), now: this.#now() }), 'movements', isRecord);
      const movements = this.#checkedPage(field(page['movements'], 'movements', Array.isArray), cursor);
      for (const m of movements) if (await this.#record(m)) recorded += 1;
      if (page['more'] !== true || movements.length === 0) break;
    }
    const credited = await creditSettled(this.#interbank);
    const position = await this.#position();
    await call(this.#base, 'POST', '/v1/cb/positions', { body: position, signer: this.#signed(), idempotencyKey: `position-${position.cursor}-${this.#now()}`, now: this.#now() });
    return {
      recorded,
      cursor: position.cursor,
      reserve: Amount.parse(position.reserve, this.#currency).minor,
      unallocated: Amount.parse(position.unallocated, this.#currency).minor,
      rootListVersion: list.rootListVersion,
      revoked: list.revoked,
      claims: { ...exchanged, credited },
    };
  }

  /**
   * The movements of one page, each checked before any is recorded: ids after the cursor and
   * strictly increasing (a movement skipped by an id out of order would never be recorded), an
   * amount of this currency above zero, a known direction.
   * @throws TallyError DECODE_FAILED
   */
  #checkedPage(page: unknown[], cursor: number): Movement[] {
    if (page.length > MOVEMENTS_PAGE_MAX) throw new TallyError('DECODE_FAILED', `the central bank answered ${page.length} movements in one page, more than ${MOVEMENTS_PAGE_MAX}`, { path: 'movements', expected: `at most ${MOVEMENTS_PAGE_MAX}`, got: String(page.length) });
    let last = cursor;
    return page.map((m) => {
      const fine =
        isRecord(m) &&
        isNumber(m['id']) &&
        m['id'] > last &&
        (m['direction'] === 'in' || m['direction'] === 'out') &&
        isString(m['amount']) &&
        isString(m['kind']) &&
        m['kind'].length <= MOVEMENT_KIND_CHARS_MAX &&
        positiveAmount(m['amount'], this.#currency);
      if (!fine) {
        throw new TallyError('DECODE_FAILED', `the central bank answered a malformed movement after ${last}: nothing of its page was recorded`, { path: 'movements', expected: 'a movement', got: JSON.stringify(m).slice(0, 100) });
      }
      last = m['id'] as number;
      return { id: last, amount: m['amount'] as string, direction: m['direction'] as Movement['direction'], kind: m['kind'] as string };
    });
  }

  async #cursor(): Promise<number> {
    const row = (await this.#db.query<{ cursor: bigint }>('SELECT cursor FROM tier_link WHERE one')).rows[0];
    return row === undefined ? 0 : Number(bigintColumn(row, 'cursor'));
  }

  /** Records one movement and moves the cursor past it, in one transaction; answers false for one recorded before. */
  async #record(m: Movement): Promise<boolean> {
    const amount = Amount.parse(m.amount, this.#currency).minor;
    return this.#db.transaction(async (tx) => {
      // The row first, so that there is one to lock: before the first sync there is none, and two
      // syncs would each record the first movement (once, by its key) and set the cursor in turn.
      await tx.query('INSERT INTO tier_link (one) VALUES (true) ON CONFLICT (one) DO NOTHING');
      const held = (await tx.query<{ cursor: bigint }>('SELECT cursor FROM tier_link WHERE one FOR UPDATE')).rows[0];
      if (held !== undefined && Number(bigintColumn(held, 'cursor')) >= m.id) return false;
      const moved = await transfer(tx, {
        idempotencyKey: `cb-movement:${m.id}`,
        debit: m.direction === 'in' ? ISSUANCE : RESERVE,
        credit: m.direction === 'in' ? RESERVE : ISSUANCE,
        amount,
        kind: m.direction === 'in' ? RESERVE_IN_KIND : RESERVE_OUT_KIND,
        reference: { centralBank: this.#base, movement: m.id, kind: m.kind },
        currency: this.#currency,
      });
      if (!moved.ok) throw new TallyError('RESERVE_UNSYNCED', `movement ${m.id} of the reserve (${m.direction} ${m.amount}) cannot be recorded: ${moved.message}`, { reason: moved.code });
      await tx.query('UPDATE tier_link SET cursor = $1, synced_at = now() WHERE one', [BigInt(m.id)]);
      return true;
    });
  }

  /** Fetches the central bank's list of revoked intermediaries; keeps it when it verifies under the root and is not older. */
  async #syncRootList(): Promise<{ rootListVersion: number | null; revoked: boolean; list: RevocationList | null }> {
    const answer = field(await call(this.#base, 'GET', '/v1/cb/revocations'), 'revocations', isRecord);
    const encoded = bytesField(answer['list'], 'list');
    const list = decodeRevocationList(encoded);
    verifyRevocationList(this.#provider, list, this.#identity.root.certificate.body.subject);
    const version = list.body.version;
    await this.#db.query(
      `INSERT INTO tier_link (one, root_list, root_list_version) VALUES (true, $1, $2)
       ON CONFLICT (one) DO UPDATE SET root_list = EXCLUDED.root_list, root_list_version = EXCLUDED.root_list_version
       WHERE tier_link.root_list_version IS NULL OR tier_link.root_list_version < EXCLUDED.root_list_version`,
      [encoded, BigInt(version)],
    );
    const held = (await this.#db.query<{ root_list: Uint8Array | null; root_list_version: bigint | null }>('SELECT root_list, root_list_version FROM tier_link WHERE one')).rows[0];
    if (held?.root_list == null || held.root_list_version === null) return { rootListVersion: null, revoked: false, list: null };
    const kept = decodeRevocationList(new Uint8Array(held.root_list));
    return { rootListVersion: Number(held.root_list_version), revoked: listRevokes(kept, this.#identity.intermediary.certificate.body.serial), list: kept };
  }

  /** This intermediary's books, as the central bank gets them. */
  async #position(): Promise<PositionReport> {
    const found = await this.#db.transaction(
      async (tx) => {
        const ledger = await audit(tx);
        const cursor = (await tx.query<{ cursor: bigint }>('SELECT cursor FROM tier_link WHERE one')).rows[0];
        const unallocated = (await tx.query<{ balance: bigint }>('SELECT balance FROM accounts WHERE id = $1', [RESERVE])).rows[0];
        return { ledger, cursor: cursor === undefined ? 0 : Number(bigintColumn(cursor, 'cursor')), unallocated: unallocated === undefined ? 0n : bigintColumn(unallocated, 'balance') };
      },
      { isolation: 'serializable' },
    );
    const cur = found.ledger.currencies.find((c) => c.currency === this.#currency.code);
    const money = (minor: bigint) => formatMinor(this.#currency, minor);
    return {
      cursor: found.cursor,
      reserve: money(cur?.totalIssued ?? 0n),
      unallocated: money(found.unallocated),
      online: money(cur?.totalOnline ?? 0n),
      settlement: money(cur?.totalSettlement ?? 0n),
      offlineFloat: money(cur?.totalOfflineFloat ?? 0n),
      ledgerBalanced: found.ledger.balanced,
      asOf: new Date(this.#now()).toISOString(),
    };
  }
}
