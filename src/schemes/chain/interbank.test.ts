/**
 * chain-tee across intermediaries (docs/chain.md "Several banks"): a central bank and three
 * intermediaries, each its own node over HTTP on loopback with its own PGlite database, settling
 * on one chain (bank A's embedded anvil) and one deployment, which A made and governs. B and C join
 * it, A admits them against their root-chained certificates; each mints against its reserve and
 * certifies its own customers' enclaves. A TEE account of A pays one of B offline (the payee's TEE
 * verifies A's chain to the root), both reconcile on the shared contract; a cloned TEE of A pays a
 * customer of B and one of A with one counter (the fork is proved and attributed on chain); C is
 * revoked by the root, and its enclaves are refused offline and on chain. Every bank's audit and
 * the central bank's balance at the end.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createTestClient, parseEther, type Address } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { fromBase64url, fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret, type Signer } from '../../core/crypto/suite.ts';
import { chainFor, publicClientFor, transportFor, walletClientFor, type ChainClients } from '../../issuer/chain/client.ts';
import { send, signed, Tiers, type Json, type TierBank } from '../../issuer/tier/test-tiers.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { decodeCertificate } from '../../pki/certificate.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { InProcessHost } from '../../secure-element/host.ts';
import { MemoryCounter, MemoryStorage } from '../../secure-element/memory-fixtures.ts';
import type { Scheme } from '../scheme.ts';
import { offlineAccountsAbi, tallyTokenAbi } from './contracts.generated.ts';
import { bankAddressBodyCodec, BANK_ADDRESS_TAG, depositReceiptCodec, paramsCodec, signed as signRecord, statementCodec, type TxOff } from './messages.ts';
import { CHAIN_TEST_MEASUREMENT } from './node-fixtures.ts';
import { chain as chainScheme } from './index.ts';
import { chainNodePartWith } from './node.ts';
import { chainTrustedApp, type ChainState } from './trusted-app.ts';
import { statementQuery, uploadItem } from './upload.ts';
import { depositOnChain, reconcileOnChain, type Contracts } from './wallet-chain.ts';
import { checkPayee } from './wallet-link.ts';

const hex = (bytes: Uint8Array): `0x${string}` => `0x${toHex(bytes)}`;
let seeds = 70;

/** The chain-tee part of a bank: its own deployment, or the one it joins. */
function chainPart(join_?: Address): Scheme {
  return { ...chainScheme, node: async () => chainNodePartWith({ settleWindowS: 3600, ...(join_ === undefined ? {} : { join: join_ }) }) };
}

let tiers: Tiers;
let bankA: TierBank;
let bankB: TierBank;
let bankC: TierBank;
let rpcUrl: string;
let chainId: number;
let testClient: ReturnType<typeof createTestClient>;
/** The deployment every bank settles on (A's). */
let contracts: Contracts;
const measurements = [{ scheme: 'chain', measurement: toHex(CHAIN_TEST_MEASUREMENT) }];

/** The chain address of a bank's node (its chain key). */
function chainAddress(bank: TierBank): Address {
  const address = bank.running.chain?.bankAddress;
  assert.ok(address !== undefined, `${bank.name} runs a chain client`);
  return address as Address;
}

/**
 * A bank that joins A's deployment on A's chain, with gas for its chain key: named to the scheme's
 * node part, or to the node as `tally node start --eth-rpc URL --chain-contract 0x…` does.
 */
async function joiningBank(name: string, how: 'scheme' | 'node'): Promise<TierBank> {
  const joining = how === 'scheme' ? { schemes: [chainPart(contracts.contract)] } : { chainContract: contracts.contract };
  const bank = await tiers.bank(name, { measurements, reserve: '500.00', ethRpc: rpcUrl, ...joining });
  await testClient.setBalance({ address: chainAddress(bank), value: parseEther('100') });
  return bank;
}

type Se = InProcessHost<ChainState, typeof chainTrustedApp.commands>;

/** A customer of a bank with a chain-tee TEE, its enclave registered on chain by that bank, an open account, and an on-chain account. */
interface Holder {
  readonly name: string;
  readonly bank: TierBank;
  readonly user: Signer;
  se: Se;
  readonly storage: MemoryStorage;
  readonly counter: MemoryCounter;
  readonly account: Address;
  readonly enclave: Address;
  readonly clients: ChainClients;
}

