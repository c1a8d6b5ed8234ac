-- OPERA across intermediaries, at the bank where a token of another bank is deposited: each such
-- token it presented to its issuing bank, once. A second deposit of the serial here is a double
-- spend found on the spot, without a second claim; the issuing bank, the only registry of its own
-- serials, judges the claim with the check its own deposits use.
CREATE TABLE opera_foreign_tokens (
  serial bytea PRIMARY KEY
    CHECK (octet_length(serial) = 16),
  -- The key id of the intermediary that issued it (its tokens verify under its published key).
  bank text NOT NULL
    CHECK (bank ~ '^[0-9a-f]{64}$'),
  value bigint NOT NULL
    CHECK (value > 0),
  -- The ODW that deposited it here, and the claim presented for it.
  device_key_id text NOT NULL REFERENCES devices (key_id),
  claim_id text NOT NULL
    CHECK (claim_id ~ '^[0-9a-f]{64}$'),
  at timestamptz NOT NULL
);
