import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestClient, http, parseEther, type Address } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { isTallyError } from '../../core/errors.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { decodeKeyFile, writeKeyFile } from '../identity/keystore.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { CHAIN_DIR, startAnvil, type Anvil } from './anvil.ts';
import { bankChainKeyFile } from './bank-key.ts';
import { BANK_GAS_WEI, FAUCET_WEI_DEFAULT, FAUCET_WEI_MAX, openChainService, type OpenChainServiceOptions } from './service.ts';
import { BOX_MAX, boxContract, boxValue, canListProcesses, chainProcessesOf, deployBox, PASSPHRASE, setBox, withIdentity } from './test-fixtures.ts';

let base = '';
let n = 0;
const fresh = () => join(base, `data-${++n}`);
const toClose: { close(): Promise<void> }[] = [];

async function open(dataDir: string, more: Partial<OpenChainServiceOptions> = {}) {
  const opened = await openChainService({ dataDir, passphrase: PASSPHRASE, provider: nodeProvider, ...more });
  toClose.push(opened.service);
  return opened;
}

/** A port nothing listens on (one just let go of). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  const port = (server.address() as AddressInfo).port;
  await new Promise((closed) => server.close(closed));
  return port;
}

async function missing(path: string): Promise<boolean> {
  return stat(path).then(
    () => false,
    () => true,
  );
}

describe('the chain service', () => {
  let procfs = false;
  /** A separately started anvil: the "other" endpoint of --eth-rpc. */
  let other: Anvil;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'tally-chain-'));
    procfs = await canListProcesses();
    boxContract();
    other = await startAnvil({ dataDir: join(base, 'other') });
  });
  after(async () => {
    for (const service of toClose) await service.close();
    await other.stop();
    await rm(base, { recursive: true, force: true });
  });

  it("keeps the bank's chain key with the node's keys: the same address at every start, funded for gas on the embedded chain", async () => {
    const dataDir = fresh();
    await withIdentity(dataDir);
    const file = bankChainKeyFile(dataDir);
    assert.equal((await stat(file)).mode & 0o777, 0o600, 'made with the identity, sealed like its other keys');
    const first = await open(dataDir);
    assert.deepEqual(first.warnings, []);
    const chain = first.service;
    assert.equal(chain.embedded, true);
    assert.equal(chain.chainId, 31337);
    assert.match(chain.bankAddress, /^0x[0-9a-fA-F]{40}$/);
    assert.equal(await chain.publicClient.getBalance({ address: chain.bankAddress }), BANK_GAS_WEI);
    await chain.close();
    const second = (await open(dataDir)).service;
    assert.equal(second.bankAddress, chain.bankAddress);
    assert.equal(second.bankClient.account.address, chain.bankAddress, 'the bank signs as that address');
    await second.close();
    await assert.rejects(open(dataDir, { passphrase: 'not the passphrase' }), { code: 'AEAD_FAILED' });
    if (procfs) assert.deepEqual(await chainProcessesOf(dataDir), [], 'a wrong passphrase starts no anvil');
  });

  it('gives a data folder made before chain keys a key at its first chain start, and the same one after', async () => {
    const dataDir = fresh();
    await withIdentity(dataDir);
    await unlink(bankChainKeyFile(dataDir));
    const first = await open(dataDir);
    assert.equal(first.warnings.length, 1);
    assert.match(first.warnings[0] as string, new RegExp(`made the central bank's chain key .*chain\\.key \\(address ${first.service.bankAddress}\\)`));
    await first.service.close();
    const second = await open(dataDir);
    assert.deepEqual(second.warnings, []);
    assert.equal(second.service.bankAddress, first.service.bankAddress);
    await second.service.close();
  });

  it('refuses a chain key file that was altered, or that holds a key of another suite, and starts no anvil', async () => {
    const dataDir = fresh();
    await withIdentity(dataDir);
    const file = bankChainKeyFile(dataDir);
    const sealed = await readFile(file);
    const decoded = decodeKeyFile(sealed);
    const box = Uint8Array.from(decoded.box);
    box[box.length - 1] = (box[box.length - 1] as number) ^ 0x01;
    await writeFile(file, encodeCbor({ ...decoded, kdf: { ...decoded.kdf }, box }));
    await assert.rejects(open(dataDir), { code: 'STATE_CORRUPT', message: /was altered/ });
    const ed25519 = nodeProvider.suites.ed25519;
    await writeKeyFile(file, { suite: ed25519, secretKey: ed25519.generateSecretKey() }, PASSPHRASE);
    await assert.rejects(open(dataDir), (e: unknown) => {
      assert.ok(isTallyError(e, 'KEY_INVALID'), String(e));
      assert.match(e.message, /holds a ed25519 key; the central bank's chain account needs secp256k1/);
      return true;
    });
    assert.equal(await missing(join(dataDir, CHAIN_DIR)), true, 'no anvil was started');
    await writeFile(file, sealed);
    const restored = await open(dataDir);
    await restored.service.close();
  });

  it('deploys and calls contracts as the bank; a call that would revert is refused with its custom error and sends nothing', async () => {
    const dataDir = fresh();
    await withIdentity(dataDir);
    const chain = (await open(dataDir)).service;
    const box = await deployBox(chain);
    await setBox(chain, box, 5n);
    const nonce = await chain.publicClient.getTransactionCount({ address: chain.bankAddress });
    await assert.rejects(setBox(chain, box, BOX_MAX + 1n), (e: unknown) => {
      assert.ok(isTallyError(e, 'CHAIN_REVERTED'), String(e));
      assert.equal(e.details.reason, `TooBig(${BOX_MAX + 1n}, ${BOX_MAX})`);
      assert.doesNotMatch(e.message, /\n/);
      return true;
    });
    assert.equal(await chain.publicClient.getTransactionCount({ address: chain.bankAddress }), nonce, 'nothing was sent');
    assert.equal(await boxValue(chain, box), 5n);
    // The bank's transactions sent at once each take their own nonce.
    await Promise.all([11n, 12n, 13n, 14n, 15n].map((value) => setBox(chain, box, value)));
    assert.equal(await chain.publicClient.getTransactionCount({ address: chain.bankAddress }), nonce + 5);
    assert.ok([11n, 12n, 13n, 14n, 15n].includes(await boxValue(chain, box)));
    await chain.close();
  });

  it("gives gas from the embedded chain's faucet, within its limits", async () => {
    const dataDir = fresh();
    await withIdentity(dataDir);
    const chain = (await open(dataDir)).service;
    const wallet = privateKeyToAccount(generatePrivateKey());
    assert.equal(await chain.fundGas(wallet.address), FAUCET_WEI_DEFAULT);
    assert.equal(await chain.publicClient.getBalance({ address: wallet.address }), FAUCET_WEI_DEFAULT);
    assert.equal(await chain.fundGas(wallet.address, parseEther('1')), FAUCET_WEI_DEFAULT, 'an account that has enough keeps what it has');
    assert.equal(await chain.fundGas(wallet.address, parseEther('20')), parseEther('20'));
    await assert.rejects(chain.fundGas(wallet.address, FAUCET_WEI_MAX + 1n), RangeError);
    await assert.rejects(chain.fundGas(wallet.address, 0n), RangeError);
    await assert.rejects(chain.fundGas('0x1234' as Address), RangeError);
    // The wallet can now pay for its own transaction.
    const box = await deployBox(chain);
    const own = chain.clientsFor(wallet);
    const hash = await own.walletClient.writeContract({ address: box, abi: boxContract().abi, functionName: 'set', args: [99n] });
    assert.equal((await chain.publicClient.waitForTransactionReceipt({ hash })).status, 'success');
    assert.equal(await boxValue(chain, box), 99n);
    await chain.close();
  });

  it('uses another endpoint when given one: no anvil of its own, the chain id read from it, gas warned about and no faucet', async () => {
    const dataDir = fresh();
    await withIdentity(dataDir);
    const opened = await open(dataDir, { rpcUrl: other.rpcUrl });
    const chain = opened.service;
    assert.equal(chain.embedded, false);
    assert.equal(chain.rpcUrl, other.rpcUrl);
    assert.equal(chain.chainId, 31337);
    assert.equal(await missing(join(dataDir, CHAIN_DIR)), true, 'no chain folder');
    if (procfs) assert.deepEqual(await chainProcessesOf(dataDir), [], 'no anvil of its own');
    assert.equal(opened.warnings.length, 1);
    assert.match(opened.warnings[0] as string, new RegExp(`the central bank's chain account ${chain.bankAddress} has no ETH on http://127\\.0\\.0\\.1:${other.port} \\(chain 31337\\)`));
    await assert.rejects(chain.fundGas(chain.bankAddress), (e: unknown) => {
      assert.ok(isTallyError(e, 'CHAIN_FAUCET_REFUSED'), String(e));
      assert.match(e.message, /serves only the node's embedded dev chain/);
      return true;
    });
    await assert.rejects(deployBox(chain), (e: unknown) => {
      assert.ok(isTallyError(e, 'CHAIN_NO_GAS'), String(e));
      assert.ok(e.message.includes(chain.bankAddress), e.message);
      return true;
    });
    // Whoever runs that node funds the bank; then it deploys there.
    await createTestClient({ mode: 'anvil', transport: http(other.rpcUrl) }).setBalance({ address: chain.bankAddress, value: parseEther('1') });
    const box = await deployBox(chain);
    assert.ok((await chain.publicClient.getCode({ address: box })) !== undefined, 'deployed on the other node');
    await chain.close();
    assert.equal(other.exit, null, "closing the service leaves the other node's chain running");
  });

  it('fails at once, in one line and without credentials, when the endpoint does not answer', async () => {
    const dataDir = fresh();
    await withIdentity(dataDir);
    const port = await closedPort();
    const started = Date.now();
    await assert.rejects(open(dataDir, { rpcUrl: `http://tally:secret@127.0.0.1:${port}/rpc?key=hidden` }), (e: unknown) => {
      assert.ok(isTallyError(e, 'CHAIN_UNREACHABLE'), String(e));
      assert.equal(e.message, `cannot reach the Ethereum JSON-RPC endpoint http://127.0.0.1:${port}/rpc (connection refused): is the node running, and is the URL right?`);
      assert.deepEqual(e.details, { url: `http://127.0.0.1:${port}/rpc`, reason: 'connection refused' });
      return true;
    });
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    await assert.rejects(open(dataDir, { rpcUrl: 'ws://127.0.0.1:8546' }), { code: 'CHAIN_UNREACHABLE', message: /uses ws:; the node speaks JSON-RPC over http: or https:/ });
    await assert.rejects(open(dataDir, { rpcUrl: 'not a url' }), { code: 'CHAIN_UNREACHABLE', message: /is not a URL/ });
    assert.equal(await missing(join(dataDir, CHAIN_DIR)), true);
  });
});
