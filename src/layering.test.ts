/**
 * The scheme seam (ARCHITECTURE "Layers"): a scheme is a folder whose files are pure unless their
 * name makes them an adapter; an adapter imports only the plug-in module of the layer it plugs
 * into; schemes never import each other; the shell reaches a scheme only through the registry and
 * never names one. The rules are the table RULES in src/layering/rules.ts; this file checks the tree
 * against it and checks the checker with small fake trees.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  againstKnown,
  architectureViolations,
  disk,
  memoryFiles,
  roleOf,
  RULES,
  schemeFolders,
  schemeNamed,
  schemeNamings,
  violationKey,
  walk,
  words,
  type Role,
  type Violation,
} from './layering.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * What the tree still breaks while the schemes move into their folders, one `file → import` a
 * line. Delete a line when its import is gone: the test fails on a line that no longer occurs, so
 * the list only shrinks.
 */
const KNOWN_VIOLATIONS: readonly string[] = [];

/**
 * Files under src/cli and src/wallet that name a scheme, with how many of their lines do (a path
 * that names one counts as a line). Exact counts: lower one as names go, delete it at zero.
 */
const KNOWN_NAMINGS: Readonly<Record<string, number>> = {};

/**
 * How the shell would name a scheme whose folder name is also a common word of the shell: `chain`
 * is chain-tee's folder, but a certificate chain (pki/chain.ts) and the node's Ethereum chain are
 * the shell's own. For such a scheme the check looks for its full name.
 */
const NAMED_AS: Readonly<Record<string, string>> = { chain: 'chain tee' };

/** Every TypeScript file of the tree under src/, tests included (the rules cover them too). */
function treeFiles(root: string): string[] {
  return walk(join(root, 'src'), (name) => name.endsWith('.ts') && !name.endsWith('.d.ts')).sort();
}

function describeViolation(violation: Violation): string {
  return `${violation.file}:${violation.line} → ${violation.target} [${violation.rule}] ${violation.says}`;
}

