/**
 * DOT-M across several operators (docs/dotm.md, "Several operators"). An intermediary signs its
 * blocks with its own key, which the central bank's root certified; a wallet of any bank verifies
 * them to the common root. The operator that issued a serial keeps its tree: a copy of another
 * bank's block that a customer here redeems is presented to the issuing bank as an interbank claim
 * (the online data updating reaches the operator that holds the serial's tree), and a claim on a
 * block issued here is judged with this node's tree, as a redemption is (§3.3.4, §3.4.4).
 */
import { assert } from '../../core/assert.ts';
import { equalBytes, toHex } from '../../core/bytes.ts';
import { isTallyError } from '../../core/errors.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { record, uint, type Infer } from '../../core/codec.ts';
import { verifyRecord } from '../../core/crypto/record.ts';
import { SignatureMemo } from '../../core/crypto/signature-memo.ts';
import { verifyChain, type VerifiedChain } from '../../pki/chain.ts';
import { peerIntermediaries, presentInterbankClaim, transfer, type InterbankClaim, type InterbankJudgement, type IssuerServices, type Queryable, type TransactionHandle } from '../../issuer/plugin.ts';
import { decodeCertificate, type Certificate } from '../../pki/certificate.ts';
import { CertificateCache } from '../../pki/certificate-cache.ts';
import { keyId } from '../../pki/key-id.ts';
import { verifyBlock } from './block.ts';
import { certificateBytesCodec, DOTM_SCHEME } from './messages.ts';
import { EVENT_TAG, eventBodyWire, partsDigest, REDEEM_BLOCKS_MAX, walletEventCodec, walletEventWire, type EventPart, type WalletEvent } from './online.ts';
import { checkNodes } from './node-findings.ts';
import { DOTM_FLOAT_ACCOUNT, type DotmWallet, type SettlementContext } from './node-settlement-model.ts';
import { addPending, creditable, giveUp, insertPath, issuedHere, lockSerials, nodesOf, pathOf, viewNodes, writeCredits, type Path } from './node-tree.ts';

/** Largest evidence of a DOT-M claim: the interbank limit (a redemption of one copy with about a dozen records at Ed25519). */
export const DOTM_CLAIM_BYTES_MAX = 8192;

/**
 * The evidence of a DOT-M claim: the holder's own redemption, signed in its TA by wsk (the
 * `redeemed` event as the wallet uploaded it), the wallet's certificate wcert, and which of the
 * event's parts this claim is for. The presenting bank cannot make it: only the holder's TA signs
 * a redemption, and only after it gave the copy up.
 */
export const claimEvidenceCodec = record({ event: walletEventCodec, wcert: certificateBytesCodec, part: uint({ max: REDEEM_BLOCKS_MAX }) });

/** A claim's evidence. */
export type ClaimEvidence = Infer<typeof claimEvidenceCodec>;

/** The evidence's deterministic encoding: the same redemption part is always the same claim. */
export function encodeClaimEvidence(e: ClaimEvidence): Uint8Array {
  return encodeCbor({ event: walletEventWire(e.event), wcert: e.wcert, part: e.part });
}


/** The intermediary certificates of the other banks this node knows and the root has not revoked. */
export async function livePeers(services: IssuerServices, q: Queryable = services.db): Promise<Certificate[]> {
  return (await peerIntermediaries(services, q)).filter((p) => !p.revoked).map((p) => p.certificate);
}

/** This node's block issuer key id (hex): its intermediary key when it holds no root key; undefined at a standalone node. */
export function ownIssuer(services: IssuerServices): string | undefined {
  return services.identity.root.signer === undefined ? toHex(keyId(services.identity.intermediary.certificate.body.subject)) : undefined;
}

/**
 * Settlement's view of the node: paths verify under the root key (or an intermediary it certified,
 * this bank's or another's), at the node's time, whatever was revoked since.
 */
export async function settlementContext(services: IssuerServices, q: Queryable, extra: { accountKeyId?: string } = {}): Promise<SettlementContext> {
  const { identity, provider } = services;
  const now = services.now();
  const { memo: verifiedSignatures, certificates } = nodeMemos(services);
  // The cache's frozen copies, so that their signed bytes and key ids are computed once too.
  const intermediaries = [identity.intermediary.certificate, ...(await livePeers(services, q))].map((c) => certificates.adopt(c));
  const root = certificates.adopt(identity.root.certificate);
  return {
    provider,
    intermediary: identity.intermediary.signer,
    issuer: ownIssuer(services),
    ...(extra.accountKeyId === undefined ? {} : { accountKeyId: extra.accountKeyId }),
    now,
    verifiedSignatures,
    verify: (block) =>
      verifyBlock(block, {
        provider,
        centralBankKey: root.body.subject,
        trustAnchors: [root],
        intermediaries,
        now,
        currency: services.currency.code,
        verifiedSignatures,
        certificates,
      }),
    certificates,
  };
}

