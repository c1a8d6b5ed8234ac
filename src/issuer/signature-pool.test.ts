/**
 * The signature pool answers what node:crypto answers for each check, in order, across workers and
 * concurrent batches; malformed keys and signatures are refused without reaching a worker; a
 * closed pool starts again; an idle pool does not hold the process open.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { nodeProvider } from '../providers/node-crypto.ts';
import { createSignaturePool, type SignatureCheck } from './signature-pool.ts';

const suite = nodeProvider.suites.ed25519;

function signedChecks(count: number, keys: number): SignatureCheck[] {
  const secrets = Array.from({ length: keys }, () => suite.generateSecretKey());
  return Array.from({ length: count }, (_unused, k) => {
    const secret = secrets[k % keys] as Uint8Array;
    const message = new TextEncoder().encode(`payment ${k} ${'x'.repeat(k % 700)}`);
    return { publicKey: suite.publicKey(secret), message, signature: suite.sign(secret, message) };
  });
}

describe('signature pool', () => {
  test('answers each check in order, good and forged mixed, split over the workers', async () => {
    const pool = createSignaturePool(2);
    try {
      const checks = signedChecks(500, 7);
      const forged = new Set([0, 3, 64, 250, 499]);
      const sent = checks.map((c, k) => {
        if (!forged.has(k)) return c;
        // A flipped bit of the signature, the message or another key: each refused.
        if (k % 3 === 0) return { ...c, signature: c.signature.map((b, i) => (i === 17 ? b ^ 0x40 : b)) };
        if (k % 3 === 1) return { ...c, message: new Uint8Array([...c.message, 0]) };
        return { ...c, publicKey: (checks[(k + 1) % checks.length] as SignatureCheck).publicKey };
      });
      const answer = await pool.verifyEd25519(sent);
      assert.equal(answer.length, 500);
      answer.forEach((ok, k) => assert.equal(ok, !forged.has(k), `check ${k}`));
      // The same answers as the provider's own check, one by one.
      answer.forEach((ok, k) => {
        const c = sent[k] as SignatureCheck;
        assert.equal(ok, suite.verify(c.publicKey, c.signature, c.message));
      });
    } finally {
      await pool.close();
    }
  });

  test('a key or signature of the wrong length is refused without reaching a worker; an empty batch is empty', async () => {
    const pool = createSignaturePool(1);
    try {
      const [good] = signedChecks(1, 1) as [SignatureCheck];
      const answer = await pool.verifyEd25519([
        { ...good, publicKey: good.publicKey.subarray(0, 31) },
        { ...good, signature: new Uint8Array(65) },
        { ...good, publicKey: new Uint8Array(0), signature: new Uint8Array(0) },
        good,
      ]);
      assert.deepEqual(answer, [false, false, false, true]);
      assert.deepEqual(await pool.verifyEd25519([]), []);
      // A key that is not a point of the curve: OpenSSL refuses it, and the pool answers false.
      assert.deepEqual(await pool.verifyEd25519([{ ...good, publicKey: new Uint8Array(32).fill(0xff) }]), [false]);
    } finally {
      await pool.close();
    }
  });

  test('concurrent batches each get their own answers; a closed pool starts again on the next batch', async () => {
    const pool = createSignaturePool(2);
    try {
      const batches = Array.from({ length: 8 }, (_unused, b) => signedChecks(100 + b, 3).map((c, k) => (k === b ? { ...c, signature: new Uint8Array(64) } : c)));
      const answers = await Promise.all(batches.map((batch) => pool.verifyEd25519(batch)));
      answers.forEach((answer, b) => answer.forEach((ok, k) => assert.equal(ok, k !== b, `batch ${b} check ${k}`)));
      await pool.close();
      const again = await pool.verifyEd25519(signedChecks(3, 1));
      assert.deepEqual(again, [true, true, true]);
    } finally {
      await pool.close();
    }
  });

  test('refuses a size that is not a positive integer', () => {
    assert.throws(() => createSignaturePool(0), RangeError);
    assert.throws(() => createSignaturePool(1.5), RangeError);
  });

  test('an idle pool lets its process end', () => {
    const script = `
      import { createSignaturePool } from ${JSON.stringify(new URL('./signature-pool.ts', import.meta.url).href)};
      const pool = createSignaturePool(2);
      const ok = await pool.verifyEd25519([{ publicKey: new Uint8Array(32), message: new Uint8Array(1), signature: new Uint8Array(64) }]);
      console.log(JSON.stringify(ok));
    `;
    const run = spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), '[false]');
  });
});
