/**
 * The secure element process. It alone reads the master secret and the sealed state; the wallet
 * process talks to it through framed CBOR on stdin/stdout (stderr is for diagnostics). Started by
 * IsolatedHost; never run by hand.
 */
import { decodeCbor } from '../core/cbor.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { nodeSealing } from '../providers/node-sealing.ts';
import { makeCounter } from './counters.ts';
import { encodeFrame, FrameReader } from './frame.ts';
import { InProcessHost, type HostOptions } from './host.ts';
import { openSlot, sealSlot } from './key-slot.ts';
import { requestCodec, type Request, type Response } from './host-protocol.ts';
import type { CrashPoint } from './secure-element.ts';
import { FileStorage } from './storage-file.ts';
import type { CommandTable, TrustedApp } from './trusted-app.ts';

type AnyHost = InProcessHost<unknown, CommandTable<unknown>>;

let host: AnyHost | null = null;
let armed: CrashPoint | null = null;
let chain: Promise<void> = Promise.resolve();

function send(response: Response): void {
  process.stdout.write(encodeFrame(response));
}

function sendError(id: number, e: unknown): void {
  if (isTallyError(e)) {
    send({ type: 'error', id, code: e.code, message: e.message, details: { ...e.details } });
  } else {
    const message = e instanceof Error ? e.message : String(e);
    send({ type: 'error', id, code: 'SE_UNAVAILABLE', message: `secure element failed: ${message}`, details: { reason: message } });
  }
}

function isTrustedApp(value: unknown): value is TrustedApp<unknown, CommandTable<unknown>> {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Partial<Record<keyof TrustedApp<unknown>, unknown>>;
  return typeof candidate.name === 'string' && typeof candidate.init === 'function' && typeof candidate.commands === 'object';
}

async function openHost(request: Extract<Request, { type: 'open' }>): Promise<AnyHost> {
  const module: Record<string, unknown> = await import(request.appModule);
  const app = module[request.appExport];
  if (!isTrustedApp(app)) {
    throw new TallyError('SE_UNAVAILABLE', `${request.appModule} exports no trusted app named ${request.appExport}`, { reason: 'no such app' });
  }
  const options: HostOptions<unknown, CommandTable<unknown>> = {
    app,
    storage: new FileStorage(request.dir),
    counter: makeCounter(request.counter),
    provider: nodeProvider,
    sealing: nodeSealing,
    suite: request.suite,
    onCrashPoint(point) {
      // A real crash: no unwinding, no flushing, exactly what a power cut leaves behind.
      if (point === armed) process.kill(process.pid, 'SIGKILL');
    },
  };
  return request.provision ? InProcessHost.provision(options) : InProcessHost.open(options);
}

async function handle(request: Request): Promise<void> {
  switch (request.type) {
    case 'open': {
      if (host !== null) throw new TallyError('SE_UNAVAILABLE', 'secure element is already open', { reason: 'already open' });
      host = await openHost(request);
      send({ type: 'opened', id: request.id, deviceId: host.deviceId, description: host.description.replace('in-process', 'isolated') });
      return;
    }
    case 'call': {
      if (host === null) throw new TallyError('SE_UNAVAILABLE', 'secure element is not open', { reason: 'not open' });
      const output = await host.callEncoded(request.command, request.input, request.requestId);
      send({ type: 'output', id: request.id, output });
      return;
    }
    case 'sealSecret':
    case 'openSecret': {
      const master = await new FileStorage(request.dir).readMaster();
      if (master === null) throw new TallyError('SE_NOT_PROVISIONED', `no secure element in ${request.dir}: provision it first`, { path: request.dir });
      try {
        const output = request.type === 'sealSecret' ? sealSlot(master, request.label, request.secret) : openSlot(master, request.label, request.box);
        send({ type: 'output', id: request.id, output });
      } finally {
        master.fill(0);
      }
      return;
    }
    case 'arm':
      armed = request.point;
      send({ type: 'done', id: request.id });
      return;
    case 'close':
      await host?.close();
      send({ type: 'done', id: request.id });
      process.stdout.end(() => process.exit(0));
      return;
  }
}

function receive(frame: Uint8Array): void {
  let request: Request;
  try {
    request = requestCodec.decode(decodeCbor(frame), 'request');
  } catch (e) {
    sendError(0, e);
    return;
  }
  chain = chain.then(() => handle(request).catch((e: unknown) => sendError(request.id, e)));
}

// A prestarted process is told which trusted app the open will name (`--preload MODULE`): it loads
// it while it waits, and the open's import finds it loaded. The open still names and checks the app.
const preload = process.argv.indexOf('--preload');
const preloaded = preload === -1 ? undefined : process.argv[preload + 1];
if (preloaded !== undefined) import(preloaded).catch(() => undefined);

const reader = new FrameReader();
process.stdin.on('data', (chunk: Buffer) => {
  for (const event of reader.push(new Uint8Array(chunk))) {
    if ('frame' in event) receive(event.frame);
    else sendError(0, event.error);
  }
});
process.stdin.on('end', () => {
  void chain.then(() => host?.close()).finally(() => process.exit(0));
});
