/**
 * The schemes' decoders as fuzz targets: each scheme lists, in its `wire()`, the decoders of what
 * its peers, nodes and users send (messages as CBOR, tokens as `tally1` text), with the codec whose
 * shape gives valid inputs. This file names no scheme: it reads the registry.
 */
import { isTallyError } from '../../core/errors.ts';
import { SCHEMES } from '../../schemes/index.ts';
import type { WireDecoder } from '../../schemes/scheme.ts';
import { encodeText } from '../../core/text.ts';
import { arbitraryOf } from './shape-arbitrary.ts';
import { encodingsOf } from './targets-core.ts';
import { codecTarget, describeThrown, FuzzFinding, PURE_TIMEOUT_MS, type FuzzTarget } from './target.ts';

const utf8Decoder = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

/** A token reader as a target: the input is the token's text in UTF-8; valid inputs are tokens of the codec's values. */
function tokenTarget(name: string, wire: WireDecoder, read: (token: string) => unknown): FuzzTarget {
  return {
    name,
    group: 'token',
    bytesMax: wire.bytesMax,
    timeoutMs: PURE_TIMEOUT_MS,
    valid: arbitraryOf(wire.codec).map((value) => utf8Encoder.encode(encodeText(value))),
    feed(input) {
      try {
        read(utf8Decoder.decode(input));
        return 'accepted';
      } catch (e) {
        if (isTallyError(e)) return 'rejected';
        throw new FuzzFinding(`the token reader threw ${describeThrown(e)}`, { cause: e });
      }
    },
  };
}

/** The target of one decoder a scheme lists. */
function targetOf(scheme: string, wire: WireDecoder): FuzzTarget {
  const name = `${wire.readToken === undefined ? 'message' : 'token'}/${scheme}/${wire.name}`;
  if (wire.readToken !== undefined) return tokenTarget(name, wire, wire.readToken.bind(wire));
  return codecTarget({
    name,
    group: 'message',
    codec: wire.codec,
    bytesMax: wire.bytesMax,
    ...(wire.decode === undefined ? {} : { decode: wire.decode.bind(wire) }),
    ...(wire.encode === undefined ? {} : { encode: wire.encode.bind(wire) }),
    valid: encodingsOf(wire.codec),
  });
}

/** Every decoder every scheme lists, as targets. */
export async function schemeTargets(): Promise<FuzzTarget[]> {
  const targets: FuzzTarget[] = [];
  for (const scheme of SCHEMES) {
    if (scheme.wire === undefined) continue;
    for (const wire of await scheme.wire()) targets.push(targetOf(scheme.name, wire));
  }
  return targets;
}
