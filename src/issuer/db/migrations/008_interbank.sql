-- Payments across intermediaries: the payee's bank presents a claim through the central bank, the
-- payer's bank judges it, and the central bank moves the reserves on acceptance.

-- At the central bank: every claim one intermediary presented against another, once.
CREATE SEQUENCE cb_claims_decided_seq;
CREATE TABLE cb_claims (
  -- The order claims reach the payer's bank's inbox.
  seq bigserial UNIQUE,
  -- SHA-256 of the scheme and the evidence: the same evidence is one claim, however often presented.
  claim_id text PRIMARY KEY
    CHECK (claim_id ~ '^[0-9a-f]{64}$'),
  payer_bank text NOT NULL REFERENCES cb_intermediaries (key_id),
  payee_bank text NOT NULL REFERENCES cb_intermediaries (key_id),
  scheme text NOT NULL
    CHECK (scheme ~ '^[a-z][a-z0-9-]{0,31}$'),
  currency text NOT NULL,
  amount bigint NOT NULL
    CHECK (amount > 0),
  evidence bytea NOT NULL
    CHECK (octet_length(evidence) BETWEEN 1 AND 8192),
  status text NOT NULL DEFAULT 'presented'
    CHECK (status IN ('presented', 'settled', 'refused')),
  code text
    CHECK (code IS NULL OR code ~ '^[A-Z][A-Z0-9_]{0,63}$'),
  reason text
    CHECK (reason IS NULL OR char_length(reason) BETWEEN 1 AND 300),
  -- The central bank's transfer reserve:payer -> reserve:payee, once settled (the journal itself
  -- stays unreferenced, so that its own guards are the ones that refuse a change to it).
  transfer_id bigint,
  -- The order outcomes reach the payee's bank's outbox.
  decided_seq bigint UNIQUE,
  presented_at timestamptz NOT NULL DEFAULT now(),
  decided_at timestamptz,
  CONSTRAINT cb_claims_two_banks CHECK (payer_bank <> payee_bank),
  CONSTRAINT cb_claims_decided CHECK ((status = 'presented') = (decided_seq IS NULL)),
  CONSTRAINT cb_claims_settled CHECK ((status = 'settled') = (transfer_id IS NOT NULL)),
  CONSTRAINT cb_claims_refused CHECK ((status = 'refused') = (code IS NOT NULL))
);
CREATE INDEX cb_claims_payer ON cb_claims (payer_bank, seq);
CREATE INDEX cb_claims_payee ON cb_claims (payee_bank, decided_seq);

-- At an intermediary, as the payee's bank: the claims it presents for its customers. A customer is
-- credited only once the claim is settled and the reserve's movement in is recorded here.
CREATE TABLE interbank_claims (
  claim_id text PRIMARY KEY
    CHECK (claim_id ~ '^[0-9a-f]{64}$'),
  scheme text NOT NULL,
  payer_bank text NOT NULL
    CHECK (payer_bank ~ '^[0-9a-f]{64}$'),
  amount bigint NOT NULL
    CHECK (amount > 0),
  payee_account text NOT NULL REFERENCES accounts (id),
  payee_key_id text NOT NULL,
  evidence bytea NOT NULL
    CHECK (octet_length(evidence) BETWEEN 1 AND 8192),
  -- pending: not yet at the central bank; presented: there, undecided; accepted: the central bank
  -- moved the reserves (movement), the credit waits for that movement to be recorded here;
  -- settled: the customer is credited; refused: by the payer's bank or the central bank.
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'presented', 'accepted', 'settled', 'refused')),
  code text,
  reason text,
  movement bigint,
  -- The transfer cb:reserve -> the customer, once credited.
  credit_transfer bigint,
  created_at timestamptz NOT NULL DEFAULT now(),
  decided_at timestamptz,
  CONSTRAINT interbank_claims_accepted CHECK ((status IN ('accepted', 'settled')) = (movement IS NOT NULL)),
  CONSTRAINT interbank_claims_settled CHECK ((status = 'settled') = (credit_transfer IS NOT NULL))
);
CREATE INDEX interbank_claims_open ON interbank_claims (status) WHERE status IN ('pending', 'presented', 'accepted');

-- At an intermediary, as the payer's bank: its decision on each claim against it, made once, in the
-- transaction that applies the scheme's checks and moves the money; posted to the central bank
-- until it is acknowledged.
CREATE TABLE interbank_decisions (
  claim_id text PRIMARY KEY
    CHECK (claim_id ~ '^[0-9a-f]{64}$'),
  scheme text NOT NULL,
  payee_bank text NOT NULL,
  amount bigint NOT NULL
    CHECK (amount > 0),
  accepted boolean NOT NULL,
  code text,
  reason text,
  posted boolean NOT NULL DEFAULT false,
  decided_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT interbank_decisions_refused CHECK (accepted = (code IS NULL))
);
CREATE INDEX interbank_decisions_unposted ON interbank_decisions (claim_id) WHERE NOT posted;

-- At an intermediary: where it is in its inbox (claims against it) and outbox (outcomes of its claims).
ALTER TABLE tier_link ADD COLUMN inbox_cursor bigint NOT NULL DEFAULT 0 CHECK (inbox_cursor >= 0);
ALTER TABLE tier_link ADD COLUMN outbox_cursor bigint NOT NULL DEFAULT 0 CHECK (outbox_cursor >= 0);

-- At an intermediary: the other intermediaries the central bank certified, as its directory
-- answered at the last sync, so that their customers' certificates chain to the root here.
CREATE TABLE tier_peers (
  key_id text PRIMARY KEY
    CHECK (key_id ~ '^[0-9a-f]{64}$'),
  name text NOT NULL,
  certificate bytea NOT NULL
    CHECK (octet_length(certificate) <= 2048),
  -- Named in the central bank's root-signed list of revoked intermediaries.
  revoked boolean NOT NULL DEFAULT false
);
