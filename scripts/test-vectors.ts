// Writes Tally's own test vectors under test-vectors/ (`npm run vectors`), from fixed keys and
// seeds and no randomness, so every run writes the same bytes. Each scheme's vectors module
// (src/schemes/<scheme>/vectors.ts) makes its own files, and its vectors.test.ts recomputes each
// value and checks that the module's output is what is committed. The RFC vectors beside them
// (rfc*.json) are copied from their RFCs, not generated. See docs/test-vectors.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chainVectorFiles } from '../src/schemes/chain/vectors.ts';
import { dotmVectorFiles } from '../src/schemes/dotm/vectors.ts';
import { operaVectorFiles } from '../src/schemes/opera/vectors.ts';
import { opsVectorFiles } from '../src/schemes/ops/vectors.ts';
import { otpVectorFiles } from '../src/schemes/otp/vectors.ts';

/** Every generated file: its path from the repository's root, and its text. */
export function vectorFiles(): ReadonlyMap<string, string> {
  return new Map([...opsVectorFiles(), ...dotmVectorFiles(), ...otpVectorFiles(), ...chainVectorFiles(), ...operaVectorFiles()]);
}

/** Writes every generated file under `root`; returns their paths. */
export function writeVectors(root: URL): string[] {
  const written: string[] = [];
  for (const [path, text] of vectorFiles()) {
    const file = fileURLToPath(new URL(path, root));
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    written.push(path);
  }
  return written;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const path of writeVectors(new URL('../', import.meta.url))) console.log(`vectors: wrote ${path}`);
}
