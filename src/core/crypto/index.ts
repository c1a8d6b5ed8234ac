export { aeadOpen, aeadSeal, AEAD_KEY_BYTES, hkdf, keccak256, randomBytes, sha256 } from './hash.ts';
export { sm3 } from './sm3.ts';
export { ethereumAddress, formatEthereumAddress, recoverEthereumAddress } from './ethereum.ts';
export { nobleEd25519, nobleP256, nobleProvider, nobleSecp256k1 } from './noble.ts';
export { SM2_DEFAULT_USER_ID, SM2_ORDER, sm2Suite } from './sm2.ts';
export { requireRecordSignature, signedBytes, signRecord, verifyRecord } from './record.ts';
export {
  checkBytes,
  publicKeyCodec,
  signerFromSecret,
  suiteFor,
  SUITE_NAMES,
  SUITE_SIZES,
  type CryptoProvider,
  type PublicKey,
  type SignatureSuite,
  type Signer,
  type SuiteName,
} from './suite.ts';
