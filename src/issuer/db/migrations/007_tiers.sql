-- Two tiers: a central bank node keeps each intermediary's reserve, the intermediaries it enrolled
-- and their revocations; an intermediary node keeps its link to the central bank.

-- A reserve is central-bank money: at the central bank, one account per intermediary
-- (`reserve:<key id>`); at an intermediary, `cb:reserve`, what it holds there and has not yet
-- put into its customers' accounts.
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check
  CHECK (kind IN ('issuance', 'user', 'offline-float', 'settlement', 'reserve'));

-- At the central bank: each enrolment request, its proof of possession checked on arrival.
CREATE TABLE cb_intermediaries (
  key_id text PRIMARY KEY
    CHECK (key_id ~ '^[0-9a-f]{64}$'),
  name text NOT NULL
    CHECK (char_length(name) BETWEEN 1 AND 100),
  suite text NOT NULL,
  public_key bytea NOT NULL
    CHECK (octet_length(public_key) BETWEEN 32 AND 65),
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'approved', 'refused', 'revoked')),
  certificate bytea
    CHECK (certificate IS NULL OR octet_length(certificate) <= 2048),
  reason text
    CHECK (reason IS NULL OR char_length(reason) BETWEEN 1 AND 200),
  requested_at timestamptz NOT NULL DEFAULT now(),
  decided_at timestamptz,
  CONSTRAINT cb_intermediaries_certified CHECK ((status IN ('approved', 'revoked')) = (certificate IS NOT NULL))
);

-- At the central bank: its root-signed lists of revoked intermediaries, one row a version.
CREATE TABLE cb_revocation_lists (
  version bigint PRIMARY KEY CHECK (version >= 1),
  encoded bytea NOT NULL,
  issued_at timestamptz NOT NULL
);

-- At the central bank: each intermediary's latest report of its own books.
CREATE TABLE cb_positions (
  key_id text PRIMARY KEY REFERENCES cb_intermediaries (key_id),
  -- The last movement of its reserve the intermediary had recorded when it reported.
  cursor bigint NOT NULL CHECK (cursor >= 0),
  report jsonb NOT NULL CHECK (octet_length(report::text) <= 8192),
  reported_at timestamptz NOT NULL
);

-- At an intermediary: one row, its link to the central bank.
CREATE TABLE tier_link (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  -- The last movement of its reserve recorded here.
  cursor bigint NOT NULL DEFAULT 0 CHECK (cursor >= 0),
  -- The central bank's latest revocation list of intermediaries, as fetched.
  root_list bytea,
  root_list_version bigint,
  synced_at timestamptz
);
