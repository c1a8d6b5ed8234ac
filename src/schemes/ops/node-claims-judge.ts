/**
 * The part of a bulk claim without the database (see node-claims-bulk.ts): every payment decoded,
 * its receiver checked to be the claimer, its chains answered from the node's cache of checked
 * chains (or checked in full the first time, then kept), its signature checked in the node's
 * worker threads, and its digest taken from its canonical bytes.
 */
import { hash } from 'node:crypto';
import { equalBytes, toHex } from '../../core/bytes.ts';
import { decodeCbor } from '../../core/cbor.ts';
import { signedBytes } from '../../core/crypto/record.ts';
import { isTallyError } from '../../core/errors.ts';
import { ApiProblem, decodeFieldList, type ApiErrorCode, type IssuerServices, type PeerIntermediary, type SignatureCheck } from '../../issuer/plugin.ts';
import { keyId } from '../../pki/key-id.ts';
import { OPS_SCHEME, PAYMENT_BYTES_MAX, PAYMENT_TAG, paymentCodec, paymentSigned, type Payment } from './messages.ts';
import { checkClaim, type VerifiedClaim } from './node-claims.ts';
import { SenderChains, sameCertificate, type KnownChain } from './node-chains.ts';

/** A payment of the request that passed every check without the database. */
export interface Judged {
  /** Its place in the request. */
  readonly item: number;
  readonly claim: VerifiedClaim;
  /** Its bytes as received: its one canonical encoding, kept as evidence beside its row. */
  readonly bytes: Uint8Array;
  /** The offline payment limit of its sender's certificate. */
  readonly limit: number | undefined;
}

/** A payment of the request that was refused. */
export interface Refused {
  readonly item: number;
  readonly code: ApiErrorCode;
  readonly message: string;
}

/** The chains known to each node (one cache per node's services). */
const chainsOf = new WeakMap<IssuerServices, SenderChains>();

function chains(services: IssuerServices): SenderChains {
  let known = chainsOf.get(services);
  if (known === undefined) {
    known = new SenderChains();
    chainsOf.set(services, known);
  }
  return known;
}

/** SHA-256 of a payment's bytes: its digest, since the strict decoder takes only its one canonical encoding. */
function digestOf(bytes: Uint8Array): Uint8Array {
  // One-shot (no Hash object), answered as text and copied into a 32-byte array: V8 keeps so
  // small an array in its heap, where a Buffer from the hash would be an allocation outside it.
  const text = hash('sha256', bytes, 'binary');
  const digest = new Uint8Array(32);
  for (let i = 0; i < 32; i++) digest[i] = text.charCodeAt(i);
  return digest;
}

/** Decodes one payment of the body from its bytes (or their refusal); answers it with its bytes, or the refusal. */
function decodeItem(item: number, decoded: Uint8Array | ApiProblem): { payment: Payment; bytes: Uint8Array } | Refused {
  if (decoded instanceof ApiProblem) return { item, code: decoded.code, message: decoded.message };
  const field = `body.payments.${item}`;
  try {
    return { payment: paymentCodec.decode(decodeCbor(decoded, { maxBytes: PAYMENT_BYTES_MAX, byteViews: true }), field), bytes: decoded };
  } catch (e) {
    if (isTallyError(e)) return { item, code: 'BODY_INVALID', message: `${field}: ${e.message}` };
    throw e;
  }
}

/** A sender chain the cache answers for a claim here: an OPS device of this currency, of a bank in good standing. */
function usableSender(services: IssuerServices, chain: KnownChain | undefined, banks: ReadonlyMap<string, PeerIntermediary | null>): chain is KnownChain {
  if (chain === undefined || chain.role !== 'device' || chain.scheme !== OPS_SCHEME || chain.currency !== services.currency.code || chain.suite !== 'ed25519') return false;
  const bank = banks.get(chain.bank);
  return bank !== undefined && !(bank?.revoked ?? false);
}

/**
 * The part without the database: decodes every payment, checks its receiver is the claimer, its
 * chains (from the cache, or in full the first time and then kept) and its signature (in the
 * worker threads). Answers the judged payments and the refused ones, each in request order.
 */
export async function judge(services: IssuerServices, texts: readonly string[], claimer: Uint8Array, peers: readonly PeerIntermediary[]): Promise<{ judged: Judged[]; refused: Refused[] }> {
  const known = chains(services);
  const now = services.now();
  const own = toHex(keyId(services.identity.intermediary.certificate.body.subject));
  // The banks whose devices may pay here: this one, and every peer (a revoked one is refused).
  const banks = new Map<string, PeerIntermediary | null>([[own, null]]);
  for (const p of peers) banks.set(p.keyId, p);
  const refused: Refused[] = [];
  const judged: Judged[] = [];
  const pending: Array<{ item: number; payment: Payment; bytes: Uint8Array; sender: KnownChain }> = [];
  // Every payment a claimer may claim names the claimer's certificate: its chain is looked up once
  // (and again only while the cache does not hold it yet).
  let claimerChain: KnownChain | undefined;
  // Every payment's bytes decoded into one buffer, one allocation for the request.
  decodeFieldList('body.payments', texts, PAYMENT_BYTES_MAX).forEach((field, item) => {
    const decoded = decodeItem(item, field);
    if ('code' in decoded) return refused.push(decoded);
    const { payment, bytes } = decoded;
    const sender = known.get(payment.sender, now);
    const toClaimer = sameCertificate(payment.receiver, claimer);
    const receiver = toClaimer ? (claimerChain ??= known.get(claimer, now)) : known.get(payment.receiver, now);
    if (usableSender(services, sender, banks) && receiver !== undefined && !equalBytes(sender.keyId, receiver.keyId)) {
      if (!toClaimer) {
        return refused.push({ item, code: 'PAYMENT_INVALID', message: "the payment is not made to the caller's client certificate (a payment to a TA is collected, not claimed)" });
      }
      return pending.push({ item, payment, bytes, sender });
    }
    // A certificate not seen yet, or one the cache does not answer for: the single claim's checks in full.
    const checked = checkClaim(services, payment, claimer, peers);
    if ('problem' in checked) return refused.push({ item, code: checked.problem.code, message: checked.problem.message });
    known.remember(payment.sender, checked.chains.sender);
    known.remember(payment.receiver, checked.chains.receiver);
    const { chains: verified, ...claim } = checked;
    return judged.push({ item, claim: { ...claim, digest: digestOf(bytes) }, bytes, limit: verified.sender.extensions.offlinePaymentsMax });
  });
  const checks: SignatureCheck[] = pending.map(({ payment, sender }) => ({ publicKey: sender.publicKey, message: signedBytes(PAYMENT_TAG, paymentSigned(payment)), signature: payment.signature }));
  const accepted = await services.signatures.verifyEd25519(checks);
  pending.forEach((p, k) => {
    const check = checks[k] as SignatureCheck;
    // OpenSSL refused: the provider's strict check has the last word (see signature-pool.ts).
    if (accepted[k] !== true && !services.provider.suites.ed25519.verify(check.publicKey, check.signature, check.message)) {
      refused.push({ item: p.item, code: 'PAYMENT_INVALID', message: `payment refused: the signature does not verify under the sender key ${toHex(p.sender.keyId)}` });
      return;
    }
    const payerBank = p.sender.bank === own ? null : p.sender.bank;
    judged.push({ item: p.item, claim: { payment: p.payment, sender: p.sender.keyIdHex, digest: digestOf(p.bytes), payerBank }, bytes: p.bytes, limit: p.sender.offlinePaymentsMax });
  });
  judged.sort((a, b) => a.item - b.item);
  return { judged, refused };
}

