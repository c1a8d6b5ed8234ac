/**
 * The embedded Ethereum node: anvil (npm package @foundry-rs/anvil) run as a child process on
 * 127.0.0.1 with instant mining and a fixed chain id, its chain kept in DATA/chain/anvil-state.json
 * (loaded at start, dumped every second and on exit) and its output in DATA/chain/anvil.log.
 * On POSIX a small shell watcher started with it holds the read end of a pipe whose write end only
 * this process holds: when this process ends in any way (even SIGKILL) the pipe closes and the
 * watcher sends anvil SIGTERM, so no anvil outlives its node, and anvil still dumps its state.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { TallyError } from '../../core/errors.ts';
import { corrupt, isFsError, PRIVATE_DIR_MODE } from '../../host/files.ts';

/** The chain id of the embedded chain: anvil's own default, which Ethereum tools know as a local dev chain. */
export const ANVIL_CHAIN_ID = 31337;
/** The folder of the embedded chain inside the data folder. */
export const CHAIN_DIR = 'chain';
/** The chain's state file in CHAIN_DIR: anvil loads it if present and dumps into it. */
export const ANVIL_STATE_FILE = 'anvil-state.json';
/** A copy of the state file as it was at the last start that loaded it. */
export const ANVIL_STATE_BACKUP_FILE = 'anvil-state.prev.json';
/** anvil's standard output and error, appended across starts. */
export const ANVIL_LOG_FILE = 'anvil.log';
/** A log larger than this at start is moved to `anvil.log.1` (replacing the older one). */
export const ANVIL_LOG_BYTES_MAX = 16 * 1024 * 1024;
/** Seconds between anvil's state dumps: a killed anvil loses at most this much of its chain. */
export const ANVIL_STATE_INTERVAL_S = 1;
/** How long anvil may take to answer JSON-RPC after it is spawned. */
export const ANVIL_START_TIMEOUT_MS = 20_000;
/** How long anvil may take to dump its state and exit after SIGTERM before it is killed. */
export const ANVIL_STOP_TIMEOUT_MS = 10_000;
/** Ports tried when the one picked was taken by someone else in between. */
export const ANVIL_PORT_ATTEMPTS = 5;
/** How much of anvil's output a start failure quotes. */
const OUTPUT_TAIL_BYTES = 1500;
/** How much of anvil's output after a spawn is searched for the line saying it listens. */
const STARTUP_OUTPUT_BYTES = 64 * 1024;
const READY_POLL_MS = 50;
/** What anvil says of a state file it cannot load. */
const UNREADABLE_STATE = /failed to parse json file/i;
const PROBE_TIMEOUT_MS = 1000;

/**
 * The watcher: keeps the pipe on fd 3 for a background subshell that waits for its end and then
 * sends SIGTERM to `$$`, which is anvil's pid once the shell has exec'd it.
 */
const WATCHER_SCRIPT = 'exec 3<&0 0</dev/null; (read -r _ <&3; kill -TERM $$ 2>/dev/null) & exec "$0" "$@" 3<&-';

/** How an embedded anvil ended. */
export interface AnvilExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** True when stop() asked for it. */
  readonly requested: boolean;
}

/** Options of startAnvil. */
export interface StartAnvilOptions {
  /** The node's data folder; the chain lives in `<dataDir>/chain`. */
  dataDir: string;
  /** Called once when anvil ends, asked to or not. */
  onExit?: ((exit: AnvilExit) => void) | undefined;
  /** Picks the port of each attempt; a port free on 127.0.0.1 by default (tests hand in a taken one). */
  pickPort?: (() => Promise<number>) | undefined;
  /** How long stop() waits after SIGTERM before SIGKILL; ANVIL_STOP_TIMEOUT_MS by default. */
  stopTimeoutMs?: number | undefined;
}

