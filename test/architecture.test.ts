import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkLayers, collectImports, importsOf, LAYERS, layerOf } from "./helpers/layers.js";
import { ROOT } from "./helpers/paths.js";

const DIRS = ["src", "devices", "toolchain"];

describe("layers (docs/architecture.md)", () => {
  it("every import under src/, devices/ and toolchain/ points down the stack, and no files import in a cycle", () => {
    const edges = collectImports(ROOT, DIRS);
    expect(edges.length).toBeGreaterThan(500);
    expect(checkLayers(edges).map((v) => v.message)).toEqual([]);
  });

  it("docs/architecture.md names every layer of the checked order", () => {
    const doc = readFileSync(join(ROOT, "docs", "architecture.md"), "utf8");
    for (const layer of LAYERS.flat()) expect(doc, layer).toContain(`\`${layer}`);
  });

  describe("catches a bad import added on purpose", () => {
    const tmp = mkdtempSync(join(tmpdir(), "qat-layers-"));
    afterAll(() => rmSync(tmp, { recursive: true, force: true }));
    for (const d of DIRS) cpSync(join(ROOT, d), join(tmp, d), { recursive: true });

    it("an upward import, named by file and line", () => {
      const file = join(tmp, "src", "onnx", "ir.ts");
      const text = readFileSync(file, "utf8");
      writeFileSync(file, `${text}\nimport { train } from "../pipeline/trainer.js";\nvoid train;\n`);
      const line = text.split("\n").length + 1;
      const found = checkLayers(collectImports(tmp, DIRS));
      writeFileSync(file, text);
      expect(found.filter((v) => v.kind === "upward").map((v) => v.message)).toEqual([
        `src/onnx/ir.ts:${line}: imports "../pipeline/trainer.js" — src/onnx may not import src/pipeline, which sits above it`,
      ]);
    });

    it("a peer import between devices and the report", () => {
      const found = checkLayers(
        importsOf("devices/validate.ts", 'import { writeReport } from "../src/report/report.js";\n'),
      );
      expect(found.map((v) => v.message)).toEqual([
        'devices/validate.ts:1: imports "../src/report/report.js" — devices and src/report are peers and may not import each other',
      ]);
    });

    it("a cycle between two files of one layer", () => {
      const edges = [
        ...importsOf("src/train/a.ts", 'import { b } from "./b.js";'),
        ...importsOf("src/train/b.ts", '\n\nexport { a } from "./a.js";'),
      ];
      expect(checkLayers(edges).map((v) => v.message)).toEqual([
        "import cycle: src/train/a.ts:1 -> src/train/b.ts:3 -> src/train/a.ts",
      ]);
    });

    it("a file in no layer", () => {
      expect(layerOf("src/misc/thing.ts")).toBeUndefined();
      const found = checkLayers(importsOf("src/misc/thing.ts", 'import { x } from "../onnx/ir.js";'));
      expect(found.map((v) => v.kind)).toEqual(["unplaced"]);
    });
  });
});
