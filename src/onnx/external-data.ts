/**
 * A tensor's external data (TensorProto data_location EXTERNAL): read from a file next to the model, refusing a
 * location that is absolute or leads out of the model's folder, and an offset or length outside the file.
 */
import { closeSync, fstatSync, openSync, readSync, realpathSync } from "node:fs";
import { isAbsolute, relative, resolve } from "node:path";
import { OnnxError } from "./errors.js";
import { type Msg, setOwn } from "./proto.js";

/** `dir` is the model's folder; `file` names the model in errors; `where` names the tensor. */
export function readExternal(t: Msg, ctx: { file?: string; dir?: string }, where: string): Uint8Array {
  const e: Record<string, string> = {};
  for (const kv of t.external_data) setOwn(e, kv.key ?? "", kv.value ?? "");
  const loc = e.location;
  const err = (msg: string) => new OnnxError(`tensor '${where}': ${msg}`, { file: ctx.file });
  if (!loc) throw err("external data without a location");
  if (!ctx.dir)
    throw err(`external data '${loc}' needs the model's path to be found (use loadModel or pass path)`);
  if (isAbsolute(loc)) throw err(`external data location '${loc}' must be relative to the model`);
  const full = resolve(ctx.dir, loc);
  let real: string;
  let dir: string;
  try {
    real = realpathSync(full);
    dir = realpathSync(ctx.dir);
  } catch {
    throw err(`external data file '${loc}' not found next to the model (looked for ${full})`);
  }
  const rel = relative(dir, real);
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) {
    throw err(`external data location '${loc}' leaves the model's folder`);
  }
  const int = (key: string): number | undefined => {
    const v = e[key];
    if (v === undefined) return undefined;
    if (!/^\d{1,16}$/.test(v)) throw err(`external data ${key} '${v}' is not a non-negative integer`);
    return Number(v);
  };
  const offset = int("offset") ?? 0;
  let fd: number | undefined;
  try {
    fd = openSync(real, "r");
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw err(`external data '${loc}' is not a file`);
    const size = stat.size;
    const length = int("length") ?? size - offset;
    if (!(length >= 0 && offset + length <= size)) {
      throw err(
        `external data '${loc}' offset ${offset} + length ${length} is outside the file (${size} bytes)`,
      );
    }
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, out, done, length - done, offset + done);
      if (n === 0) throw err(`external data '${loc}' ended early while reading ${length} bytes at ${offset}`);
      done += n;
    }
    return out;
  } catch (x) {
    if (x instanceof OnnxError) throw x;
    throw err(`cannot read external data '${loc}': ${(x as Error).message}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
