/**
 * Fixtures for the chain-tee node's tests (not exported): a node with the chain-tee part on its
 * embedded anvil and an enrolled OEM, and clients, each a real trusted app in an in-process secure
 * element provisioned through the node (device registration, enclave on chain, parameters, the
 * account) with an on-chain account of its own; and the wallet's steps: mint, deposit, sync.
 */
import assert from 'node:assert/strict';
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from 'viem/accounts';
import { fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor } from '../../core/cbor.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret } from '../../core/crypto/suite.ts';
import type { testBackends } from '../../issuer/db/test-databases.ts';
import type { ChainClients } from '../../issuer/chain/client.ts';
import { setup, type TestUser } from '../../issuer/http/test-harness.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { InProcessHost } from '../../secure-element/host.ts';
import { MemoryCounter, MemoryStorage } from '../../secure-element/memory-fixtures.ts';
import { depositReceiptCodec, paramsCodec, statementCodec } from './messages.ts';
import { chainNodePartWith } from './node.ts';
import { chainTrustedApp, type ChainState } from './trusted-app.ts';
import { statementQuery, uploadItem } from './upload.ts';
import { depositOnChain, reconcileOnChain, type Contracts, type Reconciled } from './wallet-chain.ts';

/** The measurement the test OEM attests for chain-tee devices. */
export const CHAIN_TEST_MEASUREMENT = sha256(utf8('tally chain-tee trusted app, test build'));

type Backend = ReturnType<typeof testBackends>[number];
type ChainSe = InProcessHost<ChainState, typeof chainTrustedApp.commands>;

/** An account holder with a chain-tee device (the TA in memory) and an on-chain account. */
export interface ChainClient extends TestUser {
  readonly name: string;
  se: ChainSe;
  readonly deviceId: string;
  /** The offline account's address. */
  readonly account: `0x${string}`;
  readonly enclave: `0x${string}`;
  /** The wallet's own on-chain account (holds tokens, pays gas). */
  readonly eoa: PrivateKeyAccount;
  readonly clients: ChainClients;
  readonly storage: MemoryStorage;
  readonly counter: MemoryCounter;
}

const hex = (bytes: Uint8Array): `0x${string}` => `0x${toHex(bytes)}`;

