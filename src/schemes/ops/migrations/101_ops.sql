-- OPS on the node: the server's counter S.i per TA (Figure 5, 6), the deposits and withdrawals it
-- numbered, every payment it has seen (from the sender's report, a receiver's report or a claim),
-- the collects each device reported, and the fraud cases opened at settlement.

CREATE TABLE ops_devices (
  device_key_id text PRIMARY KEY REFERENCES devices (key_id),
  -- S.i: deposits and withdrawals of this TA.
  i bigint NOT NULL DEFAULT 0 CHECK (i >= 0),
  -- The latest sync report: the TA's counters and balance.
  reported_i bigint CHECK (reported_i >= 0),
  reported_j bigint NOT NULL DEFAULT 0 CHECK (reported_j >= 0),
  reported_collect_seq bigint NOT NULL DEFAULT 0 CHECK (reported_collect_seq >= 0),
  reported_balance bigint CHECK (reported_balance >= 0),
  -- Sums of what the TA itself reported paying and collecting, over all its reports.
  paid_total numeric(20, 0) NOT NULL DEFAULT 0,
  collected_total numeric(20, 0) NOT NULL DEFAULT 0,
  -- Set when the device is caught: its payments past this index are refused.
  honor_up_to bigint,
  last_sync_at timestamptz
);

CREATE TABLE ops_counter_ops (
  device_key_id text NOT NULL REFERENCES ops_devices (device_key_id),
  i bigint NOT NULL CHECK (i >= 1),
  kind text NOT NULL CHECK (kind IN ('deposit', 'withdraw')),
  amount bigint NOT NULL CHECK (amount > 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (device_key_id, i)
);

CREATE TABLE ops_payments (
  sender_key_id text NOT NULL,
  index bigint NOT NULL CHECK (index >= 1),
  digest bytea NOT NULL CHECK (octet_length(digest) = 32),
  amount bigint NOT NULL CHECK (amount > 0),
  receiver_key_id text NOT NULL,
  -- True once the sender's own report listed it (it then counts in the sender's paid_total).
  sender_reported boolean NOT NULL DEFAULT false,
  -- How the value reached its receiver: claimed online, or collected into the receiver's TA.
  settled text CHECK (settled IN ('claimed', 'collected')),
  -- The whole payment, when a claim brought it.
  payment bytea,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (sender_key_id, index)
);

CREATE INDEX ops_payments_by_receiver ON ops_payments (receiver_key_id);

CREATE TABLE ops_collects (
  device_key_id text NOT NULL REFERENCES ops_devices (device_key_id),
  seq bigint NOT NULL CHECK (seq >= 1),
  sender_key_id text NOT NULL,
  index bigint NOT NULL,
  digest bytea NOT NULL,
  amount bigint NOT NULL CHECK (amount > 0),
  PRIMARY KEY (device_key_id, seq),
  UNIQUE (device_key_id, sender_key_id, index)
);

CREATE TABLE ops_fraud_cases (
  id bigserial PRIMARY KEY,
  device_key_id text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('clone', 'overdraft', 'offline-limit', 'rollback', 'report-inconsistent')),
  evidence jsonb NOT NULL,
  opened_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (device_key_id, kind)
);
