/** The BlazeFace head spec exactly as docs/detection.md prints it (the tests use the documented one). */
import { readFileSync } from "node:fs";

const DOC = new URL("../../docs/detection.md", import.meta.url).pathname;

export function blazefaceSpecJson(): unknown {
  const md = readFileSync(DOC, "utf8");
  const m = /## Worked example[\s\S]*?```json\n([\s\S]*?)```/.exec(md);
  if (!m) throw new Error("docs/detection.md has no BlazeFace JSON block");
  return JSON.parse(m[1]!);
}
