-- chain-tee with several banks on one deployment (docs/chain.md "Several banks"): at the node that
-- governs the deployment, each intermediary it admitted on chain (registrar of its customers'
-- enclaves, minter against its reserve) and, once the root revoked it, its revocation there.

CREATE TABLE chain_intermediaries (
  chain_id bigint NOT NULL REFERENCES chain_deployments (chain_id),
  -- The intermediary's key id (its certificate is in tier_peers).
  key_id text NOT NULL,
  -- Its chain address, bound to its intermediary key by its signature.
  address bytea NOT NULL
    CHECK (octet_length(address) = 20),
  admitted_tx bytea NOT NULL
    CHECK (octet_length(admitted_tx) = 32),
  revoked_tx bytea
    CHECK (revoked_tx IS NULL OR octet_length(revoked_tx) = 32),
  admitted_at timestamptz NOT NULL,
  PRIMARY KEY (chain_id, key_id),
  UNIQUE (chain_id, address)
);
