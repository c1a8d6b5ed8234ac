-- The operator may remove an OEM: the node then takes no new device that OEM attests. Its row
-- stays, because registered devices and wallets name it.
ALTER TABLE oems ADD COLUMN removed_at timestamptz;
ALTER TABLE oems ADD COLUMN removed_reason text
  CHECK (removed_reason IS NULL OR char_length(removed_reason) BETWEEN 1 AND 200);
