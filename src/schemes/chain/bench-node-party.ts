/**
 * The parties of chain-tee's common workload, on a real issuer node of the harness (chain-tee
 * served, its embedded anvil with the contracts the node deployed at start): an account holder
 * with the chain-tee trusted app in a secure element (isolated child process, or in this process
 * over a metering provider), provisioned as a wallet provisions it (wallet-base.ts
 * `provisionDevice`: Init, the OEM's attestation, the device's registration, CertInit, the enclave
 * on chain, the parameters, Algorithm 2's account) and an on-chain account of its own for tokens
 * and gas; funded as a wallet deposits (the bank's mint, `onchainDeposit`, the TEE crediting the
 * node's receipt); reconciled as a wallet syncs (the TEE's upload on chain, the node's statement
 * back); and conservation across the node's audit, the chain and the TEEs.
 */
import type { Address, Hex } from 'viem';
import { fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { isTallyError } from '../../core/errors.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { deviceAnswer, openChainClients, type ChainClients } from '../../wallet/plugin.ts';
import type { BenchHarness, BenchNode, BenchOem, BenchUser } from '../../sim/bench/plugin.ts';
import { CHAIN_APP_LOCATION, type ChainElement, type Placement } from './bench-parties.ts';
import { CHAIN_SCHEME, depositReceiptCodec, paramsCodec, statementCodec } from './messages.ts';
import { CHAIN_FLOAT_ACCOUNT } from './node-common.ts';
import { chainNodePart } from './node.ts';
import { chainTrustedApp } from './trusted-app.ts';
import { statementQuery, uploadItem } from './upload.ts';
import { cbor, chainInfoAnswer, depositsAnswer, enclaveAnswer, onChainKey, paramsAnswer, statementAnswer, type ChainInfo } from './wallet-base.ts';
import { accountOnChain, depositOnChain, reconcileOnChain, tokenBalance } from './wallet-chain.ts';

/** The TA build the bench OEM attests and the bench node allows. */
const BENCH_MEASUREMENT = sha256(utf8('tally chain-tee trusted app, bench build'));
/** Most upload rounds of one reconciliation (each up to UPLOAD_ITEMS_MAX payments), as a wallet's sync. */
const SYNC_ROUNDS_MAX = 16;

/** The node, its chain and its OEM. */
export interface ChainBenchNode {
  readonly node: BenchNode;
  readonly oem: BenchOem;
  readonly chain: ChainInfo;
}

/** An account holder with a provisioned chain-tee TEE and an on-chain account. */
export interface NodeParty {
  readonly name: string;
  readonly user: BenchUser;
  readonly se: ChainElement;
  /** The offline account (the TEE's). */
  readonly account: Address;
  /** The wallet's own on-chain account: tokens and gas. */
  readonly clients: ChainClients;
}

/** What one reconciliation did. */
export interface Synced {
  readonly uploads: number;
  readonly payments: number;
  readonly gasUsed: bigint;
}

const hex = (bytes: Uint8Array): Hex => `0x${toHex(bytes)}`;

/**
 * Opens a node of the harness serving chain-tee (its embedded anvil started, the contracts
 * deployed), enrols a bench OEM and reads the chain as a wallet does (GET /v1/info).
 */
export async function openChainNode(harness: BenchHarness): Promise<ChainBenchNode> {
  const node = await harness.openNode({ schemes: [chainNodePart] });
  const oem = await node.enrolOem(CHAIN_SCHEME, BENCH_MEASUREMENT);
  const { chain, schemes } = chainInfoAnswer.decode(await node.call('operator', 'GET', '/v1/info'), 'info');
  return { node, oem, chain: { rpcUrl: chain.rpcUrl, chainId: chain.chainId, embedded: chain.embedded, contracts: { contract: schemes.chain.contract as Address, token: schemes.chain.token as Address } } };
}

/** The node's signed parameters given to the TEE (its clock and revocations move forward); parameters older than the TEE's are no error. */
async function refreshParams(world: ChainBenchNode, se: ChainElement): Promise<void> {
  const answer = paramsAnswer.decode(await world.node.call('operator', 'GET', '/v1/chain/params'), 'params');
  await se.call('setParams', { params: cbor(paramsCodec, answer.params, 'params') }).catch((e: unknown) => {
    if (!(isTallyError(e, 'SE_REJECTED') && e.details.reason === 'CHAIN_STALE')) throw e;
  });
}

/**
 * A registered account holder whose chain-tee TEE runs as `placement` says in `dir`, provisioned
 * through the node, its enclave registered on chain, its account open, its on-chain account given gas.
 * Closes the secure element when a step fails.
 */
export async function makeNodeParty(harness: BenchHarness, world: ChainBenchNode, name: string, dir: string, placement: Placement): Promise<NodeParty> {
  const { node, oem } = world;
  const user = await node.registerUser();
  const se: ChainElement =
    placement.kind === 'isolated'
      ? await harness.startElement({ app: chainTrustedApp, location: CHAIN_APP_LOCATION, dir })
      : await harness.startInProcessElement({ app: chainTrustedApp, dir, provider: placement.provider });
  try {
    const init = await se.call('init', { root: encodeCertificate(node.certificates.root), owner: fromHex(user.keyId) });
    const attestation = attestDevice(oem.signer, { sePublicKey: init.publicKey, model: 'Bench SE', taMeasurement: BENCH_MEASUREMENT });
    const device = deviceAnswer.decode(
      await node.call(user.signer, 'POST', '/v1/devices', {
        publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) },
        scheme: CHAIN_SCHEME,
        oem: oem.keyId,
        attestation: toBase64url(encodeAttestation(attestation)),
        proof: toBase64url(init.proof),
      }),
      'device',
    );
    await se.call('certInit', { certificate: fromBase64url(device.certificate), intermediary: encodeCertificate(node.certificates.intermediary), issuerNode: encodeCertificate(node.certificates.issuerNode), now: Date.now() });
    enclaveAnswer.decode(await node.call(user.signer, 'POST', '/v1/chain/enclaves', { device: device.keyId }), 'enclave');
    await refreshParams(world, se);
    const opened = await se.call('open', {});
    const clients = await openChainClients({ rpcUrl: world.chain.rpcUrl, chainId: world.chain.chainId, privateKey: onChainKey(user.signer), embedded: world.chain.embedded });
    // The embedded chain's faucet: the wallet pays its own deposits' and uploads' gas.
    await node.call(user.signer, 'POST', '/v1/chain/gas', { address: clients.walletClient.account.address });
    return { name, user, se, account: hex(opened.account) as Address, clients };
  } catch (e) {
    await se.close();
    throw e;
  }
}

