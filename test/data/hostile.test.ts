/**
 * Hostile and damaged inputs (issue 18): each one a clear DataError (or AttemptError for a download) within bounded
 * time and memory. The bombs are generated here, never kept in the repository.
 */
import { execFileSync } from "node:child_process";
import { symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { deflateRawSync, gzipSync } from "node:zlib";
import { encode as encodePng } from "fast-png";
import { afterEach, describe, expect, it } from "vitest";
import { gzipBomb, HUGE_JPEG_SOF, MiB, pngHeader, zipWith } from "../../bench/hostile-inputs.js";
import { AttemptError, fetchBytes } from "../../src/data/download.js";
import { readInput } from "../../src/data/files.js";
import { readIdx } from "../../src/data/idx.js";
import { decodeImage } from "../../src/data/image.js";
import { openImageSet } from "../../src/data/image-set.js";
import { DEFAULT_MAX_DECOMPRESSED, gunzipCapped } from "../../src/data/limits.js";
import { readNpz } from "../../src/data/npz.js";
import { npyBytes, tempDirPerTest, thrownDataError } from "./fixtures.js";

const dir = tempDirPerTest();

function timed<T>(f: () => T): { value: T; ms: number } {
  const t0 = performance.now();
  const value = f();
  return { value, ms: performance.now() - t0 };
}

describe("gzip bombs", () => {
  it("a 1 GiB bomb (~1 MB on disk) stops at the default cap with a DataError naming the file", () => {
    const p = join(dir(), "train-images-idx3-ubyte.gz");
    const bomb = gzipBomb(1024 * MiB);
    expect(bomb.length).toBeLessThan(1.5 * MiB);
    writeFileSync(p, bomb);
    const { value: err, ms } = timed(() => thrownDataError(() => readIdx(p)));
    expect(err.message).toContain(p);
    expect(err.message).toMatch(/decompresses to more than the 384 MiB limit/);
    expect(ms).toBeLessThan(20_000);
  });

  it("a smaller cap stops sooner, and honest data under the cap passes", () => {
    const bomb = gzipBomb(256 * MiB);
    const rss0 = process.memoryUsage().rss;
    const err = thrownDataError(() => gunzipCapped(bomb, "bomb.gz", 8 * MiB));
    // zlib stops at the cap: the process does not grow by the bomb's 256 MiB
    expect(process.memoryUsage().rss - rss0).toBeLessThan(128 * MiB);
    expect(err.message).toMatch(
      /bomb\.gz: the gzip data \(.* compressed\) decompresses to more than the 8 MiB limit/,
    );
    expect(gunzipCapped(gzipSync(Buffer.alloc(1000, 7)), "ok.gz", 1000).length).toBe(1000);
    expect(DEFAULT_MAX_DECOMPRESSED).toBeGreaterThan(2 * 180 * 1e6); // CIFAR-10's tar is ~185 MB
  });
});

describe("zip bombs (NPZ)", () => {
  it("refuses an entry whose header declares 4 GiB before allocating it", () => {
    const p = join(dir(), "bomb.npz");
    writeFileSync(p, zipWith("x.npy", deflateRawSync(Buffer.alloc(MiB)), 0xffffffff));
    const { value: err, ms } = timed(() => thrownDataError(() => readNpz(p)));
    expect(err.message).toContain(`${p}:x.npy`);
    expect(err.message).toMatch(/declares 4 GiB uncompressed .* over the 384 MiB limit per entry/);
    expect(ms).toBeLessThan(1000);
  });

  it("refuses a real 64 MiB bomb under a smaller cap, and a header that under-declares", () => {
    const d = dir();
    const npy = npyBytes("|u1", [64 * MiB], new Uint8Array(0)).subarray(0, 128); // header only
    const deflated = deflateRawSync(Buffer.concat([npy, Buffer.alloc(64 * MiB)]));
    const honest = join(d, "honest.npz");
    writeFileSync(honest, zipWith("x.npy", deflated, 128 + 64 * MiB));
    expect(thrownDataError(() => readNpz(honest, { maxEntryBytes: 16 * MiB })).message).toMatch(
      /declares 64 MiB uncompressed .* over the 16 MiB limit/,
    );
    const liar = join(d, "liar.npz");
    writeFileSync(liar, zipWith("x.npy", deflated, 1000));
    const { value: err, ms } = timed(() => thrownDataError(() => readNpz(liar)));
    expect(err.message).toMatch(/declares only 1000 bytes uncompressed, which deflate cannot produce/);
    expect(ms).toBeLessThan(1000);
  });
});

describe("image folders: only regular files", () => {
  const png = (w: number, h: number) =>
    encodePng({ width: w, height: h, data: new Uint8Array(w * h), channels: 1 });

  it("refuses a FIFO named like an image, without blocking on it", () => {
    const d = dir();
    writeFileSync(join(d, "a.png"), png(4, 4));
    execFileSync("mkfifo", [join(d, "b.jpg")]);
    const { value: err, ms } = timed(() => thrownDataError(() => openImageSet(d, { size: [4, 4] })));
    expect(err.message).toMatch(/b\.jpg: is a FIFO \(named pipe\) .* not a regular image file/);
    expect(ms).toBeLessThan(1000);
    // a reader that skips the listing's check still does not block: open is non-blocking, fstat refuses
    expect(thrownDataError(() => readInput(join(d, "b.jpg"), "CSV file")).message).toMatch(/a FIFO/);
  });

  it("refuses a *.jpg symlink to /dev/zero, and one to a folder", () => {
    const d = dir();
    writeFileSync(join(d, "a.png"), png(4, 4));
    symlinkSync("/dev/zero", join(d, "zero.jpg"));
    const err = thrownDataError(() => openImageSet(d, { size: [4, 4] }));
    expect(err.message).toMatch(/zero\.jpg: is a device \(symlinks are followed\)/);
    expect(thrownDataError(() => readInput(join(d, "zero.jpg"), "image")).message).toMatch(
      /a character device/,
    );
  });

  it("follows a symlink to a regular image", () => {
    const d = dir();
    writeFileSync(join(d, "a.png"), png(4, 4));
    symlinkSync(join(d, "a.png"), join(d, "b.png"));
    expect(openImageSet(d, { size: [2, 2] }).length).toBe(2);
  });
});

describe("image pixel caps", () => {
  it("refuses a 100000×100000 PNG header before decoding, in the folder and in decodeImage", () => {
    const d = dir();
    writeFileSync(join(d, "huge.png"), pngHeader(100_000, 100_000));
    const err = thrownDataError(() => openImageSet(d, { size: [8, 8] }));
    expect(err.message).toMatch(
      /huge\.png: the image header declares 100000×100000 = 10000\.0 megapixels, over the 64\.0-megapixel limit/,
    );
    const { ms } = timed(() => thrownDataError(() => decodeImage(pngHeader(100_000, 100_000), "huge.png")));
    expect(ms).toBeLessThan(100);
    expect(thrownDataError(() => decodeImage(pngHeader(64, 64), "x.png", 1000)).message).toMatch(/64×64/);
  });

  it("refuses a JPEG whose frame header declares 65535×65535", () => {
    expect(thrownDataError(() => decodeImage(HUGE_JPEG_SOF, "big.jpg")).message).toMatch(
      /big\.jpg: .*65535×65535/,
    );
  });
});

describe("downloads: size and time limits", () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
  });
  async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
    server = createServer(handler);
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/f`;
  }
  const attempt = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      expect(e).toBeInstanceOf(AttemptError);
      return (e as AttemptError).attempt;
    }
    throw new Error("expected the download to fail");
  };

  it("a server that sends 10 bytes and then stalls fails after the idle timeout", async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { "content-length": 1000 });
      res.write(Buffer.alloc(10));
    });
    const t0 = performance.now();
    const a = await attempt(fetchBytes(url, { idleTimeoutMs: 300 }));
    const ms = performance.now() - t0;
    expect(a.reason).toMatch(/stalled: no data for 0\.3 s after 10 bytes/);
    expect(ms).toBeGreaterThan(250);
    expect(ms).toBeLessThan(3000);
  });

  it("a server that never answers at all fails after the idle timeout too", async () => {
    const url = await serve(() => {});
    const a = await attempt(fetchBytes(url, { idleTimeoutMs: 300 }));
    expect(a.reason).toMatch(/stalled: no data for 0\.3 s/);
  });

  it("an endless body stops at the size limit; a declared oversize is refused at once", async () => {
    const chunk = Buffer.alloc(64 * 1024);
    const url = await serve((req, res) => {
      if (req.url === "/big") {
        res.writeHead(200, { "content-length": 10 * MiB });
        res.write(chunk);
        return;
      }
      res.writeHead(200);
      const pump = () => {
        while (res.write(chunk));
      };
      res.on("drain", pump);
      pump();
    });
    const endless = await attempt(fetchBytes(url, { maxBytes: 4 * MiB }));
    expect(endless.kind).toBe("content");
    expect(endless.reason).toMatch(/more than 4194304 bytes received, over the download limit/);
    const t0 = performance.now();
    const declared = await attempt(fetchBytes(url.replace("/f", "/big"), { maxBytes: MiB }));
    expect(declared.reason).toMatch(/declares 10485760 bytes, over the 1048576-byte download limit/);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});
