/**
 * One tpm2-tools run at a time from Node: `execFile` (no shell) with the TCTI in TPM2TOOLS_TCTI, a
 * bound on its time and its output, and its failures sorted (tool missing, timed out, too much
 * output, tool failed) so that each caller can give them its own error code. The NV counter
 * (counter-tpm.ts) and the platform quote (tpm-quote.ts) both run their tools through it.
 */
import { execFile } from 'node:child_process';
import { isTallyError, type TallyError } from '../core/errors.ts';

/** The most bytes a tool may write to stdout or stderr; tpm2-tools write a few hundred. */
export const TPM2_TOOL_OUTPUT_BYTES_MAX = 1 << 20;
const STDERR_CHARS_MAX = 2_000;

/** Why a tool run failed. */
export type Tpm2ToolFault = 'missing' | 'timeout' | 'output' | 'failed';

/** A failed run, before the caller gives it its error code. */
export interface Tpm2ToolFailure {
  fault: Tpm2ToolFault;
  tool: string;
  message: string;
}

/** What a tool wrote. */
export interface Tpm2ToolResult {
  stdout: Buffer;
  stderr: string;
}

/** Options of Tpm2Tools. */
export interface Tpm2ToolsOptions {
  /** The TPM, as a tpm2-tss TCTI string: `swtpm:host=127.0.0.1,port=2321`, `device:/dev/tpmrm0`. */
  tcti: string;
  /** Bound on each run. */
  timeoutMs: number;
  /** The caller's error for a failed run; `message` already names the tool, the subject and the TPM. */
  fail: (failure: Tpm2ToolFailure, cause?: unknown) => TallyError;
}

/** Options of one run. */
export interface Tpm2RunOptions {
  /** What the run is about, named in messages (an NV handle, a PCR, a key); nothing when absent. */
  subject?: string | undefined;
  /** When false, a non-zero exit resolves with what the tool wrote instead of throwing. */
  check?: boolean | undefined;
}

/** Runs tpm2-tools against one TPM; each run holds its TPM connection only while it runs. */
export class Tpm2Tools {
  readonly tcti: string;
  readonly timeoutMs: number;
  readonly #fail: Tpm2ToolsOptions['fail'];

  /** A runner for the TPM options.tcti names. @throws RangeError on an empty TCTI or a bad timeout */
  constructor(options: Tpm2ToolsOptions) {
    if (options.tcti.length === 0) throw new RangeError('tcti: expected a TCTI string such as device:/dev/tpmrm0, got ""');
    if (!Number.isInteger(options.timeoutMs) || options.timeoutMs <= 0) {
      throw new RangeError(`timeoutMs: expected a positive integer, got ${String(options.timeoutMs)}`);
    }
    this.tcti = options.tcti;
    this.timeoutMs = options.timeoutMs;
    this.#fail = options.fail;
  }

  /** The caller's error for a run that exited non-zero, with the tail of its stderr. */
  failure(tool: string, result: Tpm2ToolResult, options: Tpm2RunOptions = {}, cause?: unknown): TallyError {
    const stderr = result.stderr.trim().slice(-STDERR_CHARS_MAX) || 'no output';
    return this.#fail({ fault: 'failed', tool, message: `${this.#what(tool, options)} failed: ${stderr}` }, cause);
  }

  /**
   * Runs `tool args` with the TCTI, bounded by timeoutMs and TPM2_TOOL_OUTPUT_BYTES_MAX.
   * @throws the caller's error (see Tpm2ToolsOptions.fail) when the tool is missing, times out, writes
   *   too much, or (unless options.check is false) exits non-zero
   */
  async run(tool: string, args: readonly string[], options: Tpm2RunOptions = {}): Promise<Tpm2ToolResult> {
    try {
      return await this.#spawn(tool, args, options);
    } catch (e) {
      throw isTallyError(e) ? e : this.#fail({ fault: 'failed', tool, message: `${tool}: ${String(e)}` }, e);
    }
  }

  #what(tool: string, options: Tpm2RunOptions): string {
    return `${tool}${options.subject === undefined ? '' : ` ${options.subject}`} on ${this.tcti}`;
  }

  #spawn(tool: string, args: readonly string[], options: Tpm2RunOptions): Promise<Tpm2ToolResult> {
    const env = { ...process.env, TPM2TOOLS_TCTI: this.tcti };
    return new Promise<Tpm2ToolResult>((resolve, reject) => {
      execFile(
        tool,
        args,
        { env, encoding: 'buffer', timeout: this.timeoutMs, killSignal: 'SIGKILL', maxBuffer: TPM2_TOOL_OUTPUT_BYTES_MAX },
        (error, stdout, stderrBytes) => {
          const result = { stdout, stderr: stderrBytes.toString('utf8') };
          if (error === null) return resolve(result);
          if (error.code === 'ENOENT') {
            return reject(this.#fail({ fault: 'missing', tool, message: `${tool} not found: install the Debian package tpm2-tools` }, error));
          }
          if (error.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') {
            return reject(this.#fail({ fault: 'output', tool, message: `${this.#what(tool, options)} wrote more than ${TPM2_TOOL_OUTPUT_BYTES_MAX} bytes` }, error));
          }
          if (error.killed === true || error.signal === 'SIGKILL') {
            return reject(this.#fail({ fault: 'timeout', tool, message: `${this.#what(tool, options)} timed out after ${this.timeoutMs} ms: is the TPM reachable?` }, error));
          }
          if (options.check === false) return resolve(result);
          reject(this.failure(tool, result, options, error));
        },
      );
    });
  }
}
