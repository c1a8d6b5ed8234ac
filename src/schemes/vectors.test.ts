/**
 * The generator of the test vectors (scripts/test-vectors.ts, `npm run vectors`) joins every
 * scheme's vectors module: each scheme folder with a vectors.ts has its files among the
 * generator's, and every file the generator writes is the committed one, byte for byte. Each
 * scheme's own vectors.test.ts checks its values (docs/test-vectors.md).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { vectorFiles } from '../../scripts/test-vectors.ts';
import { schemeFolders } from '../layering.ts';

const ROOT = new URL('../../', import.meta.url);

describe('test vectors: the generator', () => {
  it("writes every scheme's files, each the committed text", () => {
    const files = vectorFiles();
    const folders = schemeFolders(new URL('.', ROOT).pathname).filter((folder) => existsSync(new URL(`src/schemes/${folder}/vectors.ts`, ROOT)));
    assert.ok(folders.length >= 5, `the schemes with vectors: ${folders.join(', ')}`);
    for (const folder of folders) assert.ok([...files.keys()].some((path) => path.startsWith(`test-vectors/${folder}/`)), `no file of ${folder}`);
    for (const [path, text] of files) assert.equal(readFileSync(new URL(path, ROOT), 'utf8'), text, `${path} differs from the generator's output: npm run vectors`);
  });
});
