/**
 * The rule table of the scheme seam: what a file under src/ is (its role, by folder and name),
 * what an import reaches (its target class, seen from the importer), and what each role may
 * import. Test support: the product never loads it.
 */
import { basename } from 'node:path';

/** What a file under src/ is, by where it lives and how it is named. */
export type Role =
  | 'scheme-pure'
  | 'scheme-index'
  | 'scheme-node'
  | 'scheme-wallet'
  | 'scheme-cli'
  | 'scheme-bench'
  | 'scheme-sim'
  | 'scheme-test'
  | 'registry'
  | 'scheme-type'
  | 'schemes-shared'
  | 'schemes-test'
  | 'face'
  | 'shell'
  | 'other';

/** Test support in a scheme folder: never shipped, so neither pure nor bound to the plug-in modules. */
const TEST_SUPPORT = /(\.test\.ts|^test-fixtures\.ts|^ta-fixtures\.ts|-fixtures\.ts)$/;

/** The adapters of a scheme folder, by file name; every other file in the folder is pure. */
export const ADAPTER_NAMES: readonly (readonly [RegExp, Role])[] = [
  [/^node(-.+)?\.ts$/, 'scheme-node'],
  [/^wallet(-.+)?\.ts$/, 'scheme-wallet'],
  [/^cli(-.+)?\.ts$/, 'scheme-cli'],
  [/^bench(-.+)?\.ts$/, 'scheme-bench'],
  [/^sim(-.+)?\.ts$/, 'scheme-sim'],
];

/** The faces read the registry; every other layer outside src/schemes/ is shell. */
const FACES = new Set(['cli', 'sim', 'web']);
const SHELL = new Set(['core', 'pki', 'channel', 'secure-element', 'providers', 'host', 'issuer', 'wallet']);

/** The scheme a path under src/ belongs to, or undefined outside every scheme folder. */
function schemeOf(path: string): string | undefined {
  return /^schemes\/([^/]+)\//.exec(path)?.[1];
}

/** The role of a file, from its path under src/. */
export function roleOf(path: string): Role {
  const name = basename(path);
  if (schemeOf(path) !== undefined) {
    if (TEST_SUPPORT.test(name)) return 'scheme-test';
    if (/^schemes\/[^/]+\/index\.ts$/.test(path)) return 'scheme-index';
    return ADAPTER_NAMES.find(([pattern]) => pattern.test(name))?.[1] ?? 'scheme-pure';
  }
  if (/^schemes\/[^/]+$/.test(path)) {
    if (TEST_SUPPORT.test(name)) return 'schemes-test';
    if (name === 'index.ts') return 'registry';
    if (name === 'scheme.ts') return 'scheme-type';
    return 'schemes-shared';
  }
  const layer = path.split('/')[0] as string;
  if (FACES.has(layer)) return 'face';
  if (SHELL.has(layer)) return 'shell';
  return 'other';
}

/**
 * What an import reaches, seen from the importing file. In a scheme folder: `own-*` for the
 * importer's own scheme (its pure files, its adapters and index.ts, its test support), and
 * `scheme-index` / `scheme-file` for any other scheme's index.ts / other files.
 */
export type TargetClass =
  | 'core'
  | 'pki'
  | 'channel'
  | 'channel-node'
  | 'secure-element'
  | 'secure-element-host'
  | 'issuer-plugin'
  | 'wallet-plugin'
  | 'cli-plugin'
  | 'bench-plugin'
  | 'sim-plugin'
  | 'issuer'
  | 'wallet'
  | 'cli'
  | 'sim'
  | 'web'
  | 'providers'
  | 'host'
  | 'registry'
  | 'scheme-type'
  | 'schemes-shared'
  | 'own-pure'
  | 'own-adapter'
  | 'own-test'
  | 'scheme-index'
  | 'scheme-file'
  | 'other';

