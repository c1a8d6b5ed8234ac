/**
 * The behavioural section of a one-time program (OTP paper §2.7): the ordered list of
 * meta-instructions a bank certifies for a coin, and the checks the player (the wallet's trusted
 * app) makes before it runs any of them.
 *
 * The player implements each instruction once (the base level); a program is data naming them (the
 * meta level). `schemaVersion` selects the instruction set:
 *
 * - version 1 is the paper's program, exactly its seven steps in its order: checkIntegrityOfOTP,
 *   checkTokenFormat, checkCallMethod, setupConnection, buildSandbox, sendOTP, destroyOTP;
 * - version 2 adds conditions a bank can certify into a coin, placed after the three checks and
 *   before the connection, each at most once: checkExpiry (the coin cannot be paid after a time),
 *   checkPayeeCategory (only to a payee whose exchange key carries one of the categories),
 *   checkMaxHops (after that many offline transfers the coin can only be deposited).
 *
 * The checksum is the bank's "control hash" over the list (§2.7, checkIntegrityOfOTP): SHA-256 of
 * the deterministic CBOR of the list under a domain label. A program whose version is unknown,
 * whose checksum does not match, that names an instruction the version does not have, puts them in
 * another order or gives an instruction arguments it does not take is refused before anything runs.
 */
import { encodeCbor } from '../../core/cbor.ts';
import { array, bytes, record, text, uint, type Codec } from '../../core/codec.ts';
import { equalBytes } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { TallyError } from '../../core/errors.ts';
import { timestampMs } from '../../core/fields.ts';

/** The paper's seven steps, in the order every program runs them. */
export const PAPER_STEPS = ['checkIntegrityOfOTP', 'checkTokenFormat', 'checkCallMethod', 'setupConnection', 'buildSandbox', 'sendOTP', 'destroyOTP'] as const;
export type PaperStep = (typeof PAPER_STEPS)[number];

/** The conditions of schema version 2. */
export const CONDITIONS = ['checkExpiry', 'checkPayeeCategory', 'checkMaxHops'] as const;
export type ConditionName = (typeof CONDITIONS)[number];

/** The schema versions this player runs. */
export const SCHEMA_VERSIONS = [1, 2] as const;
export type SchemaVersion = (typeof SCHEMA_VERSIONS)[number];

/** Most instructions in one program (seven steps and three conditions fit). */
export const INSTRUCTIONS_MAX = 16;
/** Most payee categories one checkPayeeCategory names, and the longest category. */
export const CATEGORIES_MAX = 16;
export const CATEGORY_CHARS_MAX = 32;
/** The most offline transfers a coin may allow before it must be deposited. */
export const HOPS_MAX = 64;

/** Why a program is refused (details of OTP_PROGRAM_INVALID). */
export type ProgramFault = 'schema-unknown' | 'checksum' | 'instruction-unknown' | 'order' | 'arguments';

/** One instruction as the program carries it: its name and, for a condition, its arguments. */
export interface Instruction {
  readonly op: string;
  readonly args?: Readonly<Record<string, unknown>> | undefined;
}

/** A behavioural section: the version, the instructions in order, the bank's control hash. */
export interface Program {
  readonly schemaVersion: number;
  readonly instructions: readonly Instruction[];
  readonly checksum: Uint8Array;
}

/** A condition a checked program carries, typed. */
export type Condition =
  | { readonly kind: 'checkExpiry'; readonly until: number }
  | { readonly kind: 'checkPayeeCategory'; readonly categories: readonly string[] }
  | { readonly kind: 'checkMaxHops'; readonly hops: number };

/** A program that passed `checkProgram`: its version and its conditions. */
export interface CheckedProgram {
  readonly schemaVersion: SchemaVersion;
  readonly conditions: readonly Condition[];
}

const CHECKSUM_LABEL = 'tally/otp/program-checksum/v1';

const category = text({ min: 1, max: CATEGORY_CHARS_MAX, pattern: /^[a-z0-9][a-z0-9-]*$/, describe: 'a category (lower-case letters, digits, dashes)' });

