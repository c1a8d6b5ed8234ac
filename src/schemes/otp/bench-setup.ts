/**
 * What `bench otp` stands on, over the harness's issuer node (the OTP part served, PGlite): account
 * holders with the OTP trusted app in a secure element (an isolated child process, or in this
 * process) provisioned as a wallet provisions it (Init, the OEM's attestation, the device's
 * registration, CertInit, the bank's parameters); and the online steps through the node's routes:
 * blind withdrawals, exchange keys, deposits, the audit.
 */
import { fromBase64url, fromHex, toBase64url, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { randomBytes, sha256 } from '../../core/crypto/hash.ts';
import type { CryptoProvider } from '../../core/crypto/suite.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import type { SecureElement } from '../../secure-element/secure-element.ts';
import { pidOf, type BenchHarness, type BenchNode, type BenchOem, type BenchUser } from '../../sim/bench/plugin.ts';
import { exchangeKeyCodec } from './exchange-key.ts';
import { COINS_PER_MESSAGE_MAX, depositReceiptCodec, KEYS_PER_MESSAGE_MAX, paramsCodec, timeCodec, type ClassEntry, type Params } from './messages.ts';
import { OTP_FLOAT_ACCOUNT, otpNodePart } from './node.ts';
import { otpTrustedApp } from './trusted-app.ts';

/** The TA build the bench OEM attests and the bench node allows. */
const BENCH_MEASUREMENT = sha256(utf8('tally otp trusted app, bench build'));
/** Where the isolated host's child process finds the OTP trusted app. */
const OTP_APP_LOCATION = { module: new URL('./trusted-app.ts', import.meta.url).href, export: 'otpTrustedApp' };

/** An OTP secure element, isolated or in-process. */
export type OtpElement = SecureElement<typeof otpTrustedApp.commands>;

/** The node and what every party needs of it. */
export interface OtpWorld {
  readonly harness: BenchHarness;
  readonly node: BenchNode;
  readonly oem: BenchOem;
  readonly params: Params;
}

/** An account holder with an OTP secure element registered as its device. */
export interface Party extends BenchUser {
  readonly name: string;
  readonly se: OtpElement;
  /** The device's key id, as the node names it. */
  readonly device: string;
  /** The secure element's own process, for an isolated one (its CPU time is read from /proc). */
  readonly pid: number | undefined;
}

/** Where a party's secure element runs (`memory`: in this process, kept in memory, for many devices made ahead of a timed part; `dir` unused). */
export type Placement = { readonly kind: 'isolated' } | { readonly kind: 'in-process'; readonly provider: CryptoProvider } | { readonly kind: 'memory' };

/** Opens a node serving OTP and enrols the bench OEM; reads the bank's signed parameters. */
export async function openWorld(harness: BenchHarness): Promise<OtpWorld> {
  return worldOn(harness, await harness.openNode({ schemes: [otpNodePart] }));
}

/** The same on a node opened elsewhere (one serving OTP): enrols the bench OEM, reads the bank's parameters. */
export async function worldOn(harness: BenchHarness, node: BenchNode): Promise<OtpWorld> {
  const oem = await node.enrolOem('otp', BENCH_MEASUREMENT);
  return { harness, node, oem, params: await fetchParams(node) };
}

async function fetchParams(node: BenchNode): Promise<Params> {
  const body = (await node.call('operator', 'GET', '/v1/otp/params')) as { params: string };
  return paramsCodec.decode(decodeCbor(fromBase64url(body.params)), 'params');
}

/** The newest class of `denomination` (minor units) in the bank's parameters. @throws Error when there is none */
export function classOf(world: OtpWorld, denomination: bigint): ClassEntry {
  const entries = world.params.body.classes.filter((c) => c.coinClass.denomination === denomination.toString());
  const newest = entries.sort((a, b) => b.until - a.until)[0];
  if (newest === undefined) throw new Error(`the bank issues no class of ${denomination} minor units`);
  return newest;
}

/** A registered user whose OTP TA is started in `dir` and provisioned as a wallet does it. */
export async function makeParty(world: OtpWorld, name: string, dir: string, placement: Placement): Promise<Party> {
  const { harness, node } = world;
  const user = await node.registerUser();
  const se: OtpElement =
    placement.kind === 'isolated'
      ? await harness.startElement({ app: otpTrustedApp, location: OTP_APP_LOCATION, dir })
      : placement.kind === 'memory'
        ? await harness.startMemoryElement({ app: otpTrustedApp })
        : await harness.startInProcessElement({ app: otpTrustedApp, dir, provider: placement.provider });
  try {
    return await provision(world, user, name, se);
  } catch (e) {
    await se.close();
    throw e;
  }
}

/** Init, the OEM's attestation, the device's registration, CertInit, the bank's parameters. */
async function provision(world: OtpWorld, user: BenchUser, name: string, se: OtpElement): Promise<Party> {
  const { node } = world;
  const init = await se.call('init', { root: encodeCertificate(node.certificates.root), owner: fromHex(user.keyId) });
  const attestation = attestDevice(world.oem.signer, { sePublicKey: init.publicKey, model: 'Bench SE', taMeasurement: BENCH_MEASUREMENT });
  const registered = (await node.call(user.signer, 'POST', '/v1/devices', {
    publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) },
    scheme: 'otp',
    oem: world.oem.keyId,
    attestation: toBase64url(encodeAttestation(attestation)),
    proof: toBase64url(init.proof),
  })) as { keyId: string };
  await se.call('certInit', { intermediary: encodeCertificate(node.certificates.intermediary), issuerNode: encodeCertificate(node.certificates.issuerNode), now: Date.now() });
  await se.call('setParams', { params: world.params });
  return { ...user, name, se, device: registered.keyId, pid: pidOf(se) };
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Mints the value of `classes` to the party's account and withdraws one coin per class entry
 * through `POST /v1/otp/withdrawals`, COINS_PER_MESSAGE_MAX at a time (the TA blinds, the bank signs
 * blindly, the TA unblinds and checks). Answers the value withdrawn, minor units.
 */
