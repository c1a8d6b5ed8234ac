/** The public face of the issuer node's identity: sealed key files, the passphrase, load-or-create. */
export {
  decodeKeyFile,
  keyFileCodec,
  openKey,
  openSecretKey,
  readKeyFile,
  readSecretKeyFile,
  sealKey,
  writeKeyFile,
  KEY_FILE_BYTES_MAX,
  KEY_FILE_DOMAIN_TAG,
  KEY_FILE_FORMAT,
  PASSPHRASE_CHARS_MAX,
  SCRYPT_DEFAULTS,
  SCRYPT_MEMORY_BYTES_MAX,
  SCRYPT_N_MAX,
  SCRYPT_N_MIN,
  SCRYPT_P_MAX,
  SCRYPT_R_MAX,
  type KeyFile,
  type LoadedKey,
  type OpenedSecretKey,
  type ScryptParams,
  type SecretKeyInput,
} from './keystore.ts';
export { resolvePassphrase, GENERATED_PASSPHRASE_BYTES, PASSPHRASE_ENV, type ResolvedPassphrase, type ResolvePassphraseOptions } from './passphrase.ts';
export { loadOrCreateIdentity, type CertifiedKey, type LoadOrCreateIdentityOptions, type NodeIdentity } from './node-identity.ts';
export { CLOCK_SKEW_MS, INTERMEDIARY_VALIDITY_MS, ISSUER_NODE_VALIDITY_MS, OPERATOR_TOKEN_BYTES, ROOT_VALIDITY_MS } from './create-identity.ts';
export { hasIdentity, identityDir, IDENTITY_FILES, PASSPHRASE_FILE } from './layout.ts';
