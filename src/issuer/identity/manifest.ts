/**
 * The identity manifest (`node.cbor`): which currency the node issues, when its identity was
 * created, and which files hold its certificates. A data folder belongs to one currency for life.
 */
import { currency, CURRENCY_DECIMALS_MAX, type Currency } from '../../core/amount.ts';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { literal, oneOf, optional, record, refine, text, uint, type Codec } from '../../core/codec.ts';
import { TallyError } from '../../core/errors.ts';
import { TIME_MS_MAX } from '../../pki/certificate.ts';
import { corrupt } from '../../host/files.ts';
import { IDENTITY_FILES } from './layout.ts';

/** The manifest format version. */
export const MANIFEST_FORMAT = 1;
/** Largest manifest file accepted. */
export const MANIFEST_BYTES_MAX = 4096;

/**
 * What a node is in the two tiers: `standalone` plays the central bank and one intermediary in
 * one process (the first start's default); `central-bank` keeps the root and the intermediaries'
 * reserves and serves no wallet; `intermediary` was enrolled at a central bank, whose root
 * certifies its key, and holds no root key.
 */
export const NODE_ROLES = ['standalone', 'central-bank', 'intermediary'] as const;
/** A node's role in the two tiers. */
export type NodeRole = (typeof NODE_ROLES)[number];
/** Longest central bank URL a manifest keeps. */
export const CENTRAL_BANK_URL_LENGTH_MAX = 512;

/** The decoded manifest. */
export interface Manifest {
  readonly format: 1;
  readonly currency: Currency;
  /** Absent in folders made before the two tiers: they are `standalone`. */
  readonly role?: NodeRole | undefined;
  /** An intermediary's central bank (its base URL). */
  readonly centralBank?: string | undefined;
  /** When the identity was created, Unix milliseconds. */
  readonly createdAt: number;
  readonly certificates: {
    readonly root: typeof IDENTITY_FILES.rootCertificate;
    readonly intermediary: typeof IDENTITY_FILES.intermediaryCertificate;
    readonly issuerNode: typeof IDENTITY_FILES.issuerNodeCertificate;
  };
}

const currencyCodec: Codec<Currency> = refine(
  record({ code: text({ max: 12, pattern: /^[A-Z][A-Z0-9]{2,11}$/, describe: 'a currency code of 3 to 12 capitals or digits' }), decimals: uint({ max: CURRENCY_DECIMALS_MAX }) }),
  'a currency',
  (value) => currency(value.code, value.decimals),
);

/** Decodes a manifest's CBOR data model. */
export const manifestCodec: Codec<Manifest> = record({
  format: literal(MANIFEST_FORMAT),
  currency: currencyCodec,
  createdAt: uint({ max: TIME_MS_MAX }),
  role: optional(oneOf(NODE_ROLES)),
  centralBank: optional(text({ min: 1, max: CENTRAL_BANK_URL_LENGTH_MAX, pattern: /^https?:\/\/\S+$/, describe: 'an http:// or https:// URL' })),
  certificates: record({
    root: literal(IDENTITY_FILES.rootCertificate),
    intermediary: literal(IDENTITY_FILES.intermediaryCertificate),
    issuerNode: literal(IDENTITY_FILES.issuerNodeCertificate),
  }),
});

/** The manifest of an identity created now for `currency`, in `role` (with its central bank when an intermediary). */
export function newManifest(issued: Currency, createdAt: number, role: NodeRole = 'standalone', centralBank?: string): Manifest {
  return {
    format: MANIFEST_FORMAT,
    currency: issued,
    createdAt,
    role,
    ...(centralBank === undefined ? {} : { centralBank }),
    certificates: {
      root: IDENTITY_FILES.rootCertificate,
      intermediary: IDENTITY_FILES.intermediaryCertificate,
      issuerNode: IDENTITY_FILES.issuerNodeCertificate,
    },
  };
}

/** Encodes a manifest as deterministic CBOR. */
export function encodeManifest(manifest: Manifest): Uint8Array {
  const { role, centralBank, ...rest } = manifest;
  return encodeCbor({ ...rest, currency: { code: manifest.currency.code, decimals: manifest.currency.decimals }, ...(role === undefined ? {} : { role }), ...(centralBank === undefined ? {} : { centralBank }) });
}

/**
 * Decodes manifest bytes read from `file`.
 * @throws TallyError STATE_CORRUPT for anything malformed
 */
export function decodeManifest(encoded: Uint8Array, file: string): Manifest {
  try {
    return manifestCodec.decode(decodeCbor(encoded, { maxBytes: MANIFEST_BYTES_MAX }), 'manifest');
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    if (e instanceof TallyError || e instanceof RangeError) throw corrupt(`manifest ${file} is damaged (${reason}); restore it from a backup`, reason, e);
    throw e;
  }
}

/**
 * Refuses a data folder made for another currency (or the same code with other decimals).
 * @throws TallyError CURRENCY_MISMATCH naming both and what to do
 */
export function requireSameCurrency(manifest: Manifest, wanted: Currency, dataDir: string): void {
  const have = manifest.currency;
  if (have.code === wanted.code && have.decimals === wanted.decimals) return;
  throw new TallyError(
    'CURRENCY_MISMATCH',
    `the data folder ${dataDir} belongs to a node issuing ${have.code} with ${have.decimals} decimals, not ${wanted.code} with ${wanted.decimals}; use another data folder for ${wanted.code}`,
    { left: `${have.code}/${have.decimals}`, right: `${wanted.code}/${wanted.decimals}` },
  );
}

/** The role a manifest gives its node (`standalone` for folders made before the two tiers). */
export function manifestRole(manifest: Manifest): NodeRole {
  return manifest.role ?? 'standalone';
}
