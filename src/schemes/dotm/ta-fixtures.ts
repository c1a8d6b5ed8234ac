/**
 * Fixtures for the DOT-M trusted app and session tests (not exported): a hierarchy whose root key
 * is the central bank's pk_C (it signs the forms of presentation), an intermediary that certifies
 * users, wallets and the issuer node, and wallets: dotmTrustedApp in an in-process secure element
 * kept in memory, registered (§3.3.1) with a payment password. No issuer node runs: blocks and
 * acks are signed here with the keys the node would use.
 */
import assert from 'node:assert/strict';
import { signRecord } from '../../core/crypto/record.ts';
import type { PublicKey, Signer } from '../../core/crypto/suite.ts';
import { isTallyError } from '../../core/errors.ts';
import { encodeCertificate, issueCertificate } from '../../pki/certificate.ts';
import type { CertificateExtensions } from '../../pki/extensions.ts';
import { keyId } from '../../pki/key-id.ts';
import { certify, DAY, hierarchy, NOW, signer, T0 } from '../../pki/test-fixtures.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { openLink, type Link } from '../../channel/link.ts';
import { memoryPair as memoryStreams } from '../../channel/memory.ts';
import { InProcessHost, type HostOptions } from '../../secure-element/host.ts';
import { deriveDeviceKeys } from '../../secure-element/sealing.ts';
import type { SecureElement } from '../../secure-element/secure-element.ts';
import { MemoryCounter, MemoryStorage } from '../../secure-element/memory-fixtures.ts';
import { PRESENTATION_TAG, presentationSigned, type CurrencyBlock } from './messages.ts';
import { EVENT_ACK_TAG, eventAckBodyWire, type EventAck } from './online.ts';
import { dotmTrustedApp, USER_KEY_LABEL, WALLET_KEY_LABEL, type DotmState } from './trusted-app.ts';

export { NOW };

/** The hierarchy: `pki.root` is the central bank. */
export const pki = hierarchy('ed25519', 'dotm-ta');
/** The issuer node's key (signs acks) and its certificate. */
export const issuerNode = signer('dotm-ta/issuer-node');
export const issuerNodeCert = encodeCertificate(certify({ issuer: pki.intermediary, issuerRole: 'intermediary', role: 'issuer-node', subject: issuerNode }));
/** The payment password every fixture wallet is given. */
export const PASSWORD = '1234';

type Commands = typeof dotmTrustedApp.commands;
/** A DOT-M secure element. */
export type DotmSe = SecureElement<Commands>;

/** A registered wallet and what its SE holds. */
export interface Wallet {
  readonly name: string;
  readonly se: DotmSe;
  readonly userKey: PublicKey;
  readonly walletKey: PublicKey;
  /** keyId(upk): the owner of blocks issued to this user. */
  readonly userId: Uint8Array;
  readonly ucert: Uint8Array;
  readonly wcert: Uint8Array;
  /** usk and wsk as the SE derives them, to play a wallet whose SE is broken into. */
  readonly usk: Signer;
  readonly wsk: Signer;
  /** The same SE, closed and opened again from its sealed state. */
  reopen(): Promise<Wallet>;
}

/** Provisions a wallet: init, ucert (role user) and wcert (role device, owner = upk) from the intermediary, certify, pwd. */
export async function makeWallet(name: string): Promise<Wallet> {
  const storage = new MemoryStorage();
  const options: HostOptions<DotmState, Commands> = { app: dotmTrustedApp, storage, counter: new MemoryCounter(), provider: nodeProvider };
  const se: DotmSe = await InProcessHost.provision(options);
  const init = await se.call('init', {
    root: encodeCertificate(pki.rootCert),
    intermediary: encodeCertificate(pki.intermediaryCert),
    issuerNode: issuerNodeCert,
    account: keyId(signer(`dotm-ta/account/${name}`).publicKey),
  });
  const userId = keyId(init.userKey);
  const issue = (role: 'user' | 'device', subject: PublicKey, extensions: CertificateExtensions) =>
    encodeCertificate(issueCertificate({ issuer: pki.intermediary, issuerRole: 'intermediary', role, subject, notBefore: T0, notAfter: T0 + 365 * DAY, extensions }));
  const ucert = issue('user', init.userKey, { name, currency: 'EUR' });
  const wcert = issue('device', init.walletKey, { scheme: 'dotm', owner: userId, currency: 'EUR' });
  assert.deepEqual(await se.call('certify', { ucert, wcert }), { currency: 'EUR' });
  assert.deepEqual(await se.call('setPassword', { password: PASSWORD }), { set: true, triesLeft: 5 });
  assert.ok(storage.master !== null);
  const keys = deriveDeviceKeys(storage.master, nodeProvider);
  const usk = keys.signer(dotmTrustedApp.name, USER_KEY_LABEL, 'ed25519');
  const wsk = keys.signer(dotmTrustedApp.name, WALLET_KEY_LABEL, 'ed25519');
  assert.deepEqual(usk.publicKey, init.userKey);
  const base = { name, userKey: init.userKey, walletKey: init.walletKey, userId, ucert, wcert, usk, wsk };
  const running = (current: DotmSe): Wallet => ({
    ...base,
    se: current,
    reopen: async () => {
      await current.close();
      return running(await InProcessHost.open(options));
    },
  });
  return running(se);
}

let serials = 0;
/** A fresh block for `owner` (a user key id), its presentation signed by the central bank or by `bank`. */
export function mintBlock(owner: Uint8Array, value: bigint, bank: Signer = pki.root): CurrencyBlock {
  const serial = new Uint8Array(16);
  new DataView(serial.buffer).setUint32(12, ++serials);
  const unsigned = { serial, value, currency: 'EUR', owner };
  return { presentation: { ...unsigned, signature: signRecord(bank, PRESENTATION_TAG, presentationSigned(unsigned)) }, records: [], remaining: value, count: 0 };
}

/** §3.3.2: the central bank issues a block of `value` to the wallet's user, and the wallet loads it. */
export async function issueBlock(wallet: Wallet, value: bigint): Promise<CurrencyBlock> {
  const block = mintBlock(wallet.userId, value);
  await wallet.se.call('load', { blocks: [block], now: NOW });
  return block;
}

/** The issuer node's ack of the wallet's events up to `upTo`, signed with its key (or `by`). */
export function ack(wallet: Wallet, upTo: number, by: Signer = issuerNode): EventAck {
  const body = { wallet: keyId(wallet.walletKey), upTo, time: NOW };
  return { body, signature: signRecord(by, EVENT_ACK_TAG, eventAckBodyWire(body)) };
}

/** Two plain links joined in memory. */
export function memoryPair(): [Link, Link] {
  const [a, b] = memoryStreams();
  return [openLink(a), openLink(b)];
}

/** What a wallet shows and logs: equal before and after a refusal. */
export async function snapshot(wallet: Wallet) {
  const [status, events] = await Promise.all([wallet.se.call('status', {}), wallet.se.call('events', {})]);
  return { status, events: events.events };
}

/** Asserts that the TA refused with `code` (SE_REJECTED carrying the TA's code). */
export async function refused(call: Promise<unknown>, code: string, what = code): Promise<void> {
  await assert.rejects(call, (e: unknown) => {
    assert.ok(isTallyError(e, 'SE_REJECTED'), `${what}: ${String(e)}`);
    assert.equal(e.details.reason, code, `${what}: ${e.message}`);
    return true;
  }, `${what}: expected the TA to refuse with ${code}`);
}
