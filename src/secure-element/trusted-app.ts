/**
 * The trusted-app model: a trusted app is a pure state machine. `init(env)` gives the first state;
 * each command maps `(state, input, env)` to `{ state, output }` or to a typed rejection. `env` offers
 * only what a secure element has: keys that never leave it, randomness, its sealed identity.
 * Hosts (in-process, child process) persist the state; this file does no I/O.
 */
import type { Codec } from '../core/codec.ts';
import type { CryptoProvider, Signer, SuiteName } from '../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../core/errors.ts';

/** What a trusted app may use of its secure element. */
export interface TrustedEnv {
  /** Signature verification for peers' and issuers' keys. */
  readonly provider: CryptoProvider;
  /** The secure element's identity (16 bytes, derived from its master secret). */
  readonly deviceId: Uint8Array;
  /** A key derived from the master secret under `label`; the secret key never leaves the SE. */
  signer(label: string, suite?: SuiteName): Signer;
  /** Fresh random bytes from the SE's generator. */
  random(length: number): Uint8Array;
}

/** A refusal the app expected (insufficient balance, replayed input): nothing is written. */
export interface Rejection {
  readonly code: string;
  readonly message: string;
}

/** What a command returns: the new state and an output, or a rejection. */
export type CommandResult<S, O> = { readonly ok: true; readonly state: S; readonly output: O } | { readonly ok: false; readonly rejection: Rejection };

/** One command of a trusted app, with codecs for what crosses the SE boundary. */
export interface CommandSpec<S, I, O> {
  readonly input: Codec<I>;
  readonly output: Codec<O>;
  /** A read-only command commits nothing and keeps no outbox copy (it must return the state unchanged). */
  readonly readOnly?: boolean;
  /** Runs the command; a command whose cryptography is asynchronous (BBS proofs) answers a promise, still one command at a time. */
  run(state: S, input: I, env: TrustedEnv): CommandResult<S, O> | Promise<CommandResult<S, O>>;
}

/** A table of commands by name (a table, not a switch). */
export type CommandTable<S> = Record<string, CommandSpec<S, unknown, unknown>>;

/**
 * A log of a trusted app: a field of its state that holds a list, grown by appending (a payment
 * log, the payments made since the last sync). The host keeps it in sealed append-only records
 * instead of resealing it with the rest of the state on every command.
 */
export interface LogSpec {
  /** One entry, as the state codec decodes it. */
  readonly entry: Codec<unknown>;
  /** Most entries the state codec accepts. */
  readonly max: number;
}

/** A trusted app: its name, state codec, first state and commands. */
export interface TrustedApp<S, C extends CommandTable<S> = CommandTable<S>> {
  /** Stable name; part of the sealing context, so states of different apps never mix. */
  readonly name: string;
  readonly state: Codec<S>;
  /**
   * The state's fields that are logs, by name (each must be a list in every state). A command
   * that only appends to a log costs the appended entries, not the whole log; one that removes or
   * changes entries (a prune after a sync) makes the host compact the records.
   */
  readonly logs?: Readonly<Record<string, LogSpec>>;
  init(env: TrustedEnv): S;
  readonly commands: C;
}

/** The input type of a command. */
export type InputOf<T> = T extends CommandSpec<infer _S, infer I, infer _O> ? I : never;
/** The output type of a command. */
export type OutputOf<T> = T extends CommandSpec<infer _S, infer _I, infer O> ? O : never;

/** Accepts a command, keeping its types (helps inference in command tables). */
export function command<S, I, O>(spec: CommandSpec<S, I, O>): CommandSpec<S, I, O> {
  return spec;
}

/** Accepts a trusted app definition, keeping its types. */
export function defineTrustedApp<S, C extends CommandTable<S>>(app: TrustedApp<S, C>): TrustedApp<S, C> {
  return app;
}

/** A successful command result. */
export function accept<S, O>(state: S, output: O): CommandResult<S, O> {
  return { ok: true, state, output };
}

/** A rejected command result. */
export function reject(code: string, message: string): CommandResult<never, never> {
  return { ok: false, rejection: { code, message } };
}

/**
 * Looks up a command by name.
 * @throws TallyError SE_COMMAND_UNKNOWN
 */
export function findCommand<S>(app: TrustedApp<S>, name: string): CommandSpec<S, unknown, unknown> {
  const spec = Object.hasOwn(app.commands, name) ? app.commands[name] : undefined;
  if (spec === undefined) {
    throw new TallyError('SE_COMMAND_UNKNOWN', `trusted app ${app.name} has no command ${JSON.stringify(name)}`, { command: name });
  }
  return spec;
}

/** A command's refusal raised deep inside its checks; `guarded` turns it into the command's rejection. */
export class Refused extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Refuses the running command with `code` (inside `guarded`). */
export function refuse(code: string, message: string): never {
  throw new Refused(code, message);
}

/** Runs a command body; a refusal or TallyError it throws becomes the rejection, so nothing is written. */
export function guarded<S, O>(run: () => CommandResult<S, O>): CommandResult<S, O> {
  try {
    return run();
  } catch (e) {
    return rejection(e);
  }
}

/** guarded, for an asynchronous command body. */
export async function guardedAsync<S, O>(run: () => Promise<CommandResult<S, O>>): Promise<CommandResult<S, O>> {
  try {
    return await run();
  } catch (e) {
    return rejection(e);
  }
}

function rejection(e: unknown): CommandResult<never, never> {
  if (e instanceof Refused || isTallyError(e)) return reject(e.code, e.message);
  throw e;
}
