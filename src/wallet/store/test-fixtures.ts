/** Entries and wallets for the store's tests and its benchmark. */
import type { InboxEntry, LegacyWallet, PendingStep, SentEntry, StoreInit } from './index.ts';
import { optional, taggedUnion, text, type Codec } from '../../core/codec.ts';
import { base64urlText, decimalText, hexText } from '../../core/fields.ts';

/** A hex string of `bytes` bytes made from `n` (distinct for distinct n). */
export function hexOf(n: number, bytes: number): string {
  return n.toString(16).padStart(2 * bytes, '0').slice(-2 * bytes);
}

/** A small base64url blob standing in for a certificate or a payment. */
export const BLOB = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8';

/** The first content of a test wallet. */
export function storeInit(name = 'alice'): StoreInit {
  return {
    header: { name, scheme: 'purse', node: 'http://127.0.0.1:1', currency: { code: 'EUR', decimals: 2 }, createdAt: 1_700_000_000_000 },
    certificates: { root: BLOB, intermediary: BLOB, issuerNode: BLOB },
    crl: null,
    slot: { user: { keyId: hexOf(1, 32), account: 'acct-1', certificate: BLOB }, device: null },
  };
}

/** Received payment number n. */
export function inboxEntry(n: number, state: InboxEntry['state'] = 'accepted'): InboxEntry {
  return { digest: hexOf(n, 32), sender: hexOf(7, 32), index: String(n), amount: '100', payment: BLOB, at: 1_700_000_000_000 + n, state };
}

/** Sent payment number n. */
export function sentEntry(n: number): SentEntry {
  return { digest: hexOf(n + 1_000_000_000, 32), receiver: hexOf(9, 32), index: String(n), amount: '100', payment: BLOB, at: 1_700_000_000_000 + n, confirmed: true };
}

/** A collect step for payment n. */
export function collectStep(n: number): PendingStep {
  return { kind: 'collect', id: hexOf(n, 16), digest: hexOf(n, 32) };
}

/** A legacy wallet.json with `settled` collected payments and as many sent ones. */
export function legacyWallet(settled: number, user: LegacyWallet['user'] = { secret: hexOf(5, 32), keyId: hexOf(1, 32), account: 'acct-1', certificate: BLOB }): LegacyWallet {
  const init = storeInit();
  return {
    format: 1,
    name: init.header.name,
    scheme: 'purse',
    node: init.header.node,
    currency: init.header.currency,
    createdAt: init.header.createdAt,
    user,
    device: { keyId: hexOf(2, 32), certificate: BLOB },
    certificates: init.certificates,
    crl: null,
    inbox: Array.from({ length: settled }, (_, i) => inboxEntry(i, 'collected')),
    sent: Array.from({ length: settled }, (_, i) => sentEntry(i)),
    pending: [],
    retired: [],
  };
}


/** The journal steps of a test scheme, as a scheme gives the store its own step codec. */
export const testSteps: Codec<PendingStep> = taggedUnion('kind', {
  pay: { id: hexText(16), amount: decimalText(), receiver: base64urlText({ max: 4096 }), memo: optional(text({ max: 140 })), request: optional(text({ max: 128 })) },
  collect: { id: hexText(16), digest: hexText(32) },
});
