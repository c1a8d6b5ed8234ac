/**
 * Fixtures for OPS tests (not exported): an issuer node with the OPS module, an enrolled OEM, and
 * parties: a client with a TA (an in-process secure element in a temporary folder, registered
 * with its OEM attestation and certified) or a client without one.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { sha256 } from '../../core/crypto/hash.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret, type Signer } from '../../core/crypto/suite.ts';
import { deriveDeviceKeys } from '../../secure-element/sealing.ts';
import type { testBackends } from '../../issuer/db/test-databases.ts';
import { setup, type Harness, type TestUser } from '../../issuer/http/test-harness.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import type { RevocationChecker } from '../../pki/revocation.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { FileCounter } from '../../secure-element/counter-file.ts';
import { InProcessHost } from '../../secure-element/host.ts';
import { IsolatedHost, type AppLocation } from '../../secure-element/host-isolated.ts';
import type { CrashPoint, SecureElement } from '../../secure-element/secure-element.ts';
import { FileStorage } from '../../secure-element/storage-file.ts';
import { OPS_FLOAT_ACCOUNT, opsNodePart } from './node.ts';
import { depositConfirmationCodec, encodePayment, syncAckCodec, syncReportBodyWire, type DepositConfirmation, type Payment, type SyncReport } from './messages.ts';
import { verifyPayment } from './pay-verify.ts';
import { opsTrustedApp, TA_KEY_LABEL, type OpsState } from './trusted-app.ts';

/** The measurement the test OEM attests and the node allows. */
export const TEST_MEASUREMENT = sha256(utf8('tally ops trusted app, test build'));

type Backend = ReturnType<typeof testBackends>[number];
/** An OPS secure element. */
export type OpsSe = InProcessHost<unknown, typeof opsTrustedApp.commands>;
/** The OPS trusted app's commands. */
export type OpsCommands = typeof opsTrustedApp.commands;
/** An OPS secure element on any host (in-process or isolated). */
export type AnyOpsSe = SecureElement<OpsCommands>;
/** An OPS secure element in a child process. */
export type OpsIsolatedSe = IsolatedHost<OpsState, OpsCommands>;
/** Where a child process finds the OPS trusted app. */
export const OPS_APP_LOCATION: AppLocation = { module: new URL('./trusted-app.ts', import.meta.url).href, export: 'opsTrustedApp' };
/** A party holding an OPS device, on any host. */
export interface OpsDeviceParty {
  readonly user: Signer;
  readonly device: string;
  readonly se: AnyOpsSe;
}
/** What the conservation check needs of a TA holder. */
export interface TaHolder {
  readonly se: AnyOpsSe;
}
/** Where a client's SE runs, and the crash hook of an in-process one. */
export interface DeviceClientOptions {
  /** Called at each crash point of an in-process SE's commits (throw SimulatedCrash to cut one). */
  onCrashPoint?: ((point: CrashPoint) => void) | undefined;
}

