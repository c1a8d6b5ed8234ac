/**
 * The import scanner: what one source text loads (static, re-exported, dynamic, `require`, type
 * imports, modules located with `new URL(..., import.meta.url)`) and the Node built-ins and
 * globals it uses, read with the TypeScript parser. Test support: the product never loads it.
 */
import { builtinModules } from 'node:module';
import ts from 'typescript';

const BUILTINS = new Set(builtinModules);
/** Globals only Node has (the browser has none of them). */
const NODE_GLOBALS = new Set(['process', 'Buffer', 'require', '__dirname', '__filename']);

/** True when a module specifier names a Node built-in (`node:*`, `fs`, `fs/promises`, ...). */
export function isBuiltinSpecifier(specifier: string): boolean {
  if (specifier.startsWith('node:')) return true;
  return BUILTINS.has(specifier) || BUILTINS.has(specifier.split('/')[0] as string);
}

/** One module a file names: imported, re-exported, or located with `new URL(..., import.meta.url)`. */
export interface ImportRef {
  readonly specifier: string;
  /** `import type` / `export type`: erased, loads nothing at run time. */
  readonly typeOnly: boolean;
  /** `url`: a module located for another realm (a child process, a worker), not loaded here. */
  readonly kind: 'import' | 'url';
  readonly line: number;
}

/** One thing a pure file may not do: `subject` is the specifier or `global <name>`. */
export interface SourceProblem {
  readonly line: number;
  readonly subject: string;
  readonly message: string;
}

export interface SourceReport {
  /** `file:line: message`, for reading. */
  readonly problems: string[];
  readonly details: SourceProblem[];
  readonly imports: ImportRef[];
}

function isDeclarationName(node: ts.Identifier): boolean {
  const parent = node.parent;
  return (
    (ts.isVariableDeclaration(parent) ||
      ts.isFunctionDeclaration(parent) ||
      ts.isFunctionExpression(parent) ||
      ts.isParameter(parent) ||
      ts.isClassDeclaration(parent) ||
      ts.isClassExpression(parent) ||
      ts.isInterfaceDeclaration(parent) ||
      ts.isTypeAliasDeclaration(parent) ||
      ts.isEnumDeclaration(parent) ||
      ts.isModuleDeclaration(parent) ||
      ts.isTypeParameterDeclaration(parent) ||
      ts.isImportClause(parent) ||
      ts.isNamespaceImport(parent) ||
      ts.isImportSpecifier(parent) ||
      ts.isImportEqualsDeclaration(parent) ||
      ts.isBindingElement(parent)) &&
    parent.name === node
  );
}

/** True when the identifier stands for a variable (not a property name, label or declaration). */
function isReference(node: ts.Identifier): boolean {
  const parent = node.parent;
  if (ts.isShorthandPropertyAssignment(parent)) return true;
  if (ts.isPropertyAccessExpression(parent)) return parent.expression === node;
  if (ts.isQualifiedName(parent)) return parent.left === node;
  if (ts.isExportSpecifier(parent)) return parent.parent.parent.moduleSpecifier === undefined && (parent.propertyName ?? parent.name) === node;
  if (ts.isBindingElement(parent) && parent.propertyName === node) return false;
  if (ts.isLabeledStatement(parent) || ts.isBreakOrContinueStatement(parent)) return false;
  const named = parent as ts.Node & { name?: ts.Node };
  if (named.name === node) return false;
  return true;
}

/** True for `import.meta.url`. */
function isImportMetaUrl(node: ts.Node): boolean {
  return ts.isPropertyAccessExpression(node) && ts.isMetaProperty(node.expression) && node.expression.keywordToken === ts.SyntaxKind.ImportKeyword && node.name.text === 'url';
}

/**
 * Checks one source text: Node built-in imports (static, re-export, dynamic, `require`, type
 * imports) and Node globals. Returns the problems and every import, for following relative ones.
 */
export function checkSource(fileName: string, text: string): SourceReport {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const details: SourceProblem[] = [];
  const imports: ImportRef[] = [];
  const declared = new Set<string>();
  const globalUses: ts.Identifier[] = [];
  const lineOf = (node: ts.Node) => source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
  const problem = (node: ts.Node, subject: string, message: string) => details.push({ line: lineOf(node), subject, message });
  const noteImport = (node: ts.Node, specifier: string, typeOnly: boolean) => {
    imports.push({ specifier, typeOnly, kind: 'import', line: lineOf(node) });
    if (isBuiltinSpecifier(specifier)) problem(node, specifier, `imports Node built-in "${specifier}"`);
  };

  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      noteImport(node, node.moduleSpecifier.text, node.importClause?.isTypeOnly ?? false);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier)) {
      noteImport(node, node.moduleSpecifier.text, node.isTypeOnly);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const expression = node.moduleReference.expression;
      if (ts.isStringLiteral(expression)) noteImport(node, expression.text, node.isTypeOnly);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      noteImport(node, node.argument.literal.text, true);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [first] = node.arguments;
      if (first !== undefined && ts.isStringLiteralLike(first)) noteImport(node, first.text, false);
      else problem(node, 'import(...)', 'dynamic import of a computed specifier (cannot be checked)');
    } else if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'URL') {
      // A module located to be loaded elsewhere (the secure element's child process): a dependency
      // of this file all the same, though it runs in another realm.
      const [first, second] = node.arguments ?? [];
      if (first !== undefined && second !== undefined && ts.isStringLiteralLike(first) && first.text.startsWith('.') && isImportMetaUrl(second)) {
        imports.push({ specifier: first.text, typeOnly: false, kind: 'url', line: lineOf(node) });
      }
    } else if (ts.isPropertyAccessExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'globalThis' && NODE_GLOBALS.has(node.name.text)) {
      problem(node, `global ${node.name.text}`, `uses Node global "globalThis.${node.name.text}"`);
    } else if (
      ts.isElementAccessExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'globalThis' &&
      ts.isStringLiteralLike(node.argumentExpression) &&
      NODE_GLOBALS.has(node.argumentExpression.text)
    ) {
      problem(node, `global ${node.argumentExpression.text}`, `uses Node global "globalThis.${node.argumentExpression.text}"`);
    } else if (ts.isIdentifier(node) && NODE_GLOBALS.has(node.text)) {
      if (isDeclarationName(node)) declared.add(node.text);
      else if (isReference(node)) globalUses.push(node);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  // A file that declares its own `process` (say, a function) may use it.
  for (const use of globalUses) {
    if (!declared.has(use.text)) problem(use, `global ${use.text}`, `uses Node global "${use.text}"`);
  }
  const problems = details.map((found) => `${fileName}:${found.line}: ${found.message}`);
  return { problems, details, imports };
}
