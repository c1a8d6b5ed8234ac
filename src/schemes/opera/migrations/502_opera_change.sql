-- Change (the payee gives tokens back in the same mount when the payer's tokens are worth more than
-- the amount): the change agreed, which side its tokens went to when the bank decided it (the payer,
-- whose payee took the tokens and released its change key before the payer could open the change;
-- the payee, which never took the tokens and never released that key), and what that credited.
ALTER TABLE opera_settlements
  ADD COLUMN change_amount bigint NOT NULL DEFAULT 0
    CHECK (change_amount >= 0),
  ADD COLUMN change_to text
    CHECK (change_to IN ('payer', 'payee')),
  ADD COLUMN change_credited bigint NOT NULL DEFAULT 0
    CHECK (change_credited >= 0),
  ADD CHECK (change_to IS NOT NULL OR change_credited = 0);
