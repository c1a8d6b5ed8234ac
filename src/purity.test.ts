/**
 * The pure layers (core, pki, trusted apps, scheme messages and sessions) must run in Node, in a
 * worker and in the browser alike: no Node built-in, no Node global, and no import of a file that
 * is Node-only or from a higher layer, directly or through the files they import.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkPurity, checkSource, disk, isBuiltinSpecifier, isSource, memoryFiles, walk } from './layering.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Scheme and trusted-app files that are pure by the architecture. */
const PURE_NAME = /^(trusted-app.*|messages|payer|payee|session.*|pay-verify|block|program|denominations|exchange-key|blind-rsa|coin|transfer|escrow)\.ts$/;

/** The files the architecture calls pure (folders that do not exist yet contribute nothing). */
function pureFiles(root: string): string[] {
  const src = join(root, 'src');
  return [
    ...walk(join(src, 'core'), isSource),
    ...walk(join(src, 'pki'), isSource),
    ...walk(join(src, 'channel'), (name) => isSource(name) && !name.startsWith('tcp')),
    ...walk(join(src, 'schemes'), (name) => isSource(name) && PURE_NAME.test(name)),
    ...walk(join(src, 'secure-element', 'apps'), (name) => isSource(name) && PURE_NAME.test(name)),
  ].sort();
}

describe('purity of the isomorphic layers', () => {
  it('finds the pure files: all of core, none of its tests', () => {
    const files = pureFiles(REPO).map((path) => relative(REPO, path).split(sep).join('/'));
    for (const expected of ['src/channel/link.ts', 'src/schemes/ops/trusted-app.ts', 'src/schemes/ops/pay-verify.ts', 'src/core/index.ts', 'src/core/cbor.ts', 'src/core/codec.ts', 'src/core/crypto/suite.ts', 'src/core/crypto/noble.ts']) {
      assert.ok(files.includes(expected), expected);
    }
    assert.ok(!files.some((file) => file.endsWith('.test.ts')));
    assert.ok(!files.some((file) => file.startsWith('src/providers/')));
  });

  it('pure files use no Node built-in or global and load no Node-only file', () => {
    const findings = checkPurity(REPO, pureFiles(REPO), disk);
    if (findings.length > 0) assert.fail(`the pure layers must run in a browser too:\n  ${findings.join('\n  ')}`);
  });
});

