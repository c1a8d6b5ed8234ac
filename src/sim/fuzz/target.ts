/**
 * What the fuzzer runs: a target is one decoder that takes bytes from outside (a message, a frame,
 * a token, a file, an HTTP body), with inputs that are valid by construction and a `feed` that says
 * what became of one input. A finding is anything else: an exception other than a TallyError, a
 * broken round trip, an input over the declared limit accepted, a rejected input that changed state.
 */
import { isDeepStrictEqual } from 'node:util';
import type fc from 'fast-check';
import { equalBytes } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import type { Codec } from '../../core/codec.ts';
import { isTallyError } from '../../core/errors.ts';

/** What became of one input. */
export type Outcome = 'accepted' | 'rejected';

/** Where a target's input comes from, in order of exposure. */
export type FuzzGroup = 'http' | 'core' | 'message' | 'frame' | 'token' | 'file' | 'secure-element';

/** The fuzzer's groups, most exposed first: the order targets run and are listed in. */
export const FUZZ_GROUPS: readonly FuzzGroup[] = ['http', 'core', 'message', 'frame', 'secure-element', 'token', 'file'];

/** One decoder under fuzzing. */
export interface FuzzTarget {
  /** `group/what`, e.g. `core/cbor`, `http/POST /v1/users`, `message/ops/payment`. */
  readonly name: string;
  readonly group: FuzzGroup;
  /** The largest input the decoder accepts; a longer one it accepts is a finding. */
  readonly bytesMax: number;
  /** How long one input may take before it is a finding (a hang). */
  readonly timeoutMs: number;
  /** Inputs valid by construction (encodings of values built from the codec). */
  readonly valid: fc.Arbitrary<Uint8Array>;
  /** The value under the bytes, for mutations of the structure, and back; absent when the input is not CBOR. */
  readonly structure?: { toValue(input: Uint8Array): unknown; fromValue(value: unknown): Uint8Array } | undefined;
  /**
   * Feeds one input: answers `accepted` or `rejected`.
   * @throws FuzzFinding (or anything else) for a finding
   */
  feed(input: Uint8Array): Outcome | Promise<Outcome>;
  /** Starts what the target needs (a node, a secure element); called once before the first input. */
  open?(): Promise<void>;
  /** Stops it. */
  close?(): Promise<void>;
}

/** What a target's `feed` throws for a finding. */
export class FuzzFinding extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FuzzFinding';
  }
}

/** Time a pure decoder may take on one input: far above any honest input (a few microseconds), below a hang. */
export const PURE_TIMEOUT_MS = 1_000;

/** CBOR's own form as the structure of an input. */
export const CBOR_STRUCTURE = {
  toValue: (input: Uint8Array): unknown => decodeCbor(input),
  fromValue: (value: unknown): Uint8Array => encodeCbor(value),
};

/** How a decoder built on a codec is fuzzed. */
export interface CodecTargetOptions {
  readonly name: string;
  readonly group: FuzzGroup;
  /** The codec: without `decode`, it decodes `decodeCbor(input)`. */
  readonly codec: Codec<unknown>;
  readonly bytesMax: number;
  /** The decoder as the product calls it, when it does more than `codec.decode(decodeCbor(input))`. */
  decode?(input: Uint8Array): unknown;
  /** The encoder of a decoded value, for the round trip (default encodeCbor). */
  encode?(value: unknown): Uint8Array;
  /** Valid inputs, when the codec's shape does not give them. */
  readonly valid: fc.Arbitrary<Uint8Array>;
}

/** Names an exception for a finding: its class and message, first line. */
export function describeThrown(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message.split('\n')[0]}`;
  return `a thrown ${typeof e}: ${String(e).slice(0, 200)}`;
}

/**
 * A target for a pure decoder of CBOR bytes: every input decodes or is refused with a TallyError;
 * an accepted one re-encodes to exactly its own bytes (one value, one encoding) and decodes again
 * to an equal value.
 */
export function codecTarget(options: CodecTargetOptions): FuzzTarget {
  const { codec, bytesMax } = options;
  const decode = options.decode ?? ((input: Uint8Array) => codec.decode(decodeCbor(input, { maxBytes: bytesMax })));
  const encode = options.encode ?? ((value: unknown) => encodeCbor(value));
  return {
    name: options.name,
    group: options.group,
    bytesMax,
    timeoutMs: PURE_TIMEOUT_MS,
    valid: options.valid,
    structure: CBOR_STRUCTURE,
    feed(input) {
      let value: unknown;
      try {
        value = decode(input);
      } catch (e) {
        if (isTallyError(e)) return 'rejected';
        throw new FuzzFinding(`the decoder threw ${describeThrown(e)}`, { cause: e });
      }
      let again: Uint8Array;
      try {
        again = encode(value);
      } catch (e) {
        throw new FuzzFinding(`an accepted input does not encode again: ${describeThrown(e)}`, { cause: e });
      }
      if (!equalBytes(again, input)) throw new FuzzFinding(`an accepted input encodes again to other bytes (${again.length} bytes, not ${input.length}): two encodings of one value`);
      let twice: unknown;
      try {
        twice = decode(again);
      } catch (e) {
        throw new FuzzFinding(`the encoding of an accepted value is refused: ${describeThrown(e)}`, { cause: e });
      }
      if (!isDeepStrictEqual(twice, value)) throw new FuzzFinding('decode(encode(x)) differs from x');
      return 'accepted';
    },
  };
}
