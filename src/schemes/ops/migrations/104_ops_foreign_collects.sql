-- Two tiers: a payment that a device of this bank collected offline from a device of another bank.
-- The device holds its value at once; this bank's float:ops receives it only when the payer's bank
-- settles the interbank claim this bank presented for it (payable to float:ops). Until then the
-- claim is money receivable from the payer's bank; once refused, a loss named by its sender.
CREATE TABLE ops_foreign_collects (
  sender_key_id text NOT NULL,
  index bigint NOT NULL CHECK (index >= 1),
  device_key_id text NOT NULL,
  amount bigint NOT NULL CHECK (amount > 0),
  -- One row a claim: a clone's two payments under one (sender, index), collected by two devices
  -- here, are two claims, and the one the payer's bank refuses is a loss named by its sender.
  claim_id text PRIMARY KEY REFERENCES interbank_claims (claim_id)
);
CREATE INDEX ops_foreign_collects_payment ON ops_foreign_collects (sender_key_id, index);