/**
 * Funds a party's offline account with `minor`: the bank mints it to the party's on-chain account
 * (POST /v1/chain/operator/mint, out of the issuance into `float:chain`), the party deposits it on
 * chain (onchainDeposit) and its TEE credits the node's receipt of the deposit.
 * @throws Error when the TEE does not hold what was deposited
 */
export async function fundParty(world: ChainBenchNode, party: NodeParty, minor: bigint): Promise<void> {
  const { node, chain } = world;
  await node.call('operator', 'POST', '/v1/chain/operator/mint', { to: party.clients.walletClient.account.address, amount: node.amount(minor) });
  const before = (await party.se.call('status', {})).balance;
  const transaction = await depositOnChain(party.clients, chain.contracts, party.account, minor);
  const { deposits } = depositsAnswer.decode(await node.call('operator', 'GET', `/v1/chain/deposits/${transaction}`), 'deposits');
  for (const d of deposits) await party.se.call('deposit', { receipt: cbor(depositReceiptCodec, d.receipt, 'receipt') });
  const after = (await party.se.call('status', {})).balance;
  if (after - before !== minor) throw new Error(`${party.name}'s TEE credited ${after - before} of the ${minor} deposited`);
}

/**
 * Reconciliation, as a wallet syncs: fresh parameters, then rounds of the TEE's upload
 * (onchainUpdate) sent to the contract from the party's on-chain account and the node's statement
 * of it (POST /v1/chain/statements) given to the TEE (finalize), until nothing is left.
 * @throws Error when the contract refused an upload (it froze the account): a bench TEE never signs one
 */
export async function syncParty(world: ChainBenchNode, party: NodeParty): Promise<Synced> {
  const { node, chain } = world;
  await refreshParams(world, party.se);
  let uploads = 0;
  let payments = 0;
  let gasUsed = 0n;
  for (let round = 0; round < SYNC_ROUNDS_MAX; round++) {
    const upload = await party.se.call('onchainUpdate', {});
    if (upload.items.length === 0) break;
    const done = await reconcileOnChain(party.clients, chain.contracts, { account: hex(upload.account) as Address, items: upload.items.map((i) => uploadItem(i.txOff, i.ack)), signature: hex(upload.signature) });
    if (!done.accepted) throw new Error(`the contract refused ${party.name}'s upload (${done.events.join(', ')})`);
    uploads++;
    payments += upload.items.length;
    gasUsed += done.gasUsed;
    const answer = statementAnswer.decode(await node.call('operator', 'POST', '/v1/chain/statements', { account: party.account, payments: upload.items.map((i) => statementQuery(i.txOff)) }), 'statement');
    const out = await party.se.call('finalize', { statement: cbor(statementCodec, answer.statement, 'statement') });
    if (out.freed === 0) break;
  }
  return { uploads, payments, gasUsed };
}

/**
 * Conservation across the node, the chain and the TEEs: the node's audit balanced (its chain part:
 * this bank's mints = its records = `float:chain`, the token's supply = what holders hold, the
 * contract's tokens = its accounts); each TEE holding what its account holds on chain, with nothing
 * waiting for the chain; and `float:chain` = what the TEEs hold + what the parties' on-chain
 * accounts still hold in tokens.
 * @throws Error when any of it does not hold
 */
export async function assertConserved(world: ChainBenchNode, parties: readonly NodeParty[]): Promise<void> {
  const float = (await world.node.assertBalanced()).get(CHAIN_FLOAT_ACCOUNT) ?? 0n;
  let held = 0n;
  for (const party of parties) {
    const status = await party.se.call('status', {});
    const onChain = await accountOnChain(party.clients, world.chain.contracts, party.account);
    if (status.balance !== onChain.balance) throw new Error(`${party.name}'s TEE holds ${status.balance}, its account on chain ${onChain.balance}`);
    if (status.pending !== 0n || status.outgoing + status.incoming > 0) throw new Error(`${party.name}'s TEE still holds ${status.outgoing + status.incoming} payment(s) for the chain (${status.pending} pending)`);
    held += status.balance + (await tokenBalance(party.clients, world.chain.contracts, party.clients.walletClient.account.address));
  }
  if (float !== held) throw new Error(`${CHAIN_FLOAT_ACCOUNT} holds ${float}, the TEEs and the parties' on-chain accounts ${held}`);
}
