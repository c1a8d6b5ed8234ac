/**
 * The cryptographic floor of each trusted-app command of `bench chain`, measured in the same run:
 *
 * - the signatures and verifications the command makes, as the harness's metering provider sees
 *   them: the same lifecycle run once between two in-process secure elements whose keys work
 *   through the meter (secp256k1 signatures σ_att, σ_1, σ_2 and upload signatures; their checks,
 *   each a verification and a recovery of the key; the node's and the certificates' Ed25519
 *   signatures), recorded with their keys and messages and replayed bare;
 * - what the meter cannot see, counted here from the code each command runs (below, UNMETERED)
 *   and timed bare on the same primitives: the `ecrecover` of an ack, the derivation of a new
 *   account key, the address of a key (point decompression and Keccak-256), secp256k1 and Ed25519
 *   key checks, the SHA-256 of a certificate's key id, and the Keccak-256 of each EIP-712 record
 *   (a struct hash, the domain separator's three, the upload digest).
 *
 * The floor leaves out what is not cryptography: CBOR, codecs, the state's sealing and its commit
 * (the commit is measured apart, as the harness's persistence floor).
 */
import { hkdf, keccak256, randomBytes, sha256 } from '../../core/crypto/hash.ts';
import { ethereumAddress, recoverEthereumPublicKey } from '../../core/crypto/ethereum.ts';
import type { CryptoProvider } from '../../core/crypto/suite.ts';
import { throughput, type BenchHarness, type CryptoCounts, type Replay } from '../../sim/bench/plugin.ts';
import type { BenchIssuer } from './bench-issuer.ts';
import { AMOUNTS } from './bench-lifecycle.ts';
import { makeDevice } from './bench-parties.ts';
import type { Params, PaymentState } from './messages.ts';
import { paymentHash } from './typed-data.ts';

/** The commands whose floor is measured (the payer's unless named). */
export const FLOOR_COMMANDS = ['open', 'deposit', 'transfer', 'receive', 'pay', 'onchainUpdate', 'finalize', 'finalize (payee)', 'withdraw', 'logout', 'finalize (closed)', 'clean'] as const;
/** A command whose floor is measured. */
export type FloorCommand = (typeof FLOOR_COMMANDS)[number];

/** Primitives the metering provider does not see. */
export const UNMETERED_PRIMITIVES = ['ecrecover', 'derive', 'address', 'secpKeyCheck', 'edKeyCheck', 'sha256', 'keccak'] as const;
/** A primitive the meter does not see. */
export type UnmeteredPrimitive = (typeof UNMETERED_PRIMITIVES)[number];
type Counts = Partial<Record<UnmeteredPrimitive, number>>;

/**
 * What each command does beyond the metered signatures, from its code (trusted-app*.ts, tx-off.ts,
 * typed-data.ts, pki/chain.ts) in the states the lifecycle reaches. A signing input is
 * `0x1901 ‖ domainSeparator ‖ structHash`, and the domain separator is three Keccak-256 each time
 * (the name, the version, the whole); the suite hashes the signing input inside sign and verify
 * (counted with them). Checked once by counting the calls of each primitive while the lifecycle ran.
 */
export const UNMETERED: Readonly<Record<FloorCommand, Counts>> = {
  // The account key derived under a fresh seed (HKDF, the scalar, the public point); its address and the enclave's.
  open: { derive: 1, address: 2 },
  // The node's signature only (metered).
  deposit: {},
  // buildTxOff: the payer's and the enclave's addresses; stateHash, 3 for the domain, attestationOf, paymentHash, 3 for the domain.
  transfer: { address: 2, keccak: 9 },
  // paymentHash (answered before?); the certificate chain: 5 key ids (the anchor's twice, each link's, the leaf's), the root's and the intermediary's Ed25519 keys,
  // the enclave key and pk_1 checked on the curve; the enclave's and pk_1's addresses; stateHash + 3 and paymentHash + 3
  // for the two checks, attestationOf; buildAck: the payee's address, paymentHash, ackHash + 3.
  receive: { address: 3, secpKeyCheck: 2, edKeyCheck: 2, sha256: 5, keccak: 15 },
  // pendingFor: paymentHash of the one payment waiting; checkAck: paymentHash, ackHash + 3, ecrecover, the signer's address.
  pay: { ecrecover: 1, address: 1, keccak: 6 },
  // Three payment hashes, the items digest, the upload hash, 3 for the domain.
  onchainUpdate: { keccak: 8 },
  // applyStatement: the hash of each of the three payments held.
  finalize: { keccak: 3 },
  // The payee holds the payments as received, keyed by the ack's hash: no hashing.
  'finalize (payee)': {},
  withdraw: { address: 2, keccak: 9 },
  logout: { address: 2, keccak: 9 },
  'finalize (closed)': { keccak: 1 },
  clean: {},
};

