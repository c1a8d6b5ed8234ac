/**
 * Fixtures for the OPERA node's tests (not exported): a node with the OPERA part, an enrolled OEM
 * whose measurement is allowed for OPERA, account holders with an ODW registered through the node's
 * own route, and the ODW's side of each exchange built from the records of messages.ts: signed
 * charge and deposit requests, settlement reports and the payer's release.
 */
import assert from 'node:assert/strict';
import { fromBase64url, fromHex, toBase64url, toHex, utf8 } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { randomBytes, sha256 } from '../../core/crypto/hash.ts';
import { nobleEd25519 } from '../../core/crypto/noble.ts';
import { signerFromSecret, type Signer } from '../../core/crypto/suite.ts';
import type { testBackends } from '../../issuer/db/test-databases.ts';
import { formatMinor } from '../../issuer/plugin.ts';
import { setup, type TestUser } from '../../issuer/http/test-harness.ts';
import { attestDevice, encodeAttestation } from '../../pki/attestation.ts';
import { keyId } from '../../pki/key-id.ts';
import { signRegistrationProof } from '../../pki/registration.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import * as m from './messages.ts';
import { OPERA_FLOAT_ACCOUNT, operaNodePartWith, type OperaNodeOptions } from './node.ts';
import { valueOf, type Token } from './token.ts';

/** The measurement the test OEM attests for ODWs. */
export const ODW_TEST_MEASUREMENT = sha256(utf8('tally opera odw, test build'));

type Backend = ReturnType<typeof testBackends>[number];

/** An account holder with a registered ODW (its key held here as the trusted app would hold it). */
export interface OperaClient extends TestUser {
  readonly device: Signer;
  readonly deviceId: string;
  /** The ODW's serial number. */
  readonly sn: Uint8Array;
}

/** A finding as the operator's list shows it. */
export interface Finding {
  readonly kind: string;
  readonly serial: string | null;
  readonly txid: string | null;
  readonly device: string;
  readonly first: string | null;
  /** For `paid-twice`: where the token's two escrow chains part. */
  readonly hop: number | null;
  readonly revocationVersion: number | null;
}

/** A settlement report's body, less what the fixture fills in (the nonce, the ODW's own SN). */
export type ReportParts = Omit<m.SettleReportBody, 'nonce' | 'self' | 'done' | 'flag' | 'tokens' | 'release'> & Partial<Pick<m.SettleReportBody, 'done' | 'flag' | 'tokens' | 'release'>>;

