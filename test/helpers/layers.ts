/**
 * The layer rule of docs/architecture.md, as code: every relative import under src/, devices/ and toolchain/ must
 * point to the importer's own layer or one below it, and no set of files may import each other in a cycle.
 * The order below is the one the document lists; a change to one goes with a change to the other.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";

/** Layers from the bottom up. Layers that share a rank are peers: neither may import the other. */
export const LAYERS: readonly (readonly string[])[] = [
  ["src/util"],
  ["src/onnx"],
  ["src/runtime"],
  ["src/autodiff"],
  ["src/nn"],
  ["src/data"],
  ["src/detect"],
  ["src/train"],
  ["src/quant"],
  ["src/export"],
  ["src/pipeline"],
  ["src/report", "devices"],
  ["src/index.ts"],
  ["toolchain"],
];

export interface ImportEdge {
  /** Importing file, relative to the root. */
  file: string;
  line: number;
  /** Imported file, relative to the root (`.js` specifiers resolved to the `.ts` source). */
  target: string;
  specifier: string;
}

export interface LayerViolation {
  kind: "upward" | "peer" | "cycle" | "unplaced";
  message: string;
}

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["'](\.{1,2}\/[^"']+)["']/g;

/** Every relative import of the .ts files below `dirs` (relative to `root`). */
export function collectImports(root: string, dirs: readonly string[]): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const dir of dirs) {
    for (const file of walk(join(root, dir))) {
      const rel = relative(root, file);
      edges.push(...importsOf(rel, readFileSync(file, "utf8")));
    }
  }
  return edges;
}

/** The relative imports in one file's text; `file` is its path relative to the root. */
export function importsOf(file: string, text: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (/^\s*(\/\/|\*|\/\*)/.test(line)) continue;
    for (const m of line.matchAll(IMPORT)) {
      const specifier = m[1] ?? "";
      const target = normalize(join(dirname(file), specifier)).replace(/\.js$/, ".ts");
      edges.push({ file, line: i + 1, target, specifier });
    }
  }
  return edges;
}

/** The rank of the layer a file belongs to, or undefined if it is in none. */
export function layerOf(file: string): { rank: number; layer: string } | undefined {
  let best: { rank: number; layer: string } | undefined;
  LAYERS.forEach((names, rank) => {
    for (const layer of names) {
      const inside = file === layer || file.startsWith(`${layer}/`);
      if (inside && (!best || layer.length > best.layer.length)) best = { rank, layer };
    }
  });
  return best;
}

/** Upward and peer imports, files in no layer, and import cycles among files, each named by file and line. */
export function checkLayers(edges: readonly ImportEdge[]): LayerViolation[] {
  const out: LayerViolation[] = [];
  for (const e of edges) {
    const from = layerOf(e.file);
    const to = layerOf(e.target);
    if (!from || !to) {
      const which = from ? e.target : e.file;
      out.push({
        kind: "unplaced",
        message: `${e.file}:${e.line}: ${which} is in no layer of docs/architecture.md`,
      });
      continue;
    }
    if (to.rank > from.rank) {
      out.push({
        kind: "upward",
        message: `${e.file}:${e.line}: imports "${e.specifier}" — ${from.layer} may not import ${to.layer}, which sits above it`,
      });
    } else if (to.rank === from.rank && to.layer !== from.layer) {
      out.push({
        kind: "peer",
        message: `${e.file}:${e.line}: imports "${e.specifier}" — ${from.layer} and ${to.layer} are peers and may not import each other`,
      });
    }
  }
  for (const cycle of findCycles(edges)) {
    out.push({ kind: "cycle", message: `import cycle: ${cycle.join(" -> ")}` });
  }
  return out;
}

/** Cycles in the file graph, each given as `file:line` hops that close on the first file. */
export function findCycles(edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, ImportEdge[]>();
  for (const e of edges) {
    const list = next.get(e.file) ?? [];
    list.push(e);
    next.set(e.file, list);
  }
  const state = new Map<string, "open" | "done">();
  const stack: ImportEdge[] = [];
  const cycles: string[][] = [];
  const visit = (file: string): void => {
    state.set(file, "open");
    for (const e of next.get(file) ?? []) {
      const s = state.get(e.target);
      if (s === "open") {
        const start = stack.findIndex((x) => x.file === e.target);
        const hops = [...stack.slice(start < 0 ? stack.length : start), e];
        cycles.push(hops.map((h) => `${h.file}:${h.line}`).concat(e.target));
      } else if (s === undefined && next.has(e.target)) {
        stack.push(e);
        visit(e.target);
        stack.pop();
      }
    }
    state.set(file, "done");
  };
  for (const file of [...next.keys()].sort()) if (!state.has(file)) visit(file);
  return cycles;
}

function* walk(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) yield path;
  }
}
