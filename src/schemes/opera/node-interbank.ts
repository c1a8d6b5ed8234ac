/**
 * OPERA across intermediaries (docs/opera.md, "Several banks"). A bank issues tokens under its own
 * issuer node's key and is the only registry of their serials. It publishes, through the central
 * bank, its issuer node's certificate and its signed parameters (operaPublication), so that the
 * wallets of every other bank take its tokens offline and those banks recognise them at deposit.
 *
 * At the bank where such a token is deposited (B): the token is presented to its issuer (A) as an
 * interbank claim of its own, one claim per token, and recorded once here (`opera_foreign_tokens`),
 * so that a second deposit of the serial at B is a double spend found on the spot. At A
 * (judgeOperaInterbankClaim): the token's signature, its value, and then the double-deposit check
 * its own deposits use (spendToken): the first deposit anywhere is paid, from `float:opera` into
 * the reserve the central bank moves to B; a serial already deposited or refunded is a double spend
 * with A's finding and escrow attribution, as for its own customers.
 */
import { toHex } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import type { PublicKey } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import {
  ApiProblem,
  claimIdOf,
  formatMinor,
  peerIntermediaries,
  peerPublications,
  presentInterbankClaim,
  transfer,
  type InterbankClaim,
  type InterbankJudgement,
  type IssuerServices,
  type PresentedClaim,
  type Queryable,
  type TransactionHandle,
} from '../../issuer/plugin.ts';
import { decodeCertificate, encodeCertificate } from '../../pki/certificate.ts';
import { verifyChain } from '../../pki/chain.ts';
import { interbankEvidenceCodec, OPERA_SCHEME, PARAMS_TAG, checkSigned, paramsBodyCodec, publicationBodyCodec, type InterbankEvidence } from './messages.ts';
import { OPERA_FLOAT_ACCOUNT, type OperaNodeOptions } from './node-common.ts';
import { attributeDoubleSpend } from './node-escrow.ts';
import { recordFinding } from './node-findings.ts';
import { paramsChangedAt, signedParams } from './node-params.ts';
import { checkToken, type Token } from './token.ts';
import { spendToken } from './node-deposit.ts';
import { shardPlaces } from './node-shards.ts';

/** Largest evidence of one claim (the interbank machinery's limit): one token with a full escrow chain fits. */
export const OPERA_EVIDENCE_BYTES_MAX = 8192;

/**
 * The bank's OPERA publication: its issuer node's certificate and its parameters, signed as of
 * their last change, so that the body stays the same until a maker is listed.
 */
export async function operaPublication(services: IssuerServices, options: OperaNodeOptions): Promise<Uint8Array> {
  const params = await signedParams(services, options, await paramsChangedAt(services));
  return encodeCbor(publicationBodyCodec.decode({ issuerNode: encodeCertificate(services.identity.issuerNode.certificate), params }, 'publication'));
}

/** Another bank whose tokens this one recognises: its key id, name, token key, and whether the central bank revoked it. */
export interface TokenIssuer {
  readonly keyId: string;
  readonly name: string;
  readonly key: PublicKey;
  readonly revoked: boolean;
}

/**
 * The other banks' token keys, from their latest OPERA publications (each verified by the tier
 * link under the bank's intermediary certificate): a publication whose issuer node certificate is
 * not certified by that bank, or whose parameters are of another currency, is passed over.
 */
export async function tokenIssuers(services: IssuerServices, q: Queryable = services.db): Promise<TokenIssuer[]> {
  const issuers: TokenIssuer[] = [];
  for (const peer of await peerPublications(services, OPERA_SCHEME, q)) {
    try {
      const body = publicationBodyCodec.decode(decodeCbor(peer.body), 'publication');
      const issuerNode = decodeCertificate(body.issuerNode);
      const chain = verifyChain({ provider: services.provider, chain: [issuerNode, peer.certificate], trustAnchors: [services.identity.root.certificate], now: services.now(), leafRoles: ['issuer-node'] });
      const params = checkSigned(services.provider, chain.subject, paramsBodyCodec, PARAMS_TAG, body.params);
      if (params.currency !== services.currency.code) continue;
      issuers.push({ keyId: peer.keyId, name: peer.name, key: chain.subject, revoked: peer.revoked });
    } catch (e) {
      if (isTallyError(e)) continue;
      throw e;
    }
  }
  return issuers;
}

/** The bank among `issuers` whose key signed `token`, or undefined. */
export function issuerOf(services: IssuerServices, issuers: readonly TokenIssuer[], token: Token): TokenIssuer | undefined {
  return issuers.find((issuer) => {
    try {
      checkToken(services.provider, issuer.key, services.currency.code, token);
      return true;
    } catch (e) {
      if (isTallyError(e)) return false;
      throw e;
    }
  });
}

/** What depositing a token of another bank did here: presented as a claim, or found a double spend. */
export type ForeignDeposit = { readonly presented: PresentedClaim } | { readonly doubleSpend: { first: string } };

/**
 * At the payee's bank: a token of `issuer` deposited by `device` for `holder`. Presented to its
 * issuer once: a serial already presented here is a double spend (a finding names both ODWs).
 */
