-- Stored answers of mutating requests, by scope and idempotency key: a replay gets the stored
-- answer, a different request under the same key is refused. The row is inserted first (empty)
-- and filled in by the same transaction, so a concurrent request with the same key waits for it.

CREATE TABLE idempotency (
  scope text NOT NULL
    CHECK (scope ~ '^[a-z][a-z0-9/._-]{0,63}$'),
  key text NOT NULL
    CHECK (char_length(key) BETWEEN 1 AND 128),
  request_hash bytea NOT NULL
    CHECK (octet_length(request_hash) = 32),
  status integer
    CHECK (status BETWEEN 100 AND 599),
  -- The node bounds the JSON text at 65536 bytes; jsonb's own text adds spaces, hence twice that.
  response jsonb
    CHECK (response IS NULL OR octet_length(response::text) <= 131072),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, key),
  CONSTRAINT idempotency_answered CHECK ((status IS NULL) = (response IS NULL))
);

CREATE INDEX idempotency_by_age ON idempotency (created_at);