/** The arguments each condition takes, decoded strictly (no other field). */
const CONDITION_ARGS: { readonly [K in ConditionName]: Codec<unknown> } = {
  checkExpiry: record({ until: timestampMs }),
  checkPayeeCategory: record({ categories: array(category, { min: 1, max: CATEGORIES_MAX }) }),
  checkMaxHops: record({ hops: uint({ min: 1, max: HOPS_MAX }) }),
};

const plainArgs: Codec<Readonly<Record<string, unknown>>> = {
  expected: 'a record of arguments',
  decode(input: unknown, path = 'value') {
    if (input === null || typeof input !== 'object' || Array.isArray(input) || input instanceof Uint8Array) {
      throw new TallyError('DECODE_FAILED', `${path}: expected a record of arguments`, { path, expected: 'a record of arguments', got: typeof input });
    }
    return input as Readonly<Record<string, unknown>>;
  },
};

const instructionCodec: Codec<Instruction> = {
  expected: 'an instruction { op, args? }',
  decode(input: unknown, path = 'value') {
    const shape = input as { op?: unknown; args?: unknown } | null;
    const op = text({ min: 1, max: 64, pattern: /^[A-Za-z][A-Za-z0-9]*$/, describe: 'an instruction name' }).decode(shape?.op, `${path}.op`);
    if (shape === null || typeof shape !== 'object') return { op };
    const extra = Object.keys(shape).filter((k) => k !== 'op' && k !== 'args');
    if (extra.length > 0) throw new TallyError('DECODE_FAILED', `${path}: unexpected field ${extra[0]}`, { path, expected: 'op and args', got: extra.join(', ') });
    return shape.args === undefined ? { op } : { op, args: plainArgs.decode(shape.args, `${path}.args`) };
  },
};

/** Decodes a behavioural section's shape (its meaning is `checkProgram`'s). */
export const programCodec: Codec<Program> = record({
  schemaVersion: uint({ max: 0xffff }),
  instructions: array(instructionCodec, { min: 1, max: INSTRUCTIONS_MAX }),
  checksum: bytes({ length: 32 }),
});

/** The bank's control hash of an instruction list. */
export function programChecksum(instructions: readonly Instruction[]): Uint8Array {
  return sha256(encodeCbor([CHECKSUM_LABEL, instructions.map((i) => (i.args === undefined ? { op: i.op } : { op: i.op, args: i.args }))]));
}

/** A program of `schemaVersion` with `conditions`, its checksum computed (what the bank certifies). */
export function buildProgram(schemaVersion: SchemaVersion, conditions: readonly Condition[] = []): Program {
  if (schemaVersion === 1 && conditions.length > 0) throw new RangeError('schema version 1 has no conditions');
  const [first, second, third, ...rest] = PAPER_STEPS;
  const instructions: Instruction[] = [
    { op: first },
    { op: second },
    { op: third },
    ...conditions.map((c): Instruction => {
      switch (c.kind) {
        case 'checkExpiry':
          return { op: c.kind, args: { until: c.until } };
        case 'checkPayeeCategory':
          return { op: c.kind, args: { categories: [...c.categories] } };
        case 'checkMaxHops':
          return { op: c.kind, args: { hops: c.hops } };
      }
    }),
    ...rest.map((op) => ({ op })),
  ];
  return { schemaVersion, instructions, checksum: programChecksum(instructions) };
}

function refuse(fault: ProgramFault, message: string): never {
  throw new TallyError('OTP_PROGRAM_INVALID', `the coin's program is refused: ${message}`, { fault });
}

function isPaperStep(op: string): op is PaperStep {
  return (PAPER_STEPS as readonly string[]).includes(op);
}

function isCondition(op: string): op is ConditionName {
  return (CONDITIONS as readonly string[]).includes(op);
}

function conditionOf(op: ConditionName, args: unknown, index: number): Condition {
  let decoded: unknown;
  try {
    decoded = CONDITION_ARGS[op].decode(args ?? {}, `instructions[${index}].args`);
  } catch (e) {
    return refuse('arguments', `${op}: ${e instanceof Error ? e.message : String(e)}`);
  }
  switch (op) {
    case 'checkExpiry':
      return { kind: op, until: (decoded as { until: number }).until };
    case 'checkPayeeCategory':
      return { kind: op, categories: (decoded as { categories: string[] }).categories };
    case 'checkMaxHops':
      return { kind: op, hops: (decoded as { hops: number }).hops };
  }
}

