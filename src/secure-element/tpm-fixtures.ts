/**
 * Test fixtures for the TPM tests (not exported by any index): the gate that makes a missing swtpm a
 * failing test unless TALLY_SKIP_TPM=1 asks to skip, the swtpms and folders a test file starts and
 * removes, and a TPM that never answers.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startSwtpm, swtpmAvailable, type Swtpm } from './swtpm.ts';

/**
 * Whether swtpm and tpm2-tools are here. When they are not, adds one failing test that says what to
 * install, unless TALLY_SKIP_TPM=1. Answers describe()'s `skip`: false, or the reason to skip.
 */
export async function swtpmGate(): Promise<false | string> {
  const available = await swtpmAvailable();
  const skipRequested = process.env['TALLY_SKIP_TPM'] === '1';
  if (!available && !skipRequested) {
    test('swtpm and tpm2-tools are installed', () => {
      assert.fail('swtpm not found: install the Debian packages swtpm swtpm-tools tpm2-tools (or set TALLY_SKIP_TPM=1 to skip the TPM tests)');
    });
  }
  return available ? false : skipRequested ? 'swtpm is not installed and TALLY_SKIP_TPM=1' : 'swtpm is not installed: see the failing test';
}

/** The swtpms and temporary folders of a test file, all stopped and removed by cleanup(). */
export class SwtpmFixture {
  readonly started: Swtpm[] = [];
  readonly #dirs: string[] = [];
  readonly #prefix: string;

  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  /** A new empty folder under the system's temporary folder. */
  async freshDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), this.#prefix));
    this.#dirs.push(dir);
    return dir;
  }

  /** A swtpm on stateDir (a fresh one when absent). */
  async start(stateDir?: string, port?: number): Promise<Swtpm> {
    const tpm = await startSwtpm({ stateDir: stateDir ?? (await this.freshDir()), port });
    this.started.push(tpm);
    return tpm;
  }

  /** Stops every swtpm started here and removes every folder. */
  async cleanup(): Promise<void> {
    for (const tpm of this.started) await tpm.stop();
    for (const dir of this.#dirs) await rm(dir, { recursive: true, force: true });
  }
}

/** A server on a pair of ports that accepts connections and never answers: a hung TPM. */
export async function silentPair(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const listen = (port: number): Promise<Server> =>
    new Promise((resolve, reject) => {
      const server = createServer((socket) => {
        sockets.add(socket);
        socket.on('error', () => undefined);
      });
      server.once('error', reject);
      server.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(server));
    });
  for (;;) {
    const first = await listen(0);
    const address = first.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const second = await listen(port + 1).catch(() => null);
    if (second === null) {
      await new Promise((resolve) => first.close(resolve));
      continue;
    }
    return {
      port,
      close: async () => {
        for (const socket of sockets) socket.destroy();
        await Promise.all([first, second].map((s) => new Promise((resolve) => s.close(resolve))));
      },
    };
  }
}