/** The floor of one command. */
export interface CommandFloor {
  /** Signatures and verifications the meter counted. */
  readonly metered: CryptoCounts;
  /** The metered operations replayed, ms (the fastest replay: a floor is the least the work can take, and load only adds to a replay). */
  readonly meteredMs: number;
  readonly unmetered: Counts;
  /** The unmetered primitives at their bare times, ms. */
  readonly unmeteredMs: number;
  readonly totalMs: number;
}

/** The whole floor: per command, and the bare time of each unmetered primitive. */
export interface ChainFloor {
  readonly commands: Record<FloorCommand, CommandFloor>;
  readonly primitiveMs: Record<UnmeteredPrimitive, number>;
}

/** Times each unmetered primitive bare over `budgetMs` (the fastest quarter of it), on inputs of the sizes the trusted app hashes and checks. */
export function primitiveTimes(provider: CryptoProvider, budgetMs: number): Record<UnmeteredPrimitive, number> {
  const secp = provider.suites.secp256k1;
  const ed = provider.suites.ed25519;
  const secret = secp.generateSecretKey();
  const publicKey = secp.publicKey(secret);
  const message = randomBytes(66); // 0x1901 ‖ separator ‖ struct hash
  const signature = secp.sign(secret, message);
  const edKey = ed.publicKey(ed.generateSecretKey());
  const ikm = randomBytes(32);
  const record = randomBytes(160); // the domain's five words; a payment's nine are 288
  const keyIdInput = randomBytes(45); // CBOR of { suite, key }
  // The fastest of four windows: like a replay, a window the machine was busy in only gets slower.
  const msPer = (op: () => unknown) => Math.min(...[0, 1, 2, 3].map(() => 1000 / throughput(() => void op(), budgetMs / 4)));
  return {
    ecrecover: msPer(() => {
      if (recoverEthereumPublicKey(signature, message) === null) throw new Error('the floor signature did not recover');
    }),
    derive: msPer(() => secp.publicKey(secp.secretKeyFromSeed(hkdf({ ikm, info: 'tally/se/key/v1/secp256k1/chain/chain/account', length: 48 })))),
    address: msPer(() => ethereumAddress({ suite: 'secp256k1', key: publicKey })),
    secpKeyCheck: msPer(() => secp.isValidPublicKey(publicKey)),
    edKeyCheck: msPer(() => ed.isValidPublicKey(edKey)),
    sha256: msPer(() => sha256(keyIdInput)),
    keccak: msPer(() => keccak256(record)),
  };
}

/** Counts of one command, and its recorded operations. */
type Recorded = Record<FloorCommand, { counts: CryptoCounts; replay: Replay }>;

/**
 * Runs one lifecycle between two in-process secure elements over a metering provider (with the
 * node's receipts and statements made up: nothing goes to the chain), recording each command.
 * @throws Error when a command does not do what the lifecycle expects
 */
