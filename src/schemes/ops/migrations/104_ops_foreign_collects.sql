-- Two tiers: a payment that a device of this bank collected offline from a device of another bank.
-- The device holds its value at once; this bank's float:ops receives it only when the payer's bank
-- settles the interbank claim this bank presented for it (payable to float:ops). Until then the
-- claim is money receivable from the payer's bank; once refused, a loss named by its sender.
CREATE TABLE ops_foreign_collects (
  sender_key_id text NOT NULL,
  index bigint NOT NULL CHECK (index >= 1),
  device_key_id text NOT NULL,
  amount bigint NOT NULL CHECK (amount > 0),
  claim_id text NOT NULL REFERENCES interbank_claims (claim_id),
  PRIMARY KEY (sender_key_id, index)
);
CREATE INDEX ops_foreign_collects_claim ON ops_foreign_collects (claim_id);
