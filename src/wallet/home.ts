/**
 * Where wallets live: a home folder (`--home DIR`, else `$TALLY_HOME`, else `~/.tally`) holding
 * `oem/` (the software OEM's key, see factory.ts) and `wallets/NAME/`, one folder per wallet:
 *
 * | path | what |
 * |---|---|
 * | `wallet.json` | the app's data: user key, certificates, revocation list, received and sent payments, unfinished steps (0600) |
 * | `history.jsonl` | one line per event, oldest first |
 * | `se/` | the isolated secure element's master secret and sealed state (only the SE process reads it) |
 * | `counter` | the file-backed monotonic counter of that SE |
 * | `lock` | the pid of the process using the wallet |
 *
 * One process at a time uses a wallet: a second one gets WALLET_BUSY (two secure element hosts on one
 * sealed state would each see the other's commits as a rollback).
 */
import { open, readFile, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { TallyError } from '../core/errors.ts';
import { isFsError } from '../host/files.ts';

/** Names a wallet may have: a letter or digit, then up to 31 letters, digits, `-` or `_`. */
export const WALLET_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

/** The home folder from a flag, the environment, or the default. */
export function resolveHome(flag: string | undefined, env: Readonly<Record<string, string | undefined>> = process.env): string {
  return resolve(flag ?? env['TALLY_HOME'] ?? join(homedir(), '.tally'));
}

/** Checks a wallet name. @throws TallyError DECODE_FAILED for a name outside WALLET_NAME */
export function checkWalletName(name: string): string {
  if (!WALLET_NAME.test(name)) {
    throw new TallyError('DECODE_FAILED', `wallet name ${JSON.stringify(name)}: use 1 to 32 letters, digits, - or _, starting with a letter or digit`, {
      path: 'name',
      expected: 'a wallet name',
      got: JSON.stringify(name).slice(0, 40),
    });
  }
  return name;
}

/** The folders of one wallet. */
export interface WalletPaths {
  readonly dir: string;
  readonly file: string;
  readonly history: string;
  readonly se: string;
  readonly counter: string;
  readonly lock: string;
}

/** The paths of wallet `name` under `dir`. */
export function walletPaths(dir: string): WalletPaths {
  return { dir, file: join(dir, 'wallet.json'), history: join(dir, 'history.jsonl'), se: join(dir, 'se'), counter: join(dir, 'counter'), lock: join(dir, 'lock') };
}

/** The folder of wallet `name` in `home`. */
export function walletDir(home: string, name: string): string {
  return join(home, 'wallets', checkWalletName(name));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return isFsError(e, 'EPERM');
  }
}

/**
 * Takes the wallet's lock (a file holding this pid), taking over one left by a dead process.
 * @throws TallyError WALLET_BUSY while another live process holds it
 */
export async function lockWallet(paths: WalletPaths, name: string): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(paths.lock, 'wx', 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      return async () => {
        await rm(paths.lock, { force: true });
      };
    } catch (e) {
      if (!isFsError(e, 'EEXIST')) throw e;
      const pid = Number((await readFile(paths.lock, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
        throw new TallyError('WALLET_BUSY', `wallet ${name} is in use by process ${pid}; wait for it to finish`, { name, pid });
      }
      await rm(paths.lock, { force: true });
    }
  }
  throw new TallyError('WALLET_BUSY', `wallet ${name} is in use; wait for it to finish`, { name, pid: 0 });
}