/** Each node's memo of the signatures its DOT-M settlement verified, and its decoded certificates. */
const memos = new WeakMap<IssuerServices, { memo: SignatureMemo; certificates: CertificateCache }>();

/**
 * The node's memo of signatures (the users' certificates, and each block and notification, are
 * verified once however many uploads carry them) and its cache of decoded certificates.
 */
function nodeMemos(services: IssuerServices): { memo: SignatureMemo; certificates: CertificateCache } {
  let kept = memos.get(services);
  if (kept === undefined) {
    kept = { memo: new SignatureMemo(), certificates: new CertificateCache() };
    memos.set(services, kept);
  }
  return kept;
}

/** True when the path's serial was issued by another bank (whose key signed its presentation). */
export function isForeign(ctx: SettlementContext, path: Path): boolean {
  return path.issuer !== undefined && path.issuer !== ctx.issuer;
}

/**
 * A redemption here of copies of other banks' blocks: each copy is presented to its issuing bank as
 * a claim for the wallet's account, the evidence being the wallet's signed redemption and its wcert
 * (claimEvidenceCodec). The customer is credited once that bank accepts and the central bank moves
 * the reserves; a refused claim credits nothing and its code is in the claim's state. Answers the
 * claims' ids, or the refusal of a copy that cannot be presented.
 */
export async function presentForeignCopies(tx: TransactionHandle, services: IssuerServices, ctx: SettlementContext, wallet: DotmWallet, event: WalletEvent, parts: readonly { path: Path; part: number }[]): Promise<{ claims: string[]; refused?: { code: string; message: string } }> {
  const { rows } = await tx.query<{ wcert: Uint8Array }>('SELECT wcert FROM dotm_wallets WHERE wallet_key_id = $1', [wallet.walletKeyId]);
  const wcert = new Uint8Array((rows[0] as { wcert: Uint8Array }).wcert);
  const claims: string[] = [];
  for (const { path, part } of parts) {
    const evidence = encodeClaimEvidence({ event, wcert, part });
    if (evidence.length > DOTM_CLAIM_BYTES_MAX) return { claims, refused: { code: 'TOO_LARGE', message: `the redemption of serial ${toHex(path.serial)} is ${evidence.length} bytes as evidence, over the ${DOTM_CLAIM_BYTES_MAX} an interbank claim carries` } };
    const presented = await presentInterbankClaim(tx, services, {
      scheme: 'dotm',
      payerBank: path.issuer as string,
      amount: (event.body.parts[part] as EventPart).block.remaining,
      evidence,
      payee: { keyId: ctx.accountKeyId ?? wallet.userKeyId, accountId: wallet.accountId },
    });
    claims.push(presented.claimId);
  }
  return { claims };
}

function refuse(code: string, reason: string): InterbankJudgement {
  return { accepted: false, code, reason };
}

/**
 * At the issuing bank: judges another bank's claim for a copy of a block issued here, with this
 * node's tree of its serial (§3.4.4), as a redemption: the copy verifies from the presentation to
 * its tip (every record, with user certificates of any bank the root certified), its holder is a
 * customer of the presenting bank, the amount is its remaining value, and crediting it keeps every
 * node of its path within what its holder received. The copy's records enter the tree either way,
 * and an over-spent node names its holder (a finding; a holder registered here is revoked). On
 * acceptance the amount moves from `float:dotm` to `payTo`.
 */
