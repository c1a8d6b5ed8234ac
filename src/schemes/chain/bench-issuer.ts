/**
 * The issuer node of `bench chain`, as far as the trusted apps see it: a hierarchy of its own made
 * with the PKI's functions (the central bank's root, an intermediary, the issuer node's key), the
 * device certificates of the enclave keys, and the chain receipts the node signs after it read the
 * chain (the chain's parameters, a deposit, an account's statement). The node's HTTP part is not
 * needed here: the bench reads the chain itself and signs what a node would.
 */
import type { CryptoProvider, PublicKey, Signer } from '../../core/crypto/suite.ts';
import { signerFromSecret } from '../../core/crypto/suite.ts';
import { encodeCertificate, issueCertificate } from '../../pki/certificate.ts';
import type { Role } from '../../pki/roles.ts';
import {
  depositBodyCodec,
  DEPOSIT_TAG,
  paramsBodyCodec,
  PARAMS_TAG,
  signed,
  statementBodyCodec,
  STATEMENT_TAG,
  type DepositBody,
  type DepositReceipt,
  type Params,
  type ParamsBody,
  type Statement,
  type StatementBody,
} from './messages.ts';

/** How long the bench hierarchy's certificates are valid, from a day before the run. */
const VALIDITY_MS = 365 * 86_400_000;
const DAY_MS = 86_400_000;

/** The node's hierarchy and what it signs for the trusted apps. */
export interface BenchIssuer {
  /** The encoded certificates a trusted app pins at provisioning. */
  readonly root: Uint8Array;
  readonly intermediary: Uint8Array;
  readonly issuerNode: Uint8Array;
  /** The issuer node's key (it signs the chain receipts). */
  readonly nodeKey: PublicKey;
  /** The device certificate of an enclave key, as the node issues it at registration. */
  deviceCertificate(publicKey: PublicKey): Uint8Array;
  /** The chain's parameters, signed. */
  params(body: ParamsBody): Params;
  /** A deposit as the chain recorded it, signed. */
  depositReceipt(body: DepositBody): DepositReceipt;
  /** An account after a reconciliation, signed. */
  statement(body: StatementBody): Statement;
}

function freshSigner(provider: CryptoProvider): Signer {
  const suite = provider.suites.ed25519;
  return signerFromSecret(suite, suite.generateSecretKey());
}

/** A fresh hierarchy (Ed25519 keys from `provider`), valid from a day before `now` for a year. */
export function makeBenchIssuer(provider: CryptoProvider, now: number): BenchIssuer {
  const [root, intermediary, node] = [freshSigner(provider), freshSigner(provider), freshSigner(provider)];
  const window = { notBefore: now - DAY_MS, notAfter: now + VALIDITY_MS };
  const issue = (issuer: Signer, issuerRole: Role, role: Role, subject: PublicKey, extensions = {}) =>
    encodeCertificate(issueCertificate({ issuer, issuerRole, role, subject, ...window, extensions }));
  return {
    root: issue(root, 'root', 'root', root.publicKey, { name: 'Bench central bank' }),
    intermediary: issue(root, 'root', 'intermediary', intermediary.publicKey, { name: 'Bench bank' }),
    issuerNode: issue(intermediary, 'intermediary', 'issuer-node', node.publicKey),
    nodeKey: node.publicKey,
    deviceCertificate: (publicKey) => issue(intermediary, 'intermediary', 'device', publicKey),
    params: (body) => signed(paramsBodyCodec, node, PARAMS_TAG, body),
    depositReceipt: (body) => signed(depositBodyCodec, node, DEPOSIT_TAG, body),
    statement: (body) => signed(statementBodyCodec, node, STATEMENT_TAG, body),
  };
}
