/**
 * The isolated host: the secure element runs in a child process that alone holds the master
 * secret and the sealed state. This side only sends commands and decodes answers; killing the
 * child at a crash point models a power cut in the middle of a commit.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import type { SuiteName } from '../core/crypto/suite.ts';
import { errorFromWire, TallyError } from '../core/errors.ts';
import { encodeFrame, FrameReader } from './frame.ts';
import { checkOpenRequest, checkSealRequest } from './key-slot.ts';
import { responseCodec, type CounterSpec, type Request, type Response } from './host-protocol.ts';
import type { CallOptions, CrashPoint, SecureElement } from './secure-element.ts';
import { findCommand, type CommandTable, type InputOf, type OutputOf, type TrustedApp } from './trusted-app.ts';

/** How long a command may take before the caller gives up (the child keeps running). */
export const SE_CALL_TIMEOUT_MS = 30_000;

/** Where the trusted app lives, so the child can load the same code. */
export interface AppLocation {
  /** A `file:` URL or path of the module that exports the app. */
  module: string;
  /** The export's name. */
  export: string;
}

/** How to start an isolated host. */
export interface IsolatedHostOptions<S, C extends CommandTable<S>> {
  app: TrustedApp<S, C>;
  location: AppLocation;
  dir: string;
  counter: CounterSpec;
  suite?: SuiteName | undefined;
  /** Create the device and install the app (first start) instead of opening it. */
  provision?: boolean | undefined;
  timeoutMs?: number | undefined;
  /** Start the process without opening the app: only the key slot is used (the app may refuse to run). */
  keySlotOnly?: boolean | undefined;
}

