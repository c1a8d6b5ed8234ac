-- Publications: what each intermediary tells the other banks' wallets about a scheme (the public
-- keys its coins, tokens or blocks are signed under), signed with its intermediary key and carried
-- by the central bank's directory. Every reader verifies the signature; the version only goes up.

-- At the central bank: each intermediary's latest publication of each scheme.
CREATE TABLE cb_publications (
  key_id text NOT NULL REFERENCES cb_intermediaries (key_id),
  scheme text NOT NULL
    CHECK (scheme ~ '^[a-z][a-z0-9-]{0,31}$'),
  version bigint NOT NULL
    CHECK (version >= 0),
  record bytea NOT NULL
    CHECK (octet_length(record) BETWEEN 1 AND 16896),
  published_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (key_id, scheme)
);

-- At an intermediary: the other banks' latest publications it verified.
CREATE TABLE tier_peer_publications (
  key_id text NOT NULL REFERENCES tier_peers (key_id),
  scheme text NOT NULL,
  version bigint NOT NULL,
  record bytea NOT NULL,
  body bytea NOT NULL,
  PRIMARY KEY (key_id, scheme)
);

-- At an intermediary: what it last published of each scheme and the central bank acknowledged.
CREATE TABLE tier_published (
  scheme text PRIMARY KEY,
  digest text NOT NULL,
  version bigint NOT NULL
);