/** A node with the chain-tee part (a one-hour settlement window unless said) and an enrolled OEM. */
export async function chainNode(backend: Backend, options: { settleWindowS?: number } = {}) {
  const h = await setup(backend, { schemes: [chainNodePartWith({ settleWindowS: options.settleWindowS ?? 3600 })] });
  const chain = h.node.services.chain;
  assert.ok(chain !== undefined, 'the node opened its chain');
  const oem = signerFromSecret(nobleEd25519, sha256(utf8('chain test oem')));
  const enrolled = await h.asOperator('POST', '/v1/operator/oems', { name: 'Test OEM', publicKey: { suite: 'ed25519', key: toBase64url(oem.publicKey.key) } });
  assert.equal(enrolled.status, 201, await enrolled.clone().text());
  const oemKeyId = ((await enrolled.json()) as { keyId: string }).keyId;
  const allowed = await h.asOperator('POST', '/v1/operator/measurements', { measurement: toHex(CHAIN_TEST_MEASUREMENT), scheme: 'chain', description: 'chain-tee test build' });
  assert.equal(allowed.status, 201, await allowed.clone().text());
  const info = (await (await h.send('GET', '/v1/info')).json()) as { schemes: { chain: { contract: `0x${string}`; token: `0x${string}` } } };
  const contracts: Contracts = { token: info.schemes.chain.token, contract: info.schemes.chain.contract };
  const identity = h.node.services.identity;
  const certs = { root: encodeCertificate(identity.root.certificate), intermediary: encodeCertificate(identity.intermediary.certificate), issuerNode: encodeCertificate(identity.issuerNode.certificate) };
  let seed = 60;
  let keys = 0;
  const key = () => ({ 'idempotency-key': `chain-${++keys}-${Date.now()}` });

  async function json<T>(res: Response, status = 200): Promise<T> {
    assert.equal(res.status, status, await res.clone().text());
    return (await res.json()) as T;
  }

  /** The node's signed parameters, given to a TA. */
  async function giveParams(se: ChainSe): Promise<void> {
    const { params } = await json<{ params: string }>(await h.send('GET', '/v1/chain/params'));
    await se.call('setParams', { params: paramsCodec.decode(decodeCbor(fromBase64url(params))) });
  }

  /** A registered account holder with a provisioned chain-tee device, its enclave on chain, an open account. */
  async function client(name: string): Promise<ChainClient> {
    const user = await h.register(++seed);
    const storage = new MemoryStorage();
    const counter = new MemoryCounter();
    const se: ChainSe = await InProcessHost.provision({ app: chainTrustedApp, storage, counter, provider: nodeProvider });
    const init = await se.call('init', { root: certs.root, owner: fromHex(user.keyId) });
    const registered = await json<{ keyId: string; certificate: string }>(
      await h.signed(user.user, 'POST', '/v1/devices', {
        publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) },
        scheme: 'chain',
        oem: oemKeyId,
        attestation: toBase64url(encodeAttestation(attestDevice(oem, { sePublicKey: init.publicKey, model: 'Test SE', taMeasurement: CHAIN_TEST_MEASUREMENT }))),
        proof: toBase64url(init.proof),
      }, key()),
      201,
    );
    assert.equal(registered.keyId, toHex(keyId(init.publicKey)));
    await se.call('certInit', { certificate: fromBase64url(registered.certificate), intermediary: certs.intermediary, issuerNode: certs.issuerNode, now: h.now() });
    await json(await h.signed(user.user, 'POST', '/v1/chain/enclaves', { device: registered.keyId }, key()));
    await giveParams(se);
    const opened = await se.call('open', {});
    const eoa = privateKeyToAccount(generatePrivateKey());
    await chain?.fundGas(eoa.address);
    return { ...user, name, se, deviceId: registered.keyId, account: hex(opened.account), enclave: hex(opened.enclave), eoa, clients: (chain as NonNullable<typeof chain>).clientsFor(eoa), storage, counter };
  }

  /** A second device with a copy of a client's storage and counter (a cloned wallet folder). */
  async function clone(c: ChainClient, name: string): Promise<ChainClient> {
    const storage = c.storage.clone();
    const counter = c.counter.clone();
    const se: ChainSe = await InProcessHost.open({ app: chainTrustedApp, storage, counter, provider: nodeProvider });
    return { ...c, name, se, storage, counter };
  }

  /** The bank mints `amount` (major units text) to the client's on-chain account. */
  async function mint(c: ChainClient, amount: string): Promise<void> {
    await json(await h.asOperator('POST', '/v1/chain/operator/mint', { to: c.eoa.address, amount }));
  }

  /** onchainDeposit: tokens into the offline account, then the TA credits against the node's receipt. */
  async function deposit(c: ChainClient, minor: bigint): Promise<void> {
    const transaction = await depositOnChain(c.clients, contracts, c.account, minor);
    const { deposits } = await json<{ deposits: { receipt: string }[] }>(await h.send('GET', `/v1/chain/deposits/${transaction}`));
    for (const d of deposits) await c.se.call('deposit', { receipt: depositReceiptCodec.decode(decodeCbor(fromBase64url(d.receipt))) });
  }

  /** Reconciliation: fresh parameters, the TA's upload on chain, the statement back to the TA (rounds until nothing is left or nothing settles). */
  async function sync(c: ChainClient): Promise<Reconciled[]> {
    await giveParams(c.se);
    const rounds: Reconciled[] = [];
    for (let round = 0; round < 8; round++) {
      const upload = await c.se.call('onchainUpdate', {});
      if (upload.items.length === 0) break;
      const done = await reconcileOnChain(c.clients, contracts, { account: hex(upload.account), items: upload.items.map((i) => uploadItem(i.txOff, i.ack)), signature: hex(upload.signature) });
      rounds.push(done);
      const { statement } = await json<{ statement: string }>(await h.send('POST', '/v1/chain/statements', { body: { account: c.account, payments: upload.items.map((i) => statementQuery(i.txOff)) } }));
      const finalized = await c.se.call('finalize', { statement: statementCodec.decode(decodeCbor(fromBase64url(statement))) });
      if (finalized.freed === 0) break;
    }
    return rounds;
  }

  /** An offline payment between two TAs (the session is tested on its own): transfer, receive, pay. */
  async function pay(from: ChainClient, to: ChainClient, minor: bigint) {
    const { txOff } = await from.se.call('transfer', { payee: fromHex(to.account.slice(2)), amount: minor, now: h.now() });
    const answer = await to.se.call('receive', { txOff, now: h.now() });
    return { txOff, answer };
  }

  /** The node's audit, the chain's part included; asserts it balanced. */
  async function assertBalanced(): Promise<{ balanced: boolean; schemes: { scheme: string; balanced: boolean; lines: string[] }[] }> {
    const audit = await json<{ balanced: boolean; schemes: { scheme: string; balanced: boolean; lines: string[] }[] }>(await h.send('GET', '/v1/audit', { headers: h.operator }));
    assert.equal(audit.balanced, true, JSON.stringify(audit.schemes));
    assert.equal(audit.schemes.find((s) => s.scheme === 'chain')?.balanced, true);
    return audit;
  }

  return { h, chain: chain as NonNullable<typeof chain>, contracts, client, clone, mint, deposit, sync, pay, giveParams, assertBalanced, json, key };
}