describe('the scheme seam in the tree', () => {
  it('knows each file by its folder and name', () => {
    const cases: [string, Role][] = [
      ['schemes/ops/messages.ts', 'scheme-pure'],
      ['schemes/ops/trusted-app-state.ts', 'scheme-pure'],
      ['schemes/ops/issuer.ts', 'scheme-pure'],
      ['schemes/ops/sub/index.ts', 'scheme-pure'],
      ['schemes/ops/index.ts', 'scheme-index'],
      ['schemes/ops/node.ts', 'scheme-node'],
      ['schemes/ops/node-settlement.ts', 'scheme-node'],
      ['schemes/ops/wallet.ts', 'scheme-wallet'],
      ['schemes/ops/wallet-tokens.ts', 'scheme-wallet'],
      ['schemes/ops/cli.ts', 'scheme-cli'],
      ['schemes/ops/cli-request.ts', 'scheme-cli'],
      ['schemes/ops/bench.ts', 'scheme-bench'],
      ['schemes/ops/bench-floor.ts', 'scheme-bench'],
      ['schemes/ops/node.test.ts', 'scheme-test'],
      ['schemes/ops/test-fixtures.ts', 'scheme-test'],
      ['schemes/dotm/ta-fixtures.ts', 'scheme-test'],
      ['schemes/dotm/link-fixtures.ts', 'scheme-test'],
      ['schemes/index.ts', 'registry'],
      ['schemes/scheme.ts', 'scheme-type'],
      ['schemes/peer-refusal.ts', 'schemes-shared'],
      ['schemes/registry.test.ts', 'schemes-test'],
      ['cli/main.ts', 'face'],
      ['sim/bench/main.ts', 'face'],
      ['wallet/plugin.ts', 'shell'],
      ['issuer/http/app.test.ts', 'shell'],
      ['core/codec.ts', 'shell'],
      ['purity.test.ts', 'other'],
    ];
    for (const [path, role] of cases) assert.equal(roleOf(path), role, path);
  });

  it('every import follows the layering, but for the known violations (which still occur)', () => {
    const { unexpected, gone } = againstKnown(architectureViolations(REPO, treeFiles(REPO), disk), KNOWN_VIOLATIONS);
    const report: string[] = [];
    if (unexpected.length > 0) report.push(`imports that break the layering:\n  ${unexpected.map(describeViolation).join('\n  ')}`);
    if (gone.length > 0) report.push(`KNOWN_VIOLATIONS lines that no longer occur (delete them):\n  ${gone.join('\n  ')}`);
    if (report.length > 0) assert.fail(report.join('\n'));
  });

  it('the known violations are distinct, and each names a file and an import', () => {
    assert.equal(new Set(KNOWN_VIOLATIONS).size, KNOWN_VIOLATIONS.length);
    for (const line of KNOWN_VIOLATIONS) assert.match(line, /^src\/\S+\.ts → \S+$/, line);
  });

  it('no file under src/cli or src/wallet names a scheme, but for the known ones (with their exact counts)', () => {
    const shell = [...walk(join(REPO, 'src', 'cli'), (name) => name.endsWith('.ts')), ...walk(join(REPO, 'src', 'wallet'), (name) => name.endsWith('.ts'))].sort();
    const schemes = schemeFolders(REPO).map((folder) => NAMED_AS[folder] ?? folder);
    assert.ok(schemes.includes('ops') && schemes.includes('dotm'), `scheme folders: ${schemes.join(', ')}`);
    const namings = schemeNamings(REPO, shell, schemes, disk);
    const counts = new Map<string, number>();
    for (const naming of namings) counts.set(naming.file, (counts.get(naming.file) ?? 0) + 1);
    const report: string[] = [];
    for (const file of new Set([...counts.keys(), ...Object.keys(KNOWN_NAMINGS)])) {
      const found = counts.get(file) ?? 0;
      const known = KNOWN_NAMINGS[file] ?? 0;
      if (found === known) continue;
      const lines = namings.filter((naming) => naming.file === file).map((naming) => `${naming.line}:${naming.scheme}`);
      report.push(`${file}: ${found} lines name a scheme, KNOWN_NAMINGS says ${known}${found > known ? ` (lines ${lines.join(' ')})` : ''}`);
    }
    if (report.length > 0) assert.fail(`the shell names a scheme:\n  ${report.join('\n  ')}`);
  });
});

