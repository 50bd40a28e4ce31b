import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { DataError } from "../../src/data/errors.js";
import { parseIdx, readIdx } from "../../src/data/idx.js";
import { thrownDataError } from "../data/fixtures.js";
import { DATA } from "../helpers/paths.js";

const MNIST = join(DATA, "mnist");
const dir = mkdtempSync(join(tmpdir(), "qat-idx-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An IDX file written independently of the reader: header, then big-endian elements via DataView. */
function idxBytes(
  type: number,
  dims: number[],
  values: number[],
  size: number,
  put: (v: DataView, at: number, x: number) => void,
) {
  const header = 4 + 4 * dims.length;
  const buf = new Uint8Array(header + values.length * size);
  const v = new DataView(buf.buffer);
  buf[2] = type;
  buf[3] = dims.length;
  dims.forEach((d, i) => {
    v.setUint32(4 + 4 * i, d, false);
  });
  values.forEach((x, i) => {
    put(v, header + i * size, x);
  });
  return buf;
}

describe("readIdx on MNIST", () => {
  it("reads the gzip test images and labels; re-encoded, they hash to the sha256 in SOURCES.md", () => {
    const img = readIdx(`${MNIST}/t10k-images-idx3-ubyte.gz`);
    expect(img.dtype).toBe("uint8");
    expect(img.dims).toEqual([10000, 28, 28]);
    expect(img.data).toBeInstanceOf(Uint8Array);
    const header = idxBytes(0x08, img.dims, [], 1, () => {});
    const sha = createHash("sha256").update(header).update(img.data).digest("hex");
    expect(sha).toBe("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7");
    const lab = readIdx(`${MNIST}/t10k-labels-idx1-ubyte.gz`);
    expect(lab.dims).toEqual([10000]);
    expect(Array.from(lab.data.subarray(0, 10))).toEqual([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
  });

  it("reads a raw (decompressed) copy the same way", () => {
    const raw = gunzipSync(readFileSync(`${MNIST}/t10k-labels-idx1-ubyte.gz`));
    const path = join(dir, "labels-raw");
    writeFileSync(path, raw);
    expect(Array.from(readIdx(path).data)).toEqual(
      Array.from(readIdx(`${MNIST}/t10k-labels-idx1-ubyte.gz`).data),
    );
  });
});

describe("element types (big-endian)", () => {
  const cases: [string, number, number, number[], (v: DataView, at: number, x: number) => void][] = [
    ["int8", 0x09, 1, [-128, -1, 0, 127], (v, at, x) => v.setInt8(at, x)],
    ["int16", 0x0b, 2, [-32768, -2, 258, 32767], (v, at, x) => v.setInt16(at, x, false)],
    ["int32", 0x0c, 4, [-2147483648, -3, 16909060, 2147483647], (v, at, x) => v.setInt32(at, x, false)],
    ["float32", 0x0d, 4, [-1.5, 0.1, 3.4e38, 1e-45], (v, at, x) => v.setFloat32(at, x, false)],
    ["float64", 0x0e, 8, [-1.5, 0.1, 1e300, 5e-324], (v, at, x) => v.setFloat64(at, x, false)],
  ];
  for (const [dtype, code, size, vals, put] of cases) {
    it(dtype, () => {
      const bytes = idxBytes(code, [2, 2], vals, size, put);
      const out = parseIdx(gzipSync(bytes), "x.gz");
      expect(out.dtype).toBe(dtype);
      expect(out.dims).toEqual([2, 2]);
      const expected = dtype === "float32" ? Array.from(Float32Array.from(vals)) : vals;
      expect(Array.from(out.data)).toEqual(expected);
    });
  }
});

describe("truncated and corrupt files raise DataError naming the file and the offset", () => {
  const labels = gunzipSync(readFileSync(`${MNIST}/t10k-labels-idx1-ubyte.gz`));
  const write = (name: string, bytes: Uint8Array) => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };

  it("data cut short (raw)", () => {
    const p = write("short", labels.subarray(0, 5000));
    const e = thrownDataError(() => readIdx(p));
    expect(e.message).toContain(p);
    expect(e.message).toMatch(
      /byte 5000: truncated IDX data: dims 10000 of uint8 need 10000 bytes after the 8-byte header, the file has 4992 \(expected 10008 bytes in all\)/,
    );
    expect(e.where.offset).toBe(5000);
  });

  it("data cut short (inside a valid gzip stream)", () => {
    const p = write("short.gz", gzipSync(labels.subarray(0, 100)));
    expect(thrownDataError(() => readIdx(p)).message).toMatch(/short\.gz, byte 100: truncated IDX data/);
  });

  it("gzip stream truncated", () => {
    const gz = readFileSync(`${MNIST}/t10k-labels-idx1-ubyte.gz`);
    const p = write("cut.gz", gz.subarray(0, gz.length - 100));
    expect(thrownDataError(() => readIdx(p)).message).toMatch(
      /cut\.gz: the gzip stream is truncated or corrupt/,
    );
  });

  it("gzip stream corrupted (CRC)", () => {
    const gz = new Uint8Array(readFileSync(`${MNIST}/t10k-labels-idx1-ubyte.gz`));
    gz[gz.length - 6]! ^= 0xff;
    const p = write("crc.gz", gz);
    expect(thrownDataError(() => readIdx(p)).message).toMatch(
      /crc\.gz: the gzip stream is truncated or corrupt/,
    );
  });

  it("header cut short", () => {
    const p = write("header", labels.subarray(0, 6));
    expect(thrownDataError(() => readIdx(p)).message).toMatch(
      /header, byte 6: truncated IDX header: 1 dimensions need 8 header bytes, the file has 6/,
    );
  });

  it("not an IDX file", () => {
    const p = write("png", Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0));
    expect(thrownDataError(() => readIdx(p)).message).toMatch(
      /png, byte 0: not an IDX file: magic bytes are 89 50 4e 47/,
    );
  });

  it("unknown element type", () => {
    const p = write("type", Uint8Array.of(0, 0, 0x0a, 1, 0, 0, 0, 0));
    expect(thrownDataError(() => readIdx(p)).message).toMatch(/byte 2: unknown IDX element type 0x0a/);
  });

  it("trailing bytes", () => {
    const p = write("long", Uint8Array.from([...labels, 1, 2, 3]));
    expect(thrownDataError(() => readIdx(p)).message).toMatch(
      /long, byte 10008: 3 unexpected bytes after the data/,
    );
  });

  it("missing file", () => {
    expect(thrownDataError(() => readIdx(join(dir, "nope"))).message).toMatch(
      /nope: cannot read the IDX file/,
    );
  });
});