async function recordLifecycle(harness: BenchHarness, issuer: BenchIssuer, params: Params): Promise<Recorded> {
  const meter = harness.meter(['command']);
  const root = await harness.tempDir('chain-floor');
  const placement = { kind: 'in-process', provider: meter.provider } as const;
  const payer = await makeDevice(harness, issuer, params, 'payer (metered)', `${root}/payer`, placement);
  const payee = await makeDevice(harness, issuer, params, 'payee (metered)', `${root}/payee`, placement);
  const payeeAccount = (await payee.se.call('open', {})).account;
  const { chainId, contract } = params.body;
  let block = params.body.block;
  const statement = (account: Uint8Array, hashes: Uint8Array[], status: 'open' | 'closed' = 'open') =>
    issuer.statement({ chainId, contract, account, status, balance: 0n, payments: hashes.map((payment) => ({ payment, state: 'applied' as PaymentState, missing: 0n })), block: ++block, at: Date.now() });
  const receipt = (account: Uint8Array, index: number, amount: bigint) =>
    issuer.depositReceipt({ chainId, contract, account, index, amount, txHash: randomBytes(32), block: ++block, at: Date.now() });
  const recorded: Partial<Recorded> = {};
  const record = async <T>(name: FloorCommand, run: () => Promise<T>): Promise<T> => {
    let value: T | undefined;
    const { counts, replay } = await meter.measure(async () => {
      value = await run();
    });
    recorded[name] ??= { counts: { signs: counts.signs, verifies: counts.verifies }, replay };
    return value as T;
  };
  const cashOut = randomBytes(20);

  const { account } = await record('open', () => payer.se.call('open', {}));
  const first = receipt(account, 0, AMOUNTS.firstDeposit);
  await record('deposit', () => payer.se.call('deposit', { receipt: first }));
  const hashes: Uint8Array[] = [];
  for (let k = 0; k < 3; k++) {
    const { txOff } = await record('transfer', () => payer.se.call('transfer', { payee: payeeAccount, amount: AMOUNTS.payment, now: Date.now() }));
    const { ack, credited } = await record('receive', () => payee.se.call('receive', { txOff, now: Date.now() }));
    if (!credited) throw new Error('the metered payee refused a payment');
    await record('pay', () => payer.se.call('pay', { ack }));
    hashes.push(paymentHash(txOff.payment));
  }
  const upload = await record('onchainUpdate', () => payer.se.call('onchainUpdate', {}));
  if (upload.items.length !== 3) throw new Error(`the metered payer uploaded ${upload.items.length} items, 3 expected`);
  const [mine, theirs] = [statement(account, hashes), statement(payeeAccount, hashes)];
  await record('finalize', () => payer.se.call('finalize', { statement: mine }));
  await record('finalize (payee)', () => payee.se.call('finalize', { statement: theirs }));
  const { txOff: withdrawal } = await record('withdraw', () => payer.se.call('withdraw', { to: cashOut, amount: AMOUNTS.withdrawal, now: Date.now() }));
  await payer.se.call('finalize', { statement: statement(account, [paymentHash(withdrawal.payment)]) });
  await payer.se.call('deposit', { receipt: receipt(account, 1, AMOUNTS.recharge) });
  const closing = await record('logout', () => payer.se.call('logout', { to: cashOut, now: Date.now() }));
  const closingTx = closing.txOff;
  if (closingTx === undefined) throw new Error('the metered payer closed without a closing payment');
  const closed = statement(account, [paymentHash(closingTx.payment)], 'closed');
  await record('finalize (closed)', () => payer.se.call('finalize', { statement: closed }));
  await record('clean', () => payer.se.call('clean', {}));
  return recorded as Recorded;
}

/** Measures the floor of every command: counted in a metered lifecycle, replayed `iterations` times, plus the unmetered primitives timed over `budgetMs` each. */
export async function measureFloor(options: { harness: BenchHarness; issuer: BenchIssuer; params: Params; iterations: number; budgetMs: number }): Promise<ChainFloor> {
  const recorded = await recordLifecycle(options.harness, options.issuer, options.params);
  const primitiveMs = primitiveTimes(options.harness.provider, options.budgetMs);
  const commands = Object.fromEntries(
    FLOOR_COMMANDS.map((name) => {
      const { counts, replay } = recorded[name];
      const meteredMs = counts.signs + counts.verifies === 0 ? 0 : replay.fastestMs(options.iterations);
      const unmetered = UNMETERED[name];
      const unmeteredMs = UNMETERED_PRIMITIVES.reduce((sum, p) => sum + (unmetered[p] ?? 0) * primitiveMs[p], 0);
      return [name, { metered: counts, meteredMs, unmetered, unmeteredMs, totalMs: meteredMs + unmeteredMs }];
    }),
  ) as Record<FloorCommand, CommandFloor>;
  return { commands, primitiveMs };
}
