-- OTP on the node: the bank's signing classes (one RSA key per denomination and epoch, its private
-- key wrapped), the withdrawals (how much, never what was signed), the serials spent (deposited or
-- refunded: each at most once), the second copies of a serial, the findings of escrow attribution,
-- the coins payers report in flight, and the payee categories the operator gives account holders.
-- Times of validity are Unix milliseconds (bigint), as the signed records carry them.

CREATE TABLE otp_classes (
  class_id bytea PRIMARY KEY
    CHECK (octet_length(class_id) = 16),
  epoch bigint NOT NULL
    CHECK (epoch >= 0),
  denomination bigint NOT NULL
    CHECK (denomination > 0),
  currency text NOT NULL
    CHECK (currency ~ '^[A-Z]{3}$'),
  -- Deterministic CBOR of the program every coin of the class carries.
  program bytea NOT NULL
    CHECK (octet_length(program) <= 4096),
  program_digest bytea NOT NULL
    CHECK (octet_length(program_digest) = 32),
  until_ms bigint NOT NULL,
  deposit_until_ms bigint NOT NULL
    CHECK (deposit_until_ms >= until_ms),
  modulus bytea NOT NULL
    CHECK (octet_length(modulus) BETWEEN 256 AND 512),
  exponent bytea NOT NULL
    CHECK (octet_length(exponent) BETWEEN 1 AND 8),
  -- AES-256-GCM of the PKCS#8 private key under a key derived from the node's identity.
  wrapped_key bytea NOT NULL
    CHECK (octet_length(wrapped_key) <= 8192),
  -- Coins signed in this class (a count, never which): what the audit holds the deposits against.
  issued bigint NOT NULL DEFAULT 0
    CHECK (issued >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (epoch, denomination)
);

CREATE INDEX otp_classes_by_deposit_until ON otp_classes (deposit_until_ms);

-- One row per withdrawal: its account, its amount and coin count. Nothing of what was signed.
CREATE TABLE otp_withdrawals (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_id text NOT NULL REFERENCES accounts (id),
  amount bigint NOT NULL
    CHECK (amount > 0),
  coins integer NOT NULL
    CHECK (coins > 0),
  at timestamptz NOT NULL
);

-- Every serial the bank paid out for: deposited (with the escrow tags of its transfers) or
-- refunded to the payer that reported it in flight. The primary key makes each serial pay once.
CREATE TABLE otp_spent (
  serial bytea PRIMARY KEY
    CHECK (octet_length(serial) = 32),
  class_id bytea NOT NULL REFERENCES otp_classes (class_id),
  kind text NOT NULL
    CHECK (kind IN ('deposit', 'refund')),
  account_id text NOT NULL REFERENCES accounts (id),
  -- Deterministic CBOR of the sealed tags (deposits only).
  tags bytea
    CHECK ((kind = 'deposit') = (tags IS NOT NULL)),
  at timestamptz NOT NULL
);

CREATE INDEX otp_spent_by_class ON otp_spent (class_id);

-- A copy of a serial that came after the serial was spent, with its tags: the evidence.
CREATE TABLE otp_double_spends (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  serial bytea NOT NULL REFERENCES otp_spent (serial),
  tags bytea NOT NULL,
  account_id text NOT NULL REFERENCES accounts (id),
  at timestamptz NOT NULL
);

CREATE INDEX otp_double_spends_by_serial ON otp_double_spends (serial);

-- The device the escrow tags name as having paid a serial twice, and the revocation list
-- version that revoked it (null when it is not a device of this node).
CREATE TABLE otp_findings (
  serial bytea NOT NULL REFERENCES otp_spent (serial),
  device_key_id text NOT NULL
    CHECK (device_key_id ~ '^[0-9a-f]{64}$'),
  hop integer NOT NULL
    CHECK (hop >= 1),
  revocation_version bigint,
  at timestamptz NOT NULL,
  PRIMARY KEY (serial, device_key_id)
);

-- A coin a payer's device reported in flight (sent, no ACK): the payer's claim to a refund.
CREATE TABLE otp_claims (
  serial bytea PRIMARY KEY
    CHECK (octet_length(serial) = 32),
  class_id bytea NOT NULL REFERENCES otp_classes (class_id),
  account_id text NOT NULL REFERENCES accounts (id),
  device_key_id text NOT NULL
    CHECK (device_key_id ~ '^[0-9a-f]{64}$'),
  at timestamptz NOT NULL
);

-- The payee category the operator set for an account holder (carried by its exchange keys).
CREATE TABLE otp_categories (
  user_key_id text PRIMARY KEY REFERENCES users (key_id),
  category text
    CHECK (category ~ '^[a-z0-9][a-z0-9-]{0,31}$'),
  updated_at timestamptz NOT NULL DEFAULT now()
);
