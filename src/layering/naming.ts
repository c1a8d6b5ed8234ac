/**
 * The naming check: the shell never names a scheme, in a path, an identifier in any case style,
 * or a comment. Test support: the product never loads it.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { shown, underSrc, type FileSystem } from './files.ts';

/** The words of a text, split at non-letters and at camelCase and CONSTANT_CASE boundaries, lower case. */
export function words(text: string): string[] {
  return text
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z])([A-Z][a-z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .filter((word) => word.length > 0)
    .map((word) => word.toLowerCase());
}

/** The scheme named in `text` (a scheme's folder name as a word, or its words in a row), if any. */
export function schemeNamed(text: string, schemes: readonly string[]): string | undefined {
  const found = words(text).join(' ');
  return schemes.find((scheme) => ` ${found} `.includes(` ${words(scheme).join(' ')} `));
}

/** One line (0: the file's own path) of a shell file that names a scheme. */
export interface Naming {
  readonly file: string;
  readonly line: number;
  readonly scheme: string;
}

/** Every line of `files` (and every file path) that names one of `schemes`. */
export function schemeNamings(root: string, files: readonly string[], schemes: readonly string[], fs: FileSystem): Naming[] {
  const namings: Naming[] = [];
  for (const file of files) {
    const name = shown(root, file);
    const inPath = schemeNamed(underSrc(root, file), schemes);
    if (inPath !== undefined) namings.push({ file: name, line: 0, scheme: inPath });
    const lines = (fs.read(file) ?? '').split('\n');
    lines.forEach((text, index) => {
      const scheme = schemeNamed(text, schemes);
      if (scheme !== undefined) namings.push({ file: name, line: index + 1, scheme });
    });
  }
  return namings;
}

/** The scheme folders under src/schemes/ of the real tree. */
export function schemeFolders(root: string): string[] {
  const dir = join(root, 'src', 'schemes');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}