interface Pending {
  resolve(response: Response): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

type Child = ChildProcessByStdio<Writable, Readable, null>;

/** Set (to true) by the build in the bundle of dist/bundle/ (scripts/build.mjs); undeclared elsewhere. */
declare const __TALLY_BUNDLE__: true | undefined;

/**
 * The child runs the same form of the code as its parent: the bundle when this module runs from
 * dist/bundle/ (as `tally` runs it), the compiled JavaScript of dist/ when it runs from there. In
 * the bundle, `import.meta.url` is still this module's URL in dist/; the bundle's files sit in
 * dist/bundle/, named by their path in dist/ with dots for slashes.
 *
 * From the TypeScript sources (the tests, through tsx's loader) the child runs the bundle too when
 * the build is fresh (built from the sources as they are now: scripts/build-state.mjs, the check
 * `tally` makes before it runs dist/) and bundles the app's module: it is then the very code the
 * sources compile to, loaded as `tally`'s own children load it, at about a third of the CPU that
 * tsx takes to load a few hundred modules in every child. Without a fresh build, or for an app the
 * build does not bundle (a test's own), the child runs the sources through tsx. The measurement of
 * the app is taken over the sources either way (measure.ts).
 */
const COMPILED = import.meta.url.endsWith('.js');
const BUNDLED = typeof __TALLY_BUNDLE__ !== 'undefined' && __TALLY_BUNDLE__;
/** dist/ as this module sees it: its parent folder in a compiled run, the build beside src/ in a run from the sources. */
const DIST_ROOT = new URL(COMPILED ? '../' : '../../dist/', import.meta.url).href;
/** src/, in a run from the sources. */
const SOURCE_ROOT = new URL('../', import.meta.url).href;
const CHILD_SCRIPT = fileURLToPath(BUNDLED ? bundled('secure-element/host-child.js') : new URL(COMPILED ? './host-child.js' : './host-child.ts', import.meta.url).href);
const BUNDLED_CHILD_SCRIPT = fileURLToPath(bundled('secure-element/host-child.js'));
/** In a run from the sources: whether dist/ holds a fresh build whose bundle the child may run. */
const SOURCES_BUILT = COMPILED ? false : await freshBuild();

/** The URL in dist/bundle/ of a module of dist/ given by its path there. */
function bundled(inDist: string): string {
  return new URL(`bundle/${inDist.split('/').join('.')}`, DIST_ROOT).href;
}

/** Whether the build in dist/ is fresh and bundled (scripts/build-state.mjs); false when that cannot be told. */
async function freshBuild(): Promise<boolean> {
  try {
    const check: unknown = (await import(new URL('../../scripts/build-state.mjs', import.meta.url).href)).buildState;
    if (typeof check !== 'function') return false;
    const state: unknown = check();
    return typeof state === 'object' && state !== null && Reflect.get(state, 'state') === 'fresh' && existsSync(BUNDLED_CHILD_SCRIPT);
  } catch {
    return false;
  }
}

/**
 * In a run from the sources with a fresh build: the bundled entry of a trusted app given by the
 * URL of its source, or undefined when the build does not bundle it (or the run is not from the
 * sources, or the build is not fresh).
 */
function bundledSource(module: string): string | undefined {
  if (!SOURCES_BUILT || !module.startsWith(SOURCE_ROOT) || !module.endsWith('.ts')) return undefined;
  const entry = bundled(`${module.slice(SOURCE_ROOT.length, -'.ts'.length)}.js`);
  return existsSync(fileURLToPath(entry)) ? entry : undefined;
}

/**
 * Whether the child of an app at `module` (undefined: no app, or not yet known) runs the bundle
 * although this process runs the sources.
 */
function bundledChildFor(module: string | undefined): boolean {
  return SOURCES_BUILT && (module === undefined || bundledSource(module) !== undefined);
}

function childArgs(bundledChild: boolean): string[] {
  if (COMPILED) return [CHILD_SCRIPT];
  return bundledChild ? [BUNDLED_CHILD_SCRIPT] : ['--import', import.meta.resolve('tsx'), CHILD_SCRIPT];
}

/** A child process and whether it runs the bundle for this process running the sources. */
interface Started {
  readonly child: Child;
  readonly bundledChild: boolean;
}

/** Starts a child; `preload`: the module (as the child imports it) to load while it waits. */
function spawnChild(bundledChild: boolean, preload?: string): Child {
  const args = preload === undefined ? childArgs(bundledChild) : [...childArgs(bundledChild), '--preload', preload];
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin.on('error', () => undefined);
  return child;
}

/** Whether a child process (and its pipes) keep this process alive. */
function holdOpen(child: Child, hold: boolean): void {
  for (const handle of [child, child.stdin, child.stdout]) {
    const method: unknown = Reflect.get(handle, hold ? 'ref' : 'unref');
    if (typeof method === 'function') method.call(handle);
  }
}

/** A child started ahead of time by prestartIsolatedHost, waiting for the next start. */
let prestarted: Started | null = null;

/**
 * Starts a secure element process ahead of the next IsolatedHost.start, so that its own start-up
 * (Node and the code it loads, about as long as the command's) runs while the caller still loads
 * and opens its wallet. The process waits for its first command; one never taken does not keep
 * this process alive, and exits with it (its standard input closes). `preload`: the module of the
 * trusted app the start will open (as AppLocation.module), loaded by the child while it waits.
 * Answers the waiting child's process id.
 */
export function prestartIsolatedHost(preload?: string): number | undefined {
  if (prestarted !== null) return prestarted.child.pid;
  const bundledChild = bundledChildFor(preload);
  let module: string | undefined;
  try {
    module = preload === undefined ? undefined : childModule(preload, bundledChild);
  } catch {
    // The start that follows names the module again and reports what is wrong with it.
  }
  const child = spawnChild(bundledChild, module);
  holdOpen(child, false);
  prestarted = { child, bundledChild };
  return child.pid;
}

/** The prestarted child if it still runs and is of the form asked (kept alive from now on), else a new one. */
function takeChild(bundledChild: boolean): Child {
  const waiting = prestarted;
  prestarted = null;
  if (waiting === null || waiting.bundledChild !== bundledChild || waiting.child.exitCode !== null || waiting.child.signalCode !== null) {
    if (waiting !== null) waiting.child.kill();
    return spawnChild(bundledChild);
  }
  holdOpen(waiting.child, true);
  return waiting.child;
}

/**
 * A trusted app's module as the child imports it: a `.ts` location names its compiled `.js` in a
 * compiled run, and its file in dist/bundle/ in a bundled one (the build bundles every scheme's
 * trusted-app module and the apps of secure-element/apps/, so that the app and the child share one
 * copy of the code they both use); in a run from the sources, its bundled entry when the child runs
 * the bundle, else the source itself.
 * @throws TallyError SE_UNAVAILABLE for a module of dist/ that the bundle lacks
 */
function childModule(module: string, bundledChild: boolean): string {
  if (!COMPILED) return bundledChild ? (bundledSource(module) ?? module) : module;
  const compiled = module.replace(/\.ts$/, '.js');
  if (!BUNDLED || !compiled.startsWith(DIST_ROOT)) return compiled;
  const inBundle = bundled(compiled.slice(DIST_ROOT.length));
  if (!existsSync(fileURLToPath(inBundle))) {
    throw new TallyError('SE_UNAVAILABLE', `the trusted app ${compiled} is not in the bundle of dist/bundle/ (the build bundles schemes/*/trusted-app and secure-element/apps/*): run npm run build`, { reason: 'not bundled' });
  }
  return inBundle;
}

/** A secure element in its own process. */
export class IsolatedHost<S, C extends CommandTable<S>> implements SecureElement<C> {
  deviceId: Uint8Array = new Uint8Array(16);
  description = 'isolated (starting)';
  private readonly strayErrors: TallyError[] = [];
  private readonly strayWaiters: Array<(error: TallyError) => void> = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private exited: string | null = null;
  private armed: CrashPoint | null = null;
  private readonly exit: Promise<void>;

