-- An owner may retire a device whose secure element is lost or broken (it refuses to run after a
-- local accident). The node revokes it and holds what it knows the device held in escrow: the
-- device's payments that surface later (claimed, or collected by a payee TA) are paid from it; what
-- is left when the hold ends goes to the owner, recorded as the device's last operation.

ALTER TABLE ops_counter_ops DROP CONSTRAINT ops_counter_ops_kind_check;
ALTER TABLE ops_counter_ops ADD CONSTRAINT ops_counter_ops_kind_check CHECK (kind IN ('deposit', 'withdraw', 'retire'));
ALTER TABLE ops_devices ADD COLUMN retired_at timestamptz;
-- What is left of the value the node vouched for at retirement (below zero: the device paid more).
ALTER TABLE ops_devices ADD COLUMN escrow numeric(20, 0);
-- Unix milliseconds from which the rest of the escrow may go to the owner.
ALTER TABLE ops_devices ADD COLUMN release_at bigint;
ALTER TABLE ops_devices ADD COLUMN released boolean NOT NULL DEFAULT false;
