// Types for the parts of @digitalbazaar/bbs-signatures (plain JavaScript, no types of its own) that anonymous-credential.ts uses.

declare module '@digitalbazaar/bbs-signatures' {
  export const CIPHERSUITES: { readonly BLS12381_SHAKE256: 'BLS12-381-SHAKE-256'; readonly BLS12381_SHA256: 'BLS12-381-SHA-256' };
  type Ciphersuite = 'BLS12-381-SHAKE-256' | 'BLS12-381-SHA-256';
  /** A BLS12-381 key pair: a 32-byte secret scalar and a 96-byte G2 public key. */
  export function generateKeyPair(options: { seed?: Uint8Array; ciphersuite: Ciphersuite }): Promise<{ secretKey: Uint8Array; publicKey: Uint8Array }>;
  export function secretKeyToPublicKey(options: { secretKey: Uint8Array; ciphersuite: Ciphersuite }): Promise<Uint8Array>;
  export function sign(options: { secretKey: Uint8Array; publicKey: Uint8Array; header: Uint8Array; messages: Uint8Array[]; ciphersuite: Ciphersuite }): Promise<Uint8Array>;
  export function verifySignature(options: { publicKey: Uint8Array; signature: Uint8Array; header: Uint8Array; messages: Uint8Array[]; ciphersuite: Ciphersuite }): Promise<boolean>;
  export function deriveProof(options: {
    publicKey: Uint8Array;
    signature: Uint8Array;
    header: Uint8Array;
    messages: Uint8Array[];
    presentationHeader: Uint8Array;
    disclosedMessageIndexes: number[];
    ciphersuite: Ciphersuite;
  }): Promise<Uint8Array>;
  export function verifyProof(options: {
    publicKey: Uint8Array;
    proof: Uint8Array;
    header: Uint8Array;
    presentationHeader: Uint8Array;
    disclosedMessages: Uint8Array[];
    disclosedMessageIndexes: number[];
    ciphersuite: Ciphersuite;
  }): Promise<boolean>;
}