describe('the layering checker itself', () => {
  const root = '/repo';
  /** The violations of a fake tree (paths under src/), as `file → target [rule]`, sorted. */
  const check = (tree: Record<string, string>): string[] => {
    const files = Object.fromEntries(Object.entries(tree).map(([path, text]) => [`${root}/src/${path}`, text]));
    return architectureViolations(root, Object.keys(files), memoryFiles(files))
      .map((violation) => `${violationKey(violation)} [${violation.rule}]`)
      .sort();
  };
  /** Lower layers every fake scheme file may use. */
  const lower = {
    'core/codec.ts': 'export const c = 1;',
    'pki/chain.ts': "import { c } from '../core/codec.ts';\nexport const v = c;",
    'channel/link.ts': 'export const l = 1;',
    'secure-element/trusted-app.ts': 'export const t = 1;',
    'issuer/plugin.ts': 'export interface SchemeNode { name: string }\nexport const services = 1;',
    'issuer/ledger/transfer.ts': 'export const transfer = 1;',
    'wallet/plugin.ts': 'export interface SchemeWallet { name: string }\nexport const shell = 1;',
    'cli/plugin.ts': 'export interface SchemeCli { name: string }',
    'sim/bench/plugin.ts': 'export interface SchemeBench { name: string }',
  };

  it('passes a scheme that keeps to the seam', () => {
    const tree = {
      ...lower,
      'schemes/a/messages.ts': "import { c } from '../../core/codec.ts';\nimport { v } from '../../pki/chain.ts';\nexport const m = c + v;",
      'schemes/a/session.ts': "import type { l } from '../../channel/link.ts';\nimport { m } from './messages.ts';\nimport { t } from '../../secure-element/trusted-app.ts';\nexport const s = m + t;",
      'schemes/a/node.ts': "import { readFile } from 'node:fs/promises';\nimport { services } from '../../issuer/plugin.ts';\nimport { m } from './messages.ts';\nexport const n = [readFile, services, m];",
      'schemes/a/node-settle.ts': "import { n } from './node.ts';\nexport const settle = n;",
      'schemes/a/wallet.ts': "import { shell } from '../../wallet/plugin.ts';\nexport const w = shell;",
      'schemes/a/cli.ts': "import type { SchemeCli } from '../../cli/plugin.ts';\nimport { shell } from '../../wallet/plugin.ts';\nexport const cli: SchemeCli = { name: String(shell) };",
      'schemes/a/bench.ts': "import type { SchemeBench } from '../../sim/bench/plugin.ts';\nimport { services } from '../../issuer/plugin.ts';\nimport { shell } from '../../wallet/plugin.ts';\nexport const b: SchemeBench = { name: `${services}${shell}` };",
      'schemes/a/index.ts':
        "import type { SchemeNode } from '../../issuer/plugin.ts';\nimport type { SchemeWallet } from '../../wallet/plugin.ts';\nimport type { Scheme } from '../scheme.ts';\nimport { n } from './node.ts';\nimport { w } from './wallet.ts';\nexport const scheme: Scheme = { n, w } as unknown as Scheme & SchemeNode & SchemeWallet;",
      'schemes/a/test-fixtures.ts': "import { transfer } from '../../issuer/ledger/transfer.ts';\nimport { spawn } from 'node:child_process';\nexport const f = [transfer, spawn, process.pid];",
      'schemes/a/node.test.ts': "import { f } from './test-fixtures.ts';\nimport { n } from './node.ts';\nexport const x = [f, n];",
      'schemes/scheme.ts': "import type { SchemeNode } from '../issuer/plugin.ts';\nexport interface Scheme { node: SchemeNode }",
      'schemes/index.ts': "import { scheme as a } from './a/index.ts';\nimport type { Scheme } from './scheme.ts';\nexport const schemes: Scheme[] = [a];",
      'cli/main.ts': "import { schemes } from '../schemes/index.ts';\nexport const all = schemes;",
      'sim/bench/main.ts': "import { schemes } from '../../schemes/index.ts';\nexport const all = schemes;",
    };
    assert.deepEqual(check(tree), []);
  });

  it('flags a scheme that imports another scheme, from any of its files', () => {
    const tree = {
      ...lower,
      'schemes/b/messages.ts': 'export const m = 1;',
      'schemes/b/index.ts': 'export const scheme = 1;',
      'schemes/a/messages.ts': "import { m } from '../b/messages.ts';\nexport const x = m;",
      'schemes/a/node.ts': "import { scheme } from '../b/index.ts';\nexport const y = scheme;",
      'schemes/a/wallet.ts': "import type { m } from '../b/messages.ts';\nexport type Y = typeof m;",
      'schemes/a/session.test.ts': "import { m } from '../b/messages.ts';\nexport const z = m;",
    };
    assert.deepEqual(check(tree), [
      'src/schemes/a/messages.ts → src/schemes/b/messages.ts [scheme-pure]',
      'src/schemes/a/node.ts → src/schemes/b/index.ts [scheme-node]',
      'src/schemes/a/session.test.ts → src/schemes/b/messages.ts [scheme-test]',
      'src/schemes/a/wallet.ts → src/schemes/b/messages.ts [scheme-wallet]',
    ]);
  });

  it('flags a pure scheme file that imports node:fs, uses a Node global or loads its own adapter', () => {
    const tree = {
      ...lower,
      'schemes/a/messages.ts': "import { readFileSync } from 'node:fs';\nexport const m = readFileSync;",
      'schemes/a/session.ts': 'export const s = Buffer.alloc(1);',
      'schemes/a/payer.ts': "import { n } from './node.ts';\nexport const p = n;",
      'schemes/a/node.ts': "import { readFileSync } from 'node:fs';\nexport const n = readFileSync;",
      'schemes/shared.ts': "import { env } from 'node:process';\nexport const e = env;",
    };
    assert.deepEqual(check(tree), [
      'src/schemes/a/messages.ts → node:fs [pure]',
      'src/schemes/a/node.ts → node:fs [pure]',
      'src/schemes/a/payer.ts → src/schemes/a/node.ts [scheme-pure]',
      'src/schemes/a/session.ts → global Buffer [pure]',
      'src/schemes/shared.ts → node:process [pure]',
    ]);
  });

  it('flags a node adapter that imports the issuer past its plug-in module, types included', () => {
    const tree = {
      ...lower,
      'schemes/a/node.ts': "import { transfer } from '../../issuer/ledger/transfer.ts';\nimport { services } from '../../issuer/plugin.ts';\nexport const n = [transfer, services];",
      'schemes/a/node-routes.ts': "import type { transfer } from '../../issuer/ledger/transfer.ts';\nexport type T = typeof transfer;",
      'schemes/a/node-keys.ts': "import { nodeProvider } from '../../providers/node-crypto.ts';\nimport { h } from '../../secure-element/host.ts';\nexport const k = [nodeProvider, h];",
    };
    assert.deepEqual(check(tree), [
      'src/schemes/a/node-keys.ts → src/providers/node-crypto.ts [scheme-node]',
      'src/schemes/a/node-keys.ts → src/secure-element/host.ts [scheme-node]',
      'src/schemes/a/node-routes.ts → src/issuer/ledger/transfer.ts [scheme-node]',
      'src/schemes/a/node.ts → src/issuer/ledger/transfer.ts [scheme-node]',
    ]);
  });

  it('flags a wallet adapter that imports the issuer plug-in, and each adapter that imports another layer\'s plug-in', () => {
    const tree = {
      ...lower,
      'schemes/a/wallet.ts': "import { services } from '../../issuer/plugin.ts';\nimport { shell } from '../../wallet/plugin.ts';\nexport const w = [services, shell];",
      'schemes/a/cli-verbs.ts': "import { services } from '../../issuer/plugin.ts';\nexport const c = services;",
      'schemes/a/node.ts': "import { shell } from '../../wallet/plugin.ts';\nexport const n = shell;",
      'schemes/a/bench.ts': "import { c } from '../../cli/plugin.ts';\nimport { w } from '../../wallet/wallet.ts';\nexport const b = [c, w];",
    };
    assert.deepEqual(check(tree), [
      'src/schemes/a/bench.ts → src/cli/plugin.ts [scheme-bench]',
      'src/schemes/a/bench.ts → src/wallet/wallet.ts [scheme-bench]',
      'src/schemes/a/cli-verbs.ts → src/issuer/plugin.ts [scheme-cli]',
      'src/schemes/a/node.ts → src/wallet/plugin.ts [scheme-node]',
      'src/schemes/a/wallet.ts → src/issuer/plugin.ts [scheme-wallet]',
    ]);
  });

  it('allows index.ts type-only imports of the plug-in modules, not value imports', () => {
    const tree = {
      ...lower,
      'schemes/a/index.ts': [
        "import type { SchemeNode } from '../../issuer/plugin.ts';",
        "import { type SchemeWallet } from '../../wallet/plugin.ts';",
        "export type { SchemeCli } from '../../cli/plugin.ts';",
        "let bench: import('../../sim/bench/plugin.ts').SchemeBench | undefined;",
        "import { services } from '../../issuer/plugin.ts';",
        "import type { transfer } from '../../issuer/ledger/transfer.ts';",
        'export const scheme = { bench, services } as unknown as SchemeNode & SchemeWallet & typeof transfer;',
      ].join('\n'),
    };
    // `import { type X }` keeps an empty import under verbatimModuleSyntax: it loads the module.
    assert.deepEqual(check(tree), [
      'src/schemes/a/index.ts → src/issuer/ledger/transfer.ts [scheme-index]',
      'src/schemes/a/index.ts → src/issuer/plugin.ts [scheme-index]',
      'src/schemes/a/index.ts → src/wallet/plugin.ts [scheme-index]',
    ]);
  });

  it('flags src/wallet importing a scheme in every form, or the registry', () => {
    const tree = {
      ...lower,
      'schemes/a/messages.ts': 'export const m = 1;',
      'schemes/a/trusted-app.ts': 'export const t = 1;',
      'schemes/a/index.ts': 'export const scheme = 1;',
      'schemes/index.ts': "export * from './a/index.ts';",
      'wallet/shell.ts': [
        "import { m } from '../schemes/a/messages.ts';",
        "import type { scheme } from '../schemes/a/index.ts';",
        "const late = await import('../schemes/a/index.ts');",
        "const app = new URL('../schemes/a/trusted-app.ts', import.meta.url);",
        "import { schemes } from '../schemes/index.ts';",
        'export const w = [m, late, app, schemes] as unknown as typeof scheme;',
      ].join('\n'),
      'wallet/shell.test.ts': "import { m } from '../schemes/a/messages.ts';\nexport const t = m;",
      'issuer/http/app.ts': "import { scheme } from '../../schemes/a/index.ts';\nexport const i = scheme;",
    };
    assert.deepEqual(check(tree), [
      'src/issuer/http/app.ts → src/schemes/a/index.ts [shell]',
      'src/wallet/shell.test.ts → src/schemes/a/messages.ts [shell]',
      'src/wallet/shell.ts → src/schemes/a/index.ts [shell]',
      'src/wallet/shell.ts → src/schemes/a/index.ts [shell]',
      'src/wallet/shell.ts → src/schemes/a/messages.ts [shell]',
      'src/wallet/shell.ts → src/schemes/a/trusted-app.ts [shell]',
      'src/wallet/shell.ts → src/schemes/index.ts [shell]',
    ]);
  });

  it('flags src/cli and src/sim importing a scheme other than through the registry', () => {
    const tree = {
      ...lower,
      'schemes/a/index.ts': 'export const scheme = 1;',
      'schemes/a/node.ts': 'export const n = 1;',
      'schemes/a/request.ts': 'export const r = 1;',
      'schemes/index.ts': "import { scheme } from './a/index.ts';\nimport { n } from './a/node.ts';\nexport const schemes = [scheme, n];",
      'cli/main.ts': "import { schemes } from '../schemes/index.ts';\nimport { n } from '../schemes/a/node.ts';\nexport const all = [schemes, n];",
      'cli/verbs.e2e.test.ts': "import { r } from '../schemes/a/request.ts';\nexport const t = r;",
      'sim/bench/main.ts': "import { scheme } from '../../schemes/a/index.ts';\nexport const s = scheme;",
    };
    assert.deepEqual(check(tree), [
      'src/cli/main.ts → src/schemes/a/node.ts [face]',
      'src/cli/verbs.e2e.test.ts → src/schemes/a/request.ts [face]',
      'src/schemes/index.ts → src/schemes/a/node.ts [registry]',
      'src/sim/bench/main.ts → src/schemes/a/index.ts [face]',
    ]);
  });

  it('reads a tree on disk the same way: scheme folders, tests and all', () => {
    const root = mkdtempSync(join(tmpdir(), 'tally-layering-'));
    try {
      const tree: Record<string, string> = {
        'src/core/codec.ts': 'export const c = 1;',
        'src/schemes/alpha/messages.ts': "import { c } from '../../core/codec.ts';\nexport const m = c;",
        'src/schemes/alpha/node.ts': "import { m } from '../beta/messages.ts';\nexport const n = m;",
        'src/schemes/beta/messages.ts': "import { existsSync } from 'node:fs';\nexport const m = existsSync;",
        'src/wallet/shell.test.ts': "import { m } from '../schemes/alpha/messages.ts';\nexport const isAlpha = m;",
      };
      for (const [path, text] of Object.entries(tree)) {
        mkdirSync(dirname(join(root, path)), { recursive: true });
        writeFileSync(join(root, path), text);
      }
      assert.deepEqual(
        architectureViolations(root, treeFiles(root), disk).map((violation) => `${violationKey(violation)} [${violation.rule}]`).sort(),
        [
          'src/schemes/alpha/node.ts → src/schemes/beta/messages.ts [scheme-node]',
          'src/schemes/beta/messages.ts → node:fs [pure]',
          'src/wallet/shell.test.ts → src/schemes/alpha/messages.ts [shell]',
        ],
      );
      assert.deepEqual(schemeFolders(root), ['alpha', 'beta']);
      const namings = schemeNamings(root, walk(join(root, 'src', 'wallet'), (name) => name.endsWith('.ts')), schemeFolders(root), disk);
      assert.deepEqual(namings, [
        { file: 'src/wallet/shell.test.ts', line: 1, scheme: 'alpha' },
        { file: 'src/wallet/shell.test.ts', line: 2, scheme: 'alpha' },
      ]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('compares with a known list both ways: a new violation and a stale line both fail', () => {
    const found: Violation[] = [
      { file: 'src/wallet/a.ts', line: 3, target: 'src/schemes/x/m.ts', rule: 'shell', says: '' },
      { file: 'src/wallet/a.ts', line: 9, target: 'src/schemes/x/m.ts', rule: 'shell', says: '' },
      { file: 'src/cli/b.ts', line: 1, target: 'src/schemes/x/n.ts', rule: 'face', says: '' },
    ];
    const { unexpected, gone } = againstKnown(found, ['src/wallet/a.ts → src/schemes/x/m.ts', 'src/wallet/c.ts → src/schemes/x/m.ts']);
    assert.deepEqual(unexpected.map(violationKey), ['src/cli/b.ts → src/schemes/x/n.ts']);
    assert.deepEqual(gone, ['src/wallet/c.ts → src/schemes/x/m.ts']);
  });

  it('has a rule for every role, each in words', () => {
    for (const [role, rule] of Object.entries(RULES)) assert.ok(rule.says.length > 10, role);
  });
});

describe('the scheme-name check itself', () => {
  const schemes = ['ops', 'dotm', 'chain-tee'];

  it('splits identifiers into words', () => {
    assert.deepEqual(words('isDotm OPS_TA_LOCATION opsIssuerModule DotmWallet isOPSWallet ../schemes/ops/x.ts'), [
      'is', 'dotm', 'ops', 'ta', 'location', 'ops', 'issuer', 'module', 'dotm', 'wallet', 'is', 'ops', 'wallet', 'schemes', 'ops', 'x', 'ts',
    ]);
  });

  it('finds a scheme named in any case style, and not inside other words', () => {
    const named = ['if (isDotm) {', 'const OPS_TA_LOCATION = 1;', 'opsIssuerModule,', "from '../schemes/ops/request.ts'", '// the OPS payer', 'withDotm()', 'DOTM_LINK_PROLOGUE', 'ChainTeeWallet', 'chain_tee'];
    for (const line of named) assert.notEqual(schemeNamed(line, schemes), undefined, line);
    const clean = ["import { schemes } from '../schemes/index.ts';", 'stops the oops', 'dotmatrix printer', 'verifyChain(chain)', 'topsoil', 'const shops = 1;'];
    for (const line of clean) assert.equal(schemeNamed(line, schemes), undefined, line);
  });

  it('reports each naming line of each file, and a path that names a scheme', () => {
    const files = {
      '/repo/src/wallet/dotm-wallet.ts': 'export const w = 1;',
      '/repo/src/wallet/shell.ts': "import { schemes } from '../schemes/index.ts';\n// pays with OPS\nconst isDotm = false;",
    };
    const namings = schemeNamings('/repo', Object.keys(files), schemes, memoryFiles(files));
    assert.deepEqual(namings, [
      { file: 'src/wallet/dotm-wallet.ts', line: 0, scheme: 'dotm' },
      { file: 'src/wallet/shell.ts', line: 2, scheme: 'ops' },
      { file: 'src/wallet/shell.ts', line: 3, scheme: 'dotm' },
    ]);
  });
});
