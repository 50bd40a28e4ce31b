import { createHash } from "node:crypto";

/** CIFAR-10's binary archive (the largest download, ~163 MiB) twice over. */
export const DEFAULT_MAX_DOWNLOAD = 384 * 1024 * 1024;
/** A download that sends nothing for this long is stalled. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

export interface FetchOptions {
  /** Give up on one request after this many milliseconds in all (default: no limit beyond the idle timeout). */
  timeoutMs?: number;
  /** Give up when no bytes arrive for this many milliseconds (default 60 s): a stalled server fails, not hangs. */
  idleTimeoutMs?: number;
  /** Refuse a response larger than this many bytes, declared or received (default 384 MiB). */
  maxBytes?: number;
  /** Told what is being fetched (the CLI prints it). */
  onProgress?: (message: string) => void;
}

/** Why one download attempt failed: the network (offline, refused, DNS), the server (HTTP status), or the bytes. */
export interface FailedAttempt {
  url: string;
  kind: "network" | "http" | "content";
  reason: string;
}

export class AttemptError extends Error {
  constructor(readonly attempt: FailedAttempt) {
    super(`${attempt.url}: ${attempt.reason}`);
  }
}

/**
 * GET a URL into memory, streamed: the body is refused as soon as it passes `maxBytes` (or its Content-Length
 * says it will), and the request is aborted when no bytes arrive for `idleTimeoutMs` or the whole takes longer
 * than `timeoutMs`. Failures are `AttemptError`s saying whether the network, the server or the size failed.
 */
export async function fetchBytes(url: string, opts: FetchOptions = {}): Promise<Uint8Array> {
  opts.onProgress?.(`downloading ${url}`);
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_DOWNLOAD;
  const idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const ctl = new AbortController();
  let why: string | undefined;
  const abort = (reason: string) => {
    why ??= reason;
    ctl.abort();
  };
  let idle = setTimeout(() => abort(`stalled: no data for ${idleMs / 1000} s`), idleMs);
  const total = opts.timeoutMs
    ? setTimeout(() => abort(`timed out after ${opts.timeoutMs! / 1000} s`), opts.timeoutMs)
    : undefined;
  const fail = (kind: FailedAttempt["kind"], reason: string) => new AttemptError({ url, kind, reason });
  try {
    let res: Response;
    try {
      res = await fetch(url, { signal: ctl.signal });
    } catch (e) {
      throw fail("network", why ?? networkReason(e));
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw fail("http", `HTTP ${res.status} ${res.statusText}`.trim());
    }
    const declared = Number(res.headers.get("content-length") ?? Number.NaN);
    if (declared > maxBytes) {
      await res.body?.cancel();
      throw fail(
        "content",
        `the server declares ${declared} bytes, over the ${maxBytes}-byte download limit`,
      );
    }
    const chunks: Uint8Array[] = [];
    let got = 0;
    const reader = res.body?.getReader();
    while (reader) {
      let step: Awaited<ReturnType<typeof reader.read>>;
      try {
        step = await reader.read();
      } catch (e) {
        throw fail("network", why ? `${why} after ${got} bytes` : `connection lost: ${networkReason(e)}`);
      }
      if (step.done) break;
      got += step.value.length;
      if (got > maxBytes) {
        abort("too large");
        throw fail("content", `more than ${maxBytes} bytes received, over the download limit; stopped`);
      }
      chunks.push(step.value);
      clearTimeout(idle);
      idle = setTimeout(() => abort(`stalled: no data for ${idleMs / 1000} s`), idleMs);
    }
    const out = new Uint8Array(got);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  } finally {
    clearTimeout(idle);
    clearTimeout(total);
  }
}

function networkReason(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err?.name === "TimeoutError") return "timed out";
  return err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(e);
}

export function digest(algorithm: "sha256" | "md5", bytes: Uint8Array): string {
  return createHash(algorithm).update(bytes).digest("hex");
}

/** Join a base URL and a file name with exactly one slash. */
export function urlJoin(base: string, file: string): string {
  return base.endsWith("/") ? base + file : `${base}/${file}`;
}