export async function withdrawCoins(world: OtpWorld, party: Party, classes: readonly ClassEntry[]): Promise<bigint> {
  const value = classes.reduce((s, c) => s + BigInt(c.coinClass.denomination), 0n);
  await world.node.mint(party.account, value);
  let got = 0n;
  for (const part of chunks(classes, COINS_PER_MESSAGE_MAX)) {
    const requestId = randomBytes(16);
    const classIds = part.map((c) => c.coinClass.classId);
    const { blinded } = await party.se.call('prepareWithdrawal', { requestId, classIds });
    const body = (await world.node.call(party.signer, 'POST', '/v1/otp/withdrawals', {
      device: party.device,
      items: blinded.map((b, i) => ({ classId: toBase64url(classIds[i] as Uint8Array), blinded: toBase64url(b) })),
    })) as { signatures: string[] };
    got += (await party.se.call('finishWithdrawal', { requestId, signatures: body.signatures.map(fromBase64url) })).amount;
  }
  return got;
}

/** Tops the party's TA up to `count` fresh exchange keys through `POST /v1/otp/exchange-keys`, KEYS_PER_MESSAGE_MAX at a time. */
export async function topUpKeys(world: OtpWorld, party: Party, count: number): Promise<void> {
  for (;;) {
    const fresh = (await party.se.call('status', {})).keys.fresh;
    if (fresh >= count) return;
    const request = await party.se.call('keyRequest', { count: Math.min(KEYS_PER_MESSAGE_MAX, count - fresh) });
    if (request.body.publicKeys.length === 0) throw new Error(`${party.name}: the TA holds as many exchange keys as it can and ${count} are wanted`);
    const body = (await world.node.call(party.signer, 'POST', '/v1/otp/exchange-keys', { device: party.device, request: toBase64url(encodeCbor(request)) })) as { keys: string[]; time: string };
    await party.se.call('takeKeys', {
      keys: body.keys.map((k) => exchangeKeyCodec.decode(decodeCbor(fromBase64url(k)), 'exchange key')),
      time: timeCodec.decode(decodeCbor(fromBase64url(body.time)), 'time'),
    });
  }
}

/**
 * Deposits every coin the party's TA holds through `POST /v1/otp/deposits`, COINS_PER_MESSAGE_MAX
 * at a time, so the next payment starts from an empty purse. Answers the value credited, minor units.
 * @throws Error when the bank refuses a coin: every bench coin is good
 */
export async function depositAll(world: OtpWorld, party: Party): Promise<bigint> {
  const { classes } = await party.se.call('status', {});
  const classIds = classes.flatMap((c) => Array.from({ length: c.count }, () => c.classId));
  let credited = 0n;
  for (const part of chunks(classIds, COINS_PER_MESSAGE_MAX)) {
    const requestId = randomBytes(16);
    const { sealed } = await party.se.call('prepareDeposit', { requestId, classIds: part });
    const body = (await world.node.call(party.signer, 'POST', '/v1/otp/deposits', { device: party.device, coins: sealed.map((s) => toBase64url(encodeCbor(s))) })) as { receipt: string };
    const out = await party.se.call('finishDeposit', { requestId, receipt: depositReceiptCodec.decode(decodeCbor(fromBase64url(body.receipt)), 'receipt') });
    if (out.doubleSpent > 0 || out.refused > 0) throw new Error(`${party.name}: the bank refused ${out.doubleSpent + out.refused} of ${out.coins} coins deposited`);
    credited += out.credited;
  }
  return credited;
}

/** The value the party's TA holds, minor units. */
export async function heldValue(party: Party): Promise<bigint> {
  return (await party.se.call('status', {})).balance;
}

/**
 * Asserts the node's audit is balanced (journal, and the OTP float equal to the coins signed and
 * not yet deposited); answers what `float:otp` holds, minor units.
 * @throws Error when it is not
 */
export async function assertAuditBalanced(node: BenchNode): Promise<bigint> {
  return (await node.assertBalanced()).get(OTP_FLOAT_ACCOUNT) ?? 0n;
}
