/**
 * A trusted app's measurement: the SHA-256 of its whole import closure, the same way for every
 * scheme. From the app's entry file, every static import (and every `import('literal')`) that names
 * a relative path is followed, transitively; each file is read once (an import cycle ends there).
 * The files are then hashed in the order of their paths: a header, then for each file its path
 * relative to src/, its length in bytes and its bytes. Any change to a file the app runs changes the
 * measurement; a change to a file it does not import leaves it alone.
 *
 * What is measured is the TypeScript under src/, also when `tally` runs the compiled dist/: the
 * sources are the build's input and the same in both forms, so a wallet run from the sources (the
 * tests) and one run from dist/ measure alike, and the node's allowed list names one build per
 * source tree. dist/ is compiled from them by the pinned compiler, and `tally` never runs a dist/
 * older than the sources (scripts/build-state.mjs). Packages (`@noble/curves`, ...) are not in the
 * closure: package-lock.json pins them. `import type` lines are erased by the compiler and are not
 * followed. Node-only (reads files); a software secure element's stand-in for the build hash a real
 * secure element's maker would attest (docs/secure-element.md).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TallyError } from '../core/errors.ts';

/** The source folder: src/ beside this file's folder, whether this is src/ or dist/. */
export const SOURCE_ROOT = fileURLToPath(new URL('../../src/', import.meta.url));

/** The most files a closure may hold, and the largest file read: a bound on a runaway walk. */
export const CLOSURE_FILES_MAX = 500;
export const SOURCE_BYTES_MAX = 4 * 1024 * 1024;

const HEADER = 'tally trusted-app measurement v1\n';

/** The relative module specifiers a TypeScript source imports at run time, in the order they appear. */
export function runtimeImports(source: string): string[] {
  const tokens = tokenize(source);
  const found: string[] = [];
  const at = (i: number): Token | undefined => tokens[i];
  const isWord = (i: number, word: string) => at(i)?.kind === 'word' && at(i)?.text === word;
  const isPunct = (i: number, text: string) => at(i)?.kind === 'punct' && at(i)?.text === text;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as Token;
    if (token.kind !== 'word' || (token.text !== 'import' && token.text !== 'export')) continue;
    if (isPunct(i - 1, '.')) continue; // a property named import
    if (token.text === 'import' && isPunct(i + 1, '(')) {
      // import('literal'), when the argument is one string.
      if (at(i + 2)?.kind === 'string' && (isPunct(i + 3, ')') || isPunct(i + 3, ','))) found.push(at(i + 2)?.text as string);
      continue;
    }
    if (token.text === 'import' && isPunct(i + 1, '.')) continue; // import.meta
    if (token.text === 'import' && at(i + 1)?.kind === 'string') {
      found.push(at(i + 1)?.text as string); // import 'module' (for its effects)
      continue;
    }
    // import type X from / export type { X } from: erased, nothing runs.
    if (isWord(i + 1, 'type') && (at(i + 2)?.kind === 'word' || isPunct(i + 2, '{') || isPunct(i + 2, '*')) && !isWord(i + 2, 'from')) continue;
    // What may follow: import X / import { / import * ; export { / export * (export const ... imports nothing).
    const clause = isPunct(i + 1, '{') || isPunct(i + 1, '*') || (token.text === 'import' && at(i + 1)?.kind === 'word');
    if (!clause) continue;
    // The clause ends at `from 'module'`, or (an export of local names) at the token after its `}`.
    let j = i + 1;
    let depth = 0;
    for (; j < tokens.length; j++) {
      if (isPunct(j, '{')) depth++;
      else if (isPunct(j, '}')) {
        depth--;
        if (depth < 0 || (depth === 0 && !isWord(j + 1, 'from'))) break;
      } else if (depth === 0 && isWord(j, 'from') && at(j + 1)?.kind === 'string') {
        found.push(at(j + 1)?.text as string);
        j++;
        break;
      } else if (depth === 0 && (isPunct(j, ';') || isPunct(j, '=') || isPunct(j, '('))) break;
    }
    i = j;
  }
  return found.filter((specifier) => specifier.startsWith('./') || specifier.startsWith('../'));
}

interface Token {
  kind: 'word' | 'string' | 'punct';
  text: string;
}

/**
 * Words, string literals and punctuation of a TypeScript source; comments, template literals and
 * regular expression literals are skipped (so an `import` in a comment or a string is not one).
 */
function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = source.length;
  const regexMayStart = () => {
    const last = tokens[tokens.length - 1];
    if (last === undefined) return true;
    if (last.kind === 'word') return ['return', 'typeof', 'case', 'do', 'else', 'in', 'of', 'new', 'delete', 'void', 'throw', 'await', 'yield'].includes(last.text);
    if (last.kind === 'string') return false;
    return !(last.text === ')' || last.text === ']' || last.text === '}');
  };
  while (i < n) {
    const c = source[i] as string;
    if (c === '/' && source[i + 1] === '/') {
      const end = source.indexOf('\n', i);
      i = end === -1 ? n : end + 1;
    } else if (c === '/' && source[i + 1] === '*') {
      const end = source.indexOf('*/', i + 2);
      i = end === -1 ? n : end + 2;
    } else if (c === '"' || c === "'") {
      const start = ++i;
      while (i < n && source[i] !== c && source[i] !== '\n') i += source[i] === '\\' ? 2 : 1;
      // Module names hold no escapes; other strings only need to be skipped whole.
      tokens.push({ kind: 'string', text: source.slice(start, i) });
      i++;
    } else if (c === '`') {
      i = skipTemplate(source, i + 1);
      tokens.push({ kind: 'punct', text: '`' });
    } else if (c === '/' && regexMayStart()) {
      i = skipRegex(source, i + 1);
      tokens.push({ kind: 'punct', text: '/re/' });
    } else if (isWordChar(source.charCodeAt(i))) {
      const start = i;
      while (i < n && isWordChar(source.charCodeAt(i))) i++;
      tokens.push({ kind: 'word', text: source.slice(start, i) });
    } else if (c === ' ' || c === '\n' || c === '\t' || c === '\r') {
      i++;
    } else {
      tokens.push({ kind: 'punct', text: c });
      i++;
    }
  }
  return tokens;
}

