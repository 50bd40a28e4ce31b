/**
 * OpenSSH known_hosts: plain and hashed (|1|salt|hash) host patterns, `[host]:port`, wildcards and negations,
 * @revoked markers. A host whose recorded key differs from the one presented is refused; a host not recorded is
 * added only when the caller accepts new hosts.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";

export interface KnownHostEntry {
  marker: "" | "@revoked" | "@cert-authority";
  patterns: string;
  keyType: string;
  key: Buffer;
  line: number;
}

export type HostKeyVerdict =
  | { status: "ok" }
  | { status: "unknown" }
  | { status: "changed"; knownTypes: string[]; line: number }
  | { status: "revoked"; line: number };

/** The name known_hosts uses for a host: `host`, or `[host]:port` when the port is not 22. */
export function hostKeyName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Key type named inside an SSH public key blob (its first string). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return "";
  const n = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + n).toString("latin1");
}

/** SHA256 fingerprint as OpenSSH prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const parts = line.split(/\s+/);
    let marker: KnownHostEntry["marker"] = "";
    if (parts[0] === "@revoked" || parts[0] === "@cert-authority")
      marker = parts.shift() as KnownHostEntry["marker"];
    if (parts.length < 3) return;
    const key = Buffer.from(parts[2]!, "base64");
    if (!key.length) return;
    out.push({ marker, patterns: parts[0]!, keyType: parts[1]!, key, line: i + 1 });
  });
  return out;
}

function globMatch(pattern: string, s: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".")}$`,
    "i",
  );
  return re.test(s);
}

/** Does an entry's host field name this host? */
export function patternsMatch(patterns: string, name: string): boolean {
  if (patterns.startsWith("|1|")) {
    const [, , salt, hash] = patterns.split("|");
    if (!salt || !hash) return false;
    return createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64") === hash;
  }
  let matched = false;
  for (const p of patterns.split(",")) {
    if (p.startsWith("!")) {
      if (globMatch(p.slice(1), name)) return false;
    } else if (globMatch(p, name)) matched = true;
  }
  return matched;
}

/** Judge a presented host key against known_hosts entries. */
export function verifyHostKey(entries: KnownHostEntry[], name: string, blob: Buffer): HostKeyVerdict {
  const mine = entries.filter((e) => patternsMatch(e.patterns, name));
  const revoked = mine.find((e) => e.marker === "@revoked" && e.key.equals(blob));
  if (revoked) return { status: "revoked", line: revoked.line };
  const plain = mine.filter((e) => e.marker === "");
  if (plain.some((e) => e.key.equals(blob))) return { status: "ok" };
  if (plain.length)
    return { status: "changed", knownTypes: [...new Set(plain.map((e) => e.keyType))], line: plain[0]!.line };
  return { status: "unknown" };
}

export function readKnownHosts(file: string): KnownHostEntry[] {
  return existsSync(file) ? parseKnownHosts(readFileSync(file, "utf8")) : [];
}

/** Record a host key (hashed, as OpenSSH's HashKnownHosts does). */
export function addKnownHost(file: string, name: string, blob: Buffer): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const salt = randomBytes(20);
  const hash = createHmac("sha1", salt).update(name).digest("base64");
  let prefix = "";
  if (existsSync(file)) {
    const text = readFileSync(file, "utf8");
    if (text.length && !text.endsWith("\n")) prefix = "\n";
  }
  appendFileSync(
    file,
    `${prefix}|1|${salt.toString("base64")}|${hash} ${keyTypeOf(blob)} ${blob.toString("base64")}\n`,
    { mode: 0o600 },
  );
}
