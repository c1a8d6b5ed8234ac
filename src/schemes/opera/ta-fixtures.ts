/**
 * Fixtures for the ODW trusted app's tests (not exported): a bank played here with the keys a node
 * would hold (the issuer node's key under a test hierarchy), a maker with its credential key and
 * the reference value of the ODW build, and ODWs: operaTrustedApp in an in-process secure element
 * kept in memory, provisioned, credentialed, with the bank's parameters; and a pure ODW, the same
 * app driven without a host, whose state a test may alter to play a broken or lying device.
 */
import assert from 'node:assert/strict';
import { randomBytes } from '../../core/crypto/hash.ts';
import { deriveKeyPair } from '../../core/crypto/hpke.ts';
import type { Link } from '../../channel/link.ts';
import { openLink } from '../../channel/link.ts';
import { memoryPair } from '../../channel/memory.ts';
import { injectFaults, type FaultPlan } from '../../channel/faults.ts';
import { credentialKeys, issueCredential, sealCredential, type CredentialKeys } from '../../pki/anonymous-credential.ts';
import { encodeCertificate } from '../../pki/certificate.ts';
import { keyId } from '../../pki/key-id.ts';
import { certify, hierarchy, NOW, signer } from '../../pki/test-fixtures.ts';
import { nodeProvider } from '../../providers/node-crypto.ts';
import { InProcessHost, type HostOptions } from '../../secure-element/host.ts';
import type { SecureElement } from '../../secure-element/secure-element.ts';
import { MemoryCounter, MemoryStorage } from '../../secure-element/memory-fixtures.ts';
import { findCommand, type TrustedEnv } from '../../secure-element/trusted-app.ts';
import type { Role } from './exchange.ts';
import { CHARGE_TAG, chargeBodyCodec, ODW_CREDENTIAL_LABEL, PARAMS_TAG, paramsBodyCodec, signed, type Maker, type Params } from './messages.ts';
import type { OtkHash } from './otk.ts';
import { runOdw, type SessionOutcome } from './session.ts';
import { odwOf } from './wallet.ts';
import { signToken } from './token.ts';
import { operaTrustedApp, type OperaState } from './trusted-app.ts';

export { NOW };

/** The test hierarchy; the issuer node's key is the bank's. */
export const pki = hierarchy('ed25519', 'opera-ta');
export const bankSigner = signer('opera-ta/issuer-node');
export const issuerNodeCert = encodeCertificate(certify({ issuer: pki.intermediary, issuerRole: 'intermediary', role: 'issuer-node', subject: bankSigner }));
/** The reference PCR value of the genuine ODW build, and another build's. */
export const REFERENCE = new Uint8Array(32).fill(0x3c);
export const OTHER_REFERENCE = new Uint8Array(32).fill(0x3d);
export const DENOMINATIONS = [1n, 2n, 5n, 10n, 20n, 50n, 100n, 200n, 500n];

/** The maker's credential keys (made once). */
export const maker: CredentialKeys = await credentialKeys(new Uint8Array(32).fill(9));
export const rogueMaker: CredentialKeys = await credentialKeys(new Uint8Array(32).fill(10));

/** The bank's escrow key (the tags of tokens paid offline are sealed to it). */
export const escrowKeys = deriveKeyPair(new Uint8Array(32).fill(0x5e));

/** The bank's parameters. */
export function paramsFor(options: { hash?: OtkHash; makers?: Maker[]; at?: number; escrowKey?: Uint8Array } = {}): Params {
  return signed(paramsBodyCodec, bankSigner, PARAMS_TAG, {
    currency: 'EUR',
    denominations: DENOMINATIONS,
    hash: options.hash ?? 'sha256',
    makers: options.makers ?? [{ publicKey: maker.publicKey, reference: REFERENCE }],
    escrowKey: options.escrowKey ?? escrowKeys.publicKey,
    at: options.at ?? NOW,
  });
}

type Commands = typeof operaTrustedApp.commands;
/** Something that runs the ODW's commands: a host, or the pure app. */
export type Caller = Pick<SecureElement<Commands>, 'call'>;

/** An ODW: its caller, and what reopening it needs. */
export interface TestOdw {
  readonly name: string;
  se: Caller;
  /** Closes the SE and opens it again from its sealed state (a reset between commands). */
  reopen(): Promise<void>;
  /** A second ODW with a copy of this one's sealed state and counter (a wallet folder copied with its file counter). */
  clone(name: string): Promise<TestOdw>;
}

/** How an ODW is credentialed. */
export type Credentialing = 'genuine' | 'none' | 'rogue-maker' | 'other-build';

async function provisionAll(se: Caller, name: string, options: { hash?: OtkHash; credential?: Credentialing }): Promise<void> {
  await se.call('init', { root: encodeCertificate(pki.rootCert), owner: keyId(signer(`opera-ta/owner/${name}`).publicKey) });
  await se.call('certInit', { intermediary: encodeCertificate(pki.intermediaryCert), issuerNode: issuerNodeCert, now: NOW });
  await se.call('setParams', { params: paramsFor(options.hash === undefined ? {} : { hash: options.hash }) });
  const how = options.credential ?? 'genuine';
  if (how === 'none') return;
  const request = await se.call('credentialRequest', { makerNonce: randomBytes(32) });
  const keys = how === 'rogue-maker' ? rogueMaker : maker;
  const reference = how === 'other-build' ? OTHER_REFERENCE : REFERENCE;
  const credential = await issueCredential(keys, { label: ODW_CREDENTIAL_LABEL, reference }, request.holder);
  await se.call('credentialInstall', { maker: keys.publicKey, reference, sealed: sealCredential(request.boxKey, credential, randomBytes(32)) });
}

