import { createHash } from "node:crypto";

export interface FetchOptions {
  /** Give up on one request after this many milliseconds (default: no limit). */
  timeoutMs?: number;
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

/** GET a URL into memory. Failures are `AttemptError`s saying whether the network or the server failed. */
export async function fetchBytes(url: string, opts: FetchOptions = {}): Promise<Uint8Array> {
  opts.onProgress?.(`downloading ${url}`);
  let res: Response;
  try {
    res = await fetch(url, opts.timeoutMs ? { signal: AbortSignal.timeout(opts.timeoutMs) } : {});
  } catch (e) {
    throw new AttemptError({ url, kind: "network", reason: networkReason(e) });
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new AttemptError({ url, kind: "http", reason: `HTTP ${res.status} ${res.statusText}`.trim() });
  }
  try {
    return new Uint8Array(await res.arrayBuffer());
  } catch (e) {
    throw new AttemptError({ url, kind: "network", reason: `connection lost: ${networkReason(e)}` });
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