/** A running embedded anvil. */
export interface Anvil {
  readonly rpcUrl: string;
  readonly port: number;
  readonly pid: number;
  readonly chainId: number;
  readonly stateFile: string;
  readonly logFile: string;
  /** Null while it runs. */
  readonly exit: AnvilExit | null;
  /** SIGTERM (anvil dumps its state), SIGKILL after ANVIL_STOP_TIMEOUT_MS; resolves once it has exited. */
  stop(): Promise<void>;
}

/** The files of the embedded chain of a data folder. */
export function anvilFiles(dataDir: string): { dir: string; state: string; backup: string; log: string } {
  const dir = join(dataDir, CHAIN_DIR);
  return { dir, state: join(dir, ANVIL_STATE_FILE), backup: join(dir, ANVIL_STATE_BACKUP_FILE), log: join(dir, ANVIL_LOG_FILE) };
}

const ARCH_NAMES: Readonly<Record<string, string>> = { x64: 'amd64', arm64: 'arm64' };

/**
 * The anvil executable of this platform, from its npm package (@foundry-rs/anvil-{os}-{arch}),
 * found the way @foundry-rs/anvil's own launcher finds it.
 * @throws TallyError CHAIN_START_FAILED when the package for this platform is not installed
 */
export function anvilBinary(): string {
  const arch = ARCH_NAMES[process.arch];
  const name = process.platform === 'win32' ? 'anvil.exe' : 'anvil';
  const pkg = `@foundry-rs/anvil-${process.platform === 'win32' ? 'win32' : process.platform}-${arch ?? process.arch}`;
  try {
    return createRequire(import.meta.url).resolve(`${pkg}/bin/${name}`);
  } catch (e) {
    throw new TallyError(
      'CHAIN_START_FAILED',
      `anvil for ${process.platform}-${process.arch} is not installed (npm package ${pkg}, an optional dependency of @foundry-rs/anvil): reinstall the dependencies, or give --eth-rpc URL to use another Ethereum node`,
      { reason: 'anvil binary missing' },
      { cause: e },
    );
  }
}

/** A port free on 127.0.0.1 right now (anvil has no port 0, so the node picks one). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ready, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ready);
  });
  const address = server.address();
  await new Promise<void>((closed) => server.close(() => closed()));
  if (address === null || typeof address === 'string') throw new Error('a listening TCP server has no port');
  return address.port;
}

/** True when the JSON-RPC endpoint answers eth_chainId with `chainId`. */
async function answers(rpcUrl: string, chainId: number): Promise<boolean> {
  try {
    const response = await fetch(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    });
    const body: unknown = await response.json();
    return typeof body === 'object' && body !== null && (body as { result?: unknown }).result === `0x${chainId.toString(16)}`;
  } catch {
    return false;
  }
}

/** What `file` holds after `offset`: its last `bytesMax` bytes at most, as text. */
async function outputSince(file: string, offset: number, bytesMax = OUTPUT_TAIL_BYTES): Promise<string> {
  try {
    const handle = await open(file, 'r');
    try {
      const size = (await handle.stat()).size;
      const from = Math.max(offset, size - bytesMax);
      const buffer = Buffer.alloc(Math.max(0, size - from));
      await handle.read(buffer, 0, buffer.length, from);
      return buffer.toString('utf8').trim();
    } finally {
      await handle.close();
    }
  } catch {
    return '';
  }
}

/** The last non-empty line of anvil's output, for a one-line error. */
function lastLine(output: string): string {
  const lines = output.split('\n').map((line) => line.trim()).filter((line) => line !== '');
  return lines.at(-1) ?? 'no output';
}

async function sizeOf(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch (e) {
    if (isFsError(e, 'ENOENT')) return null;
    throw e;
  }
}

/** The spawned process and what waiting for it learned. */
type Attempt = { kind: 'ready'; child: ChildProcess; exited: Promise<AnvilExitRaw> } | { kind: 'port-taken' };
type AnvilExitRaw = { code: number | null; signal: NodeJS.Signals | null };

