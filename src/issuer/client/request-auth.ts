/**
 * Signed HTTP requests to the issuer node. An account holder or a device signs the method, the path
 * (with its query), the SHA-256 of the body, a timestamp and a fresh nonce with its registered key;
 * the node checks the signature, the time window and that the nonce was never used. Pure: the
 * wallet and the node share it.
 */
import { fromBase64url, toBase64url, utf8 } from '../../core/bytes.ts';
import { bytes, record, text, uint } from '../../core/codec.ts';
import { randomBytes, sha256 } from '../../core/crypto/hash.ts';
import { signRecord, verifyRecord } from '../../core/crypto/record.ts';
import type { CryptoProvider, PublicKey, Signer } from '../../core/crypto/suite.ts';

/** Domain tag of a signed request. */
export const REQUEST_TAG = 'tally/http/request/v1';
/** How far a request's timestamp may be from the node's clock. */
export const REQUEST_WINDOW_MS = 5 * 60 * 1000;
/** Length of a request nonce. */
export const NONCE_BYTES = 16;

/** Header names (lower case, as HTTP/2 and fetch give them). */
export const AUTH_HEADERS = {
  key: 'tally-key-id',
  timestamp: 'tally-timestamp',
  nonce: 'tally-nonce',
  signature: 'tally-signature',
  idempotency: 'idempotency-key',
} as const;

/** What a request signature covers. */
export interface SignedRequest {
  readonly method: string;
  readonly path: string;
  readonly bodyHash: Uint8Array;
  readonly timestamp: number;
  readonly nonce: Uint8Array;
  readonly keyId: string;
}

/** The record a request signature covers. */
export function requestRecord(input: { method: string; path: string; body: Uint8Array; bodyHash?: Uint8Array | undefined; timestamp: number; nonce: Uint8Array; keyId: string }): SignedRequest {
  return {
    method: input.method.toUpperCase(),
    path: input.path,
    bodyHash: input.bodyHash ?? sha256(input.body),
    timestamp: input.timestamp,
    nonce: input.nonce,
    keyId: input.keyId,
  };
}

/** Signs a request; returns the headers to send with it. */
export function signRequest(options: {
  signer: Signer;
  keyId: string;
  method: string;
  path: string;
  body: Uint8Array | string;
  /**
   * SHA-256 of the body, when the caller has it from a faster hash than this isomorphic module's
   * (node:crypto, for a body of a megabyte); it must be the body's, or the node refuses the request.
   */
  bodyHash?: Uint8Array | undefined;
  timestamp: number;
  nonce?: Uint8Array | undefined;
}): Record<string, string> {
  const nonce = options.nonce ?? randomBytes(NONCE_BYTES);
  const body = typeof options.body === 'string' ? utf8(options.body) : options.body;
  const signed = requestRecord({ method: options.method, path: options.path, body, bodyHash: options.bodyHash, timestamp: options.timestamp, nonce, keyId: options.keyId });
  return {
    [AUTH_HEADERS.key]: options.keyId,
    [AUTH_HEADERS.timestamp]: String(options.timestamp),
    [AUTH_HEADERS.nonce]: toBase64url(nonce),
    [AUTH_HEADERS.signature]: toBase64url(signRecord(options.signer, REQUEST_TAG, signed)),
  };
}

const headerCodec = record({
  keyId: text({ min: 1, max: 128, pattern: /^[a-z0-9:_-]+$/, describe: 'a key id' }),
  timestamp: uint({ max: Number.MAX_SAFE_INTEGER }),
  nonce: bytes({ length: NONCE_BYTES }),
  signature: bytes({ min: 1, max: 128 }),
});

/** The auth headers of a request, decoded. */
export interface RequestAuth {
  readonly keyId: string;
  readonly timestamp: number;
  readonly nonce: Uint8Array;
  readonly signature: Uint8Array;
}

/**
 * Reads the auth headers, or returns null when the request carries none.
 * @throws TallyError DECODE_FAILED for present but malformed headers
 */
export function readRequestAuth(header: (name: string) => string | undefined): RequestAuth | null {
  const keyId = header(AUTH_HEADERS.key);
  const timestamp = header(AUTH_HEADERS.timestamp);
  const nonce = header(AUTH_HEADERS.nonce);
  const signature = header(AUTH_HEADERS.signature);
  if (keyId === undefined && timestamp === undefined && nonce === undefined && signature === undefined) return null;
  const decodeB64 = (value: string | undefined): Uint8Array | string | undefined => {
    if (value === undefined) return undefined;
    try {
      return fromBase64url(value);
    } catch {
      return value;
    }
  };
  return headerCodec.decode(
    {
      keyId,
      timestamp: timestamp !== undefined && /^[0-9]{1,16}$/.test(timestamp) ? Number(timestamp) : timestamp,
      nonce: decodeB64(nonce),
      signature: decodeB64(signature),
    },
    'headers',
  );
}

/** Why a signed request was refused; null when it is good. */
export type RequestAuthProblem = 'SIGNATURE_INVALID' | 'TIMESTAMP_OUT_OF_WINDOW';

/** Checks the signature and time window of a request (the nonce is checked by the node's store). */
export function checkRequestAuth(options: {
  provider: CryptoProvider;
  publicKey: PublicKey;
  auth: RequestAuth;
  method: string;
  path: string;
  body: Uint8Array;
  /** SHA-256 of `body`, when the verifier has it from a faster hash (see signRequest). */
  bodyHash?: Uint8Array | undefined;
  now: number;
}): RequestAuthProblem | null {
  const { auth } = options;
  if (Math.abs(options.now - auth.timestamp) > REQUEST_WINDOW_MS) return 'TIMESTAMP_OUT_OF_WINDOW';
  const signed = requestRecord({ method: options.method, path: options.path, body: options.body, bodyHash: options.bodyHash, timestamp: auth.timestamp, nonce: auth.nonce, keyId: auth.keyId });
  return verifyRecord(options.provider, options.publicKey, REQUEST_TAG, signed, auth.signature) ? null : 'SIGNATURE_INVALID';
}
