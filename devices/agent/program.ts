/**
 * Board programs: the TypeScript modules that run on a board (the agent, the serial link layer), as the plain
 * ES modules setup pushes there. From a build they are read as tsc emitted them (dist/devices/…/*.js beside this
 * module's folder); from the TypeScript sources (tests, `tsx`) each module is transpiled on its own with the
 * `typescript` package — board modules import only Node built-ins and each other, so a per-file transpile is the
 * whole program. On the board all of them sit side by side in one install folder under their board names, so the
 * relative imports between them are rewritten to those names; an import of anything else (a host module, an npm
 * package) is refused here, before it could fail on a board.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { DeviceError } from "../errors.js";

/** A module of a board program: its source under devices/ without extension, and its file name on the board. */
export interface BoardModule {
  /** e.g. "agent/framing" (devices/agent/framing.ts, dist/devices/agent/framing.js). */
  source: string;
  /** e.g. "framing.mjs" (.mjs: the install folder has no package.json saying "type": "module"). */
  file: string;
}

export interface ProgramFile {
  /** The file name in the install folder. */
  path: string;
  code: string;
  sha256: string;
}

export interface BoardProgram {
  files: ProgramFile[];
  /** sha256 over every file's name and hash, in order: changes when any module does. */
  sha256: string;
}

/** The devices/ folder this module was loaded from (sources or build). */
const DEVICES = dirname(dirname(fileURLToPath(import.meta.url)));

/** Relative specifiers in import/export statements and dynamic imports of a module's JS. */
const SPECIFIER = /(\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)(["'])([^"']+)\2/gm;

async function transpile(tsPath: string): Promise<string> {
  let ts: typeof import("typescript");
  try {
    ts = (await import("typescript")).default;
  } catch (e) {
    throw new DeviceError(
      "agent-missing",
      "running from sources needs the 'typescript' package to build the board programs",
      { hint: "run `npm run build` or `npm install`", cause: e },
    );
  }
  return ts.transpileModule(readFileSync(tsPath, "utf8"), {
    compilerOptions: {
      module: ts.ModuleKind.ES2022,
      target: ts.ScriptTarget.ES2022,
      removeComments: false,
    },
    fileName: tsPath,
  }).outputText;
}

/** A module's JS: the build's, else transpiled from its source. */
async function moduleCode(source: string, root: string): Promise<string> {
  const js = join(root, `${source}.js`);
  if (existsSync(js)) return readFileSync(js, "utf8").replace(/\n\/\/# sourceMappingURL=.*\n?$/, "\n");
  const tsPath = join(root, `${source}.ts`);
  if (!existsSync(tsPath)) {
    throw new DeviceError("agent-missing", `neither ${js} nor ${tsPath} exists`, {
      hint: "reinstall qat (the package ships the board programs under dist/devices/)",
    });
  }
  return transpile(tsPath);
}

/** Point a module's relative imports at the board names of the modules they load; refuse any other import. */
export function rewriteImports(code: string, source: string, modules: readonly BoardModule[]): string {
  return code.replace(SPECIFIER, (all, lead: string, quote: string, spec: string) => {
    if (spec.startsWith("node:")) return all;
    const target = spec.startsWith(".")
      ? posix.normalize(posix.join(posix.dirname(source), spec)).replace(/\.js$/, "")
      : undefined;
    const m = target === undefined ? undefined : modules.find((x) => x.source === target);
    if (!m) {
      throw new DeviceError(
        "agent-missing",
        `the board module devices/${source}.ts imports '${spec}', which is not part of the program shipped to boards`,
        {
          hint: "board modules may import only Node built-ins (node:…) and the other board modules listed with them",
        },
      );
    }
    return `${lead}${quote}./${m.file}${quote}`;
  });
}

/**
 * Read (or transpile) the modules of a board program and make them runnable side by side on the board.
 * `root` is the devices/ folder to read from (default: the one this module belongs to).
 */
export async function boardProgram(
  modules: readonly BoardModule[],
  root: string = DEVICES,
): Promise<BoardProgram> {
  const files: ProgramFile[] = [];
  for (const m of modules) {
    const code = rewriteImports(await moduleCode(m.source, root), m.source, modules);
    files.push({ path: m.file, code, sha256: createHash("sha256").update(code).digest("hex") });
  }
  const all = createHash("sha256");
  for (const f of files) all.update(`${f.path}\0${f.sha256}\n`);
  return { files, sha256: all.digest("hex") };
}
