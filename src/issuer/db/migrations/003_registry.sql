-- The registry of account holders (OPS §3.1 S.Registry) and the nonces of signed requests.

CREATE TABLE users (
  key_id text PRIMARY KEY
    CHECK (key_id ~ '^[0-9a-f]{64}$'),
  suite text NOT NULL
    CHECK (suite IN ('ed25519', 'p256', 'secp256k1')),
  public_key bytea NOT NULL
    CHECK (octet_length(public_key) BETWEEN 32 AND 33),
  certificate bytea NOT NULL
    CHECK (octet_length(certificate) <= 2048),
  account_id text NOT NULL UNIQUE REFERENCES accounts (id),
  created_at timestamptz NOT NULL DEFAULT now()
);

-- A nonce is accepted once per key; rows may be dropped after they expire (the request window).
CREATE TABLE request_nonces (
  key_id text NOT NULL,
  nonce bytea NOT NULL
    CHECK (octet_length(nonce) = 16),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (key_id, nonce)
);

CREATE INDEX request_nonces_by_expiry ON request_nonces (expires_at);
