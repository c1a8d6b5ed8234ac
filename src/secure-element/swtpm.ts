/**
 * A software TPM 2.0 (`swtpm`) for tests and benchmarks: started as a child process on a free pair
 * of ports on 127.0.0.1 (TPM commands on `port`, swtpm's control channel on `port + 1`, which the
 * `swtpm:` TCTI of tpm2-tss also needs), and never left running after the process that started it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { access, constants, mkdir } from 'node:fs/promises';
import { Socket, createConnection, createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { TallyError } from '../core/errors.ts';

const HOST = '127.0.0.1';
const NOT_FOUND = 'swtpm not found: install the Debian packages swtpm swtpm-tools tpm2-tools';
const START_TIMEOUT_MS_DEFAULT = 10_000;
const START_ATTEMPTS_MAX = 5;
const PORT_SEARCH_ATTEMPTS_MAX = 50;
const PROBE_TIMEOUT_MS = 500;
const PROBE_INTERVAL_MS = 20;
const STOP_TIMEOUT_MS = 3_000;
const SHUTDOWN_TIMEOUT_MS = 1_000;
const STDERR_CHARS_MAX = 4_096;
const AVAILABLE_TIMEOUT_MS = 5_000;
/** The tpm2-tools a TpmCounter runs; swtpmAvailable() checks them too. */
const TPM2_TOOLS = ['tpm2_nvdefine', 'tpm2_nvincrement', 'tpm2_nvread', 'tpm2_nvreadpublic'];

// TPM2_GetRandom(8) and TPM2_Shutdown(TPM_SU_CLEAR), raw: swtpm's server channel carries bare
// TPM commands. Header: tag TPM_ST_NO_SESSIONS, size 12, command code; then the parameter.
const GET_RANDOM = Uint8Array.of(0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8);
const SHUTDOWN_CLEAR = Uint8Array.of(0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x45, 0, 0);
const RESPONSE_HEADER_BYTES = 10;

/** Options of startSwtpm. */
export interface SwtpmOptions {
  /** Directory of the TPM's persistent state; created if absent. Reuse it to restart the same TPM. */
  stateDir: string;
  /** The TPM command port (the control channel takes port + 1); a free pair is picked when absent. */
  port?: number | undefined;
  /** Bound on the wait until swtpm answers a TPM command. */
  startTimeoutMs?: number | undefined;
}

/** A running swtpm. */
export interface Swtpm {
  /** The TCTI string for tpm2-tools (`TPM2TOOLS_TCTI`) and TpmCounter. */
  readonly tcti: string;
  /** The TPM command port; the control channel is on port + 1. */
  readonly port: number;
  /** The swtpm process id. */
  readonly pid: number;
  /** Shuts the TPM down in order (TPM2_Shutdown, then SIGTERM) and waits until the process is gone. */
  stop(): Promise<void>;
  /** Kills swtpm at once, as a power loss would, and waits until the process is gone. */
  kill(): Promise<void>;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

// Last line of defence against leaks: a process that exits with swtpm children still running
// (a test that forgot stop(), an uncaught exception) kills them on its way out.
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

function unavailable(reason: string, cause?: unknown): TallyError<'SE_UNAVAILABLE'> {
  return new TallyError('SE_UNAVAILABLE', reason, { reason }, cause === undefined ? undefined : { cause });
}

async function findExecutable(name: string): Promise<string | null> {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory: keep looking.
    }
  }
  return null;
}

function runsWithin(file: string, args: string[], timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (error) => resolve(error === null));
  });
}

/** True when swtpm and tpm2-tools are installed, so a TpmCounter can run against a started swtpm. */
export async function swtpmAvailable(): Promise<boolean> {
  const swtpm = await findExecutable('swtpm');
  if (swtpm === null || !(await runsWithin(swtpm, ['--version'], AVAILABLE_TIMEOUT_MS))) return false;
  for (const tool of TPM2_TOOLS) if ((await findExecutable(tool)) === null) return false;
  return true;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: HOST, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function ephemeralPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: HOST, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

// Free now, not reserved: swtpm binds them a moment later, and a start that loses the race retries.
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < PORT_SEARCH_ATTEMPTS_MAX; attempt++) {
    const port = await ephemeralPort();
    if (port > 0 && port < 65_535 && (await canListen(port + 1))) return port;
  }
  throw unavailable(`no free pair of TCP ports on ${HOST} after ${PORT_SEARCH_ATTEMPTS_MAX} tries`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Sends one raw TPM command and resolves with the response header's code, or null on no answer. */
function exchange(port: number, command: Uint8Array, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: HOST });
    let received = Buffer.alloc(0);
    const finish = (code: number | null): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(code);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    socket.once('error', () => finish(null));
    socket.once('close', () => finish(null));
    socket.once('connect', () => socket.write(command));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < RESPONSE_HEADER_BYTES) return;
      const tag = received.readUInt16BE(0);
      // TPM_ST_NO_SESSIONS or TPM_ST_SESSIONS: a TPM answered, not some other server on the port.
      finish(tag === 0x8001 || tag === 0x8002 ? received.readUInt32BE(6) : null);
    });
  });
}

function accepts(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: HOST });
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function killAndWait(child: ChildProcess): Promise<void> {
  if (exited(child)) return;
  child.kill('SIGKILL');
  await waitForExit(child, STOP_TIMEOUT_MS);
}

interface Launch {
  child: ChildProcess;
  stderr: () => string;
}

