/** The public face of the PKI layer: certificates, roles, chains, revocation lists, OEM attestation. */
export {
  attestDevice,
  attestationBodyCodec,
  decodeAttestation,
  encodeAttestation,
  oemAttestationCodec,
  verifyAttestation,
  ATTESTATION_BYTES_MAX,
  OEM_ATTESTATION_DOMAIN_TAG,
  SECURE_DEVICE_LABEL,
  type AttestationBody,
  type OemAttestation,
  type VerifiedAttestation,
  type VerifyAttestationOptions,
} from './attestation.ts';
export {
  certificateBodyCodec,
  certificateCodec,
  decodeCertificate,
  encodeCertificate,
  isSelfIssued,
  issueCertificate,
  serialCodec,
  serialHex,
  timeMsCodec,
  CERTIFICATE_BYTES_MAX,
  CERTIFICATE_DOMAIN_TAG,
  CERTIFICATE_VERSION,
  SERIAL_BYTES,
  TIME_MS_MAX,
  type Certificate,
  type CertificateBody,
  type IssueCertificateOptions,
} from './certificate.ts';
export { verifyChain, CHAIN_LENGTH_MAX, type VerifiedChain, type VerifyChainOptions } from './chain.ts';
export {
  extensionsCodec,
  DEVICE_MODEL_CHARS_MAX,
  NAME_CHARS_MAX,
  OFFLINE_PAYMENTS_MAX_LIMIT,
  SCHEME_CHARS_MAX,
  TA_MEASUREMENT_BYTES,
  type CertificateExtensions,
} from './extensions.ts';
export { keyId, keyIdCodec, KEY_ID_BYTES } from './key-id.ts';
export {
  decodeRevocationList,
  encodeRevocationList,
  issueRevocationList,
  listRevokes,
  revocationListBodyCodec,
  revocationListCodec,
  verifyRevocationList,
  RevocationStore,
  REVOCATION_ISSUERS_MAX,
  REVOCATION_LIST_BYTES_MAX,
  REVOCATION_LIST_DOMAIN_TAG,
  REVOKED_SERIALS_MAX,
  type RevocationAcceptResult,
  type RevocationChecker,
  type RevocationList,
  type RevocationListBody,
} from './revocation.ts';
export { isSelfSignedRole, mayCertify, roleCodec, CERTIFIABLE_ROLES, ROLES, SELF_SIGNED_ROLES, type Role } from './roles.ts';
export {
  signRegistrationProof,
  verifyRegistrationProof,
  DEVICE_REGISTRATION_DOMAIN_TAG,
  type RegistrationClaim,
} from './registration.ts';
