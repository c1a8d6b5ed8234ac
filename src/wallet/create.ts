/**
 * Creating a wallet: built in a staging folder (its store, its secure element) and moved in place
 * whole, so that a crash or a refusal part-way leaves no wallet behind.
 */
import { rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { toBase64url, toHex } from '../core/bytes.ts';
import { randomBytes } from '../core/crypto/hash.ts';
import type { Signer } from '../core/crypto/suite.ts';
import { TallyError } from '../core/errors.ts';
import { ensurePrivateDir } from '../host/files.ts';
import { keyId } from '../pki/key-id.ts';
import { shellSlot } from './book.ts';
import { loadOem, type Oem } from './factory.ts';
import { checkWalletName, walletDir, walletPaths, type WalletPaths } from './home.ts';
import { NodeClient, type NodeInfo } from './node-client.ts';
import { userAnswer } from './node-answers.ts';
import { WalletStore } from './store/store.ts';
import type { WalletInit } from './wallet-data.ts';

/** What a scheme's wallet writes in a new wallet folder (see createWalletFolder). */
export interface NewWallet<Slot> {
  data: WalletInit<Slot>;
  /** The history line of the creation. */
  detail: string;
}

/** What createWalletFolder hands the scheme's part while the wallet is built in its staging folder. */
export interface CreateContext {
  readonly name: string;
  readonly home: string;
  readonly node: NodeClient;
  readonly info: NodeInfo;
  /** The staging folder's paths: the SE is provisioned there. */
  readonly paths: WalletPaths;
  /** The home's OEM, when `needsOem` (checked to be enrolled at the node). */
  readonly oem: Oem | null;
  progress(line: string): void;
  /** Registers `user` at the node as a new account holder (idempotent by its key): its account, key id and user certificate. */
  registerUser(user: Signer): Promise<RegisteredUser>;
}

/** An account holder the node registered. */
export interface RegisteredUser {
  readonly account: string;
  readonly keyId: string;
  /** The user certificate (base64url). */
  readonly certificate: string;
}

/** Registers `user` at the node (`POST /v1/users`), idempotent by its key. */
async function registerUser(node: NodeClient, user: Signer): Promise<RegisteredUser> {
  const answer = await node.signed(user, 'POST', '/v1/users', {
    answer: userAnswer,
    body: { publicKey: { suite: user.publicKey.suite, key: toBase64url(user.publicKey.key) } },
    idempotencyKey: `register-${toHex(keyId(user.publicKey))}`,
  });
  return answer.body;
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null;
}

/**
 * Builds a wallet in a staging folder and moves it in place whole: a crash or a refusal part-way
 * leaves no wallet behind (the staging folder is removed). `build` registers what it needs at the
 * node and returns the wallet's first data, written to a new store with the creation's history line.
 * @throws TallyError WALLET_EXISTS, WALLET_UNSUPPORTED (no OEM enrolled at this node, or a node that does not serve the scheme), NODE_*, what build throws
 */
export async function createWalletFolder<Slot>(
  options: { home: string; name: string; node: string; scheme: string; needsOem: boolean; progress?: ((line: string) => void) | undefined },
  build: (context: CreateContext) => Promise<NewWallet<Slot>>,
): Promise<void> {
  const name = checkWalletName(options.name);
  const final = walletPaths(walletDir(options.home, name));
  if ((await exists(final.store)) || (await exists(final.legacy))) {
    throw new TallyError('WALLET_EXISTS', `a wallet named ${name} already exists in ${dirname(dirname(final.dir))}`, { name });
  }
  const node = new NodeClient(options.node);
  const info = await node.info();
  const served = Object.keys(info.schemes ?? {});
  if (info.schemes !== undefined && !served.includes(options.scheme)) {
    // A node started with --schemes that leaves this one out: nothing is registered there.
    const reason = `the node at ${node.url} does not serve ${options.scheme} (it serves ${served.length === 0 ? 'no scheme' : served.join(', ')}): start it with ${options.scheme} among its --schemes, or use another node`;
    throw new TallyError('WALLET_UNSUPPORTED', `cannot create ${name}: ${reason}`, { name, reason });
  }
  const oem = options.needsOem ? await enrolledOem(options.home, node, name) : null;
  await ensurePrivateDir(join(options.home, 'wallets'));
  const staging = join(options.home, 'wallets', `.${name}.creating-${toHex(randomBytes(4))}`);
  await ensurePrivateDir(staging);
  const paths = walletPaths(staging);
  try {
    const made = await build({ name, home: options.home, node, info, paths, oem, progress: (line) => options.progress?.(line), registerUser: (user) => registerUser(node, user) });
    const { data } = made;
    const store = WalletStore.create(paths.store, {
      header: { name: data.name, scheme: data.scheme, node: data.node, currency: data.currency, createdAt: data.createdAt },
      certificates: data.certificates,
      crl: null,
      slot: shellSlot(data),
    });
    try {
      store.step((tx) => tx.history({ at: Date.now(), kind: 'created', detail: made.detail }));
    } finally {
      store.close();
    }
    await rename(staging, final.dir);
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
}

/** The home's OEM, which must be enrolled at the node. @throws TallyError WALLET_UNSUPPORTED */
export async function enrolledOem(home: string, node: NodeClient, name: string): Promise<Oem> {
  const oem = await loadOem(home);
  if (oem === null || !oem.isEnrolledAt(node.url)) {
    throw new TallyError(
      'WALLET_UNSUPPORTED',
      `no OEM for software secure elements is enrolled at ${node.url} from ${home}: run \`tally operator oem\` (operator token needed) first`,
      { name, reason: 'no OEM enrolled' },
    );
  }
  return oem;
}