  private constructor(
    private readonly options: IsolatedHostOptions<S, C>,
    private readonly child: Child,
  ) {
    const reader = new FrameReader();
    child.stdout.on('data', (chunk: Buffer) => {
      for (const event of reader.push(new Uint8Array(chunk))) {
        if ('frame' in event) this.receive(event.frame);
        else this.stray(event.error);
      }
    });
    this.exit = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exited = signal !== null ? `killed by ${signal}` : `exited with code ${code}`;
        const point = this.armed ?? this.exited;
        for (const [id, pending] of this.pending) {
          clearTimeout(pending.timer);
          pending.reject(new TallyError('SE_CRASHED', `secure element process ${this.exited} (at ${point})`, { point }));
          this.pending.delete(id);
        }
        resolve();
      });
    });
  }

  /**
   * Starts the child process (or takes the one prestartIsolatedHost started) and opens (or provisions) the secure element in it.
   * @throws TallyError as InProcessHost.open / provision would, carried across the pipe
   */
  static async start<S, C extends CommandTable<S>>(options: IsolatedHostOptions<S, C>): Promise<IsolatedHost<S, C>> {
    const keySlotOnly = options.keySlotOnly === true;
    const bundledChild = bundledChildFor(keySlotOnly ? undefined : options.location.module);
    const host = new IsolatedHost(options, takeChild(bundledChild));
    if (keySlotOnly) {
      host.description = 'isolated (key slot only)';
      return host;
    }
    try {
      const opened = await host.request({
        type: 'open',
        id: 0,
        dir: options.dir,
        appModule: childModule(options.location.module, bundledChild),
        appExport: options.location.export,
        counter: options.counter,
        suite: options.suite ?? 'ed25519',
        provision: options.provision ?? false,
      });
      if (opened.type !== 'opened') throw new TallyError('FRAME_INVALID', `expected opened, got ${opened.type}`, { reason: 'protocol' });
      host.deviceId = opened.deviceId;
      host.description = opened.description;
      return host;
    } catch (e) {
      await host.kill();
      throw e;
    }
  }

  call<K extends keyof C & string>(name: K, input: InputOf<C[K]>, options?: CallOptions): Promise<OutputOf<C[K]>> {
    const spec = findCommand(this.options.app, name);
    return this.request({ type: 'call', id: 0, command: name, requestId: options?.requestId, input: encodeCbor(input) }).then((response) => {
      if (response.type !== 'output') throw new TallyError('FRAME_INVALID', `expected output, got ${response.type}`, { reason: 'protocol' });
      return spec.output.decode(decodeCbor(response.output), `${name}.output`) as OutputOf<C[K]>;
    });
  }

  /**
   * Seals a secret of the device's holder (e.g. the wallet's account key) under the key slot
   * `label` of this device (key-slot.ts); only the box leaves the process.
   * @throws TallyError SE_NOT_PROVISIONED, DECODE_FAILED for a bad label or secret
   */
  async sealSecret(label: string, secret: Uint8Array): Promise<Uint8Array> {
    checkSealRequest(label, secret);
    return this.outputOf(await this.request({ type: 'sealSecret', id: 0, dir: this.options.dir, label, secret }));
  }

  /**
   * Opens a box sealSecret made on this device under `label`.
   * @throws TallyError STATE_CORRUPT for a box of another device or label, altered or damaged; SE_NOT_PROVISIONED
   */
  async openSecret(label: string, box: Uint8Array): Promise<Uint8Array> {
    checkOpenRequest(label, box);
    return this.outputOf(await this.request({ type: 'openSecret', id: 0, dir: this.options.dir, label, box }));
  }

  private outputOf(response: Response): Uint8Array {
    if (response.type !== 'output') throw new TallyError('FRAME_INVALID', `expected output, got ${response.type}`, { reason: 'protocol' });
    return response.output;
  }

  /** Makes the child kill itself (SIGKILL) when its next commit reaches `point`. */
  async armCrash(point: CrashPoint): Promise<void> {
    await this.request({ type: 'arm', id: 0, point });
    this.armed = point;
  }

  /** Writes raw bytes to the child's pipe, for tests of its frame decoding. */
  sendRaw(bytes: Uint8Array): void {
    this.child.stdin.write(bytes);
  }

  /**
   * The next error the child sends for a frame it could not read (answered with id 0).
   * @throws TallyError TIMEOUT when none arrives in time
   */
  nextStrayError(timeoutMs = 5000): Promise<TallyError> {
    const ready = this.strayErrors.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new TallyError('TIMEOUT', 'no error frame arrived', { what: 'stray error', timeoutMs })), timeoutMs);
      this.strayWaiters.push((error) => {
        clearTimeout(timer);
        resolve(error);
      });
    });
  }

  /** True while the child process runs. */
  get alive(): boolean {
    return this.exited === null;
  }

  /** The child's process id. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  async close(): Promise<void> {
    if (this.exited !== null) return;
    try {
      await this.request({ type: 'close', id: 0 });
    } catch {
      // The child may already be gone; the exit below is what matters.
    }
    this.child.stdin.end();
    await this.exit;
  }

  /** Kills the child outright (SIGKILL) and waits for it to exit. */
  async kill(): Promise<void> {
    if (this.exited === null) this.child.kill('SIGKILL');
    await this.exit;
  }

  private stray(error: TallyError): void {
    const waiter = this.strayWaiters.shift();
    if (waiter !== undefined) waiter(error);
    else this.strayErrors.push(error);
  }

  private request(request: Request): Promise<Response> {
    if (this.exited !== null) {
      return Promise.reject(new TallyError('SE_UNAVAILABLE', `secure element process ${this.exited}`, { reason: this.exited }));
    }
    const id = this.nextId++;
    const timeoutMs = this.options.timeoutMs ?? SE_CALL_TIMEOUT_MS;
    return new Promise<Response>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TallyError('TIMEOUT', `secure element did not answer ${request.type} within ${timeoutMs} ms`, { what: request.type, timeoutMs }));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.child.stdin.write(encodeFrame({ ...request, id }));
    });
  }

  private receive(frame: Uint8Array): void {
    let response: Response;
    try {
      response = responseCodec.decode(decodeCbor(frame), 'response');
    } catch (e) {
      this.stray(e instanceof TallyError ? e : new TallyError('FRAME_INVALID', String(e), { reason: 'undecodable' }));
      return;
    }
    const pending = this.pending.get(response.id);
    if (pending === undefined) {
      if (response.type === 'error') this.stray(errorFromWire(response));
      return;
    }
    this.pending.delete(response.id);
    clearTimeout(pending.timer);
    if (response.type === 'error') pending.reject(errorFromWire(response));
    else pending.resolve(response);
  }
}
