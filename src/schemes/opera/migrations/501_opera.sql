-- OPERA on the node: the makers whose anonymous credentials mark genuine ODWs, every token the
-- bank signed with its state (issued, then deposited or refunded: once), the answers to ODW
-- requests by (device, nonce), the settlement of transactions two ODWs did not finish offline, and
-- the findings settlement and deposits make.

-- A maker (OEM) and the reference value of the ODW build its credentials attest (paper §3.3.1).
CREATE TABLE opera_makers (
  public_key bytea NOT NULL
    CHECK (octet_length(public_key) = 96),
  reference bytea NOT NULL
    CHECK (octet_length(reference) = 32),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (public_key, reference)
);

-- Every token the bank signed. A token leaves the float once: deposited by a holder, or refunded to
-- the payer that reported it in a transaction its payee never took. The state moves only forward.
CREATE TABLE opera_tokens (
  serial bytea PRIMARY KEY
    CHECK (octet_length(serial) = 16),
  value bigint NOT NULL
    CHECK (value > 0),
  -- The ODW it was charged into.
  device_key_id text NOT NULL REFERENCES devices (key_id),
  state text NOT NULL DEFAULT 'issued'
    CHECK (state IN ('issued', 'deposited', 'refunded')),
  issued_at timestamptz NOT NULL,
  -- The ODW that deposited it or was refunded for it, when, and for a refund the transaction.
  spent_by text
    CHECK (spent_by ~ '^[0-9a-f]{64}$'),
  spent_at timestamptz,
  txid bytea
    CHECK (octet_length(txid) = 16),
  CHECK ((state = 'issued') = (spent_by IS NULL AND spent_at IS NULL)),
  CHECK (txid IS NULL OR state = 'refunded')
);

CREATE INDEX opera_tokens_issued ON opera_tokens (state) WHERE state = 'issued';

-- The answer to each ODW request, by the nonce the ODW signed in it: the same request again is
-- answered the same, once, and another request under the nonce is refused.
CREATE TABLE opera_answers (
  device_key_id text NOT NULL REFERENCES devices (key_id),
  kind text NOT NULL
    CHECK (kind IN ('charge', 'deposit', 'settle')),
  nonce bytea NOT NULL
    CHECK (octet_length(nonce) = 16),
  -- SHA-256 of the CBOR of the request's body.
  request_digest bytea NOT NULL
    CHECK (octet_length(request_digest) = 32),
  -- The JSON answer, filled in the transaction that claimed the nonce.
  answer text,
  at timestamptz NOT NULL,
  PRIMARY KEY (device_key_id, kind, nonce)
);

-- A transaction an ODW reported for settlement (§4.1): the payer's and the payee's reports as they
-- came (signed CBOR), the flags the outcome rests on, and what was refunded to the payer's holder.
CREATE TABLE opera_settlements (
  txid bytea PRIMARY KEY
    CHECK (octet_length(txid) = 16),
  payer_sn bytea NOT NULL
    CHECK (octet_length(payer_sn) = 16),
  payee_sn bytea NOT NULL
    CHECK (octet_length(payee_sn) = 16),
  amount bigint NOT NULL
    CHECK (amount >= 0),
  count integer NOT NULL
    CHECK (count >= 1),
  payer_device text REFERENCES devices (key_id),
  payer_account text REFERENCES accounts (id),
  payer_report bytea,
  released smallint
    CHECK (released IN (0, 1)),
  payee_device text REFERENCES devices (key_id),
  payee_report bytea,
  accepted smallint
    CHECK (accepted IN (0, 1)),
  -- pending: not decided; refunded: the payer's tokens went back to its holder; paid: the payee took them.
  outcome text NOT NULL DEFAULT 'pending'
    CHECK (outcome IN ('pending', 'refunded', 'paid')),
  credited bigint NOT NULL DEFAULT 0
    CHECK (credited >= 0),
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  CHECK ((payer_report IS NULL) = (released IS NULL) AND (payer_report IS NULL) = (payer_device IS NULL) AND (payer_report IS NULL) = (payer_account IS NULL)),
  CHECK ((payee_report IS NULL) = (accepted IS NULL) AND (payee_report IS NULL) = (payee_device IS NULL)),
  CHECK (outcome = 'refunded' OR credited = 0)
);

-- What deposits and settlement found: a serial spent twice (both devices named), a refund claimed
-- for a token already spent, and a payer that denied a release its payee holds (revoked).
CREATE TABLE opera_findings (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind text NOT NULL
    CHECK (kind IN ('double-spend', 'refund-spent', 'release-denied')),
  serial bytea
    CHECK (octet_length(serial) = 16),
  txid bytea
    CHECK (octet_length(txid) = 16),
  -- The device whose request found it (the second depositor, the payer asking a refund, the payer that denied its release).
  device_key_id text NOT NULL
    CHECK (device_key_id ~ '^[0-9a-f]{64}$'),
  -- The device that spent the serial first, when there was one.
  first_key_id text
    CHECK (first_key_id ~ '^[0-9a-f]{64}$'),
  revocation_version bigint,
  at timestamptz NOT NULL
);

-- An ODW's serial number (SN) is the first 16 bytes of SHA-256 of its device key: the payer's key
-- is found from the SN a payee reports.
CREATE INDEX opera_devices_by_sn ON devices (substring(sha256(public_key) FROM 1 FOR 16)) WHERE scheme = 'opera';