/** Letters, digits, `_` and `$` (a number is read as a word: it is never an import's neighbour). */
function isWordChar(code: number): boolean {
  return (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || (code >= 48 && code <= 57) || code === 95 || code === 36 || code > 127;
}

/** The index after a template literal's closing backtick; `${...}` parts may hold strings and templates. */
function skipTemplate(source: string, from: number): number {
  let i = from;
  while (i < source.length) {
    const c = source[i];
    if (c === '\\') i += 2;
    else if (c === '`') return i + 1;
    else if (c === '$' && source[i + 1] === '{') i = skipBraces(source, i + 2);
    else i++;
  }
  return i;
}

/** The index after the `}` that closes an expression inside a template. */
function skipBraces(source: string, from: number): number {
  let depth = 1;
  let i = from;
  while (i < source.length && depth > 0) {
    const c = source[i];
    if (c === '{') depth++;
    else if (c === '}') depth--;
    else if (c === '`') {
      i = skipTemplate(source, i + 1);
      continue;
    } else if (c === '"' || c === "'") {
      i++;
      while (i < source.length && source[i] !== c) i += source[i] === '\\' ? 2 : 1;
    }
    i++;
  }
  return i;
}

/** The index after a regular expression literal (its flags included). */
function skipRegex(source: string, from: number): number {
  let i = from;
  let inClass = false;
  while (i < source.length && source[i] !== '\n') {
    const c = source[i];
    if (c === '\\') i += 2;
    else if (c === '[') (inClass = true), i++;
    else if (c === ']') (inClass = false), i++;
    else if (c === '/' && !inClass) {
      i++;
      while (i < source.length && /[a-z]/.test(source[i] as string)) i++;
      return i;
    } else i++;
  }
  return i;
}

/** A path relative to the root, with `/` separators whatever the platform. */
function portable(root: string, path: string): string {
  return relative(root, path).split(sep).join('/');
}

/**
 * The files of an entry file's import closure, as paths relative to `root` in sorted order.
 * @param entry the entry file, relative to root (e.g. `schemes/ops/trusted-app.ts`)
 * @throws TallyError STATE_CORRUPT when a file is missing, too large, imports outside root, or the closure passes CLOSURE_FILES_MAX
 */
export async function importClosure(entry: string, root: string = SOURCE_ROOT): Promise<{ path: string; data: Uint8Array }[]> {
  const files = new Map<string, Uint8Array>();
  const queue = [normalize(join(root, entry))];
  while (queue.length > 0) {
    const path = queue.pop() as string;
    const name = portable(root, path);
    if (files.has(name)) continue;
    if (name.startsWith('../') || isAbsolute(name)) {
      throw new TallyError('STATE_CORRUPT', `trusted app measurement: ${path} is outside ${root}`, { reason: 'outside' });
    }
    if (files.size >= CLOSURE_FILES_MAX) {
      throw new TallyError('STATE_CORRUPT', `trusted app measurement: the closure of ${entry} passes ${CLOSURE_FILES_MAX} files`, { reason: 'too many files' });
    }
    let data: Uint8Array;
    try {
      data = new Uint8Array(await readFile(path));
    } catch (e) {
      throw new TallyError('STATE_CORRUPT', `trusted app measurement: cannot read ${name} (imported in the closure of ${entry})`, { reason: 'unreadable' }, { cause: e });
    }
    if (data.length > SOURCE_BYTES_MAX) {
      throw new TallyError('STATE_CORRUPT', `trusted app measurement: ${name} has ${data.length} bytes, more than ${SOURCE_BYTES_MAX}`, { reason: 'too large' });
    }
    files.set(name, data);
    for (const specifier of runtimeImports(new TextDecoder().decode(data))) queue.push(normalize(join(dirname(path), specifier)));
  }
  return [...files.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([path, data]) => ({ path, data }));
}

/**
 * SHA-256 over a trusted app's import closure (see the top of this file).
 * @param entry the app's entry file, relative to root (e.g. `schemes/ops/trusted-app.ts`)
 */
export async function measureTrustedApp(entry: string, root: string = SOURCE_ROOT): Promise<Uint8Array> {
  const files = await importClosure(entry, root);
  const hash = createHash('sha256');
  hash.update(`${HEADER}${files.length}\n`);
  for (const file of files) {
    hash.update(`${file.path}\n${file.data.length}\n`);
    hash.update(file.data);
  }
  return new Uint8Array(hash.digest());
}
