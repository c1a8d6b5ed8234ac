/**
 * A TPM 2.0 NV counter driven through tpm2-tools. The TCTI picks the TPM: `swtpm:host=...,port=...`
 * in tests, `device:/dev/tpmrm0` on real hardware; the code is the same.
 *
 * Facts about NV counters this code relies on (TPM 2.0 Part 1, "NV Counter Index"):
 * - an NV counter cannot be read until its first TPM2_NV_Increment (TPMA_NV_WRITTEN clear);
 * - its first increment does not start from 0: it moves past the last value of every counter
 *   deleted so far (the TPM keeps that maximum when a counter index is undefined), so undefining
 *   and redefining an index never moves it backwards. Counters that still exist do not count: on
 *   swtpm a new index started at 7 while another live one stood at 12;
 * - it never goes down; a value is 8 bytes, big-endian.
 */
import { TallyError } from '../core/errors.ts';
import type { MonotonicCounter } from './counter.ts';
import { Tpm2Tools, type Tpm2ToolResult } from './tpm2-tools.ts';

/** The default NV index, in the block the TCG handle registry reserves for the owner (0x01800000..0x01bfffff). */
export const TPM_COUNTER_NV_INDEX_DEFAULT = 0x01800016;
/** The default bound on each tpm2-tools run (a hardware TPM can be slow to write NV). */
export const TPM_COUNTER_TIMEOUT_MS_DEFAULT = 10_000;

const NV_HANDLE_MIN = 0x01000000;
const NV_HANDLE_MAX = 0x01ffffff;
const COUNTER_BYTES = 8;

// TPMA_NV bits (TPM 2.0 Part 2, 13.4).
const TPMA_NV_OWNERWRITE = 0x00000002;
const TPMA_NV_TPM_NT_MASK = 0x000000f0;
const TPMA_NV_TPM_NT_SHIFT = 4;
const TPM_NT_COUNTER = 0x1;
const TPMA_NV_OWNERREAD = 0x00020000;
const TPMA_NV_WRITTEN = 0x20000000;

// Read and increment go through the owner hierarchy (-C o): owner authorisation is not subject to
// dictionary-attack lockout, whereas an index's own authValue is unless the index has no_da. A
// TPM counts every restart without TPM2_Shutdown (a crash, a killed swtpm) as a possible attack,
// and after three of them index-authorised commands fail with TPM_RC_LOCKOUT (0x921). no_da is set
// too, so scripts that use the index's own (empty) auth do not lock out either.
const DEFINE_ATTRIBUTES = 'nt=counter|ownerread|ownerwrite|authread|authwrite|no_da';
const HIERARCHY = ['-C', 'o'];

/** Options of a TpmCounter. */
export interface TpmCounterOptions {
  /** The TPM to use, as a tpm2-tss TCTI string: `swtpm:host=127.0.0.1,port=2321`, `device:/dev/tpmrm0`. */
  tcti: string;
  /** The NV index of the counter; TPM_COUNTER_NV_INDEX_DEFAULT when absent. */
  nvIndex?: number | undefined;
  /** Bound on each tpm2-tools run; TPM_COUNTER_TIMEOUT_MS_DEFAULT when absent. */
  timeoutMs?: number | undefined;
}

/** What tpm2_nvreadpublic says about one NV index. */
interface NvPublic {
  attributes: number;
  size: number;
}

