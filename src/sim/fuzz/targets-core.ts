/**
 * The fuzz targets of the shared layers: deterministic CBOR itself, the PKI's decoders (certificates,
 * revocation lists, publications, OEM attestations, TPM quotes), the `tally1` text form, the peer
 * link's frames and the secure element's host frames and protocol messages.
 */
import fc from 'fast-check';
import { equalBytes } from '../../core/bytes.ts';
import { decodeCbor, encodeCbor, CBOR_BYTES_MAX } from '../../core/cbor.ts';
import type { Codec } from '../../core/codec.ts';
import { isTallyError } from '../../core/errors.ts';
import { decodeText, encodeText, TEXT_CHARS_MAX } from '../../core/text.ts';
import { encodeFrame as encodeLinkFrame, FRAME_BYTES_MAX as LINK_FRAME_BYTES_MAX, FrameDecoder } from '../../channel/frame.ts';
import { ATTESTATION_BYTES_MAX, decodeAttestation, encodeAttestation, oemAttestationCodec } from '../../pki/attestation.ts';
import { CERTIFICATE_BYTES_MAX, certificateCodec, decodeCertificate, encodeCertificate } from '../../pki/certificate.ts';
import { decodePublication, PUBLICATION_BYTES_MAX, publicationCodec } from '../../pki/publication.ts';
import { decodeRevocationList, REVOCATION_LIST_BYTES_MAX, revocationListCodec } from '../../pki/revocation.ts';
import { parseAttest, TPM_ATTEST_BYTES_MAX, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE } from '../../pki/tpm-quote.ts';
import { encodeFrame as encodeHostFrame, FRAME_BYTES_MAX as HOST_FRAME_BYTES_MAX, FrameReader } from '../../secure-element/frame.ts';
import { requestCodec, responseCodec } from '../../secure-element/host-protocol.ts';
import { arbitraryOf, cborValue } from './shape-arbitrary.ts';
import { codecTarget, describeThrown, FuzzFinding, PURE_TIMEOUT_MS, type FuzzTarget, type Outcome } from './target.ts';

/** Any CBOR value: the codec of the raw decoder. */
const anyValue: Codec<unknown> = { expected: 'any value', decode: (input) => input };

/** Valid CBOR encodings of the values a codec's shape describes (a value CBOR cannot carry is drawn again). */
export function encodingsOf(codec: Codec<unknown>): fc.Arbitrary<Uint8Array> {
  return arbitraryOf(codec)
    .map((value) => {
      try {
        return encodeCbor(value);
      } catch {
        return undefined;
      }
    })
    .filter((bytes): bytes is Uint8Array => bytes !== undefined);
}

/** Splits `input` into chunks at places drawn from its own bytes, so one input always splits alike. */
function chunksOf(input: Uint8Array): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let at = 0;
  let i = 0;
  while (at < input.length) {
    const n = 1 + ((input[i++ % input.length] as number) % 97);
    chunks.push(input.subarray(at, at + n));
    at += n;
  }
  return chunks;
}

/** Link frames: a stream of length-prefixed frames, whole or in chunks, splits into the same bodies. */
function linkFrames(): FuzzTarget {
  const bodies = fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 4 });
  const read = (chunks: readonly Uint8Array[]): { frames: Uint8Array[]; failed: boolean } => {
    const decoder = new FrameDecoder();
    const frames: Uint8Array[] = [];
    for (const chunk of chunks) {
      const out = decoder.push(chunk);
      frames.push(...out.frames);
      if (out.error !== undefined) {
        if (!isTallyError(out.error, 'FRAME_INVALID')) throw new FuzzFinding(`the frame decoder reported ${describeThrown(out.error)}`);
        return { frames, failed: true };
      }
    }
    return { frames, failed: false };
  };
  return {
    name: 'frame/link',
    group: 'frame',
    bytesMax: Infinity,
    timeoutMs: PURE_TIMEOUT_MS,
    valid: bodies.map((list) => Uint8Array.from(list.flatMap((body) => [...encodeLinkFrame(body)]))),
    feed(input): Outcome {
      const whole = read([input]);
      const chunked = read(chunksOf(input));
      if (whole.failed !== chunked.failed || whole.frames.length !== chunked.frames.length || whole.frames.some((f, i) => !equalBytes(f, chunked.frames[i] as Uint8Array))) {
        throw new FuzzFinding('the same bytes in other chunks gave other frames');
      }
      let used = 0;
      for (const frame of whole.frames) {
        if (frame.length > LINK_FRAME_BYTES_MAX) throw new FuzzFinding(`a frame of ${frame.length} bytes, over ${LINK_FRAME_BYTES_MAX}`);
        used += 4 + frame.length;
      }
      if (used > input.length) throw new FuzzFinding('frames longer than the input');
      return whole.failed ? 'rejected' : 'accepted';
    },
  };
}

/** SE host frames: the same, for the reader between the wallet and the secure element process. */
function hostFrames(): FuzzTarget {
  const values = fc.array(cborValue, { maxLength: 3 });
  const read = (chunks: readonly Uint8Array[]): { frames: Uint8Array[]; errors: number } => {
    const reader = new FrameReader();
    const frames: Uint8Array[] = [];
    let errors = 0;
    for (const chunk of chunks) {
      for (const event of reader.push(chunk)) {
        if ('frame' in event) frames.push(event.frame);
        else if (isTallyError(event.error, 'FRAME_INVALID')) errors++;
        else throw new FuzzFinding(`the frame reader reported ${describeThrown(event.error)}`);
      }
    }
    if (reader.pending > totalLength(chunks)) throw new FuzzFinding('the reader holds more than it was given');
    return { frames, errors };
  };
  return {
    name: 'frame/secure-element',
    group: 'frame',
    bytesMax: Infinity,
    timeoutMs: PURE_TIMEOUT_MS,
    valid: values.map((list) => Uint8Array.from(list.flatMap((value) => [...encodeHostFrame(value)]))),
    feed(input): Outcome {
      const { frames, errors } = read(chunksOf(input));
      for (const frame of frames) if (frame.length > HOST_FRAME_BYTES_MAX) throw new FuzzFinding(`a frame of ${frame.length} bytes, over ${HOST_FRAME_BYTES_MAX}`);
      return errors > 0 ? 'rejected' : 'accepted';
    },
  };
}

