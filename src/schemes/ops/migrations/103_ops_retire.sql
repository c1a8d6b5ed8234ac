-- An owner may retire a device whose secure element is lost or broken (it refuses to run after a
-- local accident): the node revokes it, stops honouring its payments past the last counter it
-- signed, and gives back what it knows the device held, recorded as the device's last operation.

ALTER TABLE ops_counter_ops DROP CONSTRAINT ops_counter_ops_kind_check;
ALTER TABLE ops_counter_ops ADD CONSTRAINT ops_counter_ops_kind_check CHECK (kind IN ('deposit', 'withdraw', 'retire'));
ALTER TABLE ops_devices ADD COLUMN retired_at timestamptz;
