-- Escrow attribution of a token paid twice: the bank's escrow seed, the tag chain each deposited
-- token came with (kept sealed; opened only when its serial comes back), every later copy of a spent
-- serial with its chain, and a finding naming the device that paid a token twice.

-- Random seeds the OPERA bank makes once: `escrow` gives the X25519 key the tags are sealed to.
CREATE TABLE opera_secrets (
  name text PRIMARY KEY
    CHECK (name ~ '^[a-z-]{1,32}$'),
  secret bytea NOT NULL
    CHECK (octet_length(secret) = 32)
);

-- The CBOR of the escrow tags a deposited token carried (null for a refund, and for a token never paid offline).
ALTER TABLE opera_tokens ADD COLUMN tags bytea;

-- A copy of a serial deposited after it was spent: the evidence, kept whether or not its tags name anyone.
CREATE TABLE opera_double_spends (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  serial bytea NOT NULL REFERENCES opera_tokens (serial),
  device_key_id text NOT NULL
    CHECK (device_key_id ~ '^[0-9a-f]{64}$'),
  tags bytea,
  at timestamptz NOT NULL
);

CREATE INDEX opera_double_spends_by_serial ON opera_double_spends (serial);

-- A new kind of finding: `paid-twice`, the device the escrow tags name (device_key_id), at a hop.
ALTER TABLE opera_findings DROP CONSTRAINT opera_findings_kind_check;
ALTER TABLE opera_findings ADD CONSTRAINT opera_findings_kind_check
  CHECK (kind IN ('double-spend', 'refund-spent', 'release-denied', 'paid-twice'));
ALTER TABLE opera_findings ADD COLUMN hop integer
  CHECK (hop IS NULL OR hop >= 1);
