/**
 * Secure element hosts as fuzz targets, one per scheme's trusted app: each input is the body of a
 * host frame from the wallet process, decoded as the isolated host's child decodes it (the host
 * protocol's request codec); a `call` runs the named command on an in-process host over storage
 * and a counter kept in memory. A command refused (with a TallyError, as every refusal must be)
 * must leave the sealed state's bytes and the version exactly as they were.
 */
import fc from 'fast-check';
import { toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { SCHEMES } from '../../schemes/index.ts';
import type { MonotonicCounter } from '../../secure-element/counter.ts';
import { FRAME_BYTES_MAX } from '../../secure-element/frame.ts';
import { InProcessHost } from '../../secure-element/host.ts';
import { requestCodec } from '../../secure-element/host-protocol.ts';
import { REQUEST_ID_BYTES } from '../../secure-element/sealing.ts';
import type { SecureStorage } from '../../secure-element/storage.ts';
import type { TrustedApp } from '../../secure-element/trusted-app.ts';
import { arbitraryOf } from './shape-arbitrary.ts';
import { CBOR_STRUCTURE, describeThrown, FuzzFinding, type FuzzTarget, type Outcome } from './target.ts';

/** How long one command may take (OPERA's anonymous proofs take a few hundred milliseconds). */
const COMMAND_TIMEOUT_MS = 10_000;

/** Storage in memory whose whole content can be read back, to compare before and after a refusal. */
class SnapshotStorage implements SecureStorage {
  readonly location = 'memory (fuzz)';
  private master: Uint8Array | null = null;
  private readonly blobs = new Map<string, Uint8Array>();
  private readonly temps = new Map<string, Uint8Array>();

  async readMaster(): Promise<Uint8Array | null> {
    return this.master;
  }
  async createMaster(secret: Uint8Array): Promise<void> {
    if (this.master !== null) throw new TallyError('SE_ALREADY_PROVISIONED', 'this storage has a master secret', { path: this.location });
    this.master = secret;
  }
  async readState(app: string): Promise<Uint8Array | null> {
    return this.blobs.get(app) ?? null;
  }
  async writeTemp(app: string, sealed: Uint8Array): Promise<void> {
    this.temps.set(app, sealed.slice());
  }
  async replace(app: string): Promise<void> {
    const temp = this.temps.get(app);
    if (temp === undefined) throw new TallyError('STATE_CORRUPT', `no temp state of ${app} to put in place`, { reason: 'replace without a temp' });
    this.blobs.set(app, temp);
    this.temps.delete(app);
  }
  async discardTemp(app: string): Promise<void> {
    this.temps.delete(app);
  }
  /** Every blob and temp, as one text: equal texts mean equal storage. */
  snapshot(): string {
    const part = (map: Map<string, Uint8Array>) => [...map].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, bytes]) => `${name}=${toHex(bytes)}`).join(';');
    return `${part(this.blobs)}|${part(this.temps)}`;
  }
}

/** A counter in memory. */
class MemoryCounter implements MonotonicCounter {
  readonly description = 'memory (fuzz)';
  private value = 0n;
  async open(): Promise<bigint> {
    return this.value;
  }
  async read(): Promise<bigint> {
    return this.value;
  }
  async increment(): Promise<bigint> {
    return ++this.value;
  }
  async close(): Promise<void> {}
}

/** The host frames a wallet sends to call the app's commands, with inputs from each command's codec. */
function callFrames(app: TrustedApp<unknown>): fc.Arbitrary<Uint8Array> {
  const commands = Object.entries(app.commands).map(([name, spec]) =>
    fc.record({
      type: fc.constant('call'),
      id: fc.integer({ min: 1, max: 2 ** 31 }),
      command: fc.constant(name),
      requestId: fc.option(fc.uint8Array({ minLength: REQUEST_ID_BYTES, maxLength: REQUEST_ID_BYTES }), { nil: undefined }),
      input: arbitraryOf(spec.input).map((value) => {
        try {
          return encodeCbor(value);
        } catch {
          return new Uint8Array(0);
        }
      }),
    }, { requiredKeys: ['type', 'id', 'command', 'input'] }),
  );
  return fc.oneof(...commands).map((request) => encodeCbor(request));
}

/**
 * Inputs one host takes before a fresh one replaces it. A trusted app's state grows with what it
 * accepts and every command reseals it whole (and the target compares it whole), so one host fed a
 * million inputs slows as it goes: OTP's went from about 2,500 inputs a second over the first
 * 3,000 to about 450 over the first 30,000.
 */
export const HOST_INPUTS_MAX = 5_000;

/** The target of one trusted app; `hosts` counts the hosts it opened. */
export function hostTarget(scheme: string, app: TrustedApp<unknown>, inputsPerHost = HOST_INPUTS_MAX): FuzzTarget & { readonly hosts: number } {
  let storage = new SnapshotStorage();
  let host: InProcessHost<unknown, TrustedApp<unknown>['commands']> | undefined;
  let fed = 0;
  let hosts = 0;
  return {
    get hosts() {
      return hosts;
    },
    name: `secure-element/${scheme}`,
    group: 'secure-element',
    bytesMax: FRAME_BYTES_MAX,
    timeoutMs: COMMAND_TIMEOUT_MS,
    valid: callFrames(app),
    structure: CBOR_STRUCTURE,
    async open() {
      storage = new SnapshotStorage();
      host = await InProcessHost.provision({ app, storage, counter: new MemoryCounter(), provider: nodeProvider });
      fed = 0;
      hosts += 1;
    },
    async close() {
      await host?.close();
      host = undefined;
    },
    async feed(input): Promise<Outcome> {
      if (host !== undefined && fed >= inputsPerHost) await this.close?.();
      if (host === undefined) await this.open?.();
      fed += 1;
      const se = host;
      if (se === undefined) throw new FuzzFinding('the host did not open');
      let request;
      try {
        request = requestCodec.decode(decodeCbor(input, { maxBytes: FRAME_BYTES_MAX }), 'request');
      } catch (e) {
        if (isTallyError(e)) return 'rejected';
        throw new FuzzFinding(`the host protocol's decoder threw ${describeThrown(e)}`, { cause: e });
      }
      // Only calls reach the app; the other requests open files and processes, which is the child's part.
      if (request.type !== 'call') return 'rejected';
      const before = storage.snapshot();
      const version = se.version;
      try {
        await se.callEncoded(request.command, request.input, request.requestId);
        return 'accepted';
      } catch (e) {
        if (!isTallyError(e)) throw new FuzzFinding(`${request.command} threw ${describeThrown(e)}`, { cause: e });
        if (storage.snapshot() !== before || se.version !== version) throw new FuzzFinding(`a refused ${request.command} (${e.code}) changed the sealed state`);
        return 'rejected';
      }
    },
  };
}

/** One target per scheme that has a trusted app. */
export async function secureElementTargets(): Promise<FuzzTarget[]> {
  const targets: FuzzTarget[] = [];
  for (const scheme of SCHEMES) {
    if (scheme.trustedApp === undefined) continue;
    targets.push(hostTarget(scheme.name, await scheme.trustedApp()));
  }
  return targets;
}
