import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readCsv } from "../../src/data/csv.js";
import { DataError } from "../../src/data/errors.js";
import { tempDir, thrownDataError } from "./fixtures.js";

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
});

function csvFile(text: string): string {
  const t = tempDir();
  cleanup.push(t.done);
  const p = join(t.dir, "data.csv");
  writeFileSync(p, text);
  return p;
}

function batch(ds: ReturnType<typeof readCsv>, idx: number[]) {
  const f = ds.inputShape[0]!;
  const x = new Float32Array(idx.length * f);
  const y = new BigInt64Array(idx.length);
  ds.fill(idx, x, y);
  return { x: [...x], y: [...y].map(Number) };
}

describe("CSV datasets", () => {
  it("reads a header, numeric features and integer labels in the last column", () => {
    const ds = readCsv(csvFile("a,b,label\n1,2.5,0\n-3,4e2,2\n5,6,1\n"));
    expect(ds.inputShape).toEqual([2]);
    expect(ds.length).toBe(3);
    expect(ds.numClasses).toBe(3);
    expect(ds.featureNames).toEqual(["a", "b"]);
    expect(batch(ds, [1, 0])).toEqual({ x: [-3, 400, 1, 2.5], y: [2, 0] });
    const s = ds.stats();
    expect(s.mean[0]).toBeCloseTo(1, 10);
    expect(s.std[0]).toBeCloseTo(Math.sqrt((0 + 16 + 16) / 3), 10);
  });

  it("takes the label column by name or index, without a header, with quoted fields and CRLF", () => {
    const byName = readCsv(csvFile('species,"x,1",x2\r\nsetosa,1,2\r\nvirginica,3,4\r\n'), {
      labelColumn: "species",
    });
    expect(byName.classNames).toEqual(["setosa", "virginica"]);
    expect(batch(byName, [0, 1])).toEqual({ x: [1, 2, 3, 4], y: [0, 1] });
    const byIndex = readCsv(csvFile("1,7,8\n0,9,10\n"), { labelColumn: 0 });
    expect(byIndex.featureNames).toBeUndefined();
    expect(batch(byIndex, [0, 1])).toEqual({ x: [7, 8, 9, 10], y: [1, 0] });
  });

  it("maps string labels to sorted indices, or by the class names given", () => {
    const p = csvFile("f,cls\n1,dog\n2,cat\n3,emu\n4,cat\n");
    const ds = readCsv(p);
    expect(ds.classNames).toEqual(["cat", "dog", "emu"]);
    expect(batch(ds, [0, 1, 2, 3]).y).toEqual([1, 0, 2, 0]);
    const fixed = readCsv(p, { classNames: ["emu", "dog", "cat", "owl"] });
    expect(fixed.numClasses).toBe(4);
    expect(batch(fixed, [0, 1, 2, 3]).y).toEqual([1, 2, 0, 2]);
  });

  it("reports a ragged row with its line number (blank lines counted)", () => {
    const e = thrownDataError(() => readCsv(csvFile("a,b,c\n1,2,0\n\n3,4,1\n5,0\n6,7,1\n")));
    expect(e.where.line).toBe(5);
    expect(e.message).toMatch(/data\.csv, line 5: row has 2 columns, the header has 3/);
  });

  it("reports a non-numeric feature with line and column", () => {
    const e = thrownDataError(() => readCsv(csvFile("a,b,c\n1,2,0\n3,x7,1\n")));
    expect(e.where).toMatchObject({ line: 3, column: 2 });
    expect(e.message).toMatch(/line 3, column 2: feature value "x7" is not a number \(column "b"\)/);
    expect(thrownDataError(() => readCsv(csvFile("1,,0\n"))).where).toMatchObject({ line: 1, column: 2 });
  });

  it("reports labels out of range and unknown class names", () => {
    const p = csvFile("a,y\n1,0\n2,3\n");
    const e = thrownDataError(() => readCsv(p, { numClasses: 3 }));
    expect(e.where).toMatchObject({ line: 3, column: 2 });
    expect(e.message).toMatch(/label 3 is outside 0\.\.2/);
    expect(thrownDataError(() => readCsv(csvFile("a,y\n1,-1\n"))).message).toMatch(/label -1 is outside/);
    const u = thrownDataError(() => readCsv(csvFile("a,y\n1,cat\n2,yak\n"), { classNames: ["cat", "dog"] }));
    expect(u.where.line).toBe(3);
    expect(u.message).toMatch(/"yak" is not one of the 2 classes/);
  });

  it("reports a missing file, an unknown label column, an unterminated quote", () => {
    expect(thrownDataError(() => readCsv("/nonexistent/q.csv")).message).toMatch(
      /\/nonexistent\/q\.csv: CSV file not found/,
    );
    expect(thrownDataError(() => readCsv(csvFile("a,b\n1,2\n"), { labelColumn: "c" })).message).toMatch(
      /no column named "c".*a, b/,
    );
    const q = thrownDataError(() => readCsv(csvFile('a,b\n1,"2\n3,4\n')));
    expect(q.message).toMatch(/not a readable CSV file/);
  });
});
