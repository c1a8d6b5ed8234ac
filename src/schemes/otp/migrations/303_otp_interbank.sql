-- OTP across intermediaries, at the coin's bank: each claim another bank presented on one of this
-- bank's coins and that this bank accepted (the serial is spent in otp_spent like any deposit, and
-- paid from float:otp into the reserve). A refused claim is in interbank_decisions only, with its
-- code; a double spend's copy is in otp_double_spends.
CREATE TABLE otp_interbank (
  claim_id text PRIMARY KEY
    CHECK (claim_id ~ '^[0-9a-f]{64}$'),
  serial bytea NOT NULL UNIQUE REFERENCES otp_spent (serial),
  -- The presenting bank's intermediary key id.
  payee_bank text NOT NULL
    CHECK (payee_bank ~ '^[0-9a-f]{64}$'),
  amount bigint NOT NULL
    CHECK (amount > 0),
  at timestamptz NOT NULL
);