async function giveParams(bank: TierBank, se: Se): Promise<void> {
  const a = await send(bank.url, 'GET', '/v1/chain/params');
  assert.equal(a.status, 200, JSON.stringify(a.body));
  await se.call('setParams', { params: paramsCodec.decode(decodeCbor(fromBase64url(a.body['params'] as string))) });
}

async function holder(bank: TierBank, name: string): Promise<Holder> {
  const user = signerFromSecret(nobleEd25519, new Uint8Array(32).fill(++seeds));
  const reg = await signed(bank.url, user, 'POST', '/v1/users', { publicKey: { suite: 'ed25519', key: toBase64url(user.publicKey.key) } });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  const storage = new MemoryStorage();
  const counter = new MemoryCounter();
  const se: Se = await InProcessHost.provision({ app: chainTrustedApp, storage, counter, provider: nodeProvider });
  const init = await se.call('init', { root: bank.certificates.root, owner: fromHex(reg.body['keyId'] as string) });
  const device = await signed(bank.url, user, 'POST', '/v1/devices', {
    publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) },
    scheme: 'chain',
    oem: bank.oemKeyId,
    attestation: toBase64url(encodeAttestation(attestDevice(bank.oem, { sePublicKey: init.publicKey, model: 'Test SE', taMeasurement: CHAIN_TEST_MEASUREMENT }))),
    proof: toBase64url(init.proof),
  });
  assert.equal(device.status, 201, JSON.stringify(device.body));
  await se.call('certInit', { certificate: fromBase64url(device.body['certificate'] as string), intermediary: bank.certificates.intermediary, issuerNode: bank.certificates.issuerNode, now: Date.now() });
  const enclave = await signed(bank.url, user, 'POST', '/v1/chain/enclaves', { device: device.body['keyId'] });
  assert.equal(enclave.status, 200, JSON.stringify(enclave.body));
  await giveParams(bank, se);
  const opened = await se.call('open', {});
  const eoa = privateKeyToAccount(generatePrivateKey());
  await testClient.setBalance({ address: eoa.address, value: parseEther('10') });
  const chain = chainFor(chainId, rpcUrl, false);
  const clients = { publicClient: publicClientFor(rpcUrl, chain, 20), walletClient: walletClientFor(rpcUrl, chain, eoa, 20) };
  return { name, bank, user, se, storage, counter, account: hex(opened.account), enclave: hex(opened.enclave), clients };
}

/** The bank mints `amount` to the holder's on-chain account and the holder deposits it into its offline account. */
async function fund(h: Holder, amount: string, minor: bigint): Promise<void> {
  await h.bank.ok('POST', '/v1/chain/operator/mint', { to: h.clients.walletClient.account.address, amount });
  const transaction = await depositOnChain(h.clients, contracts, h.account, minor);
  const a = await send(h.bank.url, 'GET', `/v1/chain/deposits/${transaction}`);
  assert.equal(a.status, 200, JSON.stringify(a.body));
  for (const d of a.body['deposits'] as { receipt: string }[]) await h.se.call('deposit', { receipt: depositReceiptCodec.decode(decodeCbor(fromBase64url(d.receipt))) });
}

/** Reconciliation through the holder's own bank: fresh parameters, the upload on the shared contract, the statement back. */
async function sync(h: Holder): Promise<void> {
  await giveParams(h.bank, h.se);
  for (let round = 0; round < 8; round++) {
    const upload = await h.se.call('onchainUpdate', {});
    if (upload.items.length === 0) break;
    await reconcileOnChain(h.clients, contracts, { account: hex(upload.account), items: upload.items.map((i) => uploadItem(i.txOff, i.ack)), signature: hex(upload.signature) });
    const a = await send(h.bank.url, 'POST', '/v1/chain/statements', { body: { account: h.account, payments: upload.items.map((i) => statementQuery(i.txOff)) } });
    assert.equal(a.status, 200, JSON.stringify(a.body));
    const finalized = await h.se.call('finalize', { statement: statementCodec.decode(decodeCbor(fromBase64url(a.body['statement'] as string))) });
    if (finalized.freed === 0) break;
  }
}

