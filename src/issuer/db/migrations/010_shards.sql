-- Databases per shard: one node's ledger spread over its own database (the home) and one
-- PostgreSQL database per shard. Money that crosses from one of them to another leaves through
-- the sender's clearing account for that peer and arrives through the receiver's clearing account
-- for the sender; a clearing account may go below zero (it is paired with its peer's), and the
-- pair's sum is what is in flight between the two.
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check
  CHECK (kind IN ('issuance', 'user', 'offline-float', 'settlement', 'reserve', 'clearing'));
ALTER TABLE accounts DROP CONSTRAINT accounts_negative_only_issuance;
ALTER TABLE accounts ADD CONSTRAINT accounts_negative_only_issuance_or_clearing
  CHECK (NOT allow_negative OR kind IN ('issuance', 'clearing'));

-- Which place of which node this database is: written once, when the node first opens it, and
-- checked at every open, so that a database given for another shard (or another node's) is refused.
CREATE TABLE shard_self (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  node_key_id text NOT NULL
    CHECK (node_key_id ~ '^[0-9a-f]{64}$'),
  -- 'home' (the node's own database) or 's0', 's1', ...
  party text NOT NULL
    CHECK (party ~ '^(home|s[0-9]{1,2})$'),
  shards integer NOT NULL
    CHECK (shards BETWEEN 1 AND 64),
  -- Random, made at the first mark: the home records each shard database's, so that an empty or
  -- replaced database given for a shard the node has used is refused.
  database_id text NOT NULL
    CHECK (database_id ~ '^[0-9a-f]{32}$'),
  created_at timestamptz NOT NULL DEFAULT now()
);

-- In the home database: the shard databases the node has used, by place.
CREATE TABLE shard_places (
  party text PRIMARY KEY
    CHECK (party ~ '^s[0-9]{1,2}$'),
  database_id text NOT NULL
    CHECK (database_id ~ '^[0-9a-f]{32}$'),
  recorded_at timestamptz NOT NULL DEFAULT now()
);

-- Credits sent to another place, written in the transaction that debits the sender. The receiver
-- reads the row from here when the message naming it arrives: the message carries only its id.
CREATE TABLE shard_outbox (
  id text PRIMARY KEY
    CHECK (char_length(id) BETWEEN 1 AND 128 AND id ~ '^[A-Za-z0-9._:/-]+$'),
  to_party text NOT NULL
    CHECK (to_party ~ '^(home|s[0-9]{1,2})$'),
  -- The account credited there, and the one here that gets the money back if it is refused there.
  credit_account text NOT NULL,
  return_account text NOT NULL,
  currency text NOT NULL,
  amount bigint NOT NULL
    CHECK (amount > 0),
  kind text NOT NULL
    CHECK (kind ~ '^[a-z][a-z0-9-]{0,63}$'),
  reference jsonb
    CHECK (reference IS NULL OR octet_length(reference::text) <= 8192),
  created_at timestamptz NOT NULL DEFAULT now(),
  -- When the stream took the message; null until then (a relay publishes these again).
  published_at timestamptz,
  -- When the relay saw the receiver's inbox row; null until then (a relay publishes again, under
  -- a new message id, what stays undelivered: a stream that lost or dropped its message).
  delivered_at timestamptz
);
CREATE INDEX shard_outbox_unpublished ON shard_outbox (created_at) WHERE published_at IS NULL;
CREATE INDEX shard_outbox_undelivered ON shard_outbox (created_at) WHERE delivered_at IS NULL;
CREATE INDEX shard_outbox_by_peer ON shard_outbox (to_party);

-- Credits received from another place, each once: (sender, the sender's outbox id).
CREATE TABLE shard_inbox (
  from_party text NOT NULL
    CHECK (from_party ~ '^(home|s[0-9]{1,2})$'),
  id text NOT NULL
    CHECK (char_length(id) BETWEEN 1 AND 128),
  amount bigint NOT NULL
    CHECK (amount > 0),
  -- 'credited': the credit account took it; 'returned': it went back as a credit of its own.
  outcome text NOT NULL
    CHECK (outcome IN ('credited', 'returned')),
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (from_party, id)
);

CREATE TRIGGER shard_outbox_kept BEFORE DELETE ON shard_outbox
  FOR EACH ROW EXECUTE FUNCTION tally_refuse_change();

-- An outbox row changes only by getting its two times, once each.
CREATE FUNCTION tally_outbox_times_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id <> OLD.id OR NEW.to_party <> OLD.to_party OR NEW.credit_account <> OLD.credit_account
     OR NEW.return_account <> OLD.return_account OR NEW.currency <> OLD.currency OR NEW.amount <> OLD.amount
     OR NEW.kind <> OLD.kind OR NEW.reference IS DISTINCT FROM OLD.reference OR NEW.created_at <> OLD.created_at
     OR (OLD.published_at IS NOT NULL AND NEW.published_at IS DISTINCT FROM OLD.published_at)
     OR (OLD.delivered_at IS NOT NULL AND NEW.delivered_at IS DISTINCT FROM OLD.delivered_at) THEN
    RAISE EXCEPTION 'shard_outbox: only published_at and delivered_at may be set, once each'
      USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER shard_outbox_times_only BEFORE UPDATE ON shard_outbox
  FOR EACH ROW EXECUTE FUNCTION tally_outbox_times_only();
CREATE TRIGGER shard_places_kept BEFORE UPDATE OR DELETE ON shard_places
  FOR EACH ROW EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER shard_inbox_fixed BEFORE UPDATE OR DELETE ON shard_inbox
  FOR EACH ROW EXECUTE FUNCTION tally_refuse_change();
