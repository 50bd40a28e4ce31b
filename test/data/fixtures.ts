import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect } from "vitest";
import { DataError } from "../../src/data/errors.js";

/** A fresh temporary folder; `done()` removes it. */
export function tempDir(): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "qat-data-"));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

/** For a test file: `dir()` makes a fresh temporary folder, removed after the test that made it. */
export function tempDirPerTest(): () => string {
  let made: ReturnType<typeof tempDir>[] = [];
  afterEach(() => {
    for (const t of made) t.done();
    made = [];
  });
  return () => {
    const t = tempDir();
    made.push(t);
    return t.dir;
  };
}

/** Bytes of an NPY file (format 1.0 or 2.0) holding `values` as `descr` (e.g. "<f4", ">i2", "|u1"). */
export function npyBytes(
  descr: string,
  shape: number[],
  values: ArrayLike<number>,
  opts: { fortran?: boolean; version?: 1 | 2 } = {},
): Uint8Array {
  const version = opts.version ?? 1;
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  let header = `{'descr': '${descr}', 'fortran_order': ${opts.fortran ? "True" : "False"}, 'shape': ${shapeText}, }`;
  const pre = version === 1 ? 10 : 12;
  const pad = 64 - ((pre + header.length + 1) % 64);
  header = header + " ".repeat(pad % 64) + "\n";
  const kind = descr[1]!;
  const size = Number(descr.slice(2));
  const little = descr[0] !== ">";
  const out = new Uint8Array(pre + header.length + values.length * size);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, header.length, true);
  else dv.setUint32(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[pre + i] = header.charCodeAt(i);
  let p = pre + header.length;
  for (let i = 0; i < values.length; i++, p += size) {
    const v = values[i]!;
    const key = `${kind}${size}`;
    if (key === "u1" || key === "b1") dv.setUint8(p, v);
    else if (key === "i1") dv.setInt8(p, v);
    else if (key === "u2") dv.setUint16(p, v, little);
    else if (key === "i2") dv.setInt16(p, v, little);
    else if (key === "u4") dv.setUint32(p, v, little);
    else if (key === "i4") dv.setInt32(p, v, little);
    else if (key === "i8") dv.setBigInt64(p, BigInt(v), little);
    else if (key === "u8") dv.setBigUint64(p, BigInt(v), little);
    else if (key === "f4") dv.setFloat32(p, v, little);
    else if (key === "f8") dv.setFloat64(p, v, little);
    else if (key === "f2")
      dv.setUint16(p, v, little); // caller passes the half's bits
    else throw new Error(`fixture: no writer for ${descr}`);
  }
  return out;
}

/** Bytes of an IDX file of unsigned bytes. */
export function idxBytes(dims: number[], data: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, 0x08, dims.length]);
  const dv = new DataView(out.buffer);
  dims.forEach((d, i) => {
    dv.setUint32(4 + 4 * i, d);
  });
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** CIFAR records: for item i, label(s) then 3072 pixels where pixel j = (i * 7 + j) & 255. */
export function cifarBytes(labels: number[][]): Uint8Array {
  const lb = labels[0]!.length;
  const rec = lb + 3072;
  const out = new Uint8Array(labels.length * rec);
  labels.forEach((ls, i) => {
    out.set(ls, i * rec);
    for (let j = 0; j < 3072; j++) out[i * rec + lb + j] = (i * 7 + j) & 255;
  });
  return out;
}

/** A loopback HTTP server serving fixed files; counts the requests per path. */
export async function serveFiles(files: Record<string, Uint8Array>): Promise<{
  url: string;
  hits: Record<string, number>;
  close: () => Promise<void>;
}> {
  const hits: Record<string, number> = {};
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(req.url ?? "/");
    hits[path] = (hits[path] ?? 0) + 1;
    const body = files[path];
    if (!body) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
    res.end(Buffer.from(body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The DataError `f` throws (fails the test when it throws something else, or nothing). */
export function thrownDataError(f: () => unknown): DataError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DataError);
    return e as DataError;
  }
  throw new Error("expected a DataError");
}
