import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers/paths.js";

const GUIDE = join(ROOT, "docs", "library.md");
const EXAMPLES = join(ROOT, "examples", "guide");

/**
 * The snippets of a guide: each is embedded whole, as
 *   <!-- snippet: examples/guide/x.ts -->
 *   ```ts
 *   …the file…
 *   ```
 *   <!-- /snippet -->
 */
function snippets(md: string): { file: string; body: string }[] {
  const out: { file: string; body: string }[] = [];
  const re = /<!-- snippet: (\S+) -->\n```ts\n([\s\S]*?)```\n<!-- \/snippet -->/g;
  for (const m of md.matchAll(re)) out.push({ file: m[1]!, body: m[2]! });
  return out;
}

/** Run a compiled guide example from the repository root (as the guide says to); stdout lines. */
function run(name: string): string[] {
  const js = join(ROOT, "dist", "examples", "guide", `${name}.js`);
  if (!existsSync(js)) throw new Error(`${js} is missing: run npm run build first`);
  const r = spawnSync(process.execPath, [js], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.trimEnd().split("\n");
}

const percent = (lines: string[], prefix: string): number => {
  const line = lines.find((l) => l.startsWith(prefix));
  expect(line, `a line starting with "${prefix}"`).toBeDefined();
  return Number(/([\d.]+)%/.exec(line!)![1]);
};

describe("docs/library.md", () => {
  const md = readFileSync(GUIDE, "utf8");

  it("embeds every example of examples/guide/ exactly as the file is", () => {
    const found = snippets(md);
    const files = readdirSync(EXAMPLES)
      .filter((f) => f.endsWith(".ts"))
      .map((f) => `examples/guide/${f}`)
      .sort();
    expect([...new Set(found.map((s) => s.file))].sort()).toEqual(files);
    for (const s of found) {
      expect(s.body, `${s.file} differs from its copy in docs/library.md: paste the file again`).toBe(
        readFileSync(join(ROOT, s.file), "utf8"),
      );
    }
    // no code block in the guide outside the checked snippets, except shell commands and program output
    const fences = [...md.matchAll(/^```(\w*)$/gm)].map((m) => m[1]).filter((lang) => lang !== "");
    expect(fences.filter((lang) => lang === "ts").length).toBe(found.length);
    expect(fences.filter((lang) => !["ts", "sh", "text"].includes(lang!))).toEqual([]);
  });

  it("gradient-descent prints PyTorch's numbers and fits the line", () => {
    const lines = run("gradient-descent");
    expect(lines[0]).toBe("Gradient: 6.0");
    expect(lines[1]).toBe("Updated Weight: 4.400000095367432");
    const [, a, b] = /^a = ([-\d.]+), b = ([-\d.]+)$/.exec(lines.at(-1)!)!;
    expect(Number(a)).toBeCloseTo(3, 2);
    expect(Number(b)).toBeCloseTo(1, 2);
  });

  it("custom-model trains the bars model and writes an ONNX file", () => {
    const lines = run("custom-model");
    expect(lines[0]).toBe("parameters: conv.weight, conv.bias, fc.weight, fc.bias");
    expect(percent(lines, "before training:")).toBeLessThan(60);
    expect(percent(lines, "after training:")).toBeGreaterThanOrEqual(95);
    const file = /^wrote (.+\.onnx)$/.exec(lines.at(-1)!)![1]!;
    expect(existsSync(file)).toBe(true);
  });

  it("qconfig: 2-bit fc weights cost accuracy after calibration, and QAT wins it back", () => {
    const lines = run("qconfig");
    expect(lines).toContain("fc: weights 2-bit int8 -2…1 per channel, activations 8-bit uint8 0…255");
    expect(lines).toContain("  weight fc.weight → fc.weight.scale");
    const float = percent(lines, "float:");
    const ptq = percent(lines, "calibrated");
    const qat = percent(lines, "after QAT:");
    expect(float).toBeGreaterThanOrEqual(95);
    expect(qat).toBeGreaterThanOrEqual(95);
    expect(qat).toBeGreaterThanOrEqual(ptq);
  });

  it("import-onnx imports mnist-8 and fine-tunes it", () => {
    const lines = run("import-onnx");
    expect(lines[0]).toContain("opset 8 → 17");
    expect(lines.join("\n")).toContain("made dynamic");
    expect(percent(lines, "after 50 steps:")).toBeGreaterThan(95);
    expect(existsSync(join(/^run folder: (.+)$/.exec(lines.at(-1)!)![1]!, "model.onnx"))).toBe(true);
  });
});