/** A node with OPS and an enrolled OEM. */
export async function opsNode(backend: Backend, options: { settle?: { natsUrl: string; shards: number; ackWaitMs?: number } | undefined } = {}) {
  const h = await setup(backend, { schemes: [opsNodePart], settle: options.settle });
  const oem = signerFromSecret(nobleEd25519, sha256(utf8('test oem')));
  const enrolled = await h.asOperator('POST', '/v1/operator/oems', { name: 'Test OEM', publicKey: { suite: 'ed25519', key: toBase64url(oem.publicKey.key) } });
  assert.equal(enrolled.status, 201, await enrolled.clone().text());
  const oemKeyId = ((await enrolled.json()) as { keyId: string }).keyId;
  const allowed = await h.asOperator('POST', '/v1/operator/measurements', { measurement: toHex(TEST_MEASUREMENT), scheme: 'ops', description: 'test build' });
  assert.equal(allowed.status, 201);
  const dirs: string[] = [];
  let seed = 150;
  let keys = 0;
  const key = () => ({ 'idempotency-key': `ops-${++keys}-${Date.now()}` });
  const { identity } = h.node.services;

  async function openSe(dir: string, provision: boolean, extra: DeviceClientOptions = {}): Promise<OpsSe> {
    const options = {
      app: opsTrustedApp,
      storage: new FileStorage(join(dir, 'se')),
      counter: new FileCounter(join(dir, 'counter')),
      provider: nodeProvider,
      ...(extra.onCrashPoint === undefined ? {} : { onCrashPoint: extra.onCrashPoint }),
    };
    return (provision ? InProcessHost.provision(options) : InProcessHost.open(options)) as Promise<OpsSe>;
  }

  /** The same secure element folder as `openSe`, run in a child process (IsolatedHost, file counter). */
  function startIsolatedSe(dir: string, provision: boolean): Promise<OpsIsolatedSe> {
    return IsolatedHost.start({ app: opsTrustedApp, location: OPS_APP_LOCATION, dir: join(dir, 'se'), counter: { kind: 'file', path: join(dir, 'counter') }, provision });
  }

  /** A client with a TA: registered user, provisioned SE, registered and certified device. */
  async function deviceClient(options: DeviceClientOptions = {}) {
    return enrol((dir) => openSe(dir, true, options));
  }

  /** A client whose TA runs in its own process (IsolatedHost), enrolled like `deviceClient`. */
  async function isolatedDeviceClient() {
    return enrol((dir) => startIsolatedSe(dir, true));
  }

  async function enrol<Se extends AnyOpsSe>(provision: (dir: string) => Promise<Se>) {
    const { certificate: userCertificate, ...user } = await h.register(++seed);
    const dir = await mkdtemp(join(tmpdir(), 'tally-ops-'));
    dirs.push(dir);
    const se = await provision(dir);
    const init = await se.call('init', { root: encodeCertificate(identity.root.certificate), owner: fromHex(user.keyId) });
    const attestation = attestDevice(oem, { sePublicKey: init.publicKey, model: 'Test SE', taMeasurement: TEST_MEASUREMENT });
    const res = await h.signed(user.user, 'POST', '/v1/devices', {
      publicKey: { suite: init.publicKey.suite, key: toBase64url(init.publicKey.key) },
      scheme: 'ops',
      oem: oemKeyId,
      attestation: toBase64url(encodeAttestation(attestation)),
      proof: toBase64url(init.proof),
    }, key());
    assert.equal(res.status, 201, await res.clone().text());
    const registered = (await res.json()) as { keyId: string; certificate: string };
    const certificate = fromBase64url(registered.certificate);
    await se.call('certInit', { certificate, intermediary: encodeCertificate(identity.intermediary.certificate), issuerNode: encodeCertificate(identity.issuerNode.certificate) });
    // `certificate` is the device's (what payers pay to); `userCertificate` the owner's (what binds a link).
    return { ...user, se, dir, device: registered.keyId, certificate, userCertificate: fromBase64url(userCertificate) };
  }

  return {
    h,
    oem,
    key,
    openSe,
    startIsolatedSe,
    deviceClient,
    isolatedDeviceClient,
    /** A client without a TA: the user certificate is what payers pay to. */
    plainClient: async (): Promise<Omit<TestUser, 'certificate'> & { certificate: Uint8Array }> => {
      const user = await h.register(++seed);
      return { ...user, certificate: fromBase64url(user.certificate) };
    },
    async mint(user: Pick<TestUser, 'account'>, amount: string) {
      const res = await h.asOperator('POST', '/v1/operator/mint', { account: user.account, amount });
      assert.equal(res.status, 200, await res.clone().text());
    },
    /** Figure 5 end to end: the node's confirmation, applied by the TA. */
    async deposit(client: OpsDeviceParty, amount: string) {
      const res = await h.signed(client.user, 'POST', '/v1/ops/deposits', { device: client.device, amount }, key());
      assert.equal(res.status, 200, await res.clone().text());
      const confirmation = depositConfirmationCodec.decode(decodeCbor(fromBase64url(((await res.json()) as { confirmation: string }).confirmation)));
      await client.se.call('deposit', { confirmation });
      return confirmation;
    },
    /** The node's half of Figure 5 only: the answer, and the confirmation when it is 200 (the TA has not applied it). */
    async requestDeposit(client: Pick<OpsDeviceParty, 'user' | 'device'>, amount: string): Promise<{ status: number; confirmation: DepositConfirmation | null }> {
      const res = await h.signed(client.user, 'POST', '/v1/ops/deposits', { device: client.device, amount }, key());
      if (res.status !== 200) return { status: res.status, confirmation: null };
      const confirmation = depositConfirmationCodec.decode(decodeCbor(fromBase64url(((await res.json()) as { confirmation: string }).confirmation)));
      return { status: 200, confirmation };
    },
    /** Figure 6 end to end. */
    async withdraw(client: OpsDeviceParty, amount: bigint) {
      const confirmation = await client.se.call('withdraw', { amount });
      return h.signed(client.user, 'POST', '/v1/ops/withdrawals', { device: client.device, confirmation: toBase64url(encodeCbor({ ...confirmation })) }, key());
    },
    /** A wallet's PayVerify (Figure 8) at the node's time, with only the certificates a wallet holds: no call to the node. */
    verifyOffline(payment: Payment, options: { receiver?: Uint8Array | undefined; revocations?: RevocationChecker | undefined } = {}) {
      return verifyPayment({
        provider: nodeProvider,
        payment,
        trustAnchors: [identity.root.certificate],
        intermediaries: [identity.intermediary.certificate],
        now: h.now(),
        currency: 'EUR',
        receiver: options.receiver,
        revocations: options.revocations,
      });
    },
    claim(client: Pick<TestUser, 'user'>, payment: Payment) {
      return h.signed(client.user, 'POST', '/v1/ops/claims', { payment: toBase64url(encodePayment(payment)) }, key());
    },
    /** Report, reconcile, apply the ack and the revocation list. */
    async sync(client: OpsDeviceParty) {
      const report = await client.se.call('report', {});
      const res = await h.signed(client.user, 'POST', '/v1/ops/sync', { device: client.device, report: toBase64url(encodeCbor({ body: { ...report.body }, signature: report.signature })) }, key());
      assert.equal(res.status, 200, await res.clone().text());
      const body = (await res.json()) as { ack: string; crl: string; crlVersion: number; fraud: { device: string; kind: string }[] };
      const ack = syncAckCodec.decode(decodeCbor(fromBase64url(body.ack)));
      await client.se.call('syncAck', { ack, crl: fromBase64url(body.crl) });
      return body;
    },
    /** Copies a client's SE folder (state, master secret and file counter) to a new folder: a clone or a snapshot. */
    async copySe(client: { dir: string }): Promise<string> {
      const dir = await mkdtemp(join(tmpdir(), 'tally-ops-copy-'));
      dirs.push(dir);
      await cp(client.dir, dir, { recursive: true });
      return dir;
    },
    /** The TA key of a secure element folder, as an attacker who extracted it from the device would hold it. */
    async extractKey(dir: string): Promise<Signer> {
      const master = await new FileStorage(join(dir, 'se')).readMaster();
      assert.ok(master !== null);
      return deriveDeviceKeys(master, nodeProvider).signer(opsTrustedApp.name, TA_KEY_LABEL, 'ed25519');
    },
    /** Sends a sync report as it is (signed by whoever), answering the node's JSON. */
    async sendReport(client: { user: Signer; device: string }, report: SyncReport) {
      const res = await h.signed(client.user, 'POST', '/v1/ops/sync', { device: client.device, report: toBase64url(encodeCbor({ body: syncReportBodyWire(report.body), signature: report.signature })) }, key());
      assert.equal(res.status, 200, await res.clone().text());
      return (await res.json()) as { fraud: { device: string; kind: string }[] };
    },
    /**
     * The audit, with conservation checked: it balances, nothing sits in settlement, and
     * online + Σ TA balances + `outstanding` (payments made and not yet collected or claimed)
     * = issued. Unless `floatShort`, also float:ops = Σ TA balances + outstanding (a broken TA's
     * value is not in the float). Answers the totals, so tests can assert on them.
     */
    async conservation(holders: readonly TaHolder[], outstanding: readonly Pick<Payment, 'amount'>[] = [], options: { floatShort?: boolean } = {}) {
      const audit = await h.node.services.ledger.audit();
      assert.equal(audit.balanced, true, `the audit does not balance: ${JSON.stringify(audit, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
      const eur = audit.currencies.find((c) => c.currency === 'EUR');
      assert.ok(eur !== undefined, 'the audit has no EUR');
      assert.equal(eur.totalSettlement, 0n);
      let held = 0n;
      for (const holder of holders) held += (await holder.se.call('status', {})).balance;
      const unsettled = outstanding.reduce((sum, p) => sum + p.amount, 0n);
      const float = eur.offlineFloat.find((f) => f.account === OPS_FLOAT_ACCOUNT)?.amount ?? 0n;
      if (options.floatShort !== true) {
        assert.equal(eur.totalOnline + held + unsettled, eur.totalIssued, `online ${eur.totalOnline} + TAs ${held} + unsettled ${unsettled} ≠ issued ${eur.totalIssued}`);
        assert.equal(float, held + unsettled, `float:ops ${float} ≠ TAs ${held} + unsettled ${unsettled}`);
      }
      return { issued: eur.totalIssued, online: eur.totalOnline, float, held, unsettled };
    },
    async close(clients: readonly { se: { close(): Promise<void> } }[] = []) {
      for (const c of clients) await c.se.close();
      await h.close();
      for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** An open OPS test node. */
export type OpsNode = Awaited<ReturnType<typeof opsNode>>;
/** A client with a TA. */
export type DeviceClient = Awaited<ReturnType<OpsNode['deviceClient']>>;
export type { Harness };
