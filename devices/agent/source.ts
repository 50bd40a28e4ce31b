import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DeviceError } from "../errors.js";

export interface AgentProgram {
  /** The agent as one ES module (plain JS), to be saved as agent.mjs on the board. */
  code: string;
  /** sha256 of `code`. */
  sha256: string;
}

let cached: AgentProgram | undefined;

/**
 * The agent program. From a build (dist/devices/agent/agent.js beside this module) it is read as emitted by tsc;
 * from the TypeScript sources (tests, `tsx`) agent.ts is transpiled with the `typescript` package. The agent
 * imports only Node built-ins, so a single-file transpile is the whole program.
 */
export async function agentProgram(): Promise<AgentProgram> {
  if (cached) return cached;
  const here = dirname(fileURLToPath(import.meta.url));
  const js = join(here, "agent.js");
  let code: string;
  if (existsSync(js)) code = readFileSync(js, "utf8").replace(/\n\/\/# sourceMappingURL=.*\n?$/, "\n");
  else {
    const tsPath = join(here, "agent.ts");
    if (!existsSync(tsPath)) {
      throw new DeviceError("agent-missing", `neither ${js} nor ${tsPath} exists`, {
        hint: "reinstall qat (the package ships dist/devices/agent/agent.js)",
      });
    }
    let ts: typeof import("typescript");
    try {
      ts = (await import("typescript")).default;
    } catch (e) {
      throw new DeviceError(
        "agent-missing",
        `running from sources needs the 'typescript' package to build the agent`,
        {
          hint: "run `npm run build` or `npm install`",
          cause: e,
        },
      );
    }
    const out = ts.transpileModule(readFileSync(tsPath, "utf8"), {
      compilerOptions: {
        module: ts.ModuleKind.ES2022,
        target: ts.ScriptTarget.ES2022,
        removeComments: false,
      },
      fileName: "agent.ts",
    });
    code = out.outputText;
  }
  cached = { code, sha256: createHash("sha256").update(code).digest("hex") };
  return cached;
}
