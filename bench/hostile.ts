/**
 * Hostile inputs, measured: each case runs in a fresh Node process that prints the error it got, the time to
 * that error and the process's peak RSS (getrusage maxrss), beside a baseline process that only loads qat. The
 * limits are the defaults a user gets (384 MiB decompressed, 384 MiB per zip entry, 64 megapixels, 384 MiB and a
 * 60 s idle timeout per download), except the stalled download, measured at a 2 s idle timeout to keep the bench
 * short (the timeout is what bounds it).
 *
 *   npm run build && node dist/bench/hostile.js
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateRawSync } from "node:zlib";
import { fetchBytes } from "../src/data/download.js";
import { readIdx } from "../src/data/idx.js";
import { decodeImage } from "../src/data/image.js";
import { openImageSet } from "../src/data/image-set.js";
import { readNpz } from "../src/data/npz.js";
import { gzipBomb, MiB, pngHeader, zipWith } from "./hostile-inputs.js";

type Case = (dir: string) => Promise<unknown> | unknown;

/** An HTTP server on loopback answering with `body` (called with the response), and its URL. */
async function serve(body: (res: import("node:http").ServerResponse) => void): Promise<string> {
  const server = createServer((_req, res) => body(res));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  server.unref();
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/f`;
}

const CASES: Record<string, { what: string; run: Case }> = {
  baseline: { what: "nothing (qat's modules loaded)", run: () => undefined },
  "gzip-bomb": {
    what: "1 GiB gzip bomb as an MNIST IDX file",
    run: (d) => {
      const p = join(d, "train-images-idx3-ubyte.gz");
      writeFileSync(p, gzipBomb(1024 * MiB));
      return readIdx(p);
    },
  },
  "zip-declares-4g": {
    what: "NPZ entry declaring 4 GiB",
    run: (d) => {
      const p = join(d, "bomb.npz");
      writeFileSync(p, zipWith("x.npy", deflateRawSync(Buffer.alloc(MiB)), 0xffffffff));
      return readNpz(p);
    },
  },
  "zip-bomb-liar": {
    what: "NPZ 64 MiB of zeros declaring 1000 bytes",
    run: (d) => {
      const p = join(d, "liar.npz");
      writeFileSync(p, zipWith("x.npy", deflateRawSync(Buffer.alloc(64 * MiB)), 1000));
      return readNpz(p);
    },
  },
  fifo: {
    what: "FIFO named b.jpg in an image folder",
    run: (d) => {
      writeFileSync(join(d, "a.png"), pngHeader(4, 4));
      execFileSync("mkfifo", [join(d, "b.jpg")]);
      return openImageSet(d, { size: [4, 4] });
    },
  },
  "dev-zero": {
    what: "zero.jpg → /dev/zero in an image folder",
    run: (d) => {
      symlinkSync("/dev/zero", join(d, "zero.jpg"));
      return openImageSet(d, { size: [4, 4] });
    },
  },
  "huge-png": {
    what: "PNG declaring 100000×100000",
    run: () => decodeImage(pngHeader(100_000, 100_000), "huge.png"),
  },
  "endless-download": {
    what: "download that never ends",
    run: async () => {
      const chunk = Buffer.alloc(64 * 1024);
      const url = await serve((res) => {
        res.writeHead(200);
        const pump = (): void => {
          while (res.write(chunk));
        };
        res.on("drain", pump);
        pump();
      });
      return fetchBytes(url);
    },
  },
  "stalled-download": {
    what: "download that stalls after 10 bytes (2 s idle timeout)",
    run: async () => {
      const url = await serve((res) => {
        res.writeHead(200, { "content-length": 1000 });
        res.write(Buffer.alloc(10));
      });
      return fetchBytes(url, { idleTimeoutMs: 2000 });
    },
  },
};

async function child(name: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "qat-bench-hostile-"));
  const t0 = performance.now();
  let error = "";
  try {
    await CASES[name]!.run(dir);
    if (name !== "baseline") error = "NO ERROR (accepted!)";
  } catch (e) {
    error = `${(e as Error).name}: ${(e as Error).message.split("\n")[0]}`;
  }
  const ms = performance.now() - t0;
  rmSync(dir, { recursive: true, force: true });
  const maxRssMiB = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(`${JSON.stringify({ ms, maxRssMiB, error })}\n`);
  process.exit(0);
}

function main(): void {
  const self = fileURLToPath(import.meta.url);
  const rows: string[] = [];
  for (const [name, c] of Object.entries(CASES)) {
    const r = spawnSync(process.execPath, [self, "--case", name], { encoding: "utf8", timeout: 120_000 });
    const out = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}") as {
      ms: number;
      maxRssMiB: number;
      error: string;
    };
    rows.push(
      `${c.what.padEnd(56)} ${out.ms.toFixed(0).padStart(7)} ms ${out.maxRssMiB.toFixed(0).padStart(6)} MiB  ${out.error.slice(0, 110)}`,
    );
    process.stderr.write(`${rows.at(-1)}\n`);
  }
}

const at = process.argv.indexOf("--case");
if (at >= 0) await child(process.argv[at + 1]!);
else main();
