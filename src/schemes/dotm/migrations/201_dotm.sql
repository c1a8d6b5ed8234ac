-- DOT-M on the node: the registered wallets (§3.3.1: the user key and the wallet key of one
-- trusted app, with ucert and wcert), the currency blocks issued at account synchronization
-- (§3.3.2), the tree of every serial as the node learns it from online data updating (§3.3.4),
-- the events each wallet uploaded, the transactions both sides report on (§3.3.5), the
-- redemptions, and the double-spending findings (§3.4.4).

CREATE TABLE dotm_wallets (
  wallet_key_id text PRIMARY KEY
    CHECK (wallet_key_id ~ '^[0-9a-f]{64}$'),
  user_key_id text NOT NULL UNIQUE
    CHECK (user_key_id ~ '^[0-9a-f]{64}$' AND user_key_id <> wallet_key_id),
  -- The account key that registered the wallet, and the online account it settles into.
  owner_key_id text NOT NULL REFERENCES users (key_id),
  account_id text NOT NULL REFERENCES accounts (id),
  wallet_suite text NOT NULL
    CHECK (wallet_suite IN ('ed25519', 'p256', 'secp256k1', 'sm2')),
  wallet_public_key bytea NOT NULL
    CHECK (octet_length(wallet_public_key) BETWEEN 32 AND 33),
  user_suite text NOT NULL
    CHECK (user_suite IN ('ed25519', 'p256', 'secp256k1', 'sm2')),
  user_public_key bytea NOT NULL
    CHECK (octet_length(user_public_key) BETWEEN 32 AND 33),
  oem_key_id text NOT NULL REFERENCES oems (key_id),
  model text NOT NULL,
  ta_measurement bytea NOT NULL REFERENCES ta_measurements (measurement),
  ucert bytea NOT NULL
    CHECK (octet_length(ucert) <= 2048),
  wcert bytea NOT NULL
    CHECK (octet_length(wcert) <= 2048),
  ucert_serial bytea NOT NULL UNIQUE
    CHECK (octet_length(ucert_serial) = 16),
  wcert_serial bytea NOT NULL UNIQUE
    CHECK (octet_length(wcert_serial) = 16),
  -- The last event taken from this wallet's log; events run 1, 2, 3, ... without gaps.
  last_seq bigint NOT NULL DEFAULT 0
    CHECK (last_seq >= 0),
  -- Set when settlement names the wallet's user in a finding (both certificates are then revoked).
  revoked boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dotm_wallets_by_account ON dotm_wallets (account_id);

-- One row per serial the central bank signed: its form of presentation (Figure 4).
CREATE TABLE dotm_blocks (
  serial bytea PRIMARY KEY
    CHECK (octet_length(serial) = 16),
  value bigint NOT NULL
    CHECK (value > 0),
  currency text NOT NULL,
  owner_key_id text NOT NULL
    CHECK (owner_key_id ~ '^[0-9a-f]{64}$'),
  wallet_key_id text NOT NULL REFERENCES dotm_wallets (wallet_key_id),
  presentation bytea NOT NULL,
  -- SHA-256 of the presentation: the `prev` of the block's first records.
  digest bytea NOT NULL UNIQUE
    CHECK (octet_length(digest) = 32),
  issued_at timestamptz NOT NULL DEFAULT now()
);

-- The tree of each serial: its presentation (prev NULL) and every record the node has seen.
-- A node's children are the records whose prev is its digest; all are signed by its holder.
CREATE TABLE dotm_nodes (
  digest bytea PRIMARY KEY
    CHECK (octet_length(digest) = 32),
  serial bytea NOT NULL REFERENCES dotm_blocks (serial),
  prev bytea REFERENCES dotm_nodes (digest),
  -- The original owner for the presentation, the payee for a record (user key ids).
  holder_key_id text NOT NULL,
  payer_key_id text,
  -- What the holder received: the block's value, or the record's amount.
  amount bigint NOT NULL
    CHECK (amount > 0),
  recorded_at bigint,
  record bytea,
  -- Value the holder gave up at this node to be credited online (redemptions, and the payer's
  -- side of a refunded transaction), credited or not.
  redeemed numeric(20, 0) NOT NULL DEFAULT 0
    CHECK (redeemed >= 0),
  -- Value credited online (redemptions and refunds) at this node or below it.
  credited_below numeric(20, 0) NOT NULL DEFAULT 0
    CHECK (credited_below >= 0),
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((prev IS NULL) = (payer_key_id IS NULL))
);

CREATE INDEX dotm_nodes_by_prev ON dotm_nodes (prev);
CREATE INDEX dotm_nodes_by_serial ON dotm_nodes (serial);

-- Which transactions carried a record as their current record (one, unless a wallet signed the
-- same record twice). Whether the record's payee holds it follows from what the two sides of
-- those transactions reported (dotm_transactions).
CREATE TABLE dotm_currents (
  digest bytea NOT NULL REFERENCES dotm_nodes (digest),
  tsn bytea NOT NULL,
  PRIMARY KEY (digest, tsn)
);

-- Every event taken from a wallet's log, as signed.
CREATE TABLE dotm_events (
  wallet_key_id text NOT NULL REFERENCES dotm_wallets (wallet_key_id),
  seq bigint NOT NULL
    CHECK (seq >= 1),
  digest bytea NOT NULL
    CHECK (octet_length(digest) = 32),
  kind text NOT NULL
    CHECK (kind IN ('sent', 'received', 'rolled-back', 'abandoned', 'redeemed')),
  tsn bytea NOT NULL,
  amount bigint NOT NULL
    CHECK (amount > 0),
  status text NOT NULL
    CHECK (status IN ('taken', 'refused')),
  code text,
  event bytea NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (wallet_key_id, seq)
);

-- What each side of a transaction reported (§3.3.4, §3.3.5), and the refund of exceptional
-- situations 3 and 5 (at most one per transaction).
CREATE TABLE dotm_transactions (
  tsn bytea PRIMARY KEY
    CHECK (octet_length(tsn) = 16),
  transaction bytea NOT NULL
    CHECK (octet_length(transaction) = 32),
  amount bigint NOT NULL
    CHECK (amount > 0),
  payer_wallet text REFERENCES dotm_wallets (wallet_key_id),
  payee_wallet text REFERENCES dotm_wallets (wallet_key_id),
  sent_seq bigint,
  abandoned_seq bigint,
  received_seq bigint,
  rolled_back_seq bigint,
  refund text
    CHECK (refund IN ('credited', 'withheld')),
  first_seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dotm_redemptions (
  wallet_key_id text NOT NULL REFERENCES dotm_wallets (wallet_key_id),
  seq bigint NOT NULL,
  part integer NOT NULL
    CHECK (part >= 0),
  serial bytea NOT NULL REFERENCES dotm_blocks (serial),
  tip bytea NOT NULL REFERENCES dotm_nodes (digest),
  amount bigint NOT NULL
    CHECK (amount > 0),
  credited boolean NOT NULL,
  PRIMARY KEY (wallet_key_id, seq, part)
);

-- What settlement proved: an over-spent node (§3.4.4), a side reporting both outcomes of one
-- transaction, or two different events under one sequence number (a cloned wallet state).
CREATE TABLE dotm_findings (
  id bigserial PRIMARY KEY,
  kind text NOT NULL
    CHECK (kind IN ('overspent', 'contradiction', 'clone')),
  -- The node digest, the tsn, or the conflicting event's digest.
  subject bytea NOT NULL,
  serial bytea,
  culprit_key_id text NOT NULL
    CHECK (culprit_key_id ~ '^[0-9a-f]{64}$'),
  culprit_wallet text,
  evidence jsonb NOT NULL,
  found_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (kind, subject, culprit_key_id)
);
