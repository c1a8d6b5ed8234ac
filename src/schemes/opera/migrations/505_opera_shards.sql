-- OPERA on a node with shard databases: a token lives on the shard of its serial. Every database
-- gets these tables (the node migrates them all alike); each is used in one kind of place only.

-- On a shard: every token whose serial falls to it, recorded in the transaction that credits this
-- shard's float:opera with its value (the charge's crossing), and spent here once: deposited, or
-- refunded. The unique serial is where a double deposit meets itself.
CREATE TABLE opera_shard_tokens (
  serial bytea PRIMARY KEY
    CHECK (octet_length(serial) = 16),
  value bigint NOT NULL
    CHECK (value > 0),
  -- The ODW it was charged into (registered in the home database).
  device_key_id text NOT NULL
    CHECK (device_key_id ~ '^[0-9a-f]{64}$'),
  -- The crossing from the home that brought its value here.
  charge text NOT NULL,
  state text NOT NULL DEFAULT 'issued'
    CHECK (state IN ('issued', 'deposited', 'refunded')),
  issued_at timestamptz NOT NULL,
  spent_by text
    CHECK (spent_by ~ '^[0-9a-f]{64}$'),
  spent_at timestamptz,
  -- A deposited token's escrow tags, sealed, for the day its serial comes back.
  tags bytea,
  CHECK ((state = 'issued') = (spent_by IS NULL AND spent_at IS NULL))
);
CREATE INDEX opera_shard_tokens_issued ON opera_shard_tokens (state) WHERE state = 'issued';
CREATE INDEX opera_shard_tokens_by_charge ON opera_shard_tokens (charge);

-- In the home: each shard's part of a charge (the serials and values drawn for it), written in the
-- charge's transaction with the crossing that carries the part's value; the shard reads it when
-- it receives that crossing.
CREATE TABLE opera_charge_parts (
  crossing_id text PRIMARY KEY,
  to_party text NOT NULL
    CHECK (to_party ~ '^s[0-9]{1,2}$'),
  device_key_id text NOT NULL
    CHECK (device_key_id ~ '^[0-9a-f]{64}$'),
  -- Comma-joined: the serials in hex, and their values, in one order.
  serials text NOT NULL,
  token_values text NOT NULL,
  issued_at timestamptz NOT NULL
);

-- On a shard: a deposit's part (the request's tokens of this shard), settled once; its answer is
-- what the home builds the receipt from, the same on every retry.
CREATE TABLE opera_deposit_parts (
  id text PRIMARY KEY,
  request_digest bytea NOT NULL
    CHECK (octet_length(request_digest) = 32),
  answer text NOT NULL,
  at timestamptz NOT NULL
);

-- On a shard: a copy of a serial deposited after it was spent there, kept as evidence (the home
-- opens the two copies' tags to name the device that paid it twice).
CREATE TABLE opera_shard_double_spends (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  serial bytea NOT NULL REFERENCES opera_shard_tokens (serial),
  device_key_id text NOT NULL
    CHECK (device_key_id ~ '^[0-9a-f]{64}$'),
  tags bytea,
  at timestamptz NOT NULL
);
CREATE INDEX opera_shard_double_spends_by_serial ON opera_shard_double_spends (serial);
