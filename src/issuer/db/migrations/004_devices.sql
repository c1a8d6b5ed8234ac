-- Secure elements and what vouches for them (OPS §3.2 TA registration): the OEMs the central bank
-- certified, the trusted-app builds allowed, the devices registered with their owner (the pair
-- (vk, T.vk) of S.Registry), and the revocation lists the intermediary signed.

CREATE TABLE oems (
  key_id text PRIMARY KEY
    CHECK (key_id ~ '^[0-9a-f]{64}$'),
  name text NOT NULL
    CHECK (char_length(name) BETWEEN 1 AND 128),
  certificate bytea NOT NULL
    CHECK (octet_length(certificate) <= 2048),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ta_measurements (
  measurement bytea PRIMARY KEY
    CHECK (octet_length(measurement) = 32),
  scheme text NOT NULL
    CHECK (scheme ~ '^[a-z][a-z0-9-]{0,31}$'),
  description text NOT NULL
    CHECK (char_length(description) BETWEEN 1 AND 140),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
  key_id text PRIMARY KEY
    CHECK (key_id ~ '^[0-9a-f]{64}$'),
  suite text NOT NULL
    CHECK (suite IN ('ed25519', 'p256', 'secp256k1')),
  public_key bytea NOT NULL
    CHECK (octet_length(public_key) BETWEEN 32 AND 33),
  owner_key_id text NOT NULL REFERENCES users (key_id),
  scheme text NOT NULL
    CHECK (scheme ~ '^[a-z][a-z0-9-]{0,31}$'),
  oem_key_id text NOT NULL REFERENCES oems (key_id),
  model text NOT NULL,
  ta_measurement bytea NOT NULL REFERENCES ta_measurements (measurement),
  serial bytea NOT NULL UNIQUE
    CHECK (octet_length(serial) = 16),
  certificate bytea NOT NULL
    CHECK (octet_length(certificate) <= 2048),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX devices_by_owner ON devices (owner_key_id);

-- Every certificate the intermediary revoked, and the first list version that names it.
CREATE TABLE revoked_certificates (
  serial bytea PRIMARY KEY
    CHECK (octet_length(serial) = 16),
  subject_key_id text NOT NULL
    CHECK (subject_key_id ~ '^[0-9a-f]{64}$'),
  role text NOT NULL
    CHECK (role IN ('user', 'device')),
  reason text NOT NULL
    CHECK (char_length(reason) BETWEEN 1 AND 200),
  list_version bigint NOT NULL,
  revoked_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX revoked_certificates_by_subject ON revoked_certificates (subject_key_id);

-- The signed lists, one row per version; the highest version is the current list.
CREATE TABLE revocation_lists (
  version bigint PRIMARY KEY
    CHECK (version >= 1),
  encoded bytea NOT NULL,
  issued_at timestamptz NOT NULL
);
