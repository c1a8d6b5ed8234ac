-- The operator's settlement of a revoked DOT-M wallet's remainder (node-remainder.ts): the first
-- call holds what the node's tree shows the wallet still holds, the call after the hold credits
-- what is then still unspent to the wallet's account, once.

CREATE TABLE dotm_remainders (
  wallet_key_id text PRIMARY KEY REFERENCES dotm_wallets (wallet_key_id),
  -- What the tree showed the wallet holding when the hold began.
  held numeric(20, 0) NOT NULL
    CHECK (held >= 0),
  -- Node clock, milliseconds since 1970.
  held_at bigint NOT NULL,
  release_at bigint NOT NULL
    CHECK (release_at >= held_at),
  -- Set once, by the release: what was credited (0 when nothing was left) and how many copies.
  released boolean NOT NULL DEFAULT false,
  credited numeric(20, 0)
    CHECK (credited >= 0),
  copies integer
    CHECK (copies >= 0),
  CHECK (released = (credited IS NOT NULL))
);