export async function presentForeignToken(
  tx: TransactionHandle,
  services: IssuerServices,
  deposit: { token: Token; issuer: TokenIssuer; device: string; holder: { keyId: string; accountId: string }; at: string },
): Promise<ForeignDeposit> {
  const { token, issuer, device } = deposit;
  const evidence = encodeCbor(interbankEvidenceCodec.decode({ token, depositor: Uint8Array.from(Buffer.from(device, 'hex')) }, 'evidence'));
  if (evidence.length > OPERA_EVIDENCE_BYTES_MAX) throw new ApiProblem('TOO_LARGE', `the claim on token ${toHex(token.body.serial)} would be ${evidence.length} bytes, over ${OPERA_EVIDENCE_BYTES_MAX}`, { max: OPERA_EVIDENCE_BYTES_MAX });
  // The serial is taken first: a concurrent deposit of it waits on this row, then finds it taken.
  const taken = await tx.query(
    'INSERT INTO opera_foreign_tokens (serial, bank, value, device_key_id, claim_id, at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (serial) DO NOTHING RETURNING serial',
    [token.body.serial, issuer.keyId, token.body.value, device, claimIdOf(OPERA_SCHEME, evidence), deposit.at],
  );
  if (taken.rowCount !== 1) {
    const { rows } = await tx.query<{ device_key_id: string }>('SELECT device_key_id FROM opera_foreign_tokens WHERE serial = $1', [token.body.serial]);
    const first = rows[0]?.device_key_id ?? null;
    await recordFinding(tx, services, { kind: 'double-spend', serial: token.body.serial, device, first });
    return { doubleSpend: { first: first ?? '' } };
  }
  const presented = await presentInterbankClaim(tx, services, { scheme: OPERA_SCHEME, payerBank: issuer.keyId, amount: token.body.value, evidence, payee: deposit.holder });
  return { presented };
}

/**
 * At the issuing bank: judges a claim another bank presented on one of this bank's tokens. The
 * presenting bank must be known and not revoked, the evidence one token with this bank's signature
 * worth the claimed amount; then the token is spent as a deposit of the depositor the evidence
 * names, under the one check every deposit here passes: the first is paid from `float:opera` into
 * `payTo`; a serial already deposited or refunded (here, or through another claim) is a double
 * spend, recorded and attributed by its escrow tags as for this bank's own customers.
 */
export async function judgeOperaInterbankClaim(tx: TransactionHandle, services: IssuerServices, claim: InterbankClaim, payTo: string): Promise<InterbankJudgement> {
  const refuse = (code: string, reason: string): InterbankJudgement => ({ accepted: false, code, reason });
  // This bank's tokens live on its shard databases there: spending one from a claim is not built.
  if (shardPlaces(services) !== undefined) return refuse('SHARDED_UNSUPPORTED', 'this bank keeps OPERA tokens on shard databases, where claims of other banks on them are not settled yet');
  const payee = (await peerIntermediaries(services, tx)).find((p) => p.keyId === claim.payeeBank);
  if (payee === undefined) return refuse('BANK_UNKNOWN', `the presenting bank ${claim.payeeBank} is not in this bank's directory of intermediaries`);
  if (payee.revoked) return refuse('CERT_REVOKED', `the presenting bank ${payee.name} is revoked by the central bank`);
  if (claim.evidence.length > OPERA_EVIDENCE_BYTES_MAX) return refuse('TOO_LARGE', `the evidence is ${claim.evidence.length} bytes, over ${OPERA_EVIDENCE_BYTES_MAX}`);
  let evidence: InterbankEvidence;
  try {
    evidence = interbankEvidenceCodec.decode(decodeCbor(claim.evidence, { maxBytes: OPERA_EVIDENCE_BYTES_MAX }), 'evidence');
  } catch (e) {
    if (isTallyError(e)) return refuse('DECODE_FAILED', `the evidence is not one OPERA token with its depositor: ${e.message}`);
    throw e;
  }
  const { token } = evidence;
  const serial = toHex(token.body.serial);
  try {
    checkToken(services.provider, services.identity.issuerNode.signer.publicKey, services.currency.code, token);
  } catch (e) {
    if (isTallyError(e)) return refuse('OPERA_TOKEN_INVALID', `${e.message} (not a token this bank issued)`);
    throw e;
  }
  if (token.body.value !== claim.amount) return refuse('CLAIM_INVALID', `the claim asks ${formatMinor(services.currency, claim.amount)}, token ${serial} is worth ${formatMinor(services.currency, token.body.value)}`);
  const depositor = toHex(evidence.depositor);
  const at = new Date(services.now()).toISOString();
  const spent = await spendToken(tx, token, { state: 'deposited', device: depositor, at });
  if ('unknown' in spent) return refuse('OPERA_TOKEN_INVALID', `token ${serial} carries this bank's signature but was never issued with that value`);
  if (!spent.spent) {
    await recordFinding(tx, services, { kind: 'double-spend', serial: token.body.serial, device: depositor, first: spent.first });
    const named = await attributeDoubleSpend(tx, services, { serial: token.body.serial, device: depositor, tags: token.tags ?? [] });
    const culprit = named === null ? '' : `; its escrow tags name device ${named.device} as having paid it twice${named.revocationVersion === null ? '' : ' (revoked)'}`;
    return refuse('DOUBLE_SPEND', `token ${serial} was already spent${spent.first === null ? '' : ` (first by device ${spent.first})`}${culprit}`);
  }
  const moved = await transfer(tx, {
    idempotencyKey: `opera-interbank:${claim.claimId}`,
    debit: OPERA_FLOAT_ACCOUNT,
    credit: payTo,
    amount: token.body.value,
    kind: 'opera-interbank',
    reference: { claim: claim.claimId, serial, bank: claim.payeeBank },
    currency: services.currency,
  });
  // Thrown: the token spent above rolls back with the missing payment, and the claim is refused in a transaction of its own.
  if (!moved.ok) throw new ApiProblem(moved.code, `claim ${claim.claimId} cannot be paid: ${moved.message}`);
  return { accepted: true };
}