/** Classes outside the scheme folders, first match wins (plug-in modules before their layer). */
const TARGETS: readonly (readonly [TargetClass, RegExp])[] = [
  ['registry', /^schemes\/index\.ts$/],
  ['scheme-type', /^schemes\/scheme\.ts$/],
  ['schemes-shared', /^schemes\/[^/]+$/],
  ['issuer-plugin', /^issuer\/plugin\.ts$/],
  ['wallet-plugin', /^wallet\/plugin\.ts$/],
  ['cli-plugin', /^cli\/plugin\.ts$/],
  ['bench-plugin', /^sim\/bench\/plugin\.ts$/],
  ['sim-plugin', /^sim\/sim\/plugin\.ts$/],
  ['core', /^core\//],
  ['pki', /^pki\//],
  ['channel-node', /^channel\/tcp/],
  ['channel', /^channel\//],
  ['secure-element-host', /^secure-element\/host/],
  ['secure-element', /^secure-element\//],
  ['issuer', /^issuer\//],
  ['wallet', /^wallet\//],
  ['cli', /^cli\//],
  ['sim', /^sim\//],
  ['web', /^web\//],
  ['providers', /^providers\//],
  ['host', /^host\//],
];

/** The class of `target` (a path under src/) as imported by `source` (a path under src/). */
export function targetClass(source: string, target: string): TargetClass {
  const scheme = schemeOf(target);
  if (scheme !== undefined) {
    if (scheme !== schemeOf(source)) return /^schemes\/[^/]+\/index\.ts$/.test(target) ? 'scheme-index' : 'scheme-file';
    const role = roleOf(target);
    return role === 'scheme-pure' ? 'own-pure' : role === 'scheme-test' ? 'own-test' : 'own-adapter';
  }
  return TARGETS.find(([, pattern]) => pattern.test(target))?.[0] ?? 'other';
}

/** `any`: imported for values or types; `type`: only by an import that is erased (`import type`). */
type Access = 'any' | 'type';

/** One rule of the table: what a file of a role may import, and the rule in words. */
export interface Rule {
  readonly says: string;
  readonly allow: Readonly<Partial<Record<TargetClass, Access>>>;
}

const ALL_TARGETS: readonly TargetClass[] = [...TARGETS.map(([name]) => name), 'own-pure', 'own-adapter', 'own-test', 'scheme-index', 'scheme-file', 'other'];

function allBut(...denied: TargetClass[]): Partial<Record<TargetClass, Access>> {
  return Object.fromEntries(ALL_TARGETS.filter((name) => !denied.includes(name)).map((name) => [name, 'any' as const]));
}

/** The pure lower layers every scheme file may use (the Node-only parts of each are excluded by name or by the purity check). */
const BELOW = { core: 'any', pki: 'any', channel: 'any', 'secure-element': 'any' } as const;
/** The pure files and the adapters of the importing file's own scheme. */
const OWN = { 'own-pure': 'any', 'own-adapter': 'any' } as const;
const PLUGINS_TYPE = { 'issuer-plugin': 'type', 'wallet-plugin': 'type', 'cli-plugin': 'type', 'bench-plugin': 'type', 'sim-plugin': 'type' } as const;

/** The layering, role → what it may import. Anything not listed is a violation. */
export const RULES: Readonly<Record<Role, Rule>> = {
  'scheme-pure': {
    says: "a scheme's protocol file is pure: it imports only core, pki, channel, secure-element's pure parts and its own scheme's pure files",
    allow: { ...BELOW, 'own-pure': 'any' },
  },
  'scheme-index': {
    says: "a scheme's index.ts imports its own folder, the pure layers, and the plug-in modules and the Scheme type for types only",
    allow: { ...BELOW, ...OWN, ...PLUGINS_TYPE, 'scheme-type': 'type' },
  },
  'scheme-node': {
    says: "a scheme's node adapter imports only src/issuer/plugin.ts of the issuer",
    allow: { ...BELOW, ...OWN, 'issuer-plugin': 'any' },
  },
  'scheme-wallet': {
    says: "a scheme's wallet adapter imports only src/wallet/plugin.ts of the shell",
    allow: { ...BELOW, ...OWN, 'wallet-plugin': 'any' },
  },
  'scheme-cli': {
    says: "a scheme's CLI adapter imports only src/cli/plugin.ts and src/wallet/plugin.ts of the shell",
    allow: { ...BELOW, ...OWN, 'cli-plugin': 'any', 'wallet-plugin': 'any' },
  },
  'scheme-bench': {
    says: "a scheme's benchmark imports only src/sim/bench/plugin.ts, src/issuer/plugin.ts and src/wallet/plugin.ts of the shell",
    allow: { ...BELOW, ...OWN, 'bench-plugin': 'any', 'issuer-plugin': 'any', 'wallet-plugin': 'any' },
  },
  'scheme-sim': {
    says: "a scheme's simulation imports only src/sim/sim/plugin.ts and src/issuer/plugin.ts of the shell",
    allow: { ...BELOW, ...OWN, 'sim-plugin': 'any', 'issuer-plugin': 'any' },
  },
  'scheme-test': {
    says: "a scheme's tests may use the whole shell, but schemes never import each other",
    allow: allBut('scheme-index', 'scheme-file'),
  },
  registry: {
    says: "the registry imports each scheme's index.ts, never a scheme's other files",
    allow: { ...BELOW, ...PLUGINS_TYPE, 'scheme-index': 'any', 'scheme-type': 'any' },
  },
  'scheme-type': {
    says: 'the Scheme type imports the plug-in modules for types only, and no scheme',
    allow: { ...BELOW, ...PLUGINS_TYPE },
  },
  'schemes-shared': {
    says: 'a shared file in src/schemes/ is pure and imports no scheme',
    allow: { ...BELOW },
  },
  'schemes-test': {
    says: "a test in src/schemes/ reaches a scheme only through its index.ts",
    allow: allBut('scheme-file'),
  },
  face: {
    says: 'a face (src/cli, src/sim, src/web) reaches the schemes only through the registry src/schemes/index.ts',
    allow: allBut('scheme-index', 'scheme-file'),
  },
  shell: {
    says: 'the shell and the lower layers never import a scheme, nor the registry',
    allow: allBut('scheme-index', 'scheme-file', 'registry'),
  },
  other: { says: 'outside the layers', allow: allBut() },
};
