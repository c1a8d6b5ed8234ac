-- SM2 (with SM3) joins the signature suites a registered key may use.
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_suite_check;
ALTER TABLE users ADD CONSTRAINT users_suite_check CHECK (suite IN ('ed25519', 'p256', 'secp256k1', 'sm2'));
ALTER TABLE devices DROP CONSTRAINT IF EXISTS devices_suite_check;
ALTER TABLE devices ADD CONSTRAINT devices_suite_check CHECK (suite IN ('ed25519', 'p256', 'secp256k1', 'sm2'));