describe('the purity checker itself', () => {
  const flagged = (text: string) => checkSource('fake.ts', text).problems;

  it('flags a node: import (so the check can fail)', () => {
    assert.deepEqual(flagged("import x from 'node:fs';\nexport const y = x;\n"), ['fake.ts:1: imports Node built-in "node:fs"']);
  });

  it('flags bare built-ins, subpaths, re-exports, dynamic imports, require and type imports', () => {
    const cases: [string, string][] = [
      ["import { createHash } from 'crypto';", 'imports Node built-in "crypto"'],
      ["import { readFile } from 'fs/promises';", 'imports Node built-in "fs/promises"'],
      ["import { posix } from 'path/posix';", 'imports Node built-in "path/posix"'],
      ["export * from 'node:path';", 'imports Node built-in "node:path"'],
      ["export { Worker } from 'worker_threads';", 'imports Node built-in "worker_threads"'],
      ["const m = await import('node:worker_threads');", 'imports Node built-in "node:worker_threads"'],
      ['const m = await import(`node:os`);', 'imports Node built-in "node:os"'],
      ['const m = await import(name);', 'dynamic import of a computed specifier (cannot be checked)'],
      ["import type { KeyObject } from 'node:crypto';", 'imports Node built-in "node:crypto"'],
      ["import fs = require('fs');", 'imports Node built-in "fs"'],
      ["let k: typeof import('node:test');", 'imports Node built-in "node:test"'],
      ["const fs = require('fs');", 'uses Node global "require"'],
      ['const b = Buffer.from([1]);', 'uses Node global "Buffer"'],
      ['const env = process.env.HOME;', 'uses Node global "process"'],
      ["if (typeof process !== 'undefined') {}", 'uses Node global "process"'],
      ['const o = { process };', 'uses Node global "process"'],
      ['function f(b: Buffer) { return b; }', 'uses Node global "Buffer"'],
      ['const p = globalThis.process;', 'uses Node global "globalThis.process"'],
      ["const p = globalThis['Buffer'];", 'uses Node global "globalThis.Buffer"'],
      ['const d = __dirname;', 'uses Node global "__dirname"'],
    ];
    for (const [text, problem] of cases) {
      const problems = flagged(text);
      assert.ok(
        problems.some((p) => p.endsWith(problem)),
        `${text} → ${JSON.stringify(problems)}`,
      );
    }
  });

  it('does not flag words in comments and strings, property names, local declarations or packages', () => {
    const clean = [
      '// the host process keeps the Buffer; require nothing here',
      '/** Runs in any process. @see node:fs */',
      "import { ed25519 } from '@noble/curves/ed25519.js';",
      "import { encodeCbor } from './cbor.ts';",
      "import { fs } from 'fs-extra-not-builtin';",
      "const text = 'node:fs process Buffer require';",
      'const o = { process: 1, Buffer: 2, require: 3 };',
      'const v = o.process + o.Buffer;',
      'interface Steps { process(): void; require: boolean }',
      'function run(steps: Steps) { steps.process(); }',
      'class Machine { process() { return 1; } }',
      'export function process(input: number): number { return input; }',
      'export const twice = process(process(1));',
      'const { require: needed } = { require: true };',
    ].join('\n');
    assert.deepEqual(flagged(clean), []);
  });

  it('follows relative imports and flags Node-only files, higher layers and impure helpers', () => {
    const root = '/repo';
    const files: Record<string, string> = {
      '/repo/src/schemes/x/payer.ts': [
        "import { a } from './messages.ts';",
        "import { p } from '../../providers/node-crypto.ts';",
        "import { h } from '../../secure-element/host-child.ts';",
        "import { w } from '../../wallet/sdk.ts';",
        "import { t } from '../../secure-element/trusted-app.ts';",
        "import type { S } from '../../secure-element/host.ts';",
        "import { m } from './missing.ts';",
        "import { n } from '../missing';",
        "import data from './table.json';",
      ].join('\n'),
      '/repo/src/schemes/x/messages.ts': "import { c } from '../../core/codec.ts';",
      '/repo/src/core/codec.ts': 'export const c = 1;',
      '/repo/src/providers/node-crypto.ts': "import { sign } from 'node:crypto';",
      '/repo/src/secure-element/host-child.ts': 'export const h = 1;',
      '/repo/src/secure-element/host.ts': "import { spawn } from 'node:child_process';",
      '/repo/src/wallet/sdk.ts': 'export const w = 1;',
      '/repo/src/secure-element/trusted-app.ts': "import { u } from './util.ts';",
      '/repo/src/secure-element/util.ts': 'export const u = Buffer.alloc(1);',
    };
    const memory = memoryFiles(files);
    const pure = ['/repo/src/schemes/x/payer.ts', '/repo/src/schemes/x/messages.ts', '/repo/src/core/codec.ts'];
    assert.deepEqual(checkPurity(root, pure, memory).sort(), [
      'src/schemes/x/payer.ts: cannot resolve "../missing"',
      'src/schemes/x/payer.ts: cannot resolve "./missing.ts"',
      'src/schemes/x/payer.ts: imports src/providers/node-crypto.ts, a Node-only provider',
      'src/schemes/x/payer.ts: imports src/secure-element/host-child.ts, a Node-only secure-element host',
      'src/schemes/x/payer.ts: imports src/wallet/sdk.ts, a higher layer',
      'src/secure-element/util.ts:1: uses Node global "Buffer" (loaded by src/secure-element/trusted-app.ts)',
    ]);
  });

  it('knows built-in names from node:module, with and without the node: prefix', () => {
    assert.ok(isBuiltinSpecifier('fs'));
    assert.ok(isBuiltinSpecifier('node:sqlite'));
    assert.ok(isBuiltinSpecifier('stream/web'));
    assert.ok(!isBuiltinSpecifier('@noble/hashes/sha2.js'));
    assert.ok(!isBuiltinSpecifier('cborg'));
    assert.ok(!isBuiltinSpecifier('./fs.ts'));
  });
});
