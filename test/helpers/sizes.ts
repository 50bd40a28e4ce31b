/**
 * The size rule of the project's standards, as code: no .ts file over MAX_FILE_LINES lines and no function over
 * MAX_FUNCTION_LINES lines. Functions are found with the TypeScript compiler's parser (the `typescript`
 * devDependency), so arrow functions, methods, accessors and constructors count as well as `function` declarations,
 * and a brace inside a string or a comment cannot confuse the count.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";

export const MAX_FILE_LINES = 500;
export const MAX_FUNCTION_LINES = 120;

export interface SizeViolation {
  kind: "file" | "function";
  /** Path relative to the root, with forward slashes. */
  file: string;
  /** 1-based line where the file or function starts. */
  line: number;
  /** The function's name as a reader would search for it; the file's path for a file violation. */
  name: string;
  lines: number;
  message: string;
}

/** Every .ts file below `dir` (absolute), skipping declaration files and node_modules. */
export function tsFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules") continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...tsFilesUnder(path));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) out.push(path);
  }
  return out.sort();
}

/** Line count as an editor shows it: a trailing newline does not start another line. */
export function lineCount(text: string): number {
  if (text.length === 0) return 0;
  const lines = text.split("\n").length;
  return text.endsWith("\n") ? lines - 1 : lines;
}

/** A file violation when `text` has more than MAX_FILE_LINES lines. */
export function checkFileLength(file: string, text: string): SizeViolation[] {
  const lines = lineCount(text);
  if (lines <= MAX_FILE_LINES) return [];
  return [
    {
      kind: "file",
      file,
      line: 1,
      name: file,
      lines,
      message: `${file}: ${lines} lines (max ${MAX_FILE_LINES})`,
    },
  ];
}

type FunctionNode =
  | ts.FunctionDeclaration
  | ts.FunctionExpression
  | ts.ArrowFunction
  | ts.MethodDeclaration
  | ts.ConstructorDeclaration
  | ts.GetAccessorDeclaration
  | ts.SetAccessorDeclaration;

function isFunctionWithBody(node: ts.Node): node is FunctionNode {
  return (
    (ts.isFunctionDeclaration(node) ||
      ts.isFunctionExpression(node) ||
      ts.isArrowFunction(node) ||
      ts.isMethodDeclaration(node) ||
      ts.isConstructorDeclaration(node) ||
      ts.isGetAccessorDeclaration(node) ||
      ts.isSetAccessorDeclaration(node)) &&
    node.body !== undefined
  );
}

function nameText(name: ts.Node | undefined, source: ts.SourceFile): string | undefined {
  if (name === undefined) return undefined;
  if (ts.isIdentifier(name) || ts.isPrivateIdentifier(name) || ts.isStringLiteral(name)) return name.text;
  return name.getText(source);
}

/**
 * The name a reader would search for: the declared name, else the variable, property or class member the function
 * is assigned to, else the call it is passed to (`describe callback`), else `<anonymous>`. Methods and constructors
 * are prefixed with their class name.
 */
export function functionName(node: FunctionNode, source: ts.SourceFile): string {
  const owner = ts.isClassLike(node.parent) ? `${nameText(node.parent.name, source) ?? "<class>"}.` : "";
  if (ts.isConstructorDeclaration(node)) return `${owner}constructor`;
  const own = "name" in node ? nameText(node.name, source) : undefined;
  if (own !== undefined) return `${owner}${own}`;
  const parent = node.parent;
  if (ts.isPropertyDeclaration(parent)) {
    const cls = ts.isClassLike(parent.parent) ? `${nameText(parent.parent.name, source) ?? "<class>"}.` : "";
    return `${cls}${nameText(parent.name, source) ?? "<anonymous>"}`;
  }
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent)) {
    return nameText(parent.name, source) ?? "<anonymous>";
  }
  if (ts.isCallExpression(parent)) return `${parent.expression.getText(source)} callback`;
  return "<anonymous>";
}

/** Function violations in one file's text: every function whose first-to-last line span exceeds the limit. */
export function checkFunctionLengths(file: string, text: string): SizeViolation[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: SizeViolation[] = [];
  const visit = (node: ts.Node): void => {
    if (isFunctionWithBody(node)) {
      // From the first token of the function (its `function`/`async`/name/parameter list, not a leading comment)
      // to its closing brace, both lines included.
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = end - start + 1;
      if (lines > MAX_FUNCTION_LINES) {
        const name = functionName(node, source);
        found.push({
          kind: "function",
          file,
          line: start + 1,
          name,
          lines,
          message: `${file}:${start + 1}: ${name} is ${lines} lines (max ${MAX_FUNCTION_LINES})`,
        });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/**
 * All violations below `root`: function and file lengths in `codeDirs`, file lengths only in `fileOnlyDirs`
 * (tests, whose describe()/it() callbacks hold a whole topic and are not functions a reader has to follow).
 */
export function checkSizes(
  root: string,
  codeDirs: readonly string[],
  fileOnlyDirs: readonly string[],
): SizeViolation[] {
  const found: SizeViolation[] = [];
  for (const dir of [...codeDirs, ...fileOnlyDirs]) {
    for (const path of tsFilesUnder(join(root, dir))) {
      const file = relative(root, path).split("\\").join("/");
      const text = readFileSync(path, "utf8");
      found.push(...checkFileLength(file, text));
      if (codeDirs.includes(dir)) found.push(...checkFunctionLengths(file, text));
    }
  }
  return found;
}
