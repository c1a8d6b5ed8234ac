/**
 * The issuer node's plug-in module: the one file of `src/issuer` a scheme's node part imports.
 * It names the interface a scheme implements (`SchemeModule`) and the node's services a scheme may
 * use: ledger transfers and accounts, the shared attested device registration, revocations,
 * idempotent requests, caller authentication, claims on other intermediaries, request validation,
 * error codes, JSON helpers, database types, the exposure check's types and the node's Ethereum
 * chain. Anything else in `src/issuer` is the node's own.
 */
export type { SchemeAudit, SchemeModule, SchemeInfo, SchemeRevocation, RouteBodyLimit } from './http/scheme-module.ts';
export { ROUTE_BODY_BYTES_MAX } from './http/scheme-module.ts';
export type { IssuerEnv, IssuerServices, Caller, DeviceLimits } from './http/context.ts';
export { BODY_BYTES_MAX, ISSUANCE_ACCOUNT, RESERVE_ACCOUNT, requireChain } from './http/context.ts';
// Signature checks in the node's worker threads (services.signatures), for settlement at volume.
export type { SignatureCheck, SignaturePool } from './signature-pool.ts';

// Settlement through the sharded intake on NATS JetStream (services.settleQueue), when the node has one.
export { SETTLE_PART_BYTES_MAX, settlePartId, type SettleHandler, type SettleQueue } from './queue/settle-queue.ts';
export { SETTLE_SHARDS_MAX, type SettlePart, type SettleWork } from './queue/settle-part.ts';

// Money between the node's databases (a node with shard databases, services.shardLedgers and services.crossings).
export { sendAcross, type Crossing, type OutboxEntry, type Party } from './ledger/cross-shard.ts';
export type { CrossingReceipt } from './queue/credit-relay.ts';

// The Ethereum chain (chain-tee): the bank's account, contract deployment and calls, the dev faucet.
export { BANK_GAS_WEI, FAUCET_WEI_DEFAULT, FAUCET_WEI_MAX, type ChainService } from './chain/service.ts';
export { ANVIL_CHAIN_ID, ANVIL_STATE_INTERVAL_S } from './chain/anvil.ts';
export type { ChainClients } from './chain/client.ts';
export { toChainError, type ChainErrorContext } from './chain/chain-error.ts';
export {
  CHAIN_RECEIPT_TIMEOUT_MS,
  confirmTransaction,
  deployContract,
  sendAndWait,
  submitTransaction,
  writeContract,
  type ContractArtifact,
  type ContractWrite,
  type Deployed,
  type ReceiptOptions,
  type TransactionRequest,
} from './chain/transactions.ts';

// Money: double-entry transfers between accounts, and opening accounts.
export { transfer, type Transfer, type TransferRequest, type TransferResult } from './ledger/transfer.ts';
export { ensureAccount } from './ledger/account.ts';

// Attested registration of secure elements, shared by every scheme.
export {
  DEVICE_CERTIFICATE_VALIDITY_MS,
  USER_CERTIFICATE_VALIDITY_MS,
  decodeAttestationField,
  registrationRefusal,
  verifyAttestedKey,
  type AttestedKey,
  type PossessionProof,
} from './http/device-registration.ts';

// Revocation lists.
export { currentRevocationList, isSubjectRevoked, revokeCertificate, type RevocableRole, type RevocationOutcome } from './registry/revocations.ts';

// Requests: authentication, idempotency, validation, errors, JSON answers.
export { idempotencyKey, requireOperator, requireUser } from './http/auth.ts';
export {
  amountText,
  base64url,
  base64urlOf,
  decodeField,
  decodeFieldList,
  errorBody,
  idempotent,
  json,
  keyIdHex,
  parseAmount,
  parsePublicKey,
  publicKeyBody,
  refusal,
  requestHash,
  storableText,
  storedAnswer,
  validBody,
} from './http/validate.ts';
export { ApiProblem, type ApiErrorCode } from './http/problem.ts';
export { formatMinor, transferJson } from './http/json.ts';
export { storedResponse, type StoredResponse } from './ledger/idempotency.ts';
export type { JsonValue } from './ledger/json.ts';

// The database a scheme's queries run on.
export { base64Param, bigintColumn, type Queryable, type TransactionHandle } from './db/database.ts';
export { isUnavailable } from './db/retry.ts';
export { storedSecret } from './db/stored-secret.ts';
export { rootSigner } from './identity/node-identity.ts';

// Payments across intermediaries: the other intermediaries' certificates, and claims on them.
export { claimIdOf, peerIntermediaries, peerPublications, presentInterbankClaim, type InterbankClaim, type InterbankJudgement, type PeerIntermediary, type PeerPublication, type PresentedClaim } from './tier/interbank.ts';
export { CLAIM_EVIDENCE_BYTES_MAX } from './tier/interbank.ts';

// The audit's exposure check.
export type { ExposedHolder, HoldingsReader, SchemeHoldings } from './ledger/exposure.ts';
