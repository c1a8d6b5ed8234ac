/**
 * The bank's signing classes (coin.ts): for each epoch, one RSA key per denomination of the 1-2-5
 * series, each bound to the program its coins carry. A coin of epoch e (starting at s) can be paid
 * until s + 2 epochs (checkExpiry: a coin lives one to two epochs, whenever in the epoch it was
 * withdrawn) and deposited until a grace after that; withdrawals sign with the current epoch's
 * classes only.
 *
 * An epoch's keys are made on the first request that needs them, in one transaction under a lock,
 * so that two requests at once make one set; a node that starts does not pay for RSA key
 * generation. Rows never change once written, so each node process keeps what it read.
 */
import { createPrivateKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { bigintColumn, type IssuerServices, type Queryable } from '../../issuer/plugin.ts';
import { decodePublicKey, encodePublicKey, type RsaPublicKey } from './blind-rsa.ts';
import { CLASS_ID_BYTES, programDigest } from './coin.ts';
import { series } from './denominations.ts';
import type { ClassEntry } from './messages.ts';
import { otpBankKeys, unwrapClassKey, wrapClassKey } from './node-keys.ts';
import { DENOMINATION_MAX, DENOMINATION_MIN, type OtpNodeOptions } from './node-common.ts';
import { RSA_MODULUS_BITS, RSA_PUBLIC_EXPONENT, rsaPublicKeyOf } from './node-rsa.ts';
import { buildProgram, checkProgram, programCodec, type Program } from './program.ts';

/** The denominations of every epoch, in minor units. */
export const DENOMINATIONS: readonly bigint[] = series(DENOMINATION_MIN, DENOMINATION_MAX);

const PROGRAM_BYTES_MAX = 4096;
const LOCK = `SELECT pg_advisory_xact_lock(hashtext('tally/otp/classes/' || coalesce(current_schema(), '')))`;
const generateRsa = promisify(generateKeyPair);

/** A class as the node uses it: what it publishes, and its key. */
export interface BankClass {
  readonly entry: ClassEntry;
  readonly classIdHex: string;
  readonly epoch: number;
  readonly denomination: bigint;
  /** The offline transfers its coins allow (its program's checkMaxHops). */
  readonly hops: number;
  readonly publicKey: RsaPublicKey;
  /** The private key, unwrapped on first use. */
  privateKey(): KeyObject;
}

/** The epoch `now` falls in. */
export function epochOf(now: number, epochMs: number): number {
  return Math.floor(now / epochMs);
}

/** What the coins of a class of `epoch` carry and until when they are paid and deposited. */
export function classTerms(epoch: number, options: OtpNodeOptions): { program: Program; until: number; depositUntil: number } {
  const until = epoch * options.epochMs + 2 * options.epochMs;
  const program = buildProgram(2, [
    { kind: 'checkExpiry', until },
    { kind: 'checkMaxHops', hops: options.hops },
  ]);
  return { program, until, depositUntil: until + options.depositGraceMs };
}

interface ClassRow {
  class_id: Uint8Array;
  epoch: bigint;
  denomination: bigint;
  currency: string;
  program: Uint8Array;
  program_digest: Uint8Array;
  until_ms: bigint;
  deposit_until_ms: bigint;
  modulus: Uint8Array;
  exponent: Uint8Array;
  wrapped_key: Uint8Array;
}

const COLUMNS = 'class_id, epoch, denomination, currency, program, program_digest, until_ms, deposit_until_ms, modulus, exponent, wrapped_key';

/** The classes of one node (one identity and currency), read from its table and kept. */
export class ClassBook {
  readonly #services: IssuerServices;
  readonly #options: OtpNodeOptions;
  readonly #known = new Map<string, BankClass>();
  readonly #epochs = new Set<number>();
  readonly #making = new Map<number, Promise<void>>();

  constructor(services: IssuerServices, options: OtpNodeOptions) {
    this.#services = services;
    this.#options = options;
  }

  /** The current epoch at the node's time. */
  currentEpoch(): number {
    return epochOf(this.#services.now(), this.#options.epochMs);
  }

  /** Makes the current epoch's classes when they do not exist yet (outside any open transaction). */
  async ensureCurrent(): Promise<void> {
    const epoch = this.currentEpoch();
    if (this.#epochs.has(epoch)) return;
    let making = this.#making.get(epoch);
    if (making === undefined) {
      making = this.#make(epoch).finally(() => this.#making.delete(epoch));
      this.#making.set(epoch, making);
    }
    await making;
  }

  async #make(epoch: number): Promise<void> {
    const { db, currency } = this.#services;
    const wrap = otpBankKeys(this.#services).classWrap;
    await db.transaction(async (tx) => {
      await tx.query(LOCK);
      const { rowCount } = await tx.query('SELECT 1 FROM otp_classes WHERE epoch = $1 LIMIT 1', [BigInt(epoch)]);
      if (rowCount > 0) return;
      const { program, until, depositUntil } = classTerms(epoch, this.#options);
      const encodedProgram = encodeCbor(program);
      const digest = programDigest(program);
      const fresh = async () => (await generateRsa('rsa', { modulusLength: RSA_MODULUS_BITS, publicExponent: RSA_PUBLIC_EXPONENT })).privateKey;
      const keys = await Promise.all(DENOMINATIONS.map(() => (this.#options.classKey ?? fresh)()));
      for (const [i, denomination] of DENOMINATIONS.entries()) {
        const privateKey = keys[i] as KeyObject;
        const classId = randomBytes(CLASS_ID_BYTES);
        const { modulus, exponent } = encodePublicKey(rsaPublicKeyOf(privateKey));
        const pkcs8 = new Uint8Array(privateKey.export({ type: 'pkcs8', format: 'der' }));
        await tx.query(
          `INSERT INTO otp_classes (class_id, epoch, denomination, currency, program, program_digest, until_ms, deposit_until_ms, modulus, exponent, wrapped_key)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
          [classId, BigInt(epoch), denomination, currency.code, encodedProgram, digest, BigInt(until), BigInt(depositUntil), modulus, exponent, wrapClassKey(wrap, classId, pkcs8)],
        );
      }
    });
    this.#epochs.add(epoch);
  }

  #fromRow(row: ClassRow): BankClass {
    const classIdHex = toHex(new Uint8Array(row.class_id));
    const known = this.#known.get(classIdHex);
    if (known !== undefined) return known;
    const classId = new Uint8Array(row.class_id);
    const program = programCodec.decode(decodeCbor(new Uint8Array(row.program), { maxBytes: PROGRAM_BYTES_MAX }), 'otp_classes.program');
    const hops = checkProgram(program).conditions.find((c) => c.kind === 'checkMaxHops');
    const modulus = new Uint8Array(row.modulus);
    const exponent = new Uint8Array(row.exponent);
    const wrapped = new Uint8Array(row.wrapped_key);
    const wrap = otpBankKeys(this.#services).classWrap;
    let privateKey: KeyObject | undefined;
    const denomination = bigintColumn(row, 'denomination');
    const made: BankClass = {
      entry: {
        coinClass: { classId, denomination: denomination.toString(), currency: row.currency, programDigest: new Uint8Array(row.program_digest), modulus, exponent },
        program,
        until: Number(bigintColumn(row, 'until_ms')),
        depositUntil: Number(bigintColumn(row, 'deposit_until_ms')),
      },
      classIdHex,
      epoch: Number(bigintColumn(row, 'epoch')),
      denomination,
      hops: hops?.kind === 'checkMaxHops' ? hops.hops : 0,
      publicKey: decodePublicKey(modulus, exponent),
      privateKey() {
        privateKey ??= createPrivateKey({ key: Buffer.from(unwrapClassKey(wrap, classId, wrapped)), format: 'der', type: 'pkcs8' });
        return privateKey;
      },
    };
    this.#known.set(classIdHex, made);
    return made;
  }

  /** The classes whose coins may still be deposited at `now`, oldest epoch first, then by denomination. */
  async live(q: Queryable, now: number): Promise<BankClass[]> {
    const { rows } = await q.query<ClassRow>(`SELECT ${COLUMNS} FROM otp_classes WHERE deposit_until_ms >= $1 AND currency = $2 ORDER BY epoch, denomination`, [BigInt(now), this.#services.currency.code]);
    return rows.map((row) => this.#fromRow(row));
  }

  /** The classes withdrawals sign with at `now`: the current epoch's. */
  async current(q: Queryable, now: number): Promise<BankClass[]> {
    const epoch = epochOf(now, this.#options.epochMs);
    return (await this.live(q, now)).filter((c) => c.epoch === epoch);
  }

  /** Any class the node ever made, by id (expired ones included), or undefined. */
  async byId(q: Queryable, classId: Uint8Array): Promise<BankClass | undefined> {
    const known = this.#known.get(toHex(classId));
    if (known !== undefined) return known;
    const { rows } = await q.query<ClassRow>(`SELECT ${COLUMNS} FROM otp_classes WHERE class_id = $1`, [classId]);
    return rows[0] === undefined ? undefined : this.#fromRow(rows[0]);
  }
}
