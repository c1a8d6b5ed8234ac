/**
 * The messages between the wallet process and the isolated secure element process, with codecs
 * for both directions: every frame is decoded from `unknown` on arrival, on either side.
 */
import { boolean, bytes, oneOf, optional, record, taggedUnion, text, uint, type Codec, type Infer } from '../core/codec.ts';
import { SUITE_NAMES } from '../core/crypto/suite.ts';
import { REQUEST_ID_BYTES } from './sealing.ts';
import { CRASH_POINTS } from './secure-element.ts';
import { FRAME_BYTES_MAX } from './frame.ts';
import { SLOT_BOX_BYTES_MAX, SLOT_SECRET_BYTES_MAX } from './key-slot.ts';

const id = uint({ max: 2 ** 31 });
const path = text({ min: 1, max: 4096 });

/** Which monotonic counter the secure element process uses. */
export const counterSpecCodec = taggedUnion('kind', {
  file: { path },
  tpm: { tcti: text({ min: 1, max: 512 }), nvIndex: uint({ max: 0xffffffff }) },
});
/** Which monotonic counter the secure element process uses. */
export type CounterSpec = Infer<typeof counterSpecCodec>;

/** Parent to child. */
export const requestCodec = taggedUnion('type', {
  open: {
    id,
    dir: path,
    appModule: path,
    appExport: text({ min: 1, max: 128 }),
    counter: counterSpecCodec,
    suite: oneOf(SUITE_NAMES),
    provision: boolean,
  },
  call: { id, command: text({ min: 1, max: 64 }), requestId: optional(bytes({ length: REQUEST_ID_BYTES })), input: bytes({ max: FRAME_BYTES_MAX }) },
  arm: { id, point: oneOf(CRASH_POINTS) },
  /** Seals a holder's secret under the key slot of the device in `dir` (see key-slot.ts); answered with `output`. */
  sealSecret: { id, dir: path, label: text({ min: 1, max: 32 }), secret: bytes({ min: 1, max: SLOT_SECRET_BYTES_MAX }) },
  /** Opens a box sealSecret made; answered with `output` (the secret). Needs the device's master secret only, not an open app. */
  openSecret: { id, dir: path, label: text({ min: 1, max: 32 }), box: bytes({ max: SLOT_BOX_BYTES_MAX }) },
  close: { id },
});
/** Parent to child. */
export type Request = Infer<typeof requestCodec>;

const details: Codec<Record<string, unknown>> = {
  expected: 'a record',
  decode(input, at = 'value') {
    if (typeof input !== 'object' || input === null || Array.isArray(input) || input instanceof Uint8Array) {
      return record({}).decode(input, at);
    }
    return { ...input };
  },
};

/** Child to parent; `id` 0 answers a frame that could not be read. */
export const responseCodec = taggedUnion('type', {
  opened: { id, deviceId: bytes({ length: 16 }), description: text({ max: 1024 }) },
  output: { id, output: bytes({ max: FRAME_BYTES_MAX }) },
  done: { id },
  error: { id, code: text({ max: 64 }), message: text({ max: 4096 }), details },
});
/** Child to parent. */
export type Response = Infer<typeof responseCodec>;