/** Spawns anvil on `port` and waits until it answers, or fails. */
async function attempt(binary: string, port: number, files: ReturnType<typeof anvilFiles>): Promise<Attempt> {
  const args = [
    '--host', '127.0.0.1',
    '--port', String(port),
    '--chain-id', String(ANVIL_CHAIN_ID),
    '--accounts', '0',
    '--state', files.state,
    '--state-interval', String(ANVIL_STATE_INTERVAL_S),
  ];
  const log = await open(files.log, 'a', 0o600);
  await log.write(`--- tally: anvil starting on 127.0.0.1:${port} at ${new Date().toISOString()}\n`);
  const offset = (await log.stat()).size;
  const posix = process.platform !== 'win32';
  let child: ChildProcess;
  try {
    // Own process group on POSIX: a Ctrl-C at the terminal reaches the node, which stops anvil in
    // its turn, after the requests still running are done with the chain.
    child = posix
      ? spawn('/bin/sh', ['-c', WATCHER_SCRIPT, binary, ...args], { stdio: ['pipe', log.fd, log.fd], detached: true })
      : spawn(binary, args, { stdio: ['pipe', log.fd, log.fd], windowsHide: true });
  } finally {
    await log.close();
  }
  const exited = new Promise<AnvilExitRaw>((done) => child.once('exit', (code, signal) => done({ code, signal })));
  const spawnError = new Promise<Error>((done) => child.once('error', done));
  const rpcUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + ANVIL_START_TIMEOUT_MS;
  const seen: { ended: AnvilExitRaw | Error | null } = { ended: null };
  void exited.then((how) => (seen.ended ??= how));
  void spawnError.then((error) => (seen.ended ??= error));
  /** Kills the child and waits for its end, holding this process up meanwhile (its handle may not). */
  const killAndWait = async () => {
    child.kill('SIGKILL');
    const hold = setInterval(() => undefined, READY_POLL_MS);
    try {
      await Promise.race([exited, spawnError, new Promise((late) => setTimeout(late, ANVIL_STOP_TIMEOUT_MS))]);
    } finally {
      clearInterval(hold);
    }
  };
  while (seen.ended === null) {
    // Ready only once this anvil says it listens on the port: something else answering there would not.
    const output = await outputSince(files.log, offset, STARTUP_OUTPUT_BYTES);
    if (output.includes(`Listening on 127.0.0.1:${port}`) && (await answers(rpcUrl, ANVIL_CHAIN_ID))) return { kind: 'ready', child, exited };
    // A state it cannot read is said at once; an anvil that has said so is not waited for to end by itself.
    if (UNREADABLE_STATE.test(output)) {
      await killAndWait();
      break;
    }
    if (Date.now() > deadline) {
      await killAndWait();
      throw new TallyError('CHAIN_START_FAILED', `anvil did not answer on ${rpcUrl} within ${ANVIL_START_TIMEOUT_MS / 1000} s (its output: ${lastLine(await outputSince(files.log, offset))}; see ${files.log})`, { reason: 'timeout' });
    }
    await new Promise((wait) => setTimeout(wait, READY_POLL_MS));
  }
  const output = await outputSince(files.log, offset);
  if (UNREADABLE_STATE.test(output)) {
    const backup = (await sizeOf(files.backup)) === null ? '' : ` The copy made at the last start that loaded it is ${files.backup}: move it in its place to go on from there (what was mined since is lost).`;
    throw corrupt(`the chain state ${files.state} cannot be read (${lastLine(output)}): a dump cut short by a crash leaves it so.${backup}`, 'chain state unreadable');
  }
  const failure = seen.ended;
  if (failure === null) throw new TallyError('CHAIN_START_FAILED', `anvil stopped answering before it started: ${lastLine(output)} (see ${files.log})`, { reason: lastLine(output) });
  if (failure instanceof Error) {
    throw new TallyError('CHAIN_START_FAILED', `cannot run anvil (${binary}): ${failure.message}`, { reason: 'spawn failed' }, { cause: failure });
  }
  if (/address already in use|os error 98|EADDRINUSE/i.test(output)) return { kind: 'port-taken' };
  const how = failure.signal !== null ? `was killed by ${failure.signal}` : `exited with ${failure.code}`;
  throw new TallyError('CHAIN_START_FAILED', `anvil ${how} before it answered: ${lastLine(output)} (see ${files.log})`, { reason: lastLine(output) });
}

