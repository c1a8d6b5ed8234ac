-- A coin in flight may be reported by several devices: each payer along its chain whose payee took
-- it without an ACK reaching the payer, and the payers on two branches of a coin paid twice. Each
-- device's claim is kept with the escrow tags its report carried (its own tag last); after the claim
-- window the refund goes to the claim that carries the coin furthest (`won`), and the other claims
-- hear that the coin was taken on, or lost to a double spend.
ALTER TABLE otp_claims DROP CONSTRAINT otp_claims_pkey;
ALTER TABLE otp_claims ADD PRIMARY KEY (serial, device_key_id);
-- Deterministic CBOR of the sealed tags as reported (null for a claim recorded before reports carried them).
ALTER TABLE otp_claims ADD COLUMN tags bytea;
ALTER TABLE otp_claims ADD COLUMN hops integer NOT NULL DEFAULT 0
  CHECK (hops >= 0);
ALTER TABLE otp_claims ADD COLUMN won boolean NOT NULL DEFAULT false;
-- The order claims were recorded in: of two that carry the coin as far, the earlier wins.
ALTER TABLE otp_claims ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;

-- A serial whose claims part at a hop where the two tags are signed by two devices: one of them
-- signed a tag for a coin it never held (a device key taken out of its secure element), and the
-- tags alone cannot tell which. Nobody is refunded; the operator sees both devices.
CREATE TABLE otp_claim_disputes (
  serial bytea PRIMARY KEY
    CHECK (octet_length(serial) = 32),
  class_id bytea NOT NULL REFERENCES otp_classes (class_id),
  hop integer NOT NULL
    CHECK (hop >= 1),
  devices text[] NOT NULL,
  at timestamptz NOT NULL
);
