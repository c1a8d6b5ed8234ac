// Captures one TPM 2.0 quote from a fresh swtpm into test-vectors/tpm/swtpm-quote.json, for
// src/pki/tpm-quote.test.ts to check without a TPM (`npx tsx scripts/capture-tpm-quote.ts`). A TPM's
// ECDSA signature is randomised, so every run writes other bytes; the committed file is one run's.
// See docs/tpm-quote.md.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toHex, utf8 } from '../src/core/bytes.ts';
import { sha256 } from '../src/core/crypto/hash.ts';
import { startSwtpm } from '../src/secure-element/swtpm.ts';
import { createAttestationKey, extendMeasurement, ODW_PCR, quote } from '../src/secure-element/tpm-quote.ts';

const OUT = fileURLToPath(new URL('../test-vectors/tpm/swtpm-quote.json', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'tally-capture-'));
const tpm = await startSwtpm({ stateDir: join(work, 'state') });
try {
  const akPublicKey = await createAttestationKey(tpm.tcti, join(work, 'ak'));
  const otherAkPublicKey = await createAttestationKey(tpm.tcti, join(work, 'other-ak'));
  const measurement = sha256(utf8('tally/test-vectors/tpm: a trusted wallet build'));
  await extendMeasurement(tpm.tcti, ODW_PCR, measurement);
  const nonce = sha256(utf8('tally/test-vectors/tpm: the OEM nonce'));
  const captured = await quote(tpm.tcti, join(work, 'ak'), { pcrs: [ODW_PCR], qualifyingData: nonce });
  const version = (tool: string, pattern: RegExp) => pattern.exec(execFileSync(tool, ['--version'], { encoding: 'utf8' }))?.[1] ?? 'unknown';
  const file = {
    source: `captured from swtpm ${version('swtpm', /version ([0-9.]+)/)} with tpm2-tools ${version('tpm2_quote', /version="([0-9.]+)"/)} by scripts/capture-tpm-quote.ts`,
    pcr: ODW_PCR,
    measurement: toHex(measurement),
    nonce: toHex(nonce),
    akPublicKey: toHex(akPublicKey),
    otherAkPublicKey: toHex(otherAkPublicKey),
    attest: toHex(captured.attest),
    signature: toHex(captured.signature),
    pcrValue: toHex(captured.pcrValues.get(ODW_PCR) ?? new Uint8Array()),
  };
  mkdirSync(join(OUT, '..'), { recursive: true });
  writeFileSync(OUT, `${JSON.stringify(file, null, 2)}\n`);
  console.log(`wrote ${OUT}`);
} finally {
  await tpm.stop();
  rmSync(work, { recursive: true, force: true });
}
