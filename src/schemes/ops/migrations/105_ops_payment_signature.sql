-- A claimed payment's evidence without its two certificates: when the payment carries exactly the
-- certificate its sender device was registered with (devices) and the one its receiver holds
-- (users, or devices for a TA), the node keeps its signature and rebuilds the payment from those
-- rows (storedPayment in node-evidence.ts; the rebuilt payment's digest is the recorded one). A
-- bulk claim then writes about 100 bytes a payment instead of 850. Otherwise the whole payment
-- stays in `payment`, as before.
ALTER TABLE ops_payments ADD COLUMN signature bytea CHECK (signature IS NULL OR octet_length(signature) BETWEEN 1 AND 132);
