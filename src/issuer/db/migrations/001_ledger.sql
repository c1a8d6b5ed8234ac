-- The double-entry ledger: accounts and an append-only journal of transfers between them.
-- Each account also keeps its balance, updated in the same transaction as each transfer under a
-- row lock; the audit recomputes every balance from the journal and compares.

CREATE TABLE accounts (
  id text PRIMARY KEY
    CHECK (char_length(id) <= 128 AND id ~ '^[a-z][a-z0-9-]*:[A-Za-z0-9._:-]+$'),
  kind text NOT NULL
    CHECK (kind IN ('issuance', 'user', 'offline-float', 'settlement')),
  currency text NOT NULL
    CHECK (currency ~ '^[A-Z][A-Z0-9]{2,11}$'),
  owner text
    CHECK (owner ~ '^([0-9a-f]{2}){1,64}$'),
  allow_negative boolean NOT NULL DEFAULT false,
  balance bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Only the central bank's issuance account may go below zero: that is where money comes from.
  CONSTRAINT accounts_negative_only_issuance CHECK (NOT allow_negative OR kind = 'issuance'),
  CONSTRAINT accounts_balance_floor CHECK (allow_negative OR balance >= 0),
  -- Symmetric range, so that minus any balance is still a bigint.
  CONSTRAINT accounts_balance_range CHECK (balance >= -9223372036854775807),
  -- The target of the transfers' (account, currency) keys: a transfer never crosses currencies.
  CONSTRAINT accounts_id_currency UNIQUE (id, currency)
);

-- One issuance account per currency, so that minting knows where money comes from.
CREATE UNIQUE INDEX accounts_one_issuance_per_currency ON accounts (currency) WHERE kind = 'issuance';

CREATE TABLE transfers (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  idempotency_key text NOT NULL UNIQUE
    CHECK (char_length(idempotency_key) BETWEEN 1 AND 128),
  debit_account text NOT NULL,
  credit_account text NOT NULL,
  currency text NOT NULL,
  amount bigint NOT NULL
    CHECK (amount > 0 AND amount <= 9223372036854775807),
  kind text NOT NULL
    CHECK (kind ~ '^[a-z][a-z0-9-]{0,63}$'),
  -- The ledger bounds the JSON text at 4096 bytes; jsonb's own text adds spaces, hence 8192 here.
  reference jsonb
    CHECK (reference IS NULL OR octet_length(reference::text) <= 8192),
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT transfers_two_accounts CHECK (debit_account <> credit_account),
  CONSTRAINT transfers_debit_account FOREIGN KEY (debit_account, currency) REFERENCES accounts (id, currency),
  CONSTRAINT transfers_credit_account FOREIGN KEY (credit_account, currency) REFERENCES accounts (id, currency)
);

CREATE INDEX transfers_by_debit ON transfers (debit_account, id);
CREATE INDEX transfers_by_credit ON transfers (credit_account, id);

CREATE FUNCTION tally_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'restrict_violation';
END
$$;

CREATE FUNCTION tally_account_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id <> OLD.id OR NEW.kind <> OLD.kind OR NEW.currency <> OLD.currency
     OR NEW.owner IS DISTINCT FROM OLD.owner OR NEW.allow_negative <> OLD.allow_negative
     OR NEW.created_at <> OLD.created_at THEN
    RAISE EXCEPTION 'account %: only the balance may change', OLD.id
      USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON transfers
  FOR EACH ROW EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON transfers
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER accounts_fixed BEFORE UPDATE ON accounts
  FOR EACH ROW EXECUTE FUNCTION tally_account_fixed();
CREATE TRIGGER accounts_kept BEFORE DELETE ON accounts
  FOR EACH ROW EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON accounts
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
