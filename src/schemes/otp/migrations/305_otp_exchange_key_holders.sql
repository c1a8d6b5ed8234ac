-- Which device each exchange key was signed for. The bank reads it only to settle coins in flight
-- whose claims part at a tag two devices signed: the tag before names the exchange key the coin
-- was paid to, and only that key's device held the coin and could pay it on. What it adds to what
-- the bank can learn: the escrow tags it can open already name every payer, which is every payee
-- but the last.
CREATE TABLE otp_exchange_keys (
  key_id bytea PRIMARY KEY
    CHECK (octet_length(key_id) = 16),
  device_key_id text NOT NULL
    CHECK (device_key_id ~ '^[0-9a-f]{64}$'),
  not_after_ms bigint NOT NULL
);

-- A finding may also name a device that signed a tag for a coin it never held: the tag before it
-- paid an exchange key the bank signed for another device. That coin need not be spent.
ALTER TABLE otp_findings DROP CONSTRAINT otp_findings_serial_fkey;
ALTER TABLE otp_findings ADD COLUMN reason text NOT NULL DEFAULT 'paid-twice'
  CHECK (reason IN ('paid-twice', 'tag-without-coin'));
