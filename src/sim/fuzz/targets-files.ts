/**
 * The files a wallet or a node reads back as fuzz targets: the node's manifest and sealed key files
 * (CBOR), the wallet's peer set (CBOR), its OEM key file and the JSON records of its store (its
 * header, account, device, inbox, sent list, history, retired secure elements, and the legacy
 * wallet.json as a whole). A damaged file must be refused with a TallyError naming it.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import type { Codec } from '../../core/codec.ts';
import { isTallyError } from '../../core/errors.ts';
import { KEY_FILE_BYTES_MAX, decodeKeyFile, keyFileCodec } from '../../issuer/identity/keystore.ts';
import { decodeManifest, encodeManifest, MANIFEST_BYTES_MAX, manifestCodec } from '../../issuer/identity/manifest.ts';
import { decodeJsonFile, oemFileCodec } from '../../wallet/files.ts';
import { decodePeerSet, encodePeerSet, peerSetCodec } from '../../wallet/peers.ts';
import { accountCodec, deviceCodec, headerCodec, historyEventCodec, inboxEntryCodec, retiredCodec, sentEntryCodec, seReportCodec, walletFileCodec } from '../../wallet/store/records.ts';
import { arbitraryOf } from './shape-arbitrary.ts';
import { codecTarget, describeThrown, FuzzFinding, PURE_TIMEOUT_MS, type FuzzTarget, type Outcome } from './target.ts';
import { encodingsOf } from './targets-core.ts';

/**
 * The JSON records declare no limit on the size of their text (only their fields are bounded), so
 * no input is drawn over one; the fields' bounds are reached by mutating values instead.
 */
const JSON_FILE_BYTES_MAX = Infinity;

const utf8Decoder = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

/** JSON text of the values the codec's shape describes (values JSON cannot carry are drawn again). */
function jsonOf(codec: Codec<unknown>): fc.Arbitrary<Uint8Array> {
  return arbitraryOf(codec)
    .map((value): Uint8Array | undefined => {
      try {
        return utf8Encoder.encode(JSON.stringify(value));
      } catch {
        return undefined;
      }
    })
    .filter((bytes): bytes is Uint8Array => bytes !== undefined);
}

/** A JSON file read with decodeJsonFile: refused with a TallyError, or accepted and the same after a JSON round trip. */
function jsonFileTarget(name: string, codec: Codec<unknown>): FuzzTarget {
  const read = (input: Uint8Array) => decodeJsonFile(`fuzz/${name}`, name, codec, utf8Decoder.decode(input));
  return {
    name: `file/${name}`,
    group: 'file',
    bytesMax: JSON_FILE_BYTES_MAX,
    timeoutMs: PURE_TIMEOUT_MS,
    valid: jsonOf(codec),
    structure: {
      toValue: (input) => JSON.parse(utf8Decoder.decode(input)) as unknown,
      fromValue: (value) => {
        const text = JSON.stringify(value);
        if (text === undefined) throw new TypeError('not JSON');
        return utf8Encoder.encode(text);
      },
    },
    feed(input): Outcome {
      let value: unknown;
      try {
        value = read(input);
      } catch (e) {
        if (isTallyError(e)) return 'rejected';
        throw new FuzzFinding(`the file reader threw ${describeThrown(e)}`, { cause: e });
      }
      let again: unknown;
      try {
        again = read(utf8Encoder.encode(JSON.stringify(value)));
      } catch (e) {
        throw new FuzzFinding(`an accepted file written again is refused: ${describeThrown(e)}`, { cause: e });
      }
      if (!isDeepStrictEqual(again, value)) throw new FuzzFinding('an accepted file written again reads differently');
      return 'accepted';
    },
  };
}

/** Every file target. */
export function fileTargets(): FuzzTarget[] {
  return [
    codecTarget({ name: 'file/node-manifest', group: 'file', codec: manifestCodec, bytesMax: MANIFEST_BYTES_MAX, decode: (input) => decodeManifest(input, 'fuzz'), encode: encodeManifest, valid: encodingsOf(manifestCodec) }),
    codecTarget({ name: 'file/node-key', group: 'file', codec: keyFileCodec, bytesMax: KEY_FILE_BYTES_MAX, decode: (input) => decodeKeyFile(input, 'fuzz'), valid: encodingsOf(keyFileCodec) }),
    codecTarget({ name: 'file/wallet-peers', group: 'file', codec: peerSetCodec, bytesMax: 1024 * 1024, decode: decodePeerSet, encode: encodePeerSet, valid: encodingsOf(peerSetCodec) }),
    jsonFileTarget('wallet-oem-key', oemFileCodec),
    jsonFileTarget('wallet-header', headerCodec),
    jsonFileTarget('wallet-account', accountCodec),
    jsonFileTarget('wallet-device', deviceCodec),
    jsonFileTarget('wallet-inbox-entry', inboxEntryCodec),
    jsonFileTarget('wallet-sent-entry', sentEntryCodec),
    jsonFileTarget('wallet-history-event', historyEventCodec),
    jsonFileTarget('wallet-retired', retiredCodec),
    jsonFileTarget('wallet-se-report', seReportCodec),
    jsonFileTarget('wallet-legacy-file', walletFileCodec),
  ];
}
