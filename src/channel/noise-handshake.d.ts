// Types for the parts of noise-handshake (plain CommonJS, no types of its own) that noise.ts uses.

declare module 'noise-handshake' {
  /** An X25519 key pair as the package holds it. */
  interface NoiseKeyPair {
    publicKey: Uint8Array;
    secretKey: Uint8Array;
  }

  /** One side of a Noise handshake (Noise_<pattern>_25519_ChaChaPoly_BLAKE2b). */
  export default class NoiseState {
    constructor(pattern: 'XX' | 'NN' | 'IK' | 'XK', initiator: boolean, staticKeyPair?: NoiseKeyPair | null, options?: object);
    /** True once the last handshake message was sent or received. */
    readonly complete: boolean;
    /** The handshake hash, once complete (64 bytes). */
    readonly hash: Uint8Array | null;
    /** The remote static public key, once received. */
    readonly rs: Uint8Array | null;
    /** The sending key, once complete. */
    readonly tx: Uint8Array | null;
    /** The receiving key, once complete. */
    readonly rx: Uint8Array | null;
    initialise(prologue: Uint8Array, remoteStatic?: Uint8Array): void;
    send(payload?: Uint8Array): Uint8Array;
    recv(message: Uint8Array): Uint8Array;
  }
}

declare module 'noise-handshake/cipher.js' {
  /** A Noise CipherState: ChaCha20-Poly1305 with a counter nonce. */
  export default class CipherState {
    constructor(key?: Uint8Array);
    encrypt(plaintext: Uint8Array, ad?: Uint8Array): Uint8Array;
    decrypt(ciphertext: Uint8Array, ad?: Uint8Array): Uint8Array;
  }
}