export async function judgeDotmInterbankClaim(tx: TransactionHandle, services: IssuerServices, claim: InterbankClaim, payTo: string): Promise<InterbankJudgement> {
  let evidence: ClaimEvidence;
  try {
    evidence = claimEvidenceCodec.decode(decodeCbor(claim.evidence, { maxBytes: DOTM_CLAIM_BYTES_MAX }), 'evidence');
  } catch (e) {
    return refuse(isTallyError(e) ? e.code : 'DECODE_FAILED', `the evidence is not a DOT-M redemption: ${e instanceof Error ? e.message : String(e)}`);
  }
  const ctx = await settlementContext(services, tx);
  const peers = await livePeers(services, tx);
  // The wallet: certified by the presenting bank (under the root), a DOT-M wallet, and the signer of the redemption.
  let wallet: VerifiedChain;
  try {
    const wcert = decodeCertificate(evidence.wcert);
    const bank = peers.find((p) => toHex(keyId(p.body.subject)) === claim.payeeBank);
    if (bank === undefined || toHex(wcert.body.issuer) !== claim.payeeBank) return refuse('PAYMENT_INVALID', `the wallet was not certified by the presenting bank ${claim.payeeBank}`);
    wallet = verifyChain({ provider: services.provider, chain: [wcert, bank], trustAnchors: [services.identity.root.certificate], now: ctx.now, leafRoles: ['device'] });
  } catch (e) {
    if (isTallyError(e)) return refuse(e.code, `the wallet certificate does not verify: ${e.message}`);
    throw e;
  }
  const { event } = evidence;
  if (wallet.extensions.scheme !== DOTM_SCHEME || wallet.extensions.owner === undefined) return refuse('PAYMENT_INVALID', 'the certificate is not a DOT-M wallet of a user');
  if (!equalBytes(event.body.wallet, wallet.subjectKeyId) || !verifyRecord(services.provider, wallet.subject, EVENT_TAG, eventBodyWire(event.body), event.signature)) {
    return refuse('SIGNATURE_INVALID', 'the redemption is not signed by the wallet');
  }
  const part = event.body.parts[evidence.part];
  if (event.body.kind !== 'redeemed' || part === undefined || part.current !== undefined || !equalBytes(event.body.transaction, partsDigest(event.body.parts))) {
    return refuse('PAYMENT_INVALID', `the evidence is not part ${evidence.part} of a redemption`);
  }
  const block = part.block;
  let path: Path;
  try {
    path = pathOf(ctx.verify(block), ctx.certificates);
  } catch (e) {
    if (isTallyError(e)) return refuse(e.code, `the copy does not verify: ${e.message}`);
    throw e;
  }
  if (path.issuer === undefined || path.issuer !== ctx.issuer) return refuse('PAYMENT_INVALID', `serial ${toHex(path.serial)} was not issued by this bank`);
  if (block.remaining !== claim.amount) return refuse('AMOUNT_MISMATCH', `the claim asks for ${claim.amount}, the copy's remaining value is ${block.remaining}`);
  if (block.remaining <= 0n) return refuse('PAYMENT_INVALID', 'the copy has nothing left');
  if (path.holder !== toHex(wallet.extensions.owner)) return refuse('PAYMENT_INVALID', `the copy is held by ${path.holder}, not by the wallet's user`);

  if (!issuedHere(await lockSerials(tx, [path.serial]), path)) return refuse('PAYMENT_INVALID', `serial ${toHex(path.serial)} was not issued by this bank`);
  const touched = new Map<string, Uint8Array>();
  for (const parent of await insertPath(tx, path)) touched.set(toHex(parent), parent);
  await giveUp(tx, [{ digest: path.tip, amount: block.remaining }]);
  touched.set(toHex(path.tip), path.tip);
  const views = await viewNodes(tx, nodesOf(path));
  const tip = views.get(toHex(path.tip));
  assert(tip !== undefined, 'the tip of the claimed copy was read');
  const pending = new Map<string, bigint>();
  const ok = tip.spent <= tip.received && creditable(views, nodesOf(path), block.remaining, pending);
  const findings = await checkNodes(tx, ctx, [...touched.values()]);
  if (!ok) {
    // The culprit is whoever over-spent a node of this path: the finding made now, or one made before.
    const culprits = findings.map((f) => f.culprit);
    if (culprits.length === 0) {
      for (const digest of nodesOf(path)) {
        const { rows } = await tx.query<{ culprit_key_id: string }>("SELECT culprit_key_id FROM dotm_findings WHERE kind = 'overspent' AND subject = $1", [digest]);
        culprits.push(...rows.map((r) => r.culprit_key_id));
      }
    }
    const named = culprits.length === 0 ? '' : `; double spent by ${[...new Set(culprits)].join(', ')}`;
    return refuse('DOUBLE_SPEND', `the copy of serial ${toHex(path.serial)} was spent already or passes through a double-spent node${named}`);
  }
  addPending(pending, nodesOf(path), block.remaining);
  const moved = await transfer(tx, {
    idempotencyKey: `dotm-interbank:${claim.claimId}`,
    debit: DOTM_FLOAT_ACCOUNT,
    credit: payTo,
    amount: block.remaining,
    kind: 'dotm-interbank',
    reference: { claim: claim.claimId, serial: toHex(path.serial), bank: claim.payeeBank },
    currency: services.currency,
  });
  if (!moved.ok) return refuse(moved.code, moved.message);
  await writeCredits(tx, pending);
  return { accepted: true };
}
