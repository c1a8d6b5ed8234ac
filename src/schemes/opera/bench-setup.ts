/**
 * What `bench opera` stands on, over the harness's issuer node (the OPERA part served, PGlite): an
 * OEM whose ODW build the node allows and whose credential key the bank lists as a maker; account
 * holders whose ODW (the trusted app in a secure element: an isolated child process with a file
 * counter, or this process) is provisioned as a wallet provisions it (wallet-base.ts: Init, the
 * OEM's attestation, the device's registration, CertInit, the bank's parameters, and the anonymous
 * credential after a quote of the device's swtpm); and the online steps through the node's routes:
 * tokens charged, tokens deposited back, the audit.
 */
import { join } from 'node:path';
import { toBase64url, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import type { CryptoProvider } from '../../core/crypto/suite.ts';
import type { SecureElement } from '../../secure-element/secure-element.ts';
import { pidOf, type BenchHarness, type BenchNode, type BenchUser } from '../../sim/bench/plugin.ts';
import { makerOf, measureTrustedApp, NodeClient, type NodeInfo, type Oem } from '../../wallet/plugin.ts';
import { chargeCodec, depositReceiptCodec, OPERA_SCHEME, TOKENS_PER_MESSAGE_MAX } from './messages.ts';
import { OPERA_FLOAT_ACCOUNT, operaNodePart } from './node.ts';
import { cbor, chargeAnswer, depositAnswer, OPERA_TA, provisionDevice, type OperaCommands } from './wallet-base.ts';
import { OPERA_TA_BUILD } from './wallet-build.ts';

/** The paper's token (§5.2: "tokens with the least monetary value"): 0.01, the bank's smallest denomination. */
export const TOKEN_MINOR = 1n;

/** An ODW's secure element, isolated or in-process. */
export type OperaElement = SecureElement<OperaCommands>;

/** The node, and what every party needs of it. */
export interface OperaWorld {
  readonly harness: BenchHarness;
  readonly node: BenchNode;
  /** The wallet's client of the node, as provisioning uses it. */
  readonly client: NodeClient;
  readonly info: NodeInfo;
  readonly oem: Oem;
}

/** An account holder with a registered, credentialed ODW. */
export interface Party extends BenchUser {
  readonly name: string;
  readonly se: OperaElement;
  /** The device's key id, as the node names it. */
  readonly device: string;
  /** The secure element's own process, for an isolated one. */
  readonly pid: number | undefined;
  /** The ODW's sealed state (the file each of its commits rewrites). */
  readonly sealedPath: string;
}

/** Where a party's secure element runs (`memory`: in this process, kept in memory, for many devices made ahead of a timed part; its TPM still in `dir/tpm`). */
export type Placement = { readonly kind: 'isolated' } | { readonly kind: 'in-process'; readonly provider: CryptoProvider } | { readonly kind: 'memory' };

/**
 * Opens a node serving OPERA; enrols an OEM with the ODW build's measurement and lists the OEM's
 * credential key (with the build's reference PCR value) as a maker of genuine ODWs.
 */
export async function openWorld(harness: BenchHarness): Promise<OperaWorld> {
  return worldOn(harness, await harness.openNode({ schemes: [operaNodePart] }));
}

/** The same on a node opened elsewhere (one serving OPERA). */
export async function worldOn(harness: BenchHarness, node: BenchNode): Promise<OperaWorld> {
  const measurement = await measureTrustedApp(OPERA_TA_BUILD);
  const enrolled = await node.enrolOem(OPERA_SCHEME, measurement);
  const oem: Oem = { ...enrolled, credentialSeed: randomBytes(32), isEnrolledAt: () => true };
  const maker = await makerOf(oem, measurement);
  await node.call('operator', 'POST', '/v1/opera/makers', { publicKey: toBase64url(maker.publicKey), reference: toHex(maker.reference) });
  const client = new NodeClient(node.url);
  return { harness, node, client, info: await client.info(), oem };
}

/** A registered user whose ODW is started in `dir` and provisioned as a wallet does it (its TPM in `dir/tpm`). */
export async function makeParty(world: OperaWorld, name: string, dir: string, placement: Placement): Promise<Party> {
  const { harness, node } = world;
  const user = await node.registerUser();
  const se: OperaElement =
    placement.kind === 'isolated'
      ? await harness.startElement({ app: OPERA_TA.app, location: OPERA_TA.location, dir })
      : placement.kind === 'memory'
        ? await harness.startMemoryElement({ app: OPERA_TA.app })
        : await harness.startInProcessElement({ app: OPERA_TA.app, dir, provider: placement.provider });
  try {
    const device = await provisionDevice(se, { node: world.client, info: world.info, oem: world.oem, user: user.signer, owner: user.keyId, tpmDir: join(dir, 'tpm'), progress: () => undefined });
    if ((await se.call('status', {})).credential !== 1) throw new Error(`${name}: the ODW holds no anonymous credential after provisioning`);
    return { ...user, name, se, device: device.keyId, pid: pidOf(se), sealedPath: join(dir, 'se', `${OPERA_TA.app.name}.sealed`) };
  } catch (e) {
    await se.close();
    throw e;
  }
}

/**
 * Mints `count` tokens' worth to the party's account and has the bank charge exactly `count`
 * tokens of 0.01 into its ODW through `POST /v1/opera/charge`. Answers their value, minor units.
 * @throws RangeError for more than one charge carries; Error when the ODW did not take them all
 */
export async function chargeTokens(world: OperaWorld, party: Party, count: number): Promise<bigint> {
  if (!Number.isInteger(count) || count < 1 || count > TOKENS_PER_MESSAGE_MAX) throw new RangeError(`a charge: expected 1 to ${TOKENS_PER_MESSAGE_MAX} tokens, got ${count}`);
  return chargeMix(world, party, [{ value: TOKEN_MINOR, count }]);
}

/**
 * Mints the value of `tokens` (counts of denominations, minor units) to the party's account and
 * has the bank charge exactly those tokens into its ODW. Answers their value, minor units.
 * @throws Error when the ODW did not take them all
 */
export async function chargeMix(world: OperaWorld, party: Party, tokens: readonly { readonly value: bigint; readonly count: number }[]): Promise<bigint> {
  const amount = tokens.reduce((sum, t) => sum + t.value * BigInt(t.count), 0n);
  const count = tokens.reduce((sum, t) => sum + t.count, 0);
  await world.node.mint(party.account, amount);
  const { request } = await party.se.call('chargeRequest', { amount, tokens: tokens.map((t) => ({ value: t.value, count: t.count })) });
  const answer = await world.client.signed(party.signer, 'POST', '/v1/opera/charge', {
    answer: chargeAnswer,
    body: { device: party.device, request: toBase64url(encodeCbor(request)) },
    idempotencyKey: `bench-charge-${toHex(request.body.nonce)}`,
  });
  const out = await party.se.call('chargeTake', { charge: cbor(chargeCodec, answer.body.charge, 'charge') });
  if (out.tokens !== count || out.amount !== amount) throw new Error(`${party.name}: ${out.tokens} tokens worth ${out.amount} charged, ${count} asked`);
  return amount;
}

/**
 * Deposits every token the party's ODW holds through `POST /v1/opera/deposit` (as many at a time
 * as a deposit carries), so the next payment starts from an empty repository. Answers the value
 * credited and the tokens deposited.
 * @throws Error when the bank refuses a token: every bench token is good
 */
export async function depositAll(world: OperaWorld, party: Party): Promise<{ credited: bigint; tokens: number }> {
  let credited = 0n;
  let tokens = 0;
  while ((await heldValue(party)) > 0n) {
    const { request } = await party.se.call('depositRequest', {});
    const answer = await world.client.signed(party.signer, 'POST', '/v1/opera/deposit', {
      answer: depositAnswer,
      body: { device: party.device, request: toBase64url(encodeCbor(request)) },
      idempotencyKey: `bench-deposit-${toHex(request.body.nonce)}`,
    });
    const out = await party.se.call('depositTake', { receipt: cbor(depositReceiptCodec, answer.body.receipt, 'receipt') });
    if (out.doubleSpent > 0 || out.refused > 0) throw new Error(`${party.name}: the bank refused ${out.doubleSpent + out.refused} of ${request.body.tokens.length} tokens deposited`);
    credited += out.credited;
    tokens += request.body.tokens.length;
  }
  return { credited, tokens };
}

/** The value the party's ODW holds, minor units. */
export async function heldValue(party: Party): Promise<bigint> {
  return (await party.se.call('status', {})).balance;
}

/**
 * Asserts the node's audit is balanced (the journal, and the OPERA float equal to the tokens issued
 * and neither deposited nor refunded); answers what `float:opera` holds, minor units.
 * @throws Error when it is not
 */
export async function assertAuditBalanced(node: BenchNode): Promise<bigint> {
  return (await node.assertBalanced()).get(OPERA_FLOAT_ACCOUNT) ?? 0n;
}