/**
 * The player's checks of §2.7's first three steps, made before anything runs: the schema version
 * is one it runs (checkCallMethod), the checksum is the list's (checkIntegrityOfOTP), every
 * instruction is one of that version, in the order the version allows, with the arguments it takes
 * (checkCallMethod). The token's format (checkTokenFormat) is the coin's own check.
 * @throws TallyError OTP_PROGRAM_INVALID with the fault
 */
export function checkProgram(program: Program): CheckedProgram {
  if (!(SCHEMA_VERSIONS as readonly number[]).includes(program.schemaVersion)) refuse('schema-unknown', `schema version ${program.schemaVersion} is not one this player runs (${SCHEMA_VERSIONS.join(', ')})`);
  const version = program.schemaVersion as SchemaVersion;
  if (!equalBytes(programChecksum(program.instructions), program.checksum)) refuse('checksum', 'the checksum is not the hash of its instruction list');
  const ops = program.instructions.map((i) => i.op);
  for (const op of ops) {
    if (!isPaperStep(op) && !(version >= 2 && isCondition(op))) refuse('instruction-unknown', `${op} is not an instruction of schema version ${version}`);
  }
  const steps = ops.filter(isPaperStep);
  const conditionAt = ops.map((op, i) => (isCondition(op) ? i : -1)).filter((i) => i >= 0);
  if (steps.length !== PAPER_STEPS.length || steps.some((op, i) => op !== PAPER_STEPS[i])) refuse('order', `the steps must be ${PAPER_STEPS.join(', ')}, each once, in that order`);
  // Conditions sit together between checkCallMethod (the third step) and setupConnection.
  if (conditionAt.some((at, k) => at !== 3 + k)) refuse('order', 'conditions come after checkCallMethod and before setupConnection');
  if (new Set(conditionAt.map((at) => ops[at])).size !== conditionAt.length) refuse('order', 'a condition appears twice');
  for (const instruction of program.instructions) {
    if (isPaperStep(instruction.op) && instruction.args !== undefined) refuse('arguments', `${instruction.op} takes no arguments`);
  }
  const conditions = conditionAt.map((at) => conditionOf(ops[at] as ConditionName, program.instructions[at]?.args, at));
  return { schemaVersion: version, conditions };
}

/** What a payment offers the conditions: the payer TA's trusted time, the payee key's category, the transfer's hop number. */
export interface PaymentContext {
  /** The payer TA's trusted time (ms), or null when it has none yet. */
  readonly now: number | null;
  /** The category the payee's exchange key carries, or null. */
  readonly payeeCategory: string | null;
  /** Which offline transfer of the coin this payment would be (1 for the first). */
  readonly hop: number;
}

/**
 * Runs a checked program's conditions against a payment, before anything leaves the payer's TA.
 * A coin with an expiry needs a trusted time: without one it is not paid.
 * @throws TallyError OTP_CONDITION naming the condition that forbids the payment
 */
export function checkConditions(program: CheckedProgram, payment: PaymentContext): void {
  for (const c of program.conditions) {
    switch (c.kind) {
      case 'checkExpiry':
        if (payment.now === null) throw new TallyError('OTP_CONDITION', 'the coin expires and this wallet has no trusted time yet: sync first', { condition: c.kind });
        if (payment.now > c.until) throw new TallyError('OTP_CONDITION', `the coin could be paid until ${new Date(c.until).toISOString()}; it can only be deposited now`, { condition: c.kind });
        break;
      case 'checkPayeeCategory':
        if (payment.payeeCategory === null || !c.categories.includes(payment.payeeCategory)) {
          throw new TallyError('OTP_CONDITION', `the coin can be paid only to payees of category ${c.categories.join(' or ')}, not ${payment.payeeCategory ?? 'a payee without one'}`, { condition: c.kind });
        }
        break;
      case 'checkMaxHops':
        if (payment.hop > c.hops) throw new TallyError('OTP_CONDITION', `the coin allows ${c.hops} offline transfers; it can only be deposited now`, { condition: c.kind });
        break;
    }
  }
}
