/**
 * The agent protocol is typed on both ends (devices/agent/protocol.ts): a misspelled message type, or a request
 * type the agent has no handler for, must fail `tsc`. Checked with the TypeScript compiler API on in-memory
 * variants of the real files (the project's own compiler options), so what is tested is the real client and the
 * real dispatch table, not a copy.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers/paths.js";

const CLIENT = join(ROOT, "devices/client.ts");
const DISPATCH = join(ROOT, "devices/agent/dispatch.ts");
const PROTOCOL = join(ROOT, "devices/agent/protocol.ts");
/** A host program that does not exist on disk: it uses the client like validate.ts and deploy.ts do. */
const PROBE = join(ROOT, "devices/protocol-probe.ts");

const config = ts.readConfigFile(join(ROOT, "tsconfig.json"), ts.sys.readFile);
const options: ts.CompilerOptions = {
  ...ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT).options,
  noEmit: true,
};
let previous: ts.Program | undefined;

/** The errors tsc reports in `files` when some files' text is replaced (`variants`: path → text). */
function errorsIn(variants: Record<string, string>, files: string[]): string[] {
  const host = ts.createCompilerHost(options);
  const read = host.readFile.bind(host);
  const exists = host.fileExists.bind(host);
  const source = host.getSourceFile.bind(host);
  host.readFile = (f) => variants[f] ?? read(f);
  host.fileExists = (f) => f in variants || exists(f);
  host.getSourceFile = (f, lang, onError, fresh) =>
    f in variants ? ts.createSourceFile(f, variants[f]!, lang, true) : source(f, lang, onError, fresh);
  const program = ts.createProgram([...new Set([CLIENT, DISPATCH, ...files])], options, host, previous);
  previous = program;
  return files.flatMap((f) => {
    const sf = program.getSourceFile(f);
    if (!sf) throw new Error(`${f} is not in the program`);
    return [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)].map(
      (d) =>
        `${f.slice(ROOT.length + 1)}: TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`,
    );
  });
}

/** `text` with `from` replaced by `to`, which must occur exactly once. */
function edit(text: string, from: string, to: string): string {
  expect(text.split(from).length - 1, `'${from}' should occur once`).toBe(1);
  return text.replace(from, to);
}

const probe = (type: string): string => `
import { AgentClient } from "./client.js";
export async function probe(client: AgentClient): Promise<number> {
  const r = await client.request({ t: "${type}" });
  return r.header.models.length;
}
`;

describe("the typed agent protocol", () => {
  const client = readFileSync(CLIENT, "utf8");
  const dispatch = readFileSync(DISPATCH, "utf8");
  const protocol = readFileSync(PROTOCOL, "utf8");

  it("compiles as written: the client, the dispatch table and a host call with a correct type", () => {
    expect(errorsIn({ [PROBE]: probe("models.list") }, [CLIENT, DISPATCH, PROBE])).toEqual([]);
  }, 60_000);

  it("refuses a misspelled message type on the host side (a caller, the client) and on the agent side", () => {
    const variants = {
      [PROBE]: probe("modles.list"),
      [CLIENT]: edit(client, 't: "put.end"', 't: "put.edn"'),
      [DISPATCH]: edit(dispatch, '"put.end": (req)', '"put.edn": (req)'),
    };
    const errors = errorsIn(variants, [PROBE, CLIENT, DISPATCH]);
    const of = (file: string): string => errors.filter((e) => e.startsWith(file)).join("\n");
    expect(of("devices/protocol-probe.ts")).toMatch(/TS2\d+ Type '"modles\.list"' is not assignable/);
    expect(of("devices/client.ts")).toMatch(/TS2\d+ .*"put\.edn"/);
    // a handler under a wrong name is not a request type (and leaves put.end without a handler)
    expect(of("devices/agent/dispatch.ts")).toMatch(/'"put\.edn"' does not exist in type 'Handlers'/);
  }, 60_000);

  it("refuses a new request type the agent does not handle", () => {
    let added = edit(protocol, "  | ByeRequest;", '  | ByeRequest\n  | { t: "models.prune" };');
    added = edit(
      added,
      "  bye: Record<string, never>;",
      '  bye: Record<string, never>;\n  "models.prune": { removed: string[] };',
    );
    const errors = errorsIn({ [PROTOCOL]: added }, [DISPATCH, PROTOCOL]);
    expect(errors.join("\n")).toMatch(
      /devices\/agent\/dispatch\.ts: TS2741 Property '"models\.prune"' is missing/,
    );
    expect(errors.every((e) => e.startsWith("devices/agent/dispatch.ts"))).toBe(true);
  }, 60_000);
});
