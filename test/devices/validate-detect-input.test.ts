/**
 * Bad detection input through the CLI: `qat data summary` and `qat validate --task detect` both stop with exit 2 and
 * one message naming the file (and the line, for label files) — a class id out of range, a box outside [0, 1], a
 * malformed line, label files without their images, a corrupt image — before any board is contacted.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encode as encodePng } from "fast-png";
import { afterAll, describe, expect, it } from "vitest";
import { blazefaceSpecJson } from "../detect/blazeface-spec.js";
import { CLI, SHARED } from "../helpers/paths.js";

const root = mkdtempSync(join(tmpdir(), "qat-detect-input-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const SPEC = join(root, "blazeface.json");
writeFileSync(SPEC, JSON.stringify(blazefaceSpecJson()));
const BLAZEFACE = join(SHARED, "models", "blazeface-front-128.onnx");

const png = (): Uint8Array =>
  encodePng({ width: 32, height: 32, data: new Uint8Array(32 * 32 * 3).fill(90), channels: 3, depth: 8 });

/** A one-class YOLO set with two good images (a.png with one box, b.png with none); `damage` then breaks it. */
function dataset(name: string, damage: (dir: string) => void): string {
  const dir = join(root, name);
  mkdirSync(join(dir, "images", "val"), { recursive: true });
  mkdirSync(join(dir, "labels", "val"), { recursive: true });
  writeFileSync(join(dir, "data.yaml"), "train: images/val\nval: images/val\nnames: ['face']\n");
  writeFileSync(join(dir, "images", "val", "a.png"), png());
  writeFileSync(join(dir, "images", "val", "b.png"), png());
  writeFileSync(join(dir, "labels", "val", "a.txt"), "0 0.5 0.5 0.25 0.25\n");
  damage(dir);
  return dir;
}

const label = (dir: string, text: string) => writeFileSync(join(dir, "labels", "val", "a.txt"), text);

const CASES: { name: string; damage: (dir: string) => void; message: (dir: string) => string }[] = [
  {
    name: "class id out of range",
    damage: (d) => label(d, "0 0.5 0.5 0.25 0.25\n3 0.5 0.5 0.1 0.1\n"),
    message: (d) =>
      `${join(d, "labels", "val", "a.txt")}, line 2: class "3" is not a class index 0..0 (1 names in data.yaml)`,
  },
  {
    name: "box outside [0, 1]",
    damage: (d) => label(d, "0 0.9 0.5 0.4 0.2\n"),
    message: (d) =>
      `${join(d, "labels", "val", "a.txt")}, line 1: box 0.9 0.5 0.4 0.2 reaches outside the image (edges 0.7, 0.4, 1.1, 0.6); values are normalised to [0, 1]`,
  },
  {
    name: "malformed line",
    damage: (d) => label(d, "0 0.5 0.5 0.25 0.25\n\n0 0.5 0.5 0.25\n"),
    message: (d) => `${join(d, "labels", "val", "a.txt")}, line 3: 4 fields; expected 5: class cx cy w h`,
  },
  {
    name: "image and label counts that disagree (a label file without its image)",
    damage: (d) => writeFileSync(join(d, "labels", "val", "c.txt"), "0 0.5 0.5 0.2 0.2\n"),
    message: (d) =>
      `${join(d, "labels", "val", "c.txt")}: 1 label file(s) in ${join(d, "labels", "val")}/ have no image in ${join(d, "images", "val")}: c.txt; add the images or remove the labels`,
  },
  {
    name: "corrupt image (not an image at all)",
    damage: (d) => writeFileSync(join(d, "images", "val", "b.png"), "this is not a png"),
    message: (d) => join(d, "images", "val", "b.png"),
  },
  {
    name: "corrupt image (a PNG cut short after its header)",
    damage: (d) => writeFileSync(join(d, "images", "val", "b.png"), png().subarray(0, 60)),
    message: (d) => join(d, "images", "val", "b.png"),
  },
];

function qat(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: "utf8",
    env: { ...process.env, QAT_DEVICES: join(root, "no-devices.json") },
  });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

function expectRefusal(r: ReturnType<typeof qat>, message: string): void {
  expect(r.code, r.stderr).toBe(2);
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1); // one message, no stack trace
  expect(lines[0]!.startsWith(`qat: error: ${message}`), r.stderr).toBe(true);
}

describe("bad detection input: file and line, exit 2", () => {
  for (const c of CASES) {
    it(`${c.name}: qat data summary --verify and qat validate --task detect`, () => {
      const dir = dataset(c.name.replace(/\W+/g, "-"), c.damage);
      expectRefusal(qat(["data", "summary", dir, "--splits", "val", "--verify"]), c.message(dir));
      // the local board needs no setup to be refused: the data is read before any board is contacted
      const v = qat([
        "validate",
        BLAZEFACE,
        "--task",
        "detect",
        "--data",
        dir,
        "--detect-spec",
        SPEC,
        "--device",
        "local",
      ]);
      expectRefusal(v, c.message(dir));
    });
  }

  it("without --task, a YOLO-layout folder makes it a detection validation", () => {
    const c = CASES[2]!;
    const dir = dataset("inferred-task", c.damage);
    expectRefusal(qat(["validate", BLAZEFACE, "--data", dir, "--device", "local"]), c.message(dir));
  });

  it("the intact set passes qat data summary (so each refusal above is the damage's)", () => {
    const dir = dataset("intact", () => {});
    const r = qat(["data", "summary", dir, "--splits", "val", "--verify", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split("\n").at(-1)!).splits.val.boxes).toBe(1);
  });
});
