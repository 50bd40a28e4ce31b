import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { program } from "../../toolchain/cli.js";
import { cliReference, GENERATED_NOTE } from "../../toolchain/cli-reference.js";
import { ROOT } from "../helpers/paths.js";

const DOC = join(ROOT, "docs", "cli.md");
const doc = () => readFileSync(DOC, "utf8");

/**
 * The reference's sections, by command path: a heading "## `qat train`" (any level) and the lines up to the next
 * such heading. Written against the Markdown, not the generator, so it checks what a reader sees.
 */
function sections(md: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of md.split("\n")) {
    const h = /^#{2,6} `(qat(?: [^`]+)?)`\s*$/.exec(line);
    if (h) {
      current = [];
      out.set(h[1]!, current);
    } else current?.push(line);
  }
  return out;
}

/** The flags a section documents: the first cell of its table rows, e.g. "| `-V, --version` | …". */
function documentedFlags(lines: string[]): Set<string> {
  const flags = new Set<string>();
  for (const line of lines) {
    const first = /^\| `([^`]+)` \|/.exec(line)?.[1];
    if (!first) continue;
    for (const token of first.split(/[\s,]+/)) if (/^--?[A-Za-z]/.test(token)) flags.add(token);
  }
  return flags;
}

/** The arguments a section documents: table rows whose first cell is `<name>` or `[name]`. */
function documentedArguments(lines: string[]): Set<string> {
  const args = new Set<string>();
  for (const line of lines) {
    const m = /^\| `[<[]([^>\]]+?)(?:\.\.\.)?[>\]]` \|/.exec(line);
    if (m) args.add(m[1]!);
  }
  return args;
}

/**
 * Everything of the program missing from the reference: a walk of commander's own data (commands, options,
 * arguments), independent of the generator. Each problem names the command and what is missing.
 */
function missingFromReference(root: Command, md: string): string[] {
  const bySection = sections(md);
  const problems: string[] = [];
  const walk = (cmd: Command, path: string) => {
    const lines = bySection.get(path);
    if (!lines) problems.push(`${path}: no section`);
    else {
      const flags = documentedFlags(lines);
      for (const o of cmd.options) {
        if (o.hidden) continue;
        const flag = o.long ?? o.short!;
        if (!flags.has(flag)) problems.push(`${path}: ${flag} not documented`);
      }
      const args = documentedArguments(lines);
      for (const a of cmd.registeredArguments) {
        if (!args.has(a.name())) problems.push(`${path}: argument ${a.name()} not documented`);
      }
    }
    for (const sub of cmd.commands) walk(sub, `${path} ${sub.name()}`);
  };
  walk(root, root.name());
  return problems;
}

/** The reference without the lines matching `drop` inside the section of `path`. */
function withoutInSection(md: string, path: string, drop: RegExp): string {
  const lines = md.split("\n");
  let inside = false;
  return lines
    .filter((line) => {
      const h = /^#{2,6} `(qat(?: [^`]+)?)`\s*$/.exec(line);
      if (h) inside = h[1] === path;
      return !(inside && drop.test(line));
    })
    .join("\n");
}

describe("docs/cli.md", () => {
  it("is what `npm run docs` generates from the current command definitions", () => {
    const expected = cliReference(program());
    expect(doc(), "docs/cli.md is out of date: run `npm run docs` and commit docs/cli.md").toBe(expected);
    expect(doc().split("\n")[0]).toBe(GENERATED_NOTE);
    expect(GENERATED_NOTE).toContain("npm run docs");
  });

  it("documents every command, argument and flag under that command's own section", () => {
    const p = program();
    expect(missingFromReference(p, doc())).toEqual([]);
    // the walk reaches the nested commands and the global options, and finds their sections
    const s = sections(doc());
    for (const path of [
      "qat",
      "qat train",
      "qat export",
      "qat device add",
      "qat device emulator setup",
      "qat validate",
    ])
      expect(s.has(path), path).toBe(true);
    expect(documentedFlags(s.get("qat")!)).toContain("--devices");
    expect(documentedFlags(s.get("qat")!)).toContain("--version");
    expect(documentedFlags(s.get("qat train")!)).toContain("--max-steps");
    expect(documentedArguments(s.get("qat device add")!)).toEqual(new Set(["name", "uri"]));
  });
});

describe("the completeness check", () => {
  // doctored copies of a freshly generated reference, so these tests do not depend on docs/cli.md being current
  const fresh = () => cliReference(program());

  it("fails when a flag's row is missing, even where other rows mention the flag", () => {
    // --qat appears in the descriptions of other train options ("with --qat: …"): only its own row counts
    const md = withoutInSection(fresh(), "qat train", /^\| `--qat \[preset\]`/);
    expect(md).toContain("with --qat:");
    expect(missingFromReference(program(), md)).toEqual(["qat train: --qat not documented"]);
  });

  it("fails when a flag is documented under another command only", () => {
    // --rollback moved from the deploy section to the end of the file (the last command's section)
    const row = fresh()
      .split("\n")
      .find((l) => l.startsWith("| `--rollback`"))!;
    const md = `${withoutInSection(fresh(), "qat deploy", /^\| `--rollback`/)}${row}\n`;
    expect(missingFromReference(program(), md)).toEqual(["qat deploy: --rollback not documented"]);
  });

  it("fails when a command has no section, and for a flag or command added without regenerating", () => {
    const noAdd = fresh().replace(/^### `qat device add`$/m, "### qat device add");
    expect(missingFromReference(program(), noAdd)).toEqual(["qat device add: no section"]);

    const p = program();
    const train = p.commands.find((c) => c.name() === "train")!;
    train.option("--brand-new <n>", "a flag added after docs/cli.md was generated");
    p.command("brand-new-command").description("added too").option("--json", "JSON");
    expect(missingFromReference(p, fresh())).toEqual([
      "qat train: --brand-new not documented",
      "qat brand-new-command: no section",
    ]);
    // and the generated reference has them
    expect(missingFromReference(p, cliReference(p))).toEqual([]);
  });

  it("fails when an argument is missing", () => {
    const md = withoutInSection(fresh(), "qat device add", /^\| `\[uri\]`/);
    expect(missingFromReference(program(), md)).toEqual(["qat device add: argument uri not documented"]);
  });
});
