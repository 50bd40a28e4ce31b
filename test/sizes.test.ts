import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./helpers/paths.js";
import {
  checkFileLength,
  checkFunctionLengths,
  checkSizes,
  lineCount,
  MAX_FILE_LINES,
  MAX_FUNCTION_LINES,
  tsFilesUnder,
} from "./helpers/sizes.js";

/** Folders whose functions are checked as well as their files. */
const CODE = ["src", "devices", "toolchain", "bench", "examples"];
/** Folders whose files are checked; their describe()/it() callbacks are not functions a reader follows. */
const FILES_ONLY = ["test"];

/** A function declaration spanning exactly `lines` lines, from `function` to its closing brace. */
function fn(name: string, lines: number): string {
  const body = Array.from({ length: lines - 2 }, (_, i) => `  const v${i} = ${i}; // "}" in a comment`);
  return [`function ${name}() {`, ...body, "}"].join("\n");
}

describe("sizes (files ≤ 500 lines, functions ≤ 120 lines)", () => {
  it("no file or function under src/, devices/, toolchain/, bench/, examples/ or test/ is over its limit", () => {
    // Guard against a walk that silently finds nothing (a renamed folder would pass the check below vacuously).
    expect(tsFilesUnder(join(ROOT, "src")).length).toBeGreaterThan(100);
    expect(checkSizes(ROOT, CODE, FILES_ONLY).map((v) => v.message)).toEqual([]);
  });

  describe("the checker catches what it should", () => {
    it("walks a tree: functions in code folders, file lengths everywhere, test callbacks left alone", () => {
      const tmp = mkdtempSync(join(tmpdir(), "qat-sizes-"));
      try {
        mkdirSync(join(tmp, "bench", "deep"), { recursive: true });
        mkdirSync(join(tmp, "test"));
        writeFileSync(join(tmp, "bench", "deep", "run.ts"), `${fn("measure", MAX_FUNCTION_LINES + 1)}\n`);
        writeFileSync(join(tmp, "bench", "types.d.ts"), `${fn("ignored", MAX_FUNCTION_LINES + 1)}\n`);
        const longTest = `it("x", () => {\n${"  expect(1).toBe(1);\n".repeat(MAX_FILE_LINES)}});\n`;
        writeFileSync(join(tmp, "test", "long.test.ts"), longTest);
        expect(checkSizes(tmp, ["bench"], ["test"]).map((v) => v.message)).toEqual([
          "bench/deep/run.ts:1: measure is 121 lines (max 120)",
          "test/long.test.ts: 502 lines (max 500)",
        ]);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });

    it("reports a 121-line function by file, line, name and length, and not a 120-line one", () => {
      const text = `// leading comment\n${fn("ok", MAX_FUNCTION_LINES)}\n\n${fn("tooLong", MAX_FUNCTION_LINES + 1)}\n`;
      const okLines = MAX_FUNCTION_LINES;
      expect(checkFunctionLengths("src/x.ts", text).map((v) => v.message)).toEqual([
        `src/x.ts:${okLines + 3}: tooLong is 121 lines (max 120)`,
      ]);
    });

    it("counts arrow functions, methods, constructors, accessors and function expressions, by the name they go by", () => {
      const body = (n: number) =>
        Array.from({ length: n - 2 }, (_, i) => `    x${i}();`)
          .join("\n")
          .concat("\n");
      const long = MAX_FUNCTION_LINES + 1;
      const text = [
        `export const arrow = async (a: number) => {\n${body(long)}};`,
        `class Box {\n  constructor() {\n${body(long)}  }\n  method(): void {\n${body(long)}  }`,
        `  get size(): number {\n${body(long)}  }\n  handler = () => {\n${body(long)}  };\n}`,
        `const table = { run: function () {\n${body(long)}} };`,
        `describe("topic", () => {\n${body(long)}});`,
      ].join("\n");
      const names = checkFunctionLengths("src/y.ts", text).map((v) => `${v.name}:${v.lines}`);
      expect(names).toEqual([
        "arrow:121",
        "Box.constructor:121",
        "Box.method:121",
        "Box.size:121",
        "Box.handler:121",
        "run:121",
        "describe callback:121",
      ]);
    });

    it("counts an outer function's whole span, nested functions included, and reports each that is too long", () => {
      const inner = fn("inner", MAX_FUNCTION_LINES + 1)
        .split("\n")
        .map((l) => `  ${l}`)
        .join("\n");
      const text = `function outer() {\n${inner}\n}\n`;
      expect(checkFunctionLengths("src/z.ts", text).map((v) => v.message)).toEqual([
        "src/z.ts:1: outer is 123 lines (max 120)",
        "src/z.ts:2: inner is 121 lines (max 120)",
      ]);
    });

    it("ignores overload signatures and declarations without a body", () => {
      const text =
        "declare function f(a: number): void;\ninterface I { m(): void }\nabstract class A { abstract g(): void }\n";
      expect(checkFunctionLengths("src/d.ts", text)).toEqual([]);
    });

    it("reports a 501-line file and not a 500-line one, a final newline not counting as a line", () => {
      const lines = (n: number) => `${Array.from({ length: n }, (_, i) => `// ${i}`).join("\n")}\n`;
      expect(lineCount(lines(MAX_FILE_LINES))).toBe(500);
      expect(checkFileLength("test/a.test.ts", lines(MAX_FILE_LINES))).toEqual([]);
      expect(checkFileLength("test/b.test.ts", lines(MAX_FILE_LINES + 1)).map((v) => v.message)).toEqual([
        "test/b.test.ts: 501 lines (max 500)",
      ]);
    });
  });
});