function totalLength(chunks: readonly Uint8Array[]): number {
  return chunks.reduce((n, c) => n + c.length, 0);
}

/** A `tally1` token of any CBOR value: the text form and its checksum. */
function textTokens(): FuzzTarget {
  const utf8 = new TextDecoder('utf-8');
  const read = (input: Uint8Array) => decodeText(utf8.decode(input), anyValue);
  return {
    name: 'token/tally1',
    group: 'token',
    bytesMax: TEXT_CHARS_MAX * 3,
    timeoutMs: PURE_TIMEOUT_MS,
    valid: cborValue.map((value) => new TextEncoder().encode(encodeText(value))),
    feed(input): Outcome {
      let value: unknown;
      try {
        value = read(input);
      } catch (e) {
        if (isTallyError(e)) return 'rejected';
        throw new FuzzFinding(`the token reader threw ${describeThrown(e)}`, { cause: e });
      }
      if (!equalBytes(encodeCbor(decodeCbor(encodeCbor(value))), encodeCbor(value))) throw new FuzzFinding('a token value does not round-trip');
      return 'accepted';
    },
  };
}

/** Big-endian bytes of `value` in `n` bytes. */
function be(value: number | bigint, n: number): number[] {
  const out: number[] = [];
  let v = BigInt(value);
  for (let i = 0; i < n; i++) {
    out.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  return out;
}

/** A TPM2B: a 2-byte size, then the bytes. */
const tpm2b = (maxLength: number) => fc.uint8Array({ maxLength }).map((b) => [...be(b.length, 2), ...b]);

/** TPMS_ATTEST quotes as a TPM writes them (TPM 2.0 Part 2, §10.12.8 and §10.12.12), each field drawn in its bounds. */
const tpmQuote: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    tpm2b(66),
    tpm2b(66),
    fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    fc.integer({ min: 0, max: 0xffffffff }),
    fc.integer({ min: 0, max: 0xffffffff }),
    fc.integer({ min: 0, max: 1 }),
    fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    fc.array(fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ minLength: 1, maxLength: 4 })), { maxLength: 3 }),
    tpm2b(64),
  )
  .map(([signer, extra, clock, resets, restarts, safe, firmware, selections, digest]) =>
    Uint8Array.from([
      ...be(TPM_GENERATED_VALUE, 4),
      ...be(TPM_ST_ATTEST_QUOTE, 2),
      ...signer,
      ...extra,
      ...be(clock, 8),
      ...be(resets, 4),
      ...be(restarts, 4),
      safe,
      ...be(firmware, 8),
      ...be(selections.length, 4),
      ...selections.flatMap(([hash, bitmap]) => [...be(hash, 2), bitmap.length, ...bitmap]),
      ...digest,
    ]),
  );

/** A TPMS_ATTEST quote: a binary structure of sized fields. */
function tpmQuotes(): FuzzTarget {
  return {
    name: 'core/tpm-quote',
    group: 'core',
    bytesMax: TPM_ATTEST_BYTES_MAX,
    timeoutMs: PURE_TIMEOUT_MS,
    valid: tpmQuote,
    feed(input): Outcome {
      try {
        parseAttest(input);
        return 'accepted';
      } catch (e) {
        if (isTallyError(e)) return 'rejected';
        throw new FuzzFinding(`the quote parser threw ${describeThrown(e)}`, { cause: e });
      }
    },
  };
}

/** Every target of the shared layers. */
export function coreTargets(): FuzzTarget[] {
  return [
    codecTarget({ name: 'core/cbor', group: 'core', codec: anyValue, bytesMax: CBOR_BYTES_MAX, decode: (input) => decodeCbor(input), valid: cborValue.map((v) => encodeCbor(v)) }),
    codecTarget({ name: 'core/certificate', group: 'core', codec: certificateCodec, bytesMax: CERTIFICATE_BYTES_MAX, decode: decodeCertificate, encode: encodeCertificate, valid: encodingsOf(certificateCodec) }),
    codecTarget({ name: 'core/revocation-list', group: 'core', codec: revocationListCodec, bytesMax: REVOCATION_LIST_BYTES_MAX, decode: decodeRevocationList, valid: encodingsOf(revocationListCodec) }),
    codecTarget({ name: 'core/publication', group: 'core', codec: publicationCodec, bytesMax: PUBLICATION_BYTES_MAX, decode: decodePublication, valid: encodingsOf(publicationCodec) }),
    codecTarget({ name: 'core/attestation', group: 'core', codec: oemAttestationCodec, bytesMax: ATTESTATION_BYTES_MAX, decode: decodeAttestation, encode: encodeAttestation, valid: encodingsOf(oemAttestationCodec) }),
    tpmQuotes(),
    linkFrames(),
    hostFrames(),
    codecTarget({ name: 'frame/secure-element-request', group: 'frame', codec: requestCodec, bytesMax: HOST_FRAME_BYTES_MAX, valid: encodingsOf(requestCodec) }),
    codecTarget({ name: 'frame/secure-element-response', group: 'frame', codec: responseCodec, bytesMax: HOST_FRAME_BYTES_MAX, valid: encodingsOf(responseCodec) }),
    textTokens(),
  ];
}
