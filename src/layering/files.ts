/**
 * How the layering checks see files: the real disk or an in-memory tree, relative imports resolved
 * to files, and paths shown under the repository or under src/. Test support: the product never loads it.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

/** How the checker sees files: the real disk, or an in-memory map in the self-tests. */
export interface FileSystem {
  read(path: string): string | undefined;
  exists(path: string): boolean;
}

/** The real files. */
export const disk: FileSystem = {
  read: (path) => (existsSync(path) ? readFileSync(path, 'utf8') : undefined),
  exists: (path) => existsSync(path),
};

/** An in-memory tree, absolute path → text. */
export function memoryFiles(files: Readonly<Record<string, string>>): FileSystem {
  return { read: (path) => files[path], exists: (path) => Object.hasOwn(files, path) };
}

/** The file a relative specifier names (`.js` read as `.ts`, a folder as its index.ts), if it exists. */
export function resolveRelative(from: string, specifier: string, fs: FileSystem): string | undefined {
  const base = resolve(dirname(from), specifier);
  const candidates = [base, base.replace(/\.js$/, '.ts'), `${base}.ts`, join(base, 'index.ts')];
  return candidates.find((path) => path.endsWith('.ts') && fs.exists(path));
}

/** The path under src/, with forward slashes. */
export function underSrc(root: string, path: string): string {
  return relative(join(root, 'src'), path).split(sep).join('/');
}

/** The path under the repository, with forward slashes. */
export function shown(root: string, path: string): string {
  return relative(root, path).split(sep).join('/');
}

/** Every file under `dir` whose name passes `keep`. */
export function walk(dir: string, keep: (name: string) => boolean): string[] {
  if (!existsSync(dir)) return [];
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...walk(path, keep));
    else if (entry.isFile() && keep(entry.name)) found.push(path);
  }
  return found;
}

/** Shipped TypeScript: not a test, not a declaration file. */
export const isSource = (name: string) => name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts');