/**
 * Starts the embedded anvil of `dataDir` and resolves once it answers JSON-RPC.
 * @throws TallyError CHAIN_START_FAILED (with anvil's last line of output) when it cannot start or
 *   does not answer in time; STATE_CORRUPT when its state file cannot be read
 */
export async function startAnvil(options: StartAnvilOptions): Promise<Anvil> {
  const files = anvilFiles(options.dataDir);
  const binary = anvilBinary();
  await mkdir(files.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (((await sizeOf(files.log)) ?? 0) > ANVIL_LOG_BYTES_MAX) await rename(files.log, `${files.log}.1`);
  // The state as this start loads it; kept as the backup once anvil has shown it can load it.
  const pendingBackup = `${files.backup}.tmp`;
  const hasState = (await sizeOf(files.state)) !== null;
  if (hasState) await copyFile(files.state, pendingBackup);
  let started: Extract<Attempt, { kind: 'ready' }> | undefined;
  let port = 0;
  try {
    for (let i = 0; i < ANVIL_PORT_ATTEMPTS && started === undefined; i++) {
      port = await (options.pickPort ?? freePort)();
      const tried = await attempt(binary, port, files);
      if (tried.kind === 'ready') started = tried;
    }
  } catch (e) {
    await rm(pendingBackup, { force: true });
    throw e;
  }
  if (started === undefined) {
    await rm(pendingBackup, { force: true });
    throw new TallyError('CHAIN_START_FAILED', `anvil found each of ${ANVIL_PORT_ATTEMPTS} free ports taken by the time it started (see ${files.log})`, { reason: 'no free port' });
  }
  if (hasState) await rename(pendingBackup, files.backup);
  const { child, exited } = started;
  const pid = child.pid as number;
  let requested = false;
  let exit: AnvilExit | null = null;
  void exited.then((how) => {
    exit = { ...how, requested };
    // The watcher's pipe: close it, or its subshell would wait for this process to end.
    child.stdin?.destroy();
    options.onExit?.(exit);
  });
  // Neither the process nor its pipe keeps this process alive: when it ends, the pipe closes and
  // the watcher stops anvil.
  child.unref();
  (child.stdin as Socket | null)?.unref();
  if (process.platform === 'win32') {
    // No watcher there: the exit hook covers a normal end of this process, not a killed one.
    const kill = () => child.kill();
    process.once('exit', kill);
    void exited.then(() => process.off('exit', kill));
  }
  let stopping: Promise<void> | null = null;
  return {
    rpcUrl: `http://127.0.0.1:${port}`,
    port,
    pid,
    chainId: ANVIL_CHAIN_ID,
    stateFile: files.state,
    logFile: files.log,
    get exit() {
      return exit;
    },
    stop() {
      stopping ??= (async () => {
        if (exit !== null) return;
        requested = true;
        // Held again while it ends, or this process could end first (nothing else may be left).
        child.ref();
        child.kill('SIGTERM');
        const timer = new Promise<'late'>((late) => setTimeout(() => late('late'), options.stopTimeoutMs ?? ANVIL_STOP_TIMEOUT_MS).unref());
        if ((await Promise.race([exited, timer])) === 'late') {
          child.kill('SIGKILL');
          await exited;
        }
      })();
      return stopping;
    },
  };
}
