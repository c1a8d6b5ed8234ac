-- chain-tee on the node: where the contracts are on each chain the node has settled on (the same
-- data folder may be pointed at another chain with --eth-rpc), and the enclave keys the bank
-- registered on chain for its devices (and revoked there when the device was revoked).

CREATE TABLE chain_deployments (
  chain_id bigint PRIMARY KEY
    CHECK (chain_id > 0),
  token bytea NOT NULL
    CHECK (octet_length(token) = 20),
  contract bytea NOT NULL
    CHECK (octet_length(contract) = 20),
  -- The block the contracts were deployed in: where the node starts reading their events.
  block bigint NOT NULL
    CHECK (block >= 0),
  settle_window_s bigint NOT NULL
    CHECK (settle_window_s > 0),
  deployed_at timestamptz NOT NULL
);

CREATE TABLE chain_enclaves (
  chain_id bigint NOT NULL REFERENCES chain_deployments (chain_id),
  -- The device (shared registry) whose key is the enclave key.
  device_key_id text NOT NULL REFERENCES devices (key_id),
  enclave bytea NOT NULL
    CHECK (octet_length(enclave) = 20),
  registered_tx bytea NOT NULL
    CHECK (octet_length(registered_tx) = 32),
  revoked_tx bytea
    CHECK (revoked_tx IS NULL OR octet_length(revoked_tx) = 32),
  registered_at timestamptz NOT NULL,
  PRIMARY KEY (chain_id, device_key_id),
  UNIQUE (chain_id, enclave)
);

-- What the central bank minted on chain, by the operator's requests: the token's supply must equal it.
CREATE TABLE chain_mints (
  chain_id bigint NOT NULL REFERENCES chain_deployments (chain_id),
  tx bytea PRIMARY KEY
    CHECK (octet_length(tx) = 32),
  recipient bytea NOT NULL
    CHECK (octet_length(recipient) = 20),
  amount numeric(39, 0) NOT NULL
    CHECK (amount > 0),
  minted_at timestamptz NOT NULL
);