/** A node with the OPERA part and an enrolled OEM. */
export async function operaNode(backend: Backend, options: Partial<OperaNodeOptions> = {}, intake?: NonNullable<Parameters<typeof setup>[1]>['settle']) {
  const part = operaNodePartWith(options);
  const h = await setup(backend, { schemes: [part], settle: intake });
  const oem = signerFromSecret(nobleEd25519, sha256(utf8('opera test oem')));
  const enrolled = await h.asOperator('POST', '/v1/operator/oems', { name: 'Test OEM', publicKey: { suite: 'ed25519', key: toBase64url(oem.publicKey.key) } });
  assert.equal(enrolled.status, 201, await enrolled.clone().text());
  const oemKeyId = ((await enrolled.json()) as { keyId: string }).keyId;
  const allowed = await h.asOperator('POST', '/v1/operator/measurements', { measurement: toHex(ODW_TEST_MEASUREMENT), scheme: m.OPERA_SCHEME, description: 'odw test build' });
  assert.equal(allowed.status, 201, await allowed.clone().text());
  let seed = 60;
  let keys = 0;
  const key = () => ({ 'idempotency-key': `opera-${++keys}-${Date.now()}` });
  const bank = h.node.services.identity.issuerNode.signer.publicKey;

  /** A registered account holder with an ODW registered for `scheme` (OPERA unless a test says otherwise) under `measurement`. */
  async function client(scheme: string = m.OPERA_SCHEME, measurement: Uint8Array = ODW_TEST_MEASUREMENT): Promise<OperaClient> {
    const user = await h.register(++seed);
    const device = signerFromSecret(nobleEd25519, sha256(utf8(`opera odw ${seed}`)));
    const res = await h.signed(user.user, 'POST', '/v1/devices', {
      publicKey: { suite: 'ed25519', key: toBase64url(device.publicKey.key) },
      scheme,
      oem: oemKeyId,
      attestation: toBase64url(encodeAttestation(attestDevice(oem, { sePublicKey: device.publicKey, model: 'Test ODW', taMeasurement: measurement }))),
      proof: toBase64url(signRegistrationProof(device, { owner: fromHex(user.keyId), scheme })),
    }, key());
    assert.equal(res.status, 201, await res.clone().text());
    return { ...user, device, deviceId: toHex(keyId(device.publicKey)), sn: m.odwSerial(device.publicKey) };
  }

  /** The parameters, checked under the bank's key. */
  async function params(): Promise<m.ParamsBody> {
    const res = await h.send('GET', '/v1/opera/params');
    assert.equal(res.status, 200, await res.clone().text());
    const record = m.paramsCodec.decode(decodeCbor(fromBase64url(((await res.json()) as { params: string }).params)));
    return m.checkSigned(nodeProvider, bank, m.paramsBodyCodec, m.PARAMS_TAG, record);
  }

  /** POSTs `body` signed by `who`'s account key. */
  function send(who: TestUser, path: string, body: unknown) {
    return h.signed(who.user, 'POST', path, body, key());
  }

  /** A charge request for `counts` (value, count), signed by `signer` (the ODW by default). */
  function chargeRequest(who: OperaClient, counts: readonly (readonly [bigint, number])[], options: { nonce?: Uint8Array; amount?: bigint; signer?: Signer } = {}): m.ChargeRequest {
    const tokens = counts.map(([value, count]) => ({ value, count }));
    const amount = options.amount ?? counts.reduce((sum, [value, count]) => sum + value * BigInt(count), 0n);
    return m.signed(m.chargeRequestBodyCodec, options.signer ?? who.device, m.CHARGE_REQUEST_TAG, { nonce: options.nonce ?? randomBytes(m.NONCE_BYTES), amount, tokens });
  }

  /** Sends a charge request; for a 200, the tokens of the Charge checked under the bank's key and bound to the nonce. */
  async function charge(who: OperaClient, request: m.ChargeRequest, device = who.deviceId): Promise<{ res: Response; tokens: Token[] }> {
    const res = await send(who, '/v1/opera/charge', { device, request: toBase64url(encodeCbor(request)) });
    if (res.status !== 200) return { res, tokens: [] };
    const body = (await res.clone().json()) as { amount: string; charge: string };
    const checked = m.checkSigned(nodeProvider, bank, m.chargeBodyCodec, m.CHARGE_TAG, m.chargeCodec.decode(decodeCbor(fromBase64url(body.charge))));
    assert.deepEqual(checked.nonce, request.body.nonce, 'the Charge answers this request');
    return { res, tokens: checked.tokens };
  }

  /** Charges `counts` into `who`'s ODW, which must succeed. */
  async function charged(who: OperaClient, counts: readonly (readonly [bigint, number])[]): Promise<Token[]> {
    const { res, tokens } = await charge(who, chargeRequest(who, counts));
    assert.equal(res.status, 200, await res.clone().text());
    return tokens;
  }

  /** Sends a deposit of `tokens` from `who`'s ODW; for a 200, the receipt checked under the bank's key and bound to the nonce. */
  async function deposit(who: OperaClient, tokens: readonly Token[], options: { nonce?: Uint8Array; signer?: Signer } = {}) {
    const nonce = options.nonce ?? randomBytes(m.NONCE_BYTES);
    const request = m.signed(m.depositRequestBodyCodec, options.signer ?? who.device, m.DEPOSIT_REQUEST_TAG, { nonce, tokens: [...tokens] });
    const res = await send(who, '/v1/opera/deposit', { device: who.deviceId, request: toBase64url(encodeCbor(request)) });
    if (res.status !== 200) return { res, credited: null, outcomes: [] as string[] };
    const body = (await res.clone().json()) as { credited: string; receipt: string };
    const receipt = m.checkSigned(nodeProvider, bank, m.depositReceiptBodyCodec, m.DEPOSIT_RECEIPT_TAG, m.depositReceiptCodec.decode(decodeCbor(fromBase64url(body.receipt))));
    assert.deepEqual(receipt.nonce, nonce, 'the receipt answers this request');
    assert.deepEqual(receipt.tokens.map((t) => toHex(t.serial)), tokens.map((t) => toHex(t.body.serial)));
    assert.equal(body.credited, minor(receipt.credited));
    return { res, credited: body.credited, outcomes: receipt.tokens.map((t) => t.outcome), receipt };
  }

  /** The payer's release of a transaction (Msg 3-1), as its payee keeps it. */
  function release(payer: OperaClient, claim: m.TransferClaim): Uint8Array {
    return m.signed(m.transferClaimCodec, payer.device, m.RELEASE_TAG, claim).signature;
  }

  /** A settlement report of `who`'s ODW (its own SN as `self`), signed by `signer` (the ODW by default). */
  function report(who: OperaClient, parts: ReportParts, options: { nonce?: Uint8Array; signer?: Signer; self?: Uint8Array } = {}): m.SettleReport {
    const body = { done: parts.count, flag: 0, tokens: [], ...parts, nonce: options.nonce ?? randomBytes(m.NONCE_BYTES), self: options.self ?? who.sn };
    return m.signed(m.settleReportBodyCodec, options.signer ?? who.device, m.SETTLE_REPORT_TAG, body);
  }

  /** Sends a report; for a 200, the Settled record checked under the bank's key, bound to the nonce and the txid. */
  async function settle(who: OperaClient, signedReport: m.SettleReport) {
    const res = await send(who, '/v1/opera/settle', { device: who.deviceId, report: toBase64url(encodeCbor(signedReport)) });
    if (res.status !== 200) return { res, outcome: null, credited: null };
    const body = (await res.clone().json()) as { outcome: string; credited: string; settled: string };
    const settled = m.checkSigned(nodeProvider, bank, m.settledBodyCodec, m.SETTLED_TAG, m.settledCodec.decode(decodeCbor(fromBase64url(body.settled))));
    assert.deepEqual([settled.nonce, settled.txid], [signedReport.body.nonce, signedReport.body.txid], 'the Settled record answers this report');
    assert.deepEqual([settled.outcome, minor(settled.credited)], [body.outcome, body.credited]);
    return { res, outcome: settled.outcome, credited: body.credited };
  }

  /**
   * A transaction of `tokens` from `payer`'s ODW to `payee`'s, as both log it: each side's report
   * (the payee's, when it took the tokens, with the payer's release), with any field changed. With
   * `change` (the payee's change tokens) the amount is what the payer's tokens are worth less the change.
   */
  function transaction(payer: OperaClient, payee: OperaClient, tokens: readonly Token[], txid: Uint8Array = randomBytes(m.TXID_BYTES), change: readonly Token[] = []) {
    const back = change.length === 0 ? {} : { change: valueOf(change) };
    const amount = valueOf(tokens) - valueOf(change);
    const count = tokens.length;
    const claim: m.TransferClaim = { txid, payer: payer.sn, payee: payee.sn, amount, count, ...back };
    const common = { txid, amount, count, ...back };
    return {
      ...common,
      claim,
      payer: (released: 0 | 1, changed: Partial<ReportParts> = {}, options: Parameters<typeof report>[2] = {}) =>
        report(payer, { ...common, mode: 'send', partner: payee.sn, released, accepted: 0, tokens: [...tokens], ...changed }, options),
      payee: (accepted: 0 | 1, changed: Partial<ReportParts> = {}, options: Parameters<typeof report>[2] = {}) =>
        report(payee, { ...common, mode: 'receive', partner: payer.sn, released: accepted, accepted, tokens: [...change], ...(accepted === 1 ? { release: release(payer, claim) } : {}), ...changed }, options),
    };
  }

  /** Minor units as the API shows them. */
  const minor = (amount: bigint) => formatMinor(h.node.services.currency, amount);

  async function mint(who: Pick<TestUser, 'account'>, amount: string) {
    const res = await h.asOperator('POST', '/v1/operator/mint', { account: who.account, amount });
    assert.equal(res.status, 200, await res.clone().text());
  }

  /** The operator's list of findings, newest first. */
  async function findings(): Promise<Finding[]> {
    const res = await h.send('GET', '/v1/opera/operator/findings', { headers: h.operator });
    assert.equal(res.status, 200, await res.clone().text());
    return ((await res.json()) as { findings: Finding[] }).findings;
  }

  /** Rows of a table, by a query. */
  async function rows<R extends object>(sql: string, values: readonly (string | Uint8Array)[] = []): Promise<R[]> {
    return (await h.node.services.db.query<R>(sql, values)).rows;
  }

  /**
   * The audit with conservation: the journal balances, issued = online + floats, and the OPERA
   * exposure check finds float:opera exactly equal to the tokens issued and not yet spent. Answers
   * the float in minor units.
   */
  async function conservation(expectedFloat?: bigint): Promise<bigint> {
    const res = await h.send('GET', '/v1/audit', { headers: h.operator });
    const audit = (await res.json()) as { balanced: boolean; exposure: { scheme: string; float: string; expected: string; difference: string; exposed: unknown[] }[] };
    assert.equal(audit.balanced, true, JSON.stringify(audit));
    const ledger = await h.node.services.ledger.audit();
    assert.equal(ledger.balanced, true);
    const eur = ledger.currencies.find((c) => c.currency === 'EUR');
    assert.ok(eur !== undefined);
    assert.equal(eur.totalOnline + eur.totalOfflineFloat + eur.totalSettlement, eur.totalIssued, 'issued = online + floats');
    const float = eur.offlineFloat.find((f) => f.account === OPERA_FLOAT_ACCOUNT)?.amount ?? 0n;
    const opera = audit.exposure.find((e) => e.scheme === m.OPERA_SCHEME);
    assert.ok(opera !== undefined, 'the audit checks the OPERA float');
    assert.equal(opera.difference, '0.00', `float:opera ${opera.float} ≠ tokens issued and not spent ${opera.expected}`);
    assert.deepEqual(opera.exposed, []);
    const [issued] = await rows<{ v: string }>("SELECT coalesce(sum(value), 0)::text AS v FROM opera_tokens WHERE state = 'issued'");
    assert.equal(BigInt(issued?.v ?? '-1'), float, 'the float holds exactly the tokens still issued');
    if (expectedFloat !== undefined) assert.equal(float, expectedFloat, 'float:opera');
    return float;
  }

  return { h, part, oem, oemKeyId, key, bank, client, params, send, chargeRequest, charge, charged, deposit, release, report, transaction, settle, mint, findings, rows, conservation };
}

/** An open OPERA test node. */
export type OperaNode = Awaited<ReturnType<typeof operaNode>>;

/** Asserts nothing was settled: no transaction row, no answer kept, no token spent. */
export async function untouched(n: OperaNode): Promise<void> {
  assert.equal((await n.rows('SELECT 1 FROM opera_settlements')).length, 0);
  assert.equal((await n.rows("SELECT 1 FROM opera_answers WHERE kind = 'settle'")).length, 0);
  assert.equal((await n.rows("SELECT 1 FROM opera_tokens WHERE state <> 'issued'")).length, 0);
}
