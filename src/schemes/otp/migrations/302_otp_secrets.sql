-- The OTP bank's master seed, for a node whose root key signs with fresh randomness (SM2, ECDSA):
-- its escrow, deposit and class-wrapping keys cannot then be derived from the root's signatures and
-- come from this seed instead. A node with an Ed25519 root stores nothing here.
CREATE TABLE otp_secrets (
  name text PRIMARY KEY
    CHECK (name ~ '^[a-z-]{1,32}$'),
  secret bytea NOT NULL
    CHECK (octet_length(secret) = 32)
);