/** An offline payment between two TEEs: the payer checks the payee's enclave as a wallet does, transfer, receive, pay (or abort). */
async function pay(from: Holder, to: Holder, minor: bigint): Promise<{ txOff: TxOff; credited: boolean }> {
  const session = new Uint8Array(randomBytes(64));
  const shown = await to.se.call('bind', { session });
  const { revoked, banks } = await from.se.call('revoked', {});
  checkPayee({ provider: nodeProvider, root: decodeCertificate(from.bank.certificates.root), intermediary: decodeCertificate(from.bank.certificates.intermediary), revoked: () => revoked, banks: () => banks, session, now: Date.now }, shown);
  const { txOff } = await from.se.call('transfer', { payee: fromHex(to.account.slice(2)), amount: minor, now: Date.now() });
  const answer = await to.se.call('receive', { txOff, now: Date.now() });
  await from.se.call(answer.ack.ok ? 'pay' : 'abort', { ack: answer.ack });
  return { txOff, credited: answer.credited };
}

async function onChain(account: Address): Promise<{ balance: bigint; status: number }> {
  const [balance, , status] = await publicClientFor(rpcUrl, chainFor(chainId, rpcUrl, false), 20).readContract({ address: contracts.contract, abi: offlineAccountsAbi, functionName: 'accountOf', args: [account] });
  return { balance, status };
}

async function read<T>(call: (client: ReturnType<typeof publicClientFor>) => Promise<T>): Promise<T> {
  return call(publicClientFor(rpcUrl, chainFor(chainId, rpcUrl, false), 20));
}

/** A joining bank's chain address admitted by the governor (A), from the record it signed. */
async function admit(bank: TierBank): Promise<Json> {
  const own = await send(bank.url, 'GET', '/v1/chain/bank');
  assert.equal(own.status, 200, JSON.stringify(own.body));
  return bankA.ok('POST', '/v1/chain/operator/intermediaries', { keyId: bank.keyId, record: own.body['record'] });
}

let alice: Holder;
let carol: Holder;
let bob: Holder;
let erin: Holder;

before(async () => {
  tiers = await Tiers.start({ schemes: [chainPart()], tag: 'chain' });
  bankA = await tiers.bank('bank-a', { measurements, reserve: '500.00' });
  const chain = bankA.running.chain;
  assert.ok(chain !== undefined && chain.embedded, 'bank A runs the chain');
  rpcUrl = chain.rpcUrl;
  chainId = chain.chainId;
  testClient = createTestClient({ mode: 'anvil', chain: chainFor(chainId, rpcUrl, true), transport: transportFor(rpcUrl) });
  const info = await send(bankA.url, 'GET', '/v1/info');
  const own = (info.body['schemes'] as Record<string, Contracts>)['chain'] as Contracts;
  contracts = { contract: own.contract, token: own.token };
  bankB = await joiningBank('bank-b', 'scheme');
  bankC = await joiningBank('bank-c', 'node');
});

after(async () => {
  await tiers?.stop();
});

