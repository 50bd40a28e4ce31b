import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { loadModel } from "../../src/onnx/codec.js";
import type { Tensor } from "../../src/onnx/tensor.js";
import { CLI, DATA } from "../helpers/paths.js";

const tmp = () => mkdtempSync(join(tmpdir(), "qat-train-"));
const common = [
  "--data-dir",
  DATA,
  "--batch-size",
  "32",
  "--threads",
  "2",
  "--eval-limit",
  "500",
  "--seed",
  "3",
];

function qat(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
}

function weights(file: string): Map<string, Tensor> {
  return loadModel(file).graph.initializers;
}

function sameBits(a: Map<string, Tensor>, b: Map<string, Tensor>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, t] of a) {
    const u = b.get(k);
    if (!u) return false;
    const x = Buffer.from(
      (t.data as Float32Array).buffer,
      (t.data as Float32Array).byteOffset,
      (t.data as Float32Array).byteLength,
    );
    const y = Buffer.from(
      (u.data as Float32Array).buffer,
      (u.data as Float32Array).byteOffset,
      (u.data as Float32Array).byteLength,
    );
    if (!x.equals(y)) return false;
  }
  return true;
}

describe("qat train", () => {
  it("two runs with the same seed and threads give bit-identical weights; a killed run resumes to the same weights", async () => {
    const dir = tmp();
    const steps = ["--max-steps", "150", "--checkpoint-every", "30"];
    const a = qat(["train", ...common, ...steps, "--out", join(dir, "a"), "--json"]);
    expect(a.status, a.stderr).toBe(0);
    const b = qat(["train", ...common, ...steps, "--out", join(dir, "b"), "--json"]);
    expect(b.status, b.stderr).toBe(0);
    const wa = weights(join(dir, "a", "model.onnx"));
    expect(sameBits(wa, weights(join(dir, "b", "model.onnx")))).toBe(true);
    const summary = JSON.parse(a.stdout.trim().split("\n").at(-1)!);
    expect(summary.steps).toBe(150);

    // the same run, killed with SIGKILL once its first checkpoint is on disk, then resumed
    const out = join(dir, "c");
    const child = spawn(process.execPath, [CLI, "train", ...common, ...steps, "--out", out], {
      stdio: "ignore",
    });
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on("exit", (_c, sig) => r(sig)));
    while (!existsSync(join(out, "checkpoint.onnx"))) await new Promise((r) => setTimeout(r, 20));
    child.kill("SIGKILL");
    expect(await exited).toBe("SIGKILL");
    expect(existsSync(join(out, "model.onnx"))).toBe(false); // it was really cut short
    const ck = loadModel(join(out, "checkpoint.onnx"));
    const at = JSON.parse(ck.metadata["qat.checkpoint"]!).position.step;
    expect(at).toBeLessThan(150);
    // the killed run's lock is left behind, stale: the resume breaks it
    expect(JSON.parse(readFileSync(join(out, "run.lock"), "utf8")).pid).toBe(child.pid);
    const r = qat(["train", "--resume", out, "--json"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`step ${at}`);
    expect(sameBits(wa, weights(join(out, "model.onnx")))).toBe(true);
  });

  it("a run folder is held by one run: a second run or a --resume of it is refused while it trains", async () => {
    const dir = tmp();
    const out = join(dir, "held");
    const child = spawn(process.execPath, [CLI, "train", ...common, "--max-steps", "100000", "--out", out], {
      stdio: "ignore",
    });
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on("exit", (_c, sig) => r(sig)));
    try {
      while (!existsSync(join(out, "config.json"))) await new Promise((r) => setTimeout(r, 20));
      const lock = JSON.parse(readFileSync(join(out, "run.lock"), "utf8"));
      expect(lock.pid).toBe(child.pid);
      for (const args of [
        ["train", ...common, "--out", out],
        ["train", "--resume", out],
      ]) {
        const r = qat(args);
        expect(r.status, r.stderr).toBe(2);
        expect(r.stderr).toContain(`is in use by pid ${child.pid}`);
        expect(r.stderr).not.toMatch(/\n\s+at /);
      }
      expect(existsSync(join(out, "config.json"))).toBe(true); // the holder's files are untouched
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
  });

  it("a different seed gives different weights (the identity above is not vacuous)", () => {
    const dir = tmp();
    const a = qat(["train", ...common, "--max-steps", "5", "--out", join(dir, "a")]);
    const b = qat(["train", ...common.slice(0, -1), "4", "--max-steps", "5", "--out", join(dir, "b")]);
    expect(a.status, a.stderr).toBe(0);
    expect(b.status, b.stderr).toBe(0);
    expect(sameBits(weights(join(dir, "a", "model.onnx")), weights(join(dir, "b", "model.onnx")))).toBe(
      false,
    );
  });

  it("a missing dataset is one clear error, exit 2, and no run folder", () => {
    const dir = tmp();
    const empty = join(dir, "empty");
    mkdirSync(empty);
    const r = spawnSync(process.execPath, [CLI, "train", "--data-dir", empty, "--out", join(dir, "run")], {
      encoding: "utf8",
      env: {
        ...process.env,
        QAT_DATA_DIR: "",
        XDG_CACHE_HOME: join(dir, "cache"),
        QAT_DATA_URL: "http://127.0.0.1:9/",
      },
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/mnist/);
    expect(r.stderr).toContain(empty);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(existsSync(join(dir, "run"))).toBe(false);
  });

  it("a truncated IDX file names the file, exit 2, and no run folder", () => {
    const dir = tmp();
    const data = join(dir, "mnist");
    mkdirSync(data);
    for (const f of [
      "train-labels-idx1-ubyte.gz",
      "t10k-images-idx3-ubyte.gz",
      "t10k-labels-idx1-ubyte.gz",
    ]) {
      copyFileSync(join(DATA, "mnist", f), join(data, f));
    }
    const raw = gunzipSync(readFileSync(join(DATA, "mnist", "train-images-idx3-ubyte.gz")));
    writeFileSync(join(data, "train-images-idx3-ubyte"), raw.subarray(0, 100_000));
    const r = qat(["train", "--data-dir", dir, "--out", join(dir, "run")]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("train-images-idx3-ubyte");
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(dir, "run"))).toBe(false);
  });

  it("refuses to overwrite a run folder, and --help lists every flag with its default", () => {
    const dir = tmp();
    writeFileSync(join(dir, "x"), "");
    const r = qat(["train", "--data-dir", DATA, "--out", dir]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("already exists");
    const h = qat(["train", "--help"]);
    expect(h.status).toBe(0);
    for (const flag of [
      "--model",
      "--epochs",
      "--batch-size",
      "--lr",
      "--seed",
      "--threads",
      "--resume",
      "--out",
      "--json",
    ]) {
      expect(h.stdout).toContain(flag);
    }
    expect(h.stdout).toContain('(default: "mnist-cnn")');
  });
});

describe("qat train: bad data is one clear error naming the file and place, and no run folder", () => {
  const expectClean = (r: ReturnType<typeof qat>, dir: string, ...needles: (string | RegExp)[]) => {
    expect(r.status, r.stderr).toBe(2);
    for (const n of needles) expect(r.stderr).toMatch(n);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(dir, "run"))).toBe(false);
  };

  it("a CSV with a ragged row names the line", () => {
    const dir = tmp();
    const csv = join(dir, "iris.csv");
    writeFileSync(csv, "a,b,c,label\n1,2,3,0\n4,5,6,1\n7,8,2\n1,1,1,0\n");
    expectClean(qat(["train", "--data", csv, "--out", join(dir, "run")]), dir, /iris\.csv/, /line 4/);
  });

  it("an MNIST label out of range names the labels file and the byte", () => {
    const dir = tmp();
    const data = join(dir, "mnist");
    mkdirSync(data);
    for (const f of [
      "train-images-idx3-ubyte.gz",
      "t10k-images-idx3-ubyte.gz",
      "t10k-labels-idx1-ubyte.gz",
    ]) {
      copyFileSync(join(DATA, "mnist", f), join(data, f));
    }
    const labels = gunzipSync(readFileSync(join(DATA, "mnist", "train-labels-idx1-ubyte.gz")));
    labels[8 + 1234] = 12;
    writeFileSync(join(data, "train-labels-idx1-ubyte"), labels);
    expectClean(
      qat(["train", "--data-dir", dir, "--out", join(dir, "run")]),
      dir,
      /train-labels-idx1-ubyte/,
      /12/,
      /byte 1242/,
    );
  });

  it("an image of the wrong size in an image folder names the image and both sizes", async () => {
    const { encode } = await import("fast-png");
    const dir = tmp();
    const root = join(dir, "imgs");
    for (const [cls, files] of [
      ["cat", ["a", "b"]],
      ["dog", ["c", "d"]],
    ] as const) {
      mkdirSync(join(root, cls), { recursive: true });
      for (const f of files) {
        const w = f === "d" ? 12 : 8;
        const png = encode({ width: w, height: 8, data: new Uint8Array(w * 8), channels: 1, depth: 8 });
        writeFileSync(join(root, cls, `${f}.png`), png);
      }
    }
    expectClean(qat(["train", "--data", root, "--out", join(dir, "run")]), dir, /d\.png/, /12/, /8/);
  });
});
