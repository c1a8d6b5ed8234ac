/**
 * Publications: what an intermediary tells every other bank's wallets about one of its schemes
 * (the public keys its coins, tokens or blocks are signed under), signed with its intermediary key.
 * They travel through the central bank's directory and each bank's `GET /v1/interbank/peers`; a
 * reader checks the peer's certificate under its root and the record under that certificate, so
 * neither its own bank nor the central bank can put other keys in a peer's name. The version only
 * goes up: a reader keeps the newest record it has verified.
 */
import { equalBytes, toHex } from '../core/bytes.ts';
import { decodeCbor, encodeCbor } from '../core/cbor.ts';
import { bytes, record, text, uint } from '../core/codec.ts';
import { signRecord, verifyRecord } from '../core/crypto/record.ts';
import { SUITE_NAMES, SUITE_SIZES, type CryptoProvider, type Signer } from '../core/crypto/suite.ts';
import { checkSize, isTallyError, TallyError } from '../core/errors.ts';
import type { Certificate } from './certificate.ts';
import { keyId, keyIdCodec } from './key-id.ts';

/** The domain tag a publication's signature covers. */
export const PUBLICATION_TAG = 'tally/tier/publication/v1';
/** Largest body a scheme may publish, in bytes. */
export const PUBLICATION_BODY_BYTES_MAX = 16_384;
/** Largest encoded publication: the body and its envelope. */
export const PUBLICATION_BYTES_MAX = PUBLICATION_BODY_BYTES_MAX + 512;

const SIGNATURE_BYTES_MIN = Math.min(...SUITE_NAMES.map((s) => SUITE_SIZES[s].signature));
const SIGNATURE_BYTES_MAX = Math.max(...SUITE_NAMES.map((s) => SUITE_SIZES[s].signature));

/** The signed part of a publication. */
export interface PublicationBody {
  /** Key id of the intermediary key that signs it. */
  readonly issuer: Uint8Array;
  /** The scheme whose parameters these are (a scheme name: `ops`, `otp`, ...). */
  readonly scheme: string;
  /** Goes up with each new publication of this scheme by this issuer (the time it was signed, ms). */
  readonly version: number;
  /** The scheme's own encoding of what it publishes. */
  readonly body: Uint8Array;
}

/** A publication and its issuer's signature over `[PUBLICATION_TAG, body]`. */
export interface Publication {
  readonly body: PublicationBody;
  readonly signature: Uint8Array;
}

const bodyCodec = record({
  issuer: keyIdCodec,
  scheme: text({ min: 1, max: 32, pattern: /^[a-z][a-z0-9-]{0,31}$/, describe: 'a scheme name' }),
  version: uint({ max: Number.MAX_SAFE_INTEGER }),
  body: bytes({ min: 1, max: PUBLICATION_BODY_BYTES_MAX }),
});

/** A publication as it travels: its body bytes, the signer and the signature. */
export const publicationCodec = record({
  body: bodyCodec,
  signature: bytes({ min: SIGNATURE_BYTES_MIN, max: SIGNATURE_BYTES_MAX }),
});

function wire(body: PublicationBody): Record<string, unknown> {
  return { issuer: body.issuer, scheme: body.scheme, version: body.version, body: body.body };
}

/**
 * Signs a scheme's publication with the intermediary's key and encodes it as deterministic CBOR.
 * @throws TallyError TOO_LARGE for a body past PUBLICATION_BODY_BYTES_MAX; DECODE_FAILED for a bad scheme name or version
 */
export function signPublication(signer: Signer, content: { scheme: string; version: number; body: Uint8Array }): Uint8Array {
  checkSize('publication body', content.body.length, PUBLICATION_BODY_BYTES_MAX);
  const body = bodyCodec.decode(wire({ issuer: keyId(signer.publicKey), ...content }), 'publication.body');
  return encodeCbor({ body: wire(body), signature: signRecord(signer, PUBLICATION_TAG, wire(body)) });
}

/**
 * Decodes a publication without checking its signature (see verifyPublication).
 * @throws TallyError TOO_LARGE past PUBLICATION_BYTES_MAX; DECODE_FAILED for anything malformed
 */
export function decodePublication(encoded: Uint8Array): Publication {
  checkSize('publication', encoded.length, PUBLICATION_BYTES_MAX);
  try {
    return publicationCodec.decode(decodeCbor(encoded, { maxBytes: PUBLICATION_BYTES_MAX }), 'publication');
  } catch (e) {
    if (isTallyError(e, 'CBOR_MALFORMED') || isTallyError(e, 'CBOR_NONCANONICAL')) throw new TallyError('DECODE_FAILED', `a publication is not well-formed CBOR: ${e.message}`, { path: 'publication', expected: 'CBOR', got: 'malformed' });
    throw e;
  }
}

/**
 * Decodes and checks a publication against the certificate of the intermediary it claims to come
 * from (the caller has verified that certificate under its root): the issuer named is that
 * certificate's key, and its signature verifies.
 * @throws TallyError DECODE_FAILED or TOO_LARGE for a malformed record; SIGNATURE_INVALID for another issuer or a bad signature
 */
export function verifyPublication(provider: CryptoProvider, encoded: Uint8Array, peer: Certificate): PublicationBody {
  const publication = decodePublication(encoded);
  const key = peer.body.subject;
  if (!equalBytes(publication.body.issuer, keyId(key))) {
    throw new TallyError('SIGNATURE_INVALID', `a publication names issuer ${toHex(publication.body.issuer)}, not ${toHex(keyId(key))}`, { tag: PUBLICATION_TAG });
  }
  if (!verifyRecord(provider, key, PUBLICATION_TAG, wire(publication.body), publication.signature)) {
    throw new TallyError('SIGNATURE_INVALID', `the ${publication.body.scheme} publication of ${toHex(publication.body.issuer)} does not verify`, { tag: PUBLICATION_TAG });
  }
  return publication.body;
}