describe('chain-tee across intermediaries, one shared deployment', () => {
  test('B and C join the deployment A made; A admits them only against their own signature and a certificate the root issued, B by its operator, C from its publication', async () => {
    for (const b of [bankB, bankC]) {
      const theirs = ((await send(b.url, 'GET', '/v1/info')).body['schemes'] as Record<string, Contracts & Json>)['chain'];
      assert.deepEqual({ contract: theirs?.contract, token: theirs?.token }, { contract: contracts.contract, token: contracts.token }, `${b.name} settles on A's contracts`);
    }
    const before = await send(bankB.url, 'GET', '/v1/chain/bank');
    assert.equal(before.body['admitted'], false);
    assert.equal(before.body['governor'], false);
    assert.equal((await send(bankA.url, 'GET', '/v1/chain/bank')).body['governor'], true);
    // Not admitted yet: B's mint is refused on chain, and its ledger keeps nothing of it.
    const early = await bankB.operator('POST', '/v1/chain/operator/mint', { to: chainAddress(bankB), amount: '1.00' });
    assert.ok(early.status >= 400, JSON.stringify(early.body));
    // A record signed by another key than B's intermediary key (here C's) over B's address.
    const forged = signRecord(bankAddressBodyCodec, bankC.signer, BANK_ADDRESS_TAG, { chainId: BigInt(chainId), contract: fromHex(contracts.contract.slice(2)), address: fromHex(chainAddress(bankB).slice(2)) });
    const refused = await bankA.operator('POST', '/v1/chain/operator/intermediaries', { keyId: bankB.keyId, record: toBase64url(encodeCbor(forged)) });
    assert.equal(refused.status, 401, JSON.stringify(refused.body));
    assert.equal((refused.body['error'] as Json)['code'], 'SIGNATURE_INVALID');
    const unknown = await bankA.operator('POST', '/v1/chain/operator/intermediaries', { keyId: 'ab'.repeat(32), record: before.body['record'] });
    assert.equal((unknown.body['error'] as Json)['code'], 'BANK_UNKNOWN');
    // Only the governor admits.
    const notGovernor = await bankB.operator('POST', '/v1/chain/operator/intermediaries', { keyId: bankC.keyId, record: (await send(bankC.url, 'GET', '/v1/chain/bank')).body['record'] });
    assert.equal(notGovernor.status, 403, JSON.stringify(notGovernor.body));
    await admit(bankB);
    assert.equal((await send(bankB.url, 'GET', '/v1/chain/bank')).body['admitted'], true);
    // C is admitted without an operator: its chain address, published through the central bank's
    // directory under its intermediary key, reaches A at A's sync, and A admits it at its next parameters.
    assert.equal((await send(bankC.url, 'GET', '/v1/chain/bank')).body['admitted'], false);
    await tiers.syncAll();
    assert.equal((await send(bankA.url, 'GET', '/v1/chain/params')).status, 200);
    assert.equal((await send(bankC.url, 'GET', '/v1/chain/bank')).body['admitted'], true);
    const minterB = await read((c) => c.readContract({ address: contracts.token, abi: tallyTokenAbi, functionName: 'minters', args: [chainAddress(bankB)] }));
    assert.equal(minterB, true);
    // A mint beyond the reserve is refused before anything reaches the chain.
    const tooMuch = await bankB.operator('POST', '/v1/chain/operator/mint', { to: chainAddress(bankB), amount: '501.00' });
    assert.equal((tooMuch.body['error'] as Json)['code'], 'INSUFFICIENT_FUNDS');
    alice = await holder(bankA, 'alice');
    carol = await holder(bankA, 'carol');
    bob = await holder(bankB, 'bob');
    erin = await holder(bankC, 'erin');
    await fund(alice, '50.00', 5000n);
    await fund(bob, '10.00', 1000n);
    await fund(erin, '20.00', 2000n);
    assert.equal(await tiers.reserveOf(bankA), '500.00');
    await tiers.settleAndAudit();
    // The tokens were put on chain from each bank's reserve: A's is now 50 in float:chain.
    const audit = await bankA.audit();
    assert.match(JSON.stringify(audit), /minted by this bank on chain 50\.00/);
  });

  test("an account of A pays an account of B offline; both reconcile on the shared chain, the money moves with no claim", async () => {
    const { credited } = await pay(alice, bob, 2000n);
    assert.equal(credited, true, "bob's TEE took a payer certified by bank A");
    assert.equal((await bob.se.call('status', {})).balance, 3000n, 'bob spends it offline at once');
    await sync(bob);
    await sync(alice);
    assert.equal((await onChain(alice.account)).balance, 3000n);
    assert.equal((await onChain(bob.account)).balance, 3000n);
    assert.equal((await alice.se.call('status', {})).balance, 3000n);
    assert.equal((await bob.se.call('status', {})).balance, 3000n);
    // And back: bob (B) pays carol (A), the payer checking a payee of another bank too.
    assert.equal((await pay(bob, carol, 500n)).credited, true);
    await sync(carol);
    await sync(bob);
    assert.equal((await onChain(carol.account)).balance, 500n);
    assert.equal((await onChain(bob.account)).balance, 2500n);
    // Settled on chain: no reserve moved, no claim at the central bank, every audit balances.
    assert.equal(await tiers.reserveOf(bankA), '500.00');
    assert.equal(await tiers.reserveOf(bankB), '500.00');
    await tiers.settleAndAudit();
  });

  test("a cloned TEE of A double-spends across banks: the fork is proved on chain, its payer frozen and named", async () => {
    const clone: Holder = { ...alice, name: 'alice (clone)', storage: alice.storage.clone(), counter: alice.counter.clone() };
    clone.se = await InProcessHost.open({ app: chainTrustedApp, storage: clone.storage, counter: clone.counter, provider: nodeProvider });
    const first = await pay(alice, carol, 2000n);
    const second = await pay(clone, bob, 2500n);
    assert.equal(first.credited && second.credited, true, 'offline, each payee takes its payment');
    assert.equal(first.txOff.payment.counter, second.txOff.payment.counter, 'one counter, two payments');
    await sync(carol);
    await sync(bob);
    const events = await read((c) => c.getContractEvents({ address: contracts.contract, abi: offlineAccountsAbi, eventName: 'ForkProved', args: { payer: alice.account }, fromBlock: 0n }));
    assert.equal(events.length, 1, 'the fork is on chain');
    assert.equal(events[0]?.args.counter, first.txOff.payment.counter);
    const frozen = await onChain(alice.account);
    assert.equal(frozen.status, 2, "alice's account is frozen");
    // Alice held 3000 on chain: carol's 2000 first, then bob's 2500 honoured up to the 1000 left.
    assert.equal((await onChain(carol.account)).balance, 2500n);
    assert.equal((await onChain(bob.account)).balance, 3500n);
    assert.equal(frozen.balance, 0n);
    const shortfalls = await read((c) => c.getContractEvents({ address: contracts.contract, abi: offlineAccountsAbi, eventName: 'Shortfall', args: { payer: alice.account }, fromBlock: 0n }));
    assert.equal(shortfalls[0]?.args.missing, 1500n);
    assert.equal((await bob.se.call('status', {})).balance, 3500n, "bob's TEE takes back what the chain did not honour");
    await tiers.settleAndAudit();
  });

  test("a revoked bank's enclaves are refused: offline by the payee's TEE, on chain by the contract", async () => {
    // Before: erin (C) pays bob (B).
    assert.equal((await pay(erin, bob, 100n)).credited, true);
    await tiers.cb.ok('POST', '/v1/cb/operator/revoke', { intermediary: bankC.keyId, reason: 'licence withdrawn' });
    for (const b of [bankA, bankB, bankC]) await b.sync();
    // The governor revokes C on chain at its next parameters.
    await giveParams(bankA, carol.se);
    const addressC = chainAddress(bankC);
    assert.equal(await read((c) => c.readContract({ address: contracts.contract, abi: offlineAccountsAbi, functionName: 'intermediaryState', args: [addressC] })), 2);
    assert.equal(await read((c) => c.readContract({ address: contracts.contract, abi: offlineAccountsAbi, functionName: 'registered', args: [erin.enclave] })), false);
    assert.equal(await read((c) => c.readContract({ address: contracts.token, abi: tallyTokenAbi, functionName: 'minters', args: [addressC] })), false);
    // Offline: B's parameters no longer carry C's certificate; bob's TEE answers ack_fail.
    await giveParams(bankB, bob.se);
    const balance = (await bob.se.call('status', {})).balance;
    const refused = await pay(erin, bob, 100n);
    assert.equal(refused.credited, false, "a payer certified by a revoked bank is refused");
    assert.equal((await bob.se.call('status', {})).balance, balance);
    // And a payer of B checking a payee of C refuses before its TEE signs.
    const session = new Uint8Array(randomBytes(64));
    const shown = await erin.se.call('bind', { session });
    const { revoked, banks } = await bob.se.call('revoked', {});
    assert.throws(() => checkPayee({ provider: nodeProvider, root: decodeCertificate(bankB.certificates.root), intermediary: decodeCertificate(bankB.certificates.intermediary), revoked: () => revoked, banks: () => banks, session, now: Date.now }, shown));
    // C can no longer register an enclave nor mint.
    const mint = await bankC.operator('POST', '/v1/chain/operator/mint', { to: addressC, amount: '1.00' });
    assert.ok(mint.status >= 400, JSON.stringify(mint.body));
    // On chain: bob's upload of erin's earlier payment (acknowledged before the revocation) is
    // honoured from erin's deposit, and erin's account is frozen for its revoked enclave.
    await sync(bob);
    assert.equal((await onChain(erin.account)).status, 2);
    assert.equal((await onChain(bob.account)).balance, 3600n);
    await tiers.settleAndAudit();
  });
});