/** A provisioned ODW in an in-process secure element. */
export async function makeOdw(name: string, options: { hash?: OtkHash; credential?: Credentialing } = {}): Promise<TestOdw> {
  const hostOptions = { app: operaTrustedApp, storage: new MemoryStorage(), counter: new MemoryCounter(), provider: nodeProvider };
  const host = await InProcessHost.provision(hostOptions);
  await provisionAll(host, name, options);
  return running(name, hostOptions, host);
}

function running(name: string, hostOptions: HostOptions<OperaState, Commands> & { storage: MemoryStorage; counter: MemoryCounter }, first: InProcessHost<OperaState, Commands>): TestOdw {
  let host = first;
  const odw: TestOdw = {
    name,
    se: host,
    async reopen() {
      await host.close();
      host = await InProcessHost.open(hostOptions);
      odw.se = host;
    },
    async clone(cloneName) {
      const copy = { ...hostOptions, storage: hostOptions.storage.clone(), counter: hostOptions.counter.clone() };
      return running(cloneName, copy, await InProcessHost.open(copy));
    },
  };
  return odw;
}

/**
 * An ODW run without a host: the app's commands on a state held here, which a test may read and
 * alter between commands (a device whose secure element is broken). A rejected command leaves it.
 */
export class PureOdw implements Caller {
  state: OperaState;
  readonly env: TrustedEnv;

  private constructor(name: string) {
    this.env = { provider: nodeProvider, deviceId: randomBytes(16), signer: (label, suite) => signer(`opera-pure/${name}/${label}`, suite ?? 'ed25519', nodeProvider), random: randomBytes };
    this.state = operaTrustedApp.init(this.env);
  }

  static async make(name: string, options: { hash?: OtkHash; credential?: Credentialing } = {}): Promise<PureOdw> {
    const odw = new PureOdw(name);
    await provisionAll(odw, name, options);
    return odw;
  }

  async call(name: string, input: unknown): Promise<never> {
    const spec = findCommand(operaTrustedApp, name);
    const result = await spec.run(this.state, spec.input.decode(input, name), this.env);
    if (!result.ok) throw Object.assign(new Error(`${result.rejection.code}: ${result.rejection.message}`), { code: 'SE_REJECTED', details: { reason: result.rejection.code } });
    this.state = result.state as OperaState;
    return result.output as never;
  }
}

/** Charges tokens of the given values into an ODW, as the bank would. */
export async function charge(odw: { se: Caller } | Caller, values: readonly bigint[]): Promise<void> {
  const se = 'se' in odw ? odw.se : odw;
  const counts = new Map<bigint, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  const amount = values.reduce((s, v) => s + v, 0n);
  const { request } = await se.call('chargeRequest', { amount, tokens: [...counts].map(([value, count]) => ({ value, count })) });
  const tokens = values.map((value) => signToken(bankSigner, { serial: randomBytes(16), value, currency: 'EUR', issued: NOW }));
  await se.call('chargeTake', { charge: signed(chargeBodyCodec, bankSigner, CHARGE_TAG, { nonce: request.body.nonce, tokens }) });
}

/** The balance an ODW holds. */
export async function balance(odw: { se: Caller } | Caller): Promise<bigint> {
  return (await ('se' in odw ? odw.se : odw).call('status', {})).balance;
}

/** Both sides of a payment over an in-memory link (faults on the payer's end, if given); each side's outcome or error. */
export async function pay(payer: { se: Caller } | Caller, payee: { se: Caller } | Caller, amount: bigint, options: { faults?: FaultPlan; /** The payer refuses any other amount than this. */ expect?: bigint; stepTimeoutMs?: number } = {}): Promise<[SessionOutcome | Error, SessionOutcome | Error]> {
  const [a, b] = memoryPair();
  const payerLink: Link = openLink(options.faults === undefined ? a : injectFaults(a, options.faults));
  const payeeLink: Link = openLink(b);
  const hh = randomBytes(64);
  const caller = (o: { se: Caller } | Caller) => ('se' in o ? o.se : o);
  const run = (link: Link, role: Role, se: Caller, value: bigint | undefined) =>
    runOdw(link, hh, role, odwOf(se), { amount: value, stepTimeoutMs: options.stepTimeoutMs ?? 2_000 }).catch((e: unknown) => {
      link.close();
      return e instanceof Error ? e : new Error(String(e));
    });
  const outcomes = await Promise.all([run(payerLink, 'payer', caller(payer), options.expect), run(payeeLink, 'payee', caller(payee), amount)]);
  payerLink.close();
  payeeLink.close();
  return outcomes;
}

/** Asserts a payment went through on both sides. */
export function assertPaid(outcomes: [SessionOutcome | Error, SessionOutcome | Error]): [SessionOutcome, SessionOutcome] {
  const failed = outcomes.map((o, i) => (o instanceof Error ? `${i === 0 ? 'payer' : 'payee'}: ${o.message}` : null)).filter((o) => o !== null);
  if (failed.length > 0) assert.fail(failed.join('; '));
  return outcomes as [SessionOutcome, SessionOutcome];
}
