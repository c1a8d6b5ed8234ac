/**
 * What `bench ops` stands on, over the harness's issuer node (OPS served, PGlite or PostgreSQL):
 * account holders with an OPS trusted app in an isolated secure element (child process, file
 * counter) registered with an OEM attestation and certified, or plain account holders without one;
 * deposits, syncs and the audit through the node's routes.
 */
import { fromBase64url, fromHex, toBase64url, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import type { CryptoProvider } from '../../core/crypto/suite.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import type { SecureElement } from '../../secure-element/secure-element.ts';
import type { BenchHarness, BenchNode, BenchOem, BenchUser } from '../../sim/bench/plugin.ts';
import { OPS_FLOAT_ACCOUNT } from './node.ts';
import { depositConfirmationCodec, syncAckCodec } from './messages.ts';
import { opsTrustedApp } from './trusted-app.ts';

/** The TA build the bench OEM attests and the bench node allows. */
const BENCH_MEASUREMENT = sha256(utf8('tally ops trusted app, bench build'));
/** Where the isolated host's child process finds the OPS trusted app. */
const OPS_APP_LOCATION = { module: new URL('./trusted-app.ts', import.meta.url).href, export: 'opsTrustedApp' };

/** An OPS secure element in its own process. */
export type OpsElement = SecureElement<typeof opsTrustedApp.commands>;

/** Enrols a bench OEM and allows the bench OPS TA build. */
export function enrolOem(node: BenchNode): Promise<BenchOem> {
  return node.enrolOem('ops', BENCH_MEASUREMENT);
}

/** A registered account holder with a certified OPS secure element. */
export interface BenchDevice extends BenchUser {
  readonly se: OpsElement;
  /** The TA's key id, as the node names the device. */
  readonly device: string;
  /** The TA's certificate (T.cert): what payers pay to. */
  readonly taCertificate: Uint8Array;
}

/**
 * An account holder with a TA: registers the user, starts an isolated secure element in `dir`
 * (file counter beside it), runs Init, registers the device with the OEM's attestation, runs CertInit.
 */
export async function deviceClient(harness: BenchHarness, node: BenchNode, oem: BenchOem, dir: string): Promise<BenchDevice> {
  const user = await node.registerUser();
  return certify(node, oem, user, await harness.startElement({ app: opsTrustedApp, location: OPS_APP_LOCATION, dir }));
}

/**
 * The same with the secure element in this process and in memory (no fsync per commit): for a
 * bench that makes many payments ahead of what it times.
 */
export async function memoryDeviceClient(harness: BenchHarness, node: BenchNode, oem: BenchOem): Promise<BenchDevice> {
  const user = await node.registerUser();
  return certify(node, oem, user, await harness.startMemoryElement({ app: opsTrustedApp }));
}

/** The same with the secure element in this process (file counter in `dir`), its keys signing through `provider` (a meter's, to count). */
export async function inProcessDeviceClient(harness: BenchHarness, node: BenchNode, oem: BenchOem, dir: string, provider: CryptoProvider): Promise<BenchDevice> {
  const user = await node.registerUser();
  return certify(node, oem, user, await harness.startInProcessElement({ app: opsTrustedApp, dir, provider }));
}

/** Runs Init in `se`, registers the device with the OEM's attestation, runs CertInit; closes `se` when any step fails. */
async function certify(node: BenchNode, oem: BenchOem, user: BenchUser, se: OpsElement): Promise<BenchDevice> {
  try {
    const { certificates } = node;
    const init = await se.call('init', { root: encodeCertificate(certificates.root), owner: fromHex(user.keyId) });
    const attestation = attestDevice(oem.signer, { sePublicKey: init.publicKey, model: 'Bench SE', taMeasurement: BENCH_MEASUREMENT });
    const registered = (await node.call(user.signer, 'POST', '/v1/devices', {
      publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) },
      scheme: 'ops',
      oem: oem.keyId,
      attestation: toBase64url(encodeAttestation(attestation)),
      proof: toBase64url(init.proof),
    })) as { keyId: string; certificate: string };
    const taCertificate = fromBase64url(registered.certificate);
    await se.call('certInit', { certificate: taCertificate, intermediary: encodeCertificate(certificates.intermediary), issuerNode: encodeCertificate(certificates.issuerNode) });
    return { ...user, se, device: registered.keyId, taCertificate };
  } catch (e) {
    await se.close();
    throw e;
  }
}

/** Mints `amount` to the holder's account and deposits it to its TA (Figure 5 end to end). */
export async function fundDevice(node: BenchNode, device: BenchDevice, amount: string): Promise<void> {
  await node.call('operator', 'POST', '/v1/operator/mint', { account: device.account, amount });
  const body = (await node.call(device.signer, 'POST', '/v1/ops/deposits', { device: device.device, amount })) as { confirmation: string };
  await device.se.call('deposit', { confirmation: depositConfirmationCodec.decode(decodeCbor(fromBase64url(body.confirmation)), 'confirmation') });
}

/**
 * Syncs a TA: its signed report to the node, the node's ack and revocation list back. This clears
 * what the TA keeps between syncs and moves its trusted time to the node's clock.
 * @throws Error when the node finds fraud: a bench device must never be suspected
 */
export async function syncDevice(node: BenchNode, device: BenchDevice): Promise<void> {
  const report = await device.se.call('report', {});
  const body = (await node.call(device.signer, 'POST', '/v1/ops/sync', { device: device.device, report: toBase64url(encodeCbor({ body: { ...report.body }, signature: report.signature })) })) as {
    ack: string;
    crl: string;
    fraud: unknown[];
  };
  if (body.fraud.length > 0) throw new Error(`sync of ${device.device} found fraud: ${JSON.stringify(body.fraud)}`);
  await device.se.call('syncAck', { ack: syncAckCodec.decode(decodeCbor(fromBase64url(body.ack)), 'ack'), crl: fromBase64url(body.crl) });
}

/**
 * Asserts the node's audit is balanced; answers what `float:ops` holds, in minor units.
 * @throws Error when the audit is not balanced
 */
export async function assertAuditBalanced(node: BenchNode): Promise<bigint> {
  return (await node.assertBalanced()).get(OPS_FLOAT_ACCOUNT) ?? 0n;
}

/** The balance of a holder's account, as the node formats it. */
export async function accountBalance(node: BenchNode, user: BenchUser): Promise<string> {
  return ((await node.call(user.signer, 'GET', `/v1/accounts/${user.account}`)) as { balance: string }).balance;
}
