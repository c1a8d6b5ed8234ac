/**
 * Codecs for the small files the wallet and the CLI read besides the wallet store: the home's OEM
 * key file, the device a recovery staged, the node's operator token. A damaged file is an error
 * naming the file and the field, never a value of the wrong shape handed on.
 */
import { literal, record, text, type Codec, type Infer } from '../core/codec.ts';
import { TallyError } from '../core/errors.ts';
import { hexText, keyIdHex, textMap } from '../core/fields.ts';

/** Most nodes one OEM key file records an enrollment at. */
export const OEM_ENROLLMENTS_MAX = 1024;

/** `oem/oem.json`: the software OEM's key (development only: a real OEM key lives in the factory's HSM) and the nodes it is enrolled at. */
export const oemFileCodec = record({
  format: literal(1),
  secret: hexText(32),
  enrolled: textMap(keyIdHex, { max: OEM_ENROLLMENTS_MAX, keyCharsMax: 2048 }),
});
/** The OEM key file. */
export type OemFileContent = Infer<typeof oemFileCodec>;

/** The node's operator token file (`identity/operator-token`), trimmed. */
export const operatorTokenCodec = text({ min: 16, max: 512, pattern: /^[A-Za-z0-9_.~+/=-]+$/, describe: 'an operator token (16 to 512 token characters)' });

/**
 * Decodes the JSON text of file `path` with `codec`.
 * @throws TallyError STATE_CORRUPT naming the file and, for a malformed field, its path
 */
export function decodeJsonFile<T>(path: string, what: string, codec: Codec<T>, content: string): T {
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch (e) {
    throw new TallyError('STATE_CORRUPT', `${what} ${path} is not JSON`, { reason: 'json' }, { cause: e });
  }
  try {
    return codec.decode(parsed, 'file');
  } catch (e) {
    throw new TallyError('STATE_CORRUPT', `${what} ${path} is not in the expected format: ${e instanceof Error ? e.message : String(e)}`, { reason: 'format' }, { cause: e });
  }
}

/**
 * Decodes text read from file `path` (not JSON: a token, a line) with `codec`.
 * @throws TallyError STATE_CORRUPT naming the file
 */
export function decodeText<T>(codec: Codec<T>, content: string, path: string): T {
  try {
    return codec.decode(content, 'file');
  } catch (e) {
    throw new TallyError('STATE_CORRUPT', `${path} is not in the expected format: ${e instanceof Error ? e.message : String(e)}`, { reason: 'format' }, { cause: e });
  }
}
