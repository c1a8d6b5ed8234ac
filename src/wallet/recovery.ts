/**
 * Retiring a secure element that refuses to run (ROLLBACK_DETECTED, or its sealed state damaged):
 * a new one is provisioned in a staging folder (`recovering/`, kept there if a later part fails, so
 * that running the recovery again finishes it), then the old SE's folder and counter move to
 * `retired/<id>` and the new ones take their place. Nothing is deleted.
 */
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Codec } from '../core/codec.ts';
import { isTallyError, TallyError } from '../core/errors.ts';
import { ensurePrivateDir } from '../host/files.ts';
import { enrolledOem } from './create.ts';
import type { Oem } from './factory.ts';
import { decodeJsonFile } from './files.ts';
import { walletPaths, type WalletPaths } from './home.ts';
import type { NodeClient, NodeInfo } from './node-client.ts';

/** What the recovery needs of the open wallet. */
export interface RecoveryContext {
  readonly name: string;
  readonly paths: WalletPaths;
  readonly node: NodeClient;
  /** Runs a read-only SE command: resolves when the SE runs. */
  probe(): Promise<void>;
  /** Stops the SE process, if one runs, without a clean shutdown. */
  stop(): Promise<void>;
}

/** The staging folder of a recovery. */
function stagingOf(paths: WalletPaths): WalletPaths {
  return walletPaths(join(paths.dir, 'recovering'));
}

/**
 * Replaces the secure element `old` (see the file's comment): `provision` makes the new one;
 * `beforeProvision` and `beforeMove` run at those points (e.g. the node retires the old device).
 * @throws TallyError WALLET_UNSUPPORTED when the SE runs (nothing to recover) or no OEM is enrolled
 */
export async function replaceSecureElement<Fresh>(
  context: RecoveryContext,
  old: string,
  staged: Codec<Fresh>,
  provision: (context: { paths: WalletPaths; oem: Oem; info: NodeInfo }) => Promise<Fresh>,
  hooks: { beforeProvision?: () => Promise<void>; beforeMove?: () => Promise<void> } = {},
): Promise<{ fresh: Fresh; folder: string }> {
  const { paths } = context;
  const staging = stagingOf(paths);
  const stagedFile = join(staging.dir, 'device.json');
  let fresh = await readFile(stagedFile, 'utf8').then((t) => decodeJsonFile(stagedFile, 'staged device file', staged, t), () => null);
  if (fresh === null) {
    // Only a secure element that refuses to run is retired.
    try {
      await context.probe();
      throw new TallyError('WALLET_UNSUPPORTED', `the secure element of wallet ${context.name} runs; there is nothing to recover`, { name: context.name, reason: 'secure element runs' });
    } catch (e) {
      if (!isTallyError(e, 'ROLLBACK_DETECTED') && !isTallyError(e, 'STATE_CORRUPT')) throw e;
    }
    await context.stop();
    await hooks.beforeProvision?.();
    const info = await context.node.info();
    const oem = await enrolledOem(dirname(dirname(paths.dir)), context.node, context.name);
    await rm(staging.dir, { recursive: true, force: true });
    await ensurePrivateDir(staging.dir);
    fresh = await provision({ paths: staging, oem, info });
    await writeFile(stagedFile, JSON.stringify(fresh), { mode: 0o600 });
  }
  await hooks.beforeMove?.();
  const folder = join(paths.dir, 'retired', old);
  await ensurePrivateDir(folder);
  for (const [from, to] of [
    [paths.se, join(folder, 'se')],
    [paths.counter, join(folder, 'counter')],
    [staging.se, paths.se],
    [staging.counter, paths.counter],
  ] as const) {
    if ((await stat(from).catch(() => null)) !== null && (await stat(to).catch(() => null)) === null) await rename(from, to);
  }
  return { fresh, folder };
}

/** Removes the staging folder of a finished recovery. */
export async function recoveryDone(paths: WalletPaths): Promise<void> {
  await rm(stagingOf(paths).dir, { recursive: true, force: true });
}
