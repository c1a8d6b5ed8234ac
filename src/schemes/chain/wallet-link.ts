/**
 * The session's roles played by a wallet's secure element: the payer checks the payee's account
 * (its enclave's certificate to the root, not revoked, bound to this session) before its TEE signs;
 * the payee's TEE answers each `tx_off` (credit and ack_win, or ack_fail).
 */
import { equalBytes } from '../../core/bytes.ts';
import { ethereumAddress } from '../../core/crypto/ethereum.ts';
import type { CryptoProvider } from '../../core/crypto/suite.ts';
import { isTallyError, TallyError } from '../../core/errors.ts';
import { decodeCertificate, type Certificate } from '../../pki/certificate.ts';
import type { SecureElement } from '../../secure-element/secure-element.ts';
import { bindingBodyCodec, BINDING_TAG, checkSigned, type SignedAck, type TxOff } from './messages.ts';
import type { PayeeRole, PayeeShown, PayerRole } from './session.ts';
import type { chainTrustedApp } from './trusted-app.ts';
import { verifyDevice } from './tx-off.ts';

/**
 * The TEE's refusals of a payment sent again that it took before and forgot once the chain settled
 * it (its counter is still remembered), or may have (it is older than the counters remembered).
 */
const FORGOTTEN: ReadonlySet<string> = new Set(['CHAIN_REPLAYED', 'CHAIN_TX_STALE']);

/** The chain-tee secure element as the wallet drives it (in-process or isolated: the same calls). */
export type ChainSe = SecureElement<typeof chainTrustedApp.commands>;

/** What the payer trusts a payee's enclave by. */
export interface PayeeTrust {
  readonly provider: CryptoProvider;
  readonly root: Certificate;
  readonly intermediary: Certificate;
  /** Enclave addresses the chain revoked, as the wallet last synced them. */
  revoked(): readonly Uint8Array[];
  /** The other banks' intermediary certificates, from the chain's parameters (none when absent). */
  banks?(): readonly Uint8Array[];
  /** The Noise handshake hash of this link. */
  readonly session: Uint8Array;
  now(): number;
}

/**
 * Checks what a payee shows: its enclave's certificate chains to the root (through its own bank or
 * another bank of the chain's parameters), the enclave is not
 * revoked, and the enclave bound this account to this very session.
 * @throws TallyError PAYEE_INVALID (and the certificate chain's codes)
 */
export function checkPayee(trust: PayeeTrust, shown: PayeeShown): void {
  const chain = verifyDevice(trust.provider, decodeCertificate(shown.certificate), { root: trust.root, intermediary: trust.intermediary, banks: trust.banks?.() ?? [] }, trust.now());
  if (chain.subject.suite !== 'secp256k1') throw new TallyError('PAYEE_INVALID', "the payee's certificate is not an enclave key", { reason: 'suite' });
  const enclave = ethereumAddress(chain.subject);
  if (trust.revoked().some((r) => equalBytes(r, enclave))) throw new TallyError('PAYEE_INVALID', "the payee's enclave is revoked", { reason: 'revoked' });
  const binding = checkSigned(trust.provider, chain.subject, bindingBodyCodec, BINDING_TAG, shown.binding);
  if (!equalBytes(binding.account, shown.account)) throw new TallyError('PAYEE_INVALID', 'the account shown is not the one the enclave bound', { reason: 'account' });
  if (!equalBytes(binding.session, trust.session)) throw new TallyError('PAYEE_INVALID', 'the binding is for another session (a relay between the two devices?)', { reason: 'session' });
}

/** The payer's role. */
export function payerRole(se: ChainSe, trust: PayeeTrust): PayerRole {
  return {
    checkPayee: async (shown) => checkPayee(trust, shown),
    pendingTo: async (account) => (await se.call('pendingTo', { payee: account })).txOffs,
    transfer: async (account, amount) => (await se.call('transfer', { payee: account, amount, now: trust.now() })).txOff,
    async settle(acks: readonly SignedAck[]) {
      for (const ack of acks) await se.call(ack.ok ? 'pay' : 'abort', { ack });
    },
  };
}

/** The payee's role. */
export function payeeRole(se: ChainSe, options: { session: Uint8Array; now(): number }): PayeeRole {
  return {
    show: async () => se.call('bind', { session: options.session }),
    async receive(txOff: TxOff, expect: bigint | null) {
      if (expect !== null && txOff.payment.amount !== expect) {
        // Not what was asked: declined with an ack_fail (the payer's TEE gets its amount back).
        return { ack: (await se.call('reject', { txOff, now: options.now() })).ack, credited: false };
      }
      const answer = await se.call('receive', { txOff, now: options.now() });
      return { ack: answer.ack, credited: answer.credited };
    },
    async resent(txOff: TxOff) {
      try {
        return (await se.call('receive', { txOff, now: options.now() })).ack;
      } catch (e) {
        if (isTallyError(e, 'SE_REJECTED') && FORGOTTEN.has(String(e.details.reason))) return null;
        throw e;
      }
    },
  };
}