async function launch(swtpm: string, setpriv: string | null, stateDir: string, port: number): Promise<Launch> {
  const swtpmArgs = [
    'socket', '--tpm2',
    '--tpmstate', `dir=${stateDir}`,
    '--server', `type=tcp,port=${port},bindaddr=${HOST}`,
    '--ctrl', `type=tcp,port=${port + 1},bindaddr=${HOST}`,
    '--flags', 'not-need-init,startup-clear',
  ];
  // setpriv --pdeathsig makes the kernel kill swtpm when this process dies, even by SIGKILL,
  // where no exit hook runs. setpriv execs swtpm in place, so child.pid is swtpm's pid.
  const [file, args] = setpriv === null
    ? [swtpm, swtpmArgs]
    : [setpriv, ['--pdeathsig', 'KILL', '--', swtpm, ...swtpmArgs]];
  const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    if (stderr.length < STDERR_CHARS_MAX) stderr = (stderr + chunk).slice(0, STDERR_CHARS_MAX);
  });
  const spawned = await new Promise<unknown>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (error) => resolve(error));
  });
  if (spawned !== null) {
    running.delete(child);
    throw unavailable(`could not start ${file}: ${String(spawned)}`, spawned);
  }
  return { child, stderr: () => stderr.trim() };
}

/** Waits until swtpm answers a TPM command; false if it exited first, throws on the deadline. */
async function waitUntilReady(started: Launch, port: number, deadline: number, timeoutMs: number): Promise<boolean> {
  for (;;) {
    if (exited(started.child)) return false;
    const code = await exchange(port, GET_RANDOM, PROBE_TIMEOUT_MS);
    if (code !== null && (await accepts(port + 1, PROBE_TIMEOUT_MS))) {
      // A child that lost its port to a stranger exits at once; one still running a moment after
      // the answer is the one that answered.
      await sleep(PROBE_INTERVAL_MS);
      if (!exited(started.child)) return true;
    }
    if (Date.now() >= deadline) {
      await killAndWait(started.child);
      throw new TallyError('SE_UNAVAILABLE', `swtpm did not answer on ${HOST}:${port} within ${timeoutMs} ms: ${started.stderr() || 'no output'}`, {
        reason: `swtpm start timed out after ${timeoutMs} ms`,
      });
    }
    await sleep(PROBE_INTERVAL_MS);
  }
}

function handle(child: ChildProcess, port: number): Swtpm {
  const pid = child.pid;
  if (pid === undefined) throw unavailable('swtpm started without a process id');
  let stopping: Promise<void> | null = null;
  return {
    tcti: `swtpm:host=${HOST},port=${port}`,
    port,
    pid,
    stop: () => {
      stopping ??= (async () => {
        if (exited(child)) return;
        // An orderly TPM2_Shutdown, as an OS sends at power-off. Without it every restart counts
        // as a non-orderly shutdown, which raises the TPM's dictionary-attack failure counter.
        await exchange(port, SHUTDOWN_CLEAR, SHUTDOWN_TIMEOUT_MS);
        child.kill('SIGTERM');
        if (!(await waitForExit(child, STOP_TIMEOUT_MS))) await killAndWait(child);
      })();
      return stopping;
    },
    kill: () => {
      stopping ??= killAndWait(child);
      return stopping;
    },
  };
}

/**
 * Starts swtpm as a child process with its state in `stateDir` and waits until it answers.
 * @throws TallyError SE_UNAVAILABLE when swtpm is not installed, cannot bind its ports or does not
 *   answer within startTimeoutMs
 * @throws RangeError when port is not an integer in 1..65534
 */
export async function startSwtpm(options: SwtpmOptions): Promise<Swtpm> {
  const timeoutMs = options.startTimeoutMs ?? START_TIMEOUT_MS_DEFAULT;
  if (options.port !== undefined && !(Number.isInteger(options.port) && options.port > 0 && options.port < 65_535)) {
    throw new RangeError(`port: expected an integer in 1..65534, got ${options.port}`);
  }
  const swtpm = await findExecutable('swtpm');
  if (swtpm === null) throw unavailable(NOT_FOUND);
  const setpriv = await findExecutable('setpriv');
  await mkdir(options.stateDir, { recursive: true, mode: 0o700 });
  installExitHook();
  // A stranger already on a given port would answer our readiness probe in swtpm's stead.
  if (options.port !== undefined && !((await canListen(options.port)) && (await canListen(options.port + 1)))) {
    throw unavailable(`swtpm cannot use ports ${options.port} and ${options.port + 1} on ${HOST}: one is in use`);
  }
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (let attempt = 0; attempt < START_ATTEMPTS_MAX; attempt++) {
    const port = options.port ?? (await freePortPair());
    const started = await launch(swtpm, setpriv, options.stateDir, port);
    if (await waitUntilReady(started, port, deadline, timeoutMs)) {
      // Neither the child nor its stderr pipe keeps this process alive; the exit hook and
      // pdeathsig end swtpm when this process ends.
      started.child.unref();
      started.child.stderr?.removeAllListeners('data');
      started.child.stderr?.resume();
      if (started.child.stderr instanceof Socket) started.child.stderr.unref();
      return handle(started.child, port);
    }
    await waitForExit(started.child, STOP_TIMEOUT_MS);
    lastError = started.stderr() || `exit code ${String(started.child.exitCode)}`;
    // A port given by the caller is not ours to change; a picked one may have been taken meanwhile.
    if (options.port !== undefined) break;
  }
  throw unavailable(`swtpm exited before answering (state ${options.stateDir}): ${lastError}`);
}
