/**
 * The Ultralytics `data.yaml`, read by hand: only the keys a detection set needs (path, train, val, test, nc, names)
 * are interpreted, as the YAML forms these files use — plain or quoted scalars, flow lists and maps (possibly over
 * several lines), and one level of block list (`- a`) or block map (`0: a`). Everything else in the file (download
 * scripts in block scalars, nested settings) is skipped unread. No YAML package is a dependency of qat, and this
 * small subset is what the format uses in practice.
 */
import { DataError } from "../data/errors.js";

export interface DataYaml {
  /** Dataset root as written (relative to the yaml's folder when not absolute); absent: the yaml's folder. */
  path?: string;
  /** Image folders (or list files) of each split, relative to the root. */
  train?: string[];
  val?: string[];
  test?: string[];
  /** Class names in index order. */
  names: string[];
}

type Value = string | Value[] | MapEntry[];

interface MapEntry {
  key: string;
  value: Value;
}

interface Entry {
  key: string;
  line: number;
  /** The text after `key:` on the key's own line, comment removed. */
  inline: string;
  /** Indented lines below it: [line number, text]. */
  children: [number, string][];
}

/** Parse the text of a data.yaml; `file` names it in errors. */
export function parseDataYaml(text: string, file: string): DataYaml {
  const entries = topLevel(text, file);
  const get = (k: string) => entries.find((e) => e.key === k);
  const out: DataYaml = { names: [] };
  const path = get("path");
  if (path) out.path = scalarOf(path, file);
  for (const split of ["train", "val", "test"] as const) {
    const e = get(split);
    if (!e) continue;
    const v = valueIn(e, file);
    const list = typeof v === "string" ? [v] : v.map((item) => asScalar(item, e, file));
    if (list.some((s) => s !== "")) out[split] = list.filter((s) => s !== "");
  }
  const names = get("names");
  if (!names)
    throw new DataError("no `names:` key; list the class names (a list, or a map 0: name)", { file });
  out.names = namesOf(names, file);
  const nc = get("nc");
  if (nc) {
    const n = Number(scalarOf(nc, file));
    if (!Number.isInteger(n) || n !== out.names.length)
      throw new DataError(
        `nc: ${scalarOf(nc, file)} but ${out.names.length} names are listed; make them agree`,
        {
          file,
          line: nc.line,
        },
      );
  }
  return out;
}

function topLevel(text: string, file: string): Entry[] {
  const lines = text.split(/\r?\n/);
  const entries: Entry[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    if (/^\s*(#.*)?$/.test(raw) || /^(---|\.\.\.)\s*$/.test(raw)) continue;
    if (/^\s/.test(raw)) {
      const last = entries[entries.length - 1];
      if (!last) throw new DataError("indented line before any key", { file, line: i + 1 });
      last.children.push([i + 1, raw]);
      continue;
    }
    const m = /^("[^"]*"|'[^']*'|[^\s:#][^:#]*?)\s*:(?:\s+(.*))?$/.exec(raw);
    if (!m) throw new DataError(`expected "key: value", got "${raw.trim()}"`, { file, line: i + 1 });
    entries.push({ key: unquote(m[1]!), line: i + 1, inline: stripComment(m[2] ?? ""), children: [] });
  }
  return entries;
}

/** A key's value: a scalar, a flow collection, or a one-level block list/map below it. */
function valueIn(e: Entry, file: string): Value {
  if (e.inline.startsWith("[") || e.inline.startsWith("{")) {
    // a flow collection may continue on the indented lines below
    const text = [e.inline, ...e.children.map(([, t]) => stripComment(t.trim()))].join(" ");
    const p = new FlowParser(text, file, e.line);
    const v = p.value();
    p.end();
    return v;
  }
  if (e.inline !== "") return unquote(e.inline);
  const items = e.children.map(([line, t]) => [line, stripComment(t.trim())] as const).filter(([, t]) => t);
  if (items.length === 0) return "";
  if (items.every(([, t]) => t.startsWith("- ") || t === "-"))
    return items.map(([, t]) => unquote(t.slice(1).trim()));
  return items.map(([line, t]) => {
    const m = /^("[^"]*"|'[^']*'|[^:]+?)\s*:\s+(.*)$/.exec(t);
    if (!m) throw new DataError(`expected "key: value" under ${e.key}:, got "${t}"`, { file, line });
    return { key: unquote(m[1]!), value: unquote(m[2]!) };
  });
}

function scalarOf(e: Entry, file: string): string {
  return asScalar(valueIn(e, file), e, file);
}

function asScalar(v: Value | MapEntry, e: Entry, file: string): string {
  if (typeof v === "string") return v;
  throw new DataError(`${e.key}: expected a single value here`, { file, line: e.line });
}

function namesOf(e: Entry, file: string): string[] {
  const v = valueIn(e, file);
  if (typeof v === "string")
    throw new DataError("names: expected a list or a map of class names", { file, line: e.line });
  if (v.every((x) => typeof x === "string")) return v as string[];
  const names: string[] = [];
  for (const item of v) {
    if (typeof item === "string" || Array.isArray(item))
      throw new DataError("names: mixes list items and map entries", { file, line: e.line });
    const id = Number(item.key);
    if (!Number.isInteger(id) || id < 0)
      throw new DataError(`names: key "${item.key}" is not a class index (0, 1, 2, ...)`, {
        file,
        line: e.line,
      });
    if (typeof item.value !== "string")
      throw new DataError(`names: class ${id} must be a name`, { file, line: e.line });
    if (names[id] !== undefined)
      throw new DataError(`names: class ${id} is named twice`, { file, line: e.line });
    names[id] = item.value;
  }
  for (let i = 0; i < names.length; i++)
    if (names[i] === undefined)
      throw new DataError(`names: class ${i} has no name; indices must run 0..${names.length - 1}`, {
        file,
        line: e.line,
      });
  return names;
}

/** Remove a trailing comment (a # after whitespace, outside quotes). */
function stripComment(s: string): string {
  let quote = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(s[i - 1]!))) return s.slice(0, i).trimEnd();
  }
  return s.trimEnd();
}