function failed(reason: string, cause?: unknown): TallyError<'COUNTER_FAILED'> {
  return new TallyError('COUNTER_FAILED', reason, { reason }, cause === undefined ? undefined : { cause });
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

/** Parses the YAML-like listing of `tpm2_nvreadpublic` (no arguments: every defined index). */
function parseNvList(text: string): Map<number, NvPublic> {
  const found = new Map<number, NvPublic>();
  let index: number | null = null;
  let section = '';
  let attributes: number | null = null;
  let size: number | null = null;
  const flush = (): void => {
    if (index !== null && attributes !== null && size !== null) found.set(index, { attributes, size });
  };
  for (const line of text.split('\n')) {
    const top = /^0x([0-9a-fA-F]{1,8}):\s*$/.exec(line);
    if (top?.[1] !== undefined) {
      flush();
      index = Number.parseInt(top[1], 16);
      section = '';
      attributes = null;
      size = null;
      continue;
    }
    const field = /^ {2}([a-z][a-z ]*):\s*(\S*)\s*$/.exec(line);
    if (field?.[1] !== undefined) {
      section = field[1];
      if (section === 'size' && field[2] !== undefined && /^[0-9]+$/.test(field[2])) size = Number(field[2]);
      continue;
    }
    const value = /^ {4}value:\s*0x([0-9a-fA-F]{1,8})\s*$/.exec(line);
    if (value?.[1] !== undefined && section === 'attributes') attributes = Number.parseInt(value[1], 16);
  }
  flush();
  return found;
}

function isCounter(pub: NvPublic): boolean {
  const nt = (pub.attributes & TPMA_NV_TPM_NT_MASK) >>> TPMA_NV_TPM_NT_SHIFT;
  const ownerAccess = TPMA_NV_OWNERREAD | TPMA_NV_OWNERWRITE;
  return nt === TPM_NT_COUNTER && pub.size === COUNTER_BYTES && (pub.attributes & ownerAccess) === ownerAccess;
}

/**
 * A TPM 2.0 NV counter, run through tpm2-tools (`execFile`, no shell) with a TCTI of your choice.
 * Calls on one object are serialised; several objects or processes may share an index, since the
 * TPM increments atomically (increment() then returns the value it reads right after).
 */
export class TpmCounter implements MonotonicCounter {
  readonly description: string;
  readonly #tcti: string;
  readonly #nvIndex: number;
  readonly #handle: string;
  readonly #tools: Tpm2Tools;
  #queue: Promise<void> = Promise.resolve();
  #last = -1n;

  /** A counter at options.nvIndex on the TPM options.tcti names. @throws RangeError on bad options */
  constructor(options: TpmCounterOptions) {
    const nvIndex = options.nvIndex ?? TPM_COUNTER_NV_INDEX_DEFAULT;
    const timeoutMs = options.timeoutMs ?? TPM_COUNTER_TIMEOUT_MS_DEFAULT;
    if (!Number.isInteger(nvIndex) || nvIndex < NV_HANDLE_MIN || nvIndex > NV_HANDLE_MAX) {
      throw new RangeError(`nvIndex: expected an NV handle in 0x01000000..0x01ffffff, got ${String(nvIndex)}`);
    }
    this.#tools = new Tpm2Tools({ tcti: options.tcti, timeoutMs, fail: (failure, cause) => failed(failure.message, cause) });
    this.#tcti = options.tcti;
    this.#nvIndex = nvIndex;
    this.#handle = hex(nvIndex);
    this.description = `tpm:${this.#handle}@${options.tcti}`;
  }

  /**
   * Defines the NV counter if it is not defined, increments it once if it was never written (an
   * NV counter is unreadable before), and returns its value. The value need not be 0 or 1.
   * @throws TallyError COUNTER_FAILED when a tool fails or times out, or the index is not a counter
   */
  open(): Promise<bigint> {
    return this.#run(async () => {
      let pub = await this.#readPublic();
      if (pub === null) {
        const defined = await this.#tool('tpm2_nvdefine', [...HIERARCHY, '-s', String(COUNTER_BYTES), '-a', DEFINE_ATTRIBUTES, this.#handle], false);
        pub = await this.#readPublic();
        // Another opener may have defined it between our look and our define: that is fine.
        if (pub === null) throw this.#toolFailure('tpm2_nvdefine', defined);
      }
      if (!isCounter(pub)) {
        throw failed(
          `NV index ${this.#handle} on ${this.#tcti} is not an 8-byte owner-read/write counter (attributes ${hex(pub.attributes)}, size ${pub.size}): choose another nvIndex`,
        );
      }
      if ((pub.attributes & TPMA_NV_WRITTEN) === 0) await this.#tool('tpm2_nvincrement', [...HIERARCHY, this.#handle]);
      return this.#read();
    });
  }

  /** The current value. @throws TallyError COUNTER_FAILED */
  read(): Promise<bigint> {
    return this.#run(() => this.#read());
  }

  /** Adds one in the TPM's NV memory and returns the value read back. @throws TallyError COUNTER_FAILED */
  increment(): Promise<bigint> {
    return this.#run(async () => {
      const before = this.#last;
      await this.#tool('tpm2_nvincrement', [...HIERARCHY, this.#handle]);
      const value = await this.#read();
      if (value <= before) throw failed(`NV counter ${this.#handle} on ${this.#tcti} read ${value} after an increment from ${before}`);
      return value;
    });
  }

  /** Waits for calls in flight; each tool run holds its TPM connection only while it runs. */
  async close(): Promise<void> {
    await this.#run(() => Promise.resolve());
  }

  #run<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task);
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #read(): Promise<bigint> {
    const { stdout } = await this.#tool('tpm2_nvread', [...HIERARCHY, '-s', String(COUNTER_BYTES), this.#handle]);
    if (stdout.length !== COUNTER_BYTES) {
      throw failed(`tpm2_nvread ${this.#handle} on ${this.#tcti}: expected ${COUNTER_BYTES} bytes, got ${stdout.length}`);
    }
    const value = stdout.readBigUInt64BE(0);
    // Monotonic for this object: a smaller value than one it saw means a different or reset TPM.
    if (value < this.#last) throw failed(`NV counter ${this.#handle} on ${this.#tcti} went back from ${this.#last} to ${value}: a different or reset TPM`);
    this.#last = value;
    return value;
  }

  async #readPublic(): Promise<NvPublic | null> {
    // Without an argument: tpm2_nvreadpublic on an undefined index crashes (tpm2-tools 5.4).
    const { stdout } = await this.#tool('tpm2_nvreadpublic', []);
    return parseNvList(stdout.toString('utf8')).get(this.#nvIndex) ?? null;
  }

  #toolFailure(tool: string, result: Tpm2ToolResult): TallyError {
    return this.#tools.failure(tool, result, { subject: this.#handle });
  }

  /** Runs one tool with the TCTI, bounded by timeoutMs; throws on failure unless `check` is false. */
  #tool(tool: string, args: string[], check = true): Promise<Tpm2ToolResult> {
    return this.#tools.run(tool, args, { subject: this.#handle, check });
  }
}