function unquote(s: string): string {
  const t = s.trim();
  if (t.length >= 2 && t.startsWith("'") && t.endsWith("'")) return t.slice(1, -1).replaceAll("''", "'");
  if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) {
    return t.slice(1, -1).replace(/\\(.)/g, (_, c: string) => ({ n: "\n", t: "\t" })[c] ?? c);
  }
  return t;
}

/** A flow collection: [a, 'b', "c"] or {0: a, 1: b}, nested. */
class FlowParser {
  private i = 0;
  constructor(
    private readonly s: string,
    private readonly file: string,
    private readonly line: number,
  ) {}

  value(): Value {
    this.space();
    const c = this.s[this.i];
    if (c === "[") return this.list();
    if (c === "{") return this.map();
    return this.scalar();
  }

  end(): void {
    this.space();
    if (this.i < this.s.length) this.fail(`unexpected "${this.s.slice(this.i)}" after the value`);
  }

  private list(): Value[] {
    this.i++;
    const out: Value[] = [];
    for (;;) {
      this.space();
      if (this.s[this.i] === "]") {
        this.i++;
        return out;
      }
      out.push(this.value());
      this.separator("]");
    }
  }

  private map(): { key: string; value: Value }[] {
    this.i++;
    const out: { key: string; value: Value }[] = [];
    for (;;) {
      this.space();
      if (this.s[this.i] === "}") {
        this.i++;
        return out;
      }
      const key = this.scalar(":");
      this.space();
      if (this.s[this.i] !== ":") this.fail(`expected ":" after the key "${key}"`);
      this.i++;
      out.push({ key, value: this.value() });
      this.separator("}");
    }
  }

  private separator(close: string): void {
    this.space();
    const c = this.s[this.i];
    if (c === ",") this.i++;
    else if (c !== close) this.fail(c === undefined ? `missing "${close}"` : `expected "," or "${close}"`);
  }

  private scalar(stopAlso = ""): string {
    const q = this.s[this.i];
    if (q === "'" || q === '"') {
      let j = this.i + 1;
      for (;;) {
        if (j >= this.s.length) this.fail("unterminated quoted string");
        const c = this.s[j];
        const doubled = q === "'" && c === "'" && this.s[j + 1] === "'";
        if ((q === '"' && c === "\\") || doubled) j += 2;
        else if (c === q) break;
        else j++;
      }
      const raw = this.s.slice(this.i, j + 1);
      this.i = j + 1;
      return unquote(raw);
    }
    const start = this.i;
    while (this.i < this.s.length && !`,]}${stopAlso}`.includes(this.s[this.i]!)) this.i++;
    return this.s.slice(start, this.i).trim();
  }

  private space(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i]!)) this.i++;
  }

  private fail(what: string): never {
    throw new DataError(`flow collection: ${what}`, { file: this.file, line: this.line });
  }
}
